"""Reliability diagrams: bars, Wilson intervals, count histogram, no stacks of tied bins, nothing clipped."""

from __future__ import annotations

import numpy as np
import pytest

from calib_harness import metrics as M
from calib_harness import plots
from calib_harness.calibration import HistogramBinning, evaluate_split
from calib_harness.records import load_records_jsonl


@pytest.fixture(scope="module")
def easy(fixtures_dir):
    return load_records_jsonl(fixtures_dir / "records" / "arc_easy_dev_smollm2.jsonl")


def _bars(ax):
    from matplotlib.patches import Rectangle

    return [p for p in ax.patches if isinstance(p, Rectangle) and p.get_facecolor()[3] > 0 and p.get_height() > 0]


def test_tied_values_give_one_bar_each_and_nothing_is_clipped(easy):
    import matplotlib.pyplot as plt

    conf, y = easy.confidences(), easy.scores()
    # histogram binning gives few tied values; a third of the raw ones pushed to exactly 1.0 and some to 0.0
    tied = HistogramBinning(n_bins=6).fit(conf, y).predict(conf)
    tied[::3] = 1.0
    tied[1::17] = 0.0
    fig, (ax, ax_h) = plt.subplots(2, 1)
    out = plots.reliability_panel(ax, ax_h, tied, y, n_bins=15, title="tied")
    rows = out["rows"]
    # one bin per distinct value: no two bins at the same confidence (no vertical stack)
    assert len(rows) == np.unique(tied).size
    assert len({r.mean_conf for r in rows}) == len(rows)
    bars = _bars(ax)
    accuracy_bars = [b for b in bars if b.get_y() == 0.0]
    assert len(accuracy_bars) == len(rows)
    lo, hi = ax.get_xlim()
    assert lo < 0.0 and hi > 1.0 and ax.get_ylim()[0] < 0.0 and ax.get_ylim()[1] > 1.0
    for b in accuracy_bars:  # every bar inside [0, 1] and at least MIN_BAR_WIDTH wide
        assert 0.0 <= b.get_x() and b.get_x() + b.get_width() <= 1.0 + 1e-12
        assert b.get_width() >= plots.MIN_BAR_WIDTH - 1e-12
    # the bars' heights are the bins' accuracies; the error bars are their Wilson intervals
    assert sorted(b.get_height() for b in accuracy_bars) == pytest.approx(sorted(r.mean_score for r in rows))
    for r in rows:
        assert (r.score_lo, r.score_hi) == pytest.approx(M.wilson_interval(r.mean_score * r.count, r.count))
    # the count histogram holds every sample, the spike at 1.0 included
    assert sum(b.get_height() for b in _bars(ax_h)) == len(tied)
    assert out["ece"] == pytest.approx(M.ece(tied, y))
    assert out["ece_lo"] <= out["ece"] <= out["ece_hi"]
    plt.close(fig)


def test_split_diagram_writes_png(easy, tmp_path):
    rep = evaluate_split(easy, "isotonic", "confidence")
    path = tmp_path / "r.png"
    plots.split_reliability_diagram(rep, path)
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 20_000
    assert not list(tmp_path.glob(".*.tmp"))  # written atomically, no temporary left
