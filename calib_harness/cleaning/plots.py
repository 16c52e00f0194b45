"""Cleaning precision vs detection rate (the paper's Figure 6), matplotlib Agg PNGs.

Method 2 is a line over K (with and without expert agreement); methods 1, 3 and Confident
Learning are single operating points (CL drawn as a star, as in the paper); a dotted line marks
the base rate, the precision of flagging at random.  One panel per
positives definition.  ``x="detection_rate"`` (default) plots recall of the reference's errors;
``x="flag_rate"`` plots flagged / evaluated, the paper's own x-axis.
"""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from calib_harness.cleaning.evaluate import EvalRow  # noqa: E402


def plot_precision_detection(rows: list[EvalRow], path: str | Path, x: str = "detection_rate", title: str | None = None) -> Path:
    if x not in ("detection_rate", "flag_rate"):
        raise ValueError("x must be 'detection_rate' or 'flag_rate'")
    positives = sorted({r.positives for r in rows}, key=["any", "strict"].index)
    fig, axes = plt.subplots(1, len(positives), figsize=(6 * len(positives), 4.6), squeeze=False)
    for ax, pos in zip(axes[0], positives):
        sub = [r for r in rows if r.positives == pos]
        for agree, style in ((False, "o-"), (True, "s--")):
            line = sorted((r for r in sub if r.family == "high-confidence" and bool(r.require_agreement) == agree), key=lambda r: r.K)
            pts = [(getattr(r, x), r.precision, r.K) for r in line if not np.isnan(r.precision)]
            if pts:
                xs, ys, ks = zip(*pts)
                ax.plot(xs, ys, style, ms=4, label="M2 high-confidence" + (" +agree" if agree else "") + " (K sweep)")
                for xx, yy, kk in pts[:: max(1, len(pts) // 5)]:
                    ax.annotate(f"K={kk}", (xx, yy), fontsize=7, textcoords="offset points", xytext=(3, 3))
        markers = {"top1": "^", "class-threshold": "D", "confident-learning": "*"}
        cl_colors = iter(["red", "darkred", "orangered", "crimson", "salmon", "maroon", "tomato"])
        for r in sub:
            if r.family in markers and not np.isnan(r.precision):
                ax.plot(
                    getattr(r, x),
                    r.precision,
                    markers[r.family],
                    ms=14 if r.family == "confident-learning" else 8,
                    color=next(cl_colors, "red") if r.family == "confident-learning" else None,
                    label=r.method,
                )
        n_eval = sub[0].n_eval if sub else 0
        n_err = sub[0].n_errors if sub else 0
        if n_eval:  # flagging at random has this precision in expectation
            ax.axhline(n_err / n_eval, color="gray", ls=":", lw=1, label=f"base rate {n_err / n_eval:.3f} (random flags)")
        ax.set_title(f"{sub[0].reference if sub else ''}: positives = {pos} ({n_err} errors / {n_eval})", fontsize=10)
        ax.set_xlabel("detection rate (TP / reference errors)" if x == "detection_rate" else "flagged / evaluated")
        ax.set_ylabel("cleaning precision (TP / flagged)")
        ax.set_ylim(-0.02, 1.02)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7, loc="best")
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path
