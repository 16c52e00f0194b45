"""Matplotlib (Agg) figures of a :class:`~calib_harness.routing.compare.CascadeComparison`.

Each router's line style comes from its class (``plot_style``, :mod:`calib_harness.routing.base`),
so a newly registered router is drawn without touching this file.  Curves carry their 95%
bootstrap bands (``CascadeComparison.bands``) and the legend sits outside the axes, so it covers
no data.  Undefined figures (NaN) are left out of the plots, never drawn or log-scaled.
"""

from __future__ import annotations

import logging
from pathlib import Path

import matplotlib
import numpy as np

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from calib_harness.routing.base import router_style  # noqa: E402

logger = logging.getLogger(__name__)


def _save(fig, path: str | Path) -> Path:
    from calib_harness.plots import save_png

    return save_png(fig, path, dpi=130, bbox_inches="tight")


def _label(comparison, name: str) -> str:
    a = comparison.apgr.get(name, float("nan"))
    ci = comparison.apgr_ci.get(name)
    if a is None or not np.isfinite(a):
        return f"{name} (APGR n/a)"
    if ci is not None and all(np.isfinite(ci)):
        return f"{name} (APGR {a:.3f} [{ci[0]:.3f}, {ci[1]:.3f}])"
    return f"{name} (APGR {a:.3f})"


def plot_curves(comparison, path: str | Path, title: str | None = None) -> Path:
    """Accuracy vs share kept on the small model, one line per router with its 95% band,
    APGR and its interval in the legend (outside the axes, on the right)."""
    fig, ax = plt.subplots(figsize=(6.0, 4.4))
    bands = getattr(comparison, "bands", {}) or {}
    for name, c in comparison.curves.items():
        style = router_style(name)
        order = c.share_small.argsort(kind="stable")
        (line,) = ax.plot(c.share_small[order], c.accuracy[order], label=_label(comparison, name), **style)
        b = bands.get(name)
        if b is not None:
            ax.fill_between(b["share_small"], b["lo"], b["hi"], color=line.get_color(), alpha=0.12, lw=0)
    ideal = comparison.ideal_curve
    ax.plot(ideal.share_small, ideal.accuracy, color="black", lw=0.8, ls="-.", alpha=0.6, label="ideal (GATEKEEPER eq. 11)")
    ax.axhline(comparison.p_large, color="grey", lw=0.6, alpha=0.5)
    ax.axhline(comparison.p_small, color="grey", lw=0.6, alpha=0.5)
    ax.set_xlabel(f"share of inputs kept on the small model ({comparison.small_model})")
    ax.set_ylabel("accuracy (test half)")
    ax.set_xlim(0, 1)
    ax.set_title(title or f"{comparison.small_model} -> {comparison.large_model} (n={comparison.n_test}; bands: 95% bootstrap)", fontsize=9)
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.02, 1.0), borderaxespad=0.0, frameon=False)
    ax.grid(alpha=0.3)
    return _save(fig, path)


def plot_bins_sensitivity(comparison, path: str | Path) -> Path | None:
    """APGR of the binned routers against the number of bins (``None`` when nothing is defined)."""
    fig, ax = plt.subplots(figsize=(5.2, 3.4))
    drawn = False
    for name, d in comparison.bins_sensitivity.items():
        ns = [n for n in sorted(d) if d[n] is not None and np.isfinite(d[n])]
        if not ns:
            continue
        style = {k: v for k, v in router_style(name).items() if k != "ms"}
        ax.plot(ns, [d[n] for n in ns], label=name, ms=4, **style)
        drawn = True
    if not drawn:
        plt.close(fig)
        logger.info("bins plot skipped: no defined APGR")
        return None
    ax.axhline(0.5, color="grey", ls="--", lw=1, label="random")
    ns_all = sorted({n for d in comparison.bins_sensitivity.values() for n in d if n > 0})
    if len(ns_all) > 1 and ns_all[-1] / ns_all[0] >= 10:
        ax.set_xscale("log")
    ax.set_xlabel("number of bins")
    ax.set_ylabel("APGR (test half)")
    ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.02, 1.0), borderaxespad=0.0, frameon=False)
    ax.grid(alpha=0.3)
    return _save(fig, path)
