"""Plots of a GATEKEEPER sweep (matplotlib Agg PNGs), after the paper's Figures 4, 5 and 11.

* ``fig4_<pair>.png``: s_o, s_d and acc(M_S) against alpha (GATEKEEPER line) with horizontal
  lines for the untuned model, the CE control and post-hoc calibration + CC routing.
* ``fig5_<pair>.png``: acc(M_S) against s_o (left) and against s_d (right), one point per variant.
* ``deferral_<pair>.png``: realized / random / ideal deferral curves per variant.
"""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from calib_harness.gatekeeper.evaluation import CascadeEval  # noqa: E402
from calib_harness.gatekeeper.store import VariantStore  # noqa: E402
from calib_harness.plots import save_png  # noqa: E402

BASE_STYLE = {"untuned": ("black", "--", "untuned"), "ce": ("tab:gray", ":", "CE fine-tune"),
              "posthoc_cc": ("tab:orange", "-.", "post-hoc TS + CC")}


def _label(e: CascadeEval) -> str:
    return f"α={e.alpha:g}" if e.method == "gatekeeper" else BASE_STYLE.get(e.method, (None, None, e.method))[2]


def plot_fig4(evs: list[CascadeEval], path: Path, title: str) -> Path:
    gk = sorted([e for e in evs if e.method == "gatekeeper"], key=lambda e: e.alpha)
    fig, axes = plt.subplots(1, 3, figsize=(13, 3.6))
    for ax, (key, name) in zip(axes, [("s_o", "s_o (↓)"), ("s_d", "s_d (↑)"), ("acc_small", "acc(M_S) (↑)")]):
        if gk:
            ax.plot([e.alpha for e in gk], [getattr(e, key) for e in gk], "o-", color="tab:blue", label="GATEKEEPER")
        for e in evs:
            if e.method in BASE_STYLE:
                c, ls, lab = BASE_STYLE[e.method]
                ax.axhline(getattr(e, key), color=c, ls=ls, label=lab)
        ax.set_xscale("log")
        ax.set_xlabel("α")
        ax.set_title(name)
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=8)
    fig.suptitle(title)
    fig.tight_layout()
    return save_png(fig, path, dpi=110)


def plot_fig5(evs: list[CascadeEval], path: Path, title: str) -> Path:
    fig, axes = plt.subplots(1, 2, figsize=(9, 3.8))
    for ax, key, name in [(axes[0], "s_o", "s_o (↓)"), (axes[1], "s_d", "s_d (↑)")]:
        for e in evs:
            color = BASE_STYLE[e.method][0] if e.method in BASE_STYLE else plt.cm.viridis(min(1.0, np.log10(max(e.alpha, 1e-3)) / -3 + 0.0))
            ax.scatter(getattr(e, key), e.acc_small, color=color, s=40, marker="s" if e.method in BASE_STYLE else "o")
            ax.annotate(_label(e), (getattr(e, key), e.acc_small), fontsize=7, xytext=(3, 3), textcoords="offset points")
        ax.set_xlabel(name)
        ax.set_ylabel("acc(M_S)")
        ax.grid(alpha=0.3)
    fig.suptitle(title)
    fig.tight_layout()
    return save_png(fig, path, dpi=110)


def plot_deferral(evs: list[CascadeEval], path: Path, title: str) -> Path:
    n = len(evs)
    cols = min(4, n)
    rows = int(np.ceil(n / cols))
    fig, axes = plt.subplots(rows, cols, figsize=(3.2 * cols, 2.8 * rows), squeeze=False)
    for ax, e in zip(axes.ravel(), evs):
        c = e.curves
        ax.plot(c["r"], c["ideal"], "g--", label="ideal")
        ax.plot(c["r"], c["random"], "r-", label="random")
        ax.plot(c["r"], c["realized"], "k-", label="realized")
        ax.set_title(f"{_label(e)}: s_d={e.s_d:.3f}", fontsize=9)
        ax.set_xlabel("deferral ratio r", fontsize=8)
        ax.grid(alpha=0.3)
    for ax in axes.ravel()[n:]:
        ax.axis("off")
    axes[0, 0].legend(fontsize=7)
    fig.suptitle(title)
    fig.tight_layout()
    return save_png(fig, path, dpi=100)


def plot_pair(folder: str | Path, title: str) -> list[Path]:
    """All plots of one pair's saved variants, written into ``folder``."""
    folder = Path(folder)
    evs = VariantStore(folder).load_all()
    if not evs:
        return []
    tag = folder.name
    return [
        plot_fig4(evs, folder / f"fig4_{tag}.png", title),
        plot_fig5(evs, folder / f"fig5_{tag}.png", title),
        plot_deferral(evs, folder / f"deferral_{tag}.png", title),
    ]
