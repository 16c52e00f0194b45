"""Reliability diagrams (matplotlib, Agg backend, PNG), paper-ready, after Figure 1 of Hao et al. (2026).

Each panel shows, over equal-count bins of the confidence (the shared tie-aware
:class:`~calib_harness.binning.EqualCountBinner`, 15 by default):

* a **bar** per bin whose height is the bin's accuracy (mean verifier score), spanning the
  bin's confidence range (at least :data:`MIN_BAR_WIDTH` wide, so a bin of tied values, e.g.
  all at exactly 1.0, stays visible);
* the bin's **95% Wilson interval** of that accuracy as an error bar at the bin's mean
  confidence, and the gap to the mean confidence as a hatched band;
* the dashed diagonal (perfect calibration);
* below it, a **count histogram** of the confidences (equal-width, so a spike at 0 or 1 shows).

Tied values (histogram binning and isotonic regression give many) form one bin each, so
there are no vertical stacks of bins at one confidence; the axes reach slightly beyond
[0, 1] and markers are not clipped, so bins at exactly 0 or 1 show in full.  Titles carry
the ECE with its 95% interval; the legend sits below the panels and covers no data.

* :func:`reliability_diagram` -- one column per :class:`Curve`.
* :func:`split_reliability_diagram` -- a :class:`~calib_harness.calibration.SplitReport`:
  one column per part (calibration half, test half, shifted run), uncalibrated on the top
  row and calibrated on the bottom row.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np

from calib_harness import metrics
from calib_harness.binning import EqualCountBinner

PART_TITLES = {"cal": "calibration half", "test": "test half", "shift": "shifted run", "all": "all records"}
METHOD_TITLES = {
    "temperature": "temperature scaling",
    "platt": "Platt scaling",
    "histogram": "histogram binning",
    "isotonic": "isotonic regression",
}
PART_COLORS = {"cal": "tab:blue", "test": "tab:orange", "shift": "tab:green", "all": "tab:purple"}
#: narrowest bar drawn (in confidence units), so a bin of one tied value stays visible
MIN_BAR_WIDTH = 0.015
#: equal-width bins of the count histogram under each panel
HIST_BINS = 40
_LIM = (-0.015, 1.015)


def _pyplot():
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    return plt


@dataclass
class Curve:
    """One set of ``(confidence, score)`` to draw as a reliability panel."""

    label: str
    confidence: np.ndarray
    score: np.ndarray
    color: str | None = None
    alpha: float = 1.0


def _bar_span(lo: float, hi: float, centre: float) -> tuple[float, float]:
    """Left edge and width of a bin's bar: its confidence range, widened to MIN_BAR_WIDTH inside [0, 1]."""
    if hi - lo >= MIN_BAR_WIDTH:
        return lo, hi - lo
    left = min(max(centre - MIN_BAR_WIDTH / 2, 0.0), 1.0 - MIN_BAR_WIDTH)
    return left, MIN_BAR_WIDTH


def reliability_panel(ax, ax_hist, confidence, score, n_bins: int = 15, color: str | None = None, title: str = "",
                      binning: str = "equal_count", seed: int = 0) -> dict:
    """Draw one reliability panel on ``ax`` and its count histogram on ``ax_hist``.

    Returns ``{"ece", "ece_lo", "ece_hi", "rows"}`` (the bin rows of :func:`metrics.bin_table`).
    """
    c = np.asarray(confidence, dtype=np.float64)
    s = np.asarray(score, dtype=np.float64)
    color = color or "tab:blue"
    rows = [r for r in metrics.bin_table(c, s, n_bins, binning) if r.count]
    ece = metrics.ece(c, s, n_bins, binning)
    ece_lo, ece_hi = metrics.ece_interval(c, s, n_bins, binning, seed=seed)
    ax.plot([0, 1], [0, 1], ls="--", color="0.55", lw=0.9, zorder=1)
    if binning == "equal_count":
        # bars tile the confidence axis between the binner's boundaries (not each bin's min..max, which is a
        # needle when a bin holds one value)
        edges = EqualCountBinner(n_bins).fit(c).edges_
        spans = {i: (float(edges[i]), float(edges[i + 1])) for i in range(edges.size - 1)}
    else:
        spans = {r.index: (r.lo, r.hi) for r in rows}
    for r in rows:
        left, width = _bar_span(*spans[r.index], r.mean_conf)
        ax.bar(left, r.mean_score, width=width, align="edge", color=color, alpha=0.8, edgecolor="white", lw=0.6,
               zorder=2)
        lo, hi = sorted((r.mean_score, r.mean_conf))
        ax.bar(left, hi - lo, bottom=lo, width=width, align="edge", facecolor="none", edgecolor="tab:red",
               hatch="////", lw=0.0, alpha=0.55, zorder=3)
        ax.errorbar(r.mean_conf, r.mean_score, yerr=[[r.mean_score - r.score_lo], [r.score_hi - r.mean_score]],
                    fmt="o", ms=2.6, color="black", lw=0.8, capsize=1.8, zorder=4, clip_on=False)
    ax.set_xlim(*_LIM)
    ax.set_ylim(*_LIM)
    ax.set_aspect("equal", adjustable="box")
    ax.set_ylabel("accuracy")
    ax.grid(alpha=0.2, lw=0.5)
    ax.tick_params(labelbottom=False, labelsize=7)
    interval = f" [{ece_lo:.3f}, {ece_hi:.3f}]" if np.isfinite(ece_lo) else ""
    ax.set_title(f"{title}\nECE {ece:.3f}{interval}, n={c.size}" if title else f"ECE {ece:.3f}{interval}, n={c.size}",
                 fontsize=8)
    counts, edges = np.histogram(np.clip(c, 0.0, 1.0), bins=HIST_BINS, range=(0.0, 1.0))
    ax_hist.bar(edges[:-1], counts, width=np.diff(edges), align="edge", color=color, alpha=0.8, edgecolor="white",
                lw=0.4)
    ax_hist.set_xlim(*_LIM)
    ax_hist.set_ylim(0, max(1, counts.max()) * 1.15)
    ax_hist.set_xlabel("confidence", fontsize=8)
    ax_hist.set_ylabel("count", fontsize=7)
    ax_hist.tick_params(labelsize=7)
    ax_hist.grid(alpha=0.2, lw=0.5, axis="y")
    return {"ece": ece, "ece_lo": ece_lo, "ece_hi": ece_hi, "rows": rows}


def _legend(fig, color: str = "tab:blue", n_cols: int = 3) -> None:
    from matplotlib.lines import Line2D
    from matplotlib.patches import Patch

    handles = [
        Patch(facecolor=color, alpha=0.8, label="accuracy per equal-count bin"),
        Line2D([], [], color="black", marker="o", ms=3, lw=0.8, label="95% Wilson interval at mean confidence"),
        Patch(facecolor="none", edgecolor="tab:red", hatch="////", alpha=0.55, label="gap to mean confidence"),
        Line2D([], [], color="0.55", ls="--", lw=0.9, label="perfect calibration"),
    ]
    fig.legend(handles=handles, loc="lower center", ncol=4 if n_cols >= 3 else 2, fontsize=7, frameon=False)


def _grid(plt, n_rows: int, n_cols: int):
    """``n_rows`` x ``n_cols`` panels, each a reliability axes over a short histogram axes."""
    fig = plt.figure(figsize=(3.3 * n_cols + 0.4, 4.3 * n_rows + 0.6), dpi=150)
    outer = fig.add_gridspec(n_rows, n_cols, hspace=0.32, wspace=0.3, left=0.08, right=0.98,
                             top=0.88 if n_rows == 1 else 0.92,
                             bottom=(0.12 if n_cols >= 3 else 0.17) if n_rows == 1 else (0.08 if n_cols >= 3 else 0.1))
    axes = []
    for i in range(n_rows):
        row = []
        for j in range(n_cols):
            inner = outer[i, j].subgridspec(2, 1, height_ratios=[4, 1], hspace=0.08)
            ax = fig.add_subplot(inner[0])
            ax_h = fig.add_subplot(inner[1], sharex=ax)
            row.append((ax, ax_h))
        axes.append(row)
    return fig, axes


def reliability_diagram(
    curves: Sequence[Curve],
    path: str | Path | None = None,
    n_bins: int = 15,
    binning: str = "equal_count",
    title: str | None = None,
    seed: int = 0,
):
    """One reliability panel (with its count histogram) per curve, side by side.

    Returns the matplotlib Figure; with ``path`` it is also saved as PNG (parent folders
    are created) and closed.
    """
    if not curves:
        raise ValueError("reliability_diagram needs at least one curve")
    plt = _pyplot()
    fig, axes = _grid(plt, 1, len(curves))
    for (ax, ax_h), c in zip(axes[0], curves):
        reliability_panel(ax, ax_h, c.confidence, c.score, n_bins, c.color, c.label, binning, seed)
    if title:
        fig.suptitle(title, fontsize=10)
    _legend(fig, curves[0].color or "tab:blue", len(curves))
    if path is not None:
        save_png(fig, path)
    return fig


def split_reliability_diagram(
    report,
    path: str | Path | None = None,
    n_bins: int = 15,
    binning: str = "equal_count",
    title: str | None = None,
):
    """Figure 1 style panels for a :class:`~calib_harness.calibration.SplitReport`.

    One column per part it holds (``cal``, ``test``, ``shift``); the top row uncalibrated,
    the bottom row calibrated, each panel over a count histogram.
    """
    plt = _pyplot()
    parts = [p for p in ("cal", "test", "shift", "all") if p in report.confidences]
    fig, axes = _grid(plt, 2, len(parts))
    name = METHOD_TITLES.get(report.method, report.method)
    seed = getattr(report, "seed", 0)
    for j, part in enumerate(parts):
        conf, score = report.confidences[part], report.scores[part]
        for i, (stage, label) in enumerate((("before", "uncalibrated"), ("after", name))):
            ax, ax_h = axes[i][j]
            reliability_panel(ax, ax_h, conf[stage], score, n_bins, PART_COLORS.get(part), f"{PART_TITLES.get(part, part)}: {label}",
                              binning, seed)
    feature = "" if report.feature == "option_scores" else f" on {report.feature}"
    fig.suptitle(title or f"{name}{feature}: {n_bins} {binning.replace('_', '-')} bins", fontsize=10)
    _legend(fig, "0.4", len(parts))
    if path is not None:
        save_png(fig, path)
    return fig


def save_png(fig, path: str | Path, **savefig_kw) -> Path:
    """THE way a figure is written: rendered to PNG in memory (``savefig_kw``: ``dpi``, ``bbox_inches``),
    closed, then written atomically (:func:`calib_harness.outputs.write_bytes`; parent folders made)."""
    import io

    from calib_harness.outputs import write_bytes

    buf = io.BytesIO()
    fig.savefig(buf, format="png", **savefig_kw)
    _pyplot().close(fig)
    return write_bytes(path, buf.getvalue())
