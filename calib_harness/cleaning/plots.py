"""Cleaning precision vs detection rate (the paper's Figure 6), matplotlib Agg PNGs.

Method 2 is a line over K (with and without expert agreement); methods 1, 3 and Confident
Learning are single operating points (CL drawn as a star, as in the paper); a dotted line marks
the base rate, the precision of flagging at random.  Every point carries its 95% Wilson
interval: vertical for precision, horizontal for the detection rate.  K labels are placed so
that none overprints another, each tied to its point by a thin leader line (a label that finds no
free spot next to its point is left out; the K values of a line increase along it).  The legend sits outside the axes, so it covers no
data.  One panel per positives definition.  ``x="detection_rate"`` (default) plots recall of
the reference's errors; ``x="flag_rate"`` plots flagged / evaluated, the paper's own x-axis.
"""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import matplotlib.text  # noqa: E402
import numpy as np  # noqa: E402

from calib_harness.cleaning.evaluate import EvalRow  # noqa: E402

#: Offsets (points) tried, in order, for a K label beside its marker.
_LABEL_OFFSETS = ((4, 4), (4, -11), (-26, 4), (-26, -11), (6, -3), (-30, -3), (0, 9), (0, -15))


def _overlaps(bb, placed) -> bool:
    return any(bb.overlaps(p) for p in placed)


def _place_labels(ax, pts, placed: list, renderer, color, done: set) -> int:
    """Annotate ``(x, y, K)`` points with ``K=..`` where the label box lies inside the axes and
    overlaps no earlier label (a point already labelled by another line is skipped)."""
    shown = 0
    frame = ax.get_window_extent(renderer)
    for xx, yy, kk in pts:
        key = (round(float(xx), 9), round(float(yy), 9), int(kk))
        if key in done:
            continue
        for dx, dy in _LABEL_OFFSETS:
            ann = ax.annotate(f"K={kk}", (xx, yy), fontsize=7, textcoords="offset points", xytext=(dx, dy),
                              color=color, annotation_clip=True,
                              arrowprops={"arrowstyle": "-", "lw": 0.4, "color": color, "shrinkA": 0, "shrinkB": 2})
            # the text's own box (an Annotation's box would include its leader line)
            ann.update_positions(renderer)
            bb = matplotlib.text.Text.get_window_extent(ann, renderer).expanded(1.2, 1.3)
            inside = frame.x0 <= bb.x0 and bb.x1 <= frame.x1 and frame.y0 <= bb.y0 and bb.y1 <= frame.y1
            if inside and not _overlaps(bb, placed):
                done.add(key)
                placed.append(bb)
                shown += 1
                break
            ann.remove()
    return shown


def _intervals(rows: list[EvalRow], x: str) -> tuple[np.ndarray, np.ndarray | None]:
    y = np.array([r.precision for r in rows])
    yerr = np.array([[r.precision - r.precision_lo for r in rows], [r.precision_hi - r.precision for r in rows]])
    xerr = None
    if x == "detection_rate":
        d = np.array([r.detection_rate for r in rows])
        xerr = np.array([[r.detection_rate - r.detection_rate_lo for r in rows],
                         [r.detection_rate_hi - r.detection_rate for r in rows]])
        xerr = np.where(np.isfinite(xerr), np.maximum(xerr, 0), 0) if np.isfinite(d).all() else None
    return np.where(np.isfinite(yerr), np.maximum(yerr, 0), 0), xerr


def plot_precision_detection(rows: list[EvalRow], path: str | Path, x: str = "detection_rate", title: str | None = None) -> Path:
    """Write the figure (see the module docstring) as a PNG, atomically."""
    fig = precision_detection_figure(rows, x, title)
    from calib_harness.plots import save_png

    return save_png(fig, path, dpi=130)


def precision_detection_figure(rows: list[EvalRow], x: str = "detection_rate", title: str | None = None):
    """The matplotlib figure of :func:`plot_precision_detection` (the caller closes it)."""
    if x not in ("detection_rate", "flag_rate"):
        raise ValueError("x must be 'detection_rate' or 'flag_rate'")
    positives = sorted({r.positives for r in rows}, key=["any", "strict"].index)
    fig, axes = plt.subplots(1, max(1, len(positives)), figsize=(7.2 * max(1, len(positives)) + 3.2, 5.0), squeeze=False)
    renderer = fig.canvas.get_renderer()
    k_lines: dict[int, list] = {}
    for a_i, (ax, pos) in enumerate(zip(axes[0], positives)):
        sub = [r for r in rows if r.positives == pos]
        ax.set_ylim(-0.02, 1.04)
        lines = k_lines.setdefault(a_i, [])
        for agree, style, color in ((False, "o-", "tab:blue"), (True, "s--", "tab:orange")):
            line = sorted((r for r in sub if r.family == "high-confidence" and bool(r.require_agreement) == agree), key=lambda r: r.K)
            line = [r for r in line if np.isfinite(r.precision)]
            if not line:
                continue
            xs = np.array([getattr(r, x) for r in line])
            ys = np.array([r.precision for r in line])
            yerr, xerr = _intervals(line, x)
            ax.errorbar(xs, ys, yerr=yerr, xerr=xerr, fmt=style, ms=4, color=color, ecolor=color, elinewidth=0.7,
                        capsize=2, alpha=0.9, label="M2 high-confidence" + (" +agree" if agree else "") + " (K sweep, 95% CI)")
            lines.append(([(xx, yy, r.K) for xx, yy, r in zip(xs, ys, line)], color))
        markers = {"top1": "^", "class-threshold": "D", "confident-learning": "*"}
        cl_colors = iter(["red", "darkred", "orangered", "crimson", "salmon", "maroon", "tomato"])
        other_colors = iter(["tab:green", "tab:purple", "tab:brown", "tab:olive", "tab:cyan", "tab:pink"])
        for r in sub:
            if r.family in markers and np.isfinite(r.precision):
                yerr, xerr = _intervals([r], x)
                color = next(cl_colors, "red") if r.family == "confident-learning" else next(other_colors, "black")
                ax.errorbar([getattr(r, x)], [r.precision], yerr=yerr, xerr=xerr, fmt=markers[r.family],
                            ms=13 if r.family == "confident-learning" else 7, color=color, ecolor=color,
                            elinewidth=0.7, capsize=2, label=r.method)
        n_eval = sub[0].n_eval if sub else 0
        n_err = sub[0].n_errors if sub else 0
        if n_eval:  # flagging at random has this precision in expectation
            ax.axhline(n_err / n_eval, color="gray", ls=":", lw=1, label=f"base rate {n_err / n_eval:.3f} (random flags)")
        ax.set_title(f"{sub[0].reference if sub else ''}: positives = {pos} ({n_err} errors / {n_eval})", fontsize=10)
        ax.set_xlabel("detection rate (TP / reference errors)" if x == "detection_rate" else "flagged / evaluated")
        ax.set_ylabel("cleaning precision (TP / flagged)")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0), borderaxespad=0.0)
    fig.tight_layout()
    if title:
        fig.suptitle(title, fontsize=11)
        fig.tight_layout()
    # labels last, once the layout (and so every point's position on the canvas) is final
    fig.canvas.draw()
    for a_i, ax in enumerate(axes[0][: len(positives)]):
        placed: list = []
        done: set = set()
        for artist in ax.get_lines():  # keep labels off the markers' own spots
            if artist.get_marker() not in (None, "None", "", " "):
                for xy in ax.transData.transform(np.column_stack(artist.get_data()).astype(float)):
                    if np.isfinite(xy).all():
                        placed.append(matplotlib.transforms.Bbox.from_bounds(xy[0] - 3, xy[1] - 3, 6, 6))
        for pts, color in k_lines.get(a_i, []):
            _place_labels(ax, pts, placed, renderer, color, done)
    return fig
