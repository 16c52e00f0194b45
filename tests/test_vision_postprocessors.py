"""Calibration, cascade and cleaning on image records: the shipped MNIST pair on the 10k test set, through
THE report pipeline (:func:`calib_harness.report.build.build_report`), the same as LM runs.

The records come from the shipped logits (made by the vision adapter from the shipped
weights, see test_vision.py); the cleaning reference is cleanlab's human-verified MTurk
verdicts on the MNIST test set (shared data: label_errors/cleanlab), found by the report itself.
"""

from __future__ import annotations

import numpy as np
import pytest

from calib_harness import metrics
from calib_harness.calibration import fit_run_calibrator, split_runs
from calib_harness.cleaning.reference import mturk_reference
from calib_harness.records import align
from calib_harness.report.build import build_report
from calib_harness.vision import mnist_pair as mp


@pytest.fixture(scope="module")
def pair():
    small, large = mp.load_pair_runs("test")
    return small, large


@pytest.fixture(scope="module")
def report(pair, shared_data, tmp_path_factory):
    out = tmp_path_factory.mktemp("mnist_report")
    small, large = pair
    return build_report([small, large], out, small=small.model, large=large.model, data_dir=shared_data, mf=False,
                        progress=False)


def test_pair_records(pair):
    small, large = pair
    assert len(small) == len(large) == 10_000
    assert small.tasks == large.tasks == ["mnist_test"]
    a, b = align(small, large)
    assert a.keys == small.keys and b.keys == large.keys
    acc_s, acc_l = small.scores().mean(), large.scores().mean()
    assert 0.80 < acc_s < 0.97 < acc_l, (acc_s, acc_l)  # a real gap for the cascade
    gold = [r.gold for r in large.records]
    assert gold == [str(v) for v in mp.load_mnist().labels["test"]]
    r = large.records[0]
    assert r.option_token_mode == "logits" and r.option_labels == mp.CLASSES


def test_temperature_scaling_on_images(pair):
    """Fit T on one half of the test set, ECE drops on the other half."""
    for run in pair:
        (cal, test), = split_runs(run)
        rc = fit_run_calibrator(cal, "temperature")
        before = metrics.ece(test.confidences(), test.scores())
        after = metrics.ece(rc.confidence(test), test.scores())
        assert after < before, (run.model, before, after)
        assert after < 0.02, (run.model, after)
        # calibrated records keep the same predictions
        calibrated = rc.apply(test)
        assert [r.prediction for r in calibrated.records] == [r.prediction for r in test.records]


def test_report_calibration_and_plots(report):
    cal = report.numbers["calibration"]
    assert len(cal) == 2
    for model, rep in cal.items():
        for part in ("cal", "test"):
            m = rep["metrics"][part]
            assert m["after"]["ece"] < m["before"]["ece"], (model, part, m)
    assert {"reliability_mnist-resnet10t-w4", "reliability_mnist-resnet10t-w32", "cascade_curves",
            "cleaning_precision"} <= set(report.figures)
    for p in report.figures.values():
        assert p.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    md = report.markdown.read_text()
    assert "## Calibration" in md and "## Cascade" in md and "## Label cleaning" in md and "MF skipped" not in md


def test_cascade_apgr(report):
    a = report.numbers["cascade"]["apgr"]
    assert "MF" not in a  # mf=False
    assert a["random"] == pytest.approx(0.5, abs=0.02)
    assert a["oracle"] > a["CC"] > a["random"] + 0.2, a
    assert a["CC"] >= a["UC"] - 0.02, a


def test_cleaning_against_mturk(report, shared_data):
    """Algorithm 2 on the 10k test set with both models as experts, scored against cleanlab's human-verified
    errors (the report finds the reference for ``mnist_test`` on its own)."""
    ref = mturk_reference(shared_data, "mnist", task="mnist_test", class_names=[str(i) for i in range(10)])
    n_errors = sum(ref.is_error(e) for e in ref.entries.values())
    assert (len(ref), n_errors) == (100, 15)  # 100 reviewed, 15 confirmed label errors
    rows = {r["method"]: r for r in report.numbers["cleaning"]}
    assert {r["reference"] for r in rows.values()} == {ref.name}
    m1 = rows["M1 top-1"]
    flagged = {r["method"]: r for r in report.numbers["cleaning_flagged"]}
    # the two experts' joint disagreements recover half the verified errors while flagging < 2.5% of the
    # 10,000 images: enriched > 20x over random flagging (which finds a share of errors equal to its flag rate)
    assert m1["detection_rate"] >= 0.5 and flagged["M1 top-1"]["n_flagged"] < 250, (m1, flagged["M1 top-1"])
    assert m1["precision"] > n_errors / len(ref), m1
    # K trades detection for precision: more bins, more flags
    ks = sorted(int(k.split("=")[1]) for k in rows if k.startswith("M2 K="))
    assert all(rows[f"M2 K={a}"]["n_flagged"] <= rows[f"M2 K={b}"]["n_flagged"] for a, b in zip(ks, ks[1:]))
    assert rows["M1 top-1 +agree"]["n_flagged"] <= m1["n_flagged"]
    md = report.markdown.read_text()
    assert "APGR" in md and "M1 top-1" in md and ref.name in md
