"""Calibrators, the split protocol and record-level helpers on real ARC records."""

from __future__ import annotations

import functools
import json

import numpy as np
import pytest
from scipy.special import log_softmax
from sklearn.exceptions import NotFittedError
from sklearn.isotonic import IsotonicRegression
from sklearn.linear_model import LogisticRegression

from calib_harness import metrics as M
from calib_harness.calibration import (
    HistogramBinning,
    IsotonicCalibration,
    PlattScaling,
    RunCalibrator,
    TemperatureScaling,
    calibrator_from_json,
    evaluate_shift,
    evaluate_split,
    fit_run_calibrator,
    split_indices,
    split_runs,
)
from calib_harness.records import Run, align, load_records_jsonl


@pytest.fixture(scope="module")
def easy(fixtures_dir) -> Run:
    return load_records_jsonl(fixtures_dir / "records" / "arc_easy_dev_smollm2.jsonl")


@pytest.fixture(scope="module")
def challenge(fixtures_dir) -> Run:
    return load_records_jsonl(fixtures_dir / "records" / "arc_challenge_dev_smollm2.jsonl")


def brute_force_temperature(z, y):
    ts = np.exp(np.linspace(np.log(0.05), np.log(20), 4001))
    nll = [-np.mean(log_softmax(z / t, axis=1)[np.arange(len(y)), y]) for t in ts]
    return ts[int(np.argmin(nll))], min(nll)


# -- temperature scaling ---------------------------------------------------------------------


def test_temperature_scaling_minimises_nll_on_real_option_scores(easy):
    z, gold, pred = easy.option_matrix()
    ts = TemperatureScaling().fit(z, gold)
    t_ref, nll_ref = brute_force_temperature(np.where(np.isfinite(z), z, -1e30), gold)
    assert ts.temperature_ == pytest.approx(t_ref, rel=2e-3)
    assert ts.nll_after_ == pytest.approx(nll_ref, abs=1e-6)
    assert ts.nll_after_ <= ts.nll_before_
    p = ts.predict_proba(z)
    assert p.shape == z.shape and np.allclose(p.sum(axis=1), 1.0)
    assert M.nll_multiclass(p, gold) == pytest.approx(ts.nll_after_, abs=1e-9)
    # temperature never changes the prediction
    assert np.array_equal(p.argmax(axis=1), pred)


def test_temperature_padding_rows_get_zero_probability():
    z = np.array([[0.0, -1.0, -np.inf], [2.0, 0.5, -0.3], [-4.0, -3.0, -np.inf]])
    ts = TemperatureScaling().fit(z, np.array([0, 1, 1]))
    p = ts.predict_proba(z)
    assert p[0, 2] == 0.0 and p[2, 2] == 0.0
    assert np.allclose(p.sum(axis=1), 1.0)
    scaled = ts.scale_logits(z)
    assert np.isneginf(scaled[0, 2]) and np.allclose(np.exp(log_softmax(scaled[1])), p[1])


def test_temperature_scaling_validation():
    with pytest.raises(ValueError, match=r"\(n, k\) matrix"):
        TemperatureScaling().fit(np.zeros(3), np.zeros(3, int))
    with pytest.raises(ValueError, match="point at -inf"):
        TemperatureScaling().fit(np.array([[0.0, -np.inf]]), np.array([1]))
    with pytest.raises(ValueError, match="outside"):
        TemperatureScaling().fit(np.zeros((2, 3)), np.array([0, -1]))
    with pytest.raises(ValueError, match="NaN"):
        TemperatureScaling().fit(np.array([[0.0, np.nan]]), np.array([0]))
    with pytest.raises(NotFittedError):
        TemperatureScaling().predict_proba(np.zeros((1, 2)))


# -- scalar calibrators --------------------------------------------------------------------


def test_platt_matches_unregularised_logistic_regression(easy):
    x, y = easy.feature("mean_logit"), easy.scores()
    pl = PlattScaling().fit(x, y)
    lr = LogisticRegression(C=1e12, tol=1e-12, max_iter=10_000).fit(x[:, None], y)
    assert pl.a_ == pytest.approx(lr.coef_[0, 0], rel=1e-4, abs=1e-6)
    assert pl.b_ == pytest.approx(lr.intercept_[0], rel=1e-4, abs=1e-6)
    assert np.allclose(pl.predict_proba(x), lr.predict_proba(x[:, None]), atol=1e-6)  # (n, 2) as sklearn
    # calibration-in-the-large: the NLL optimum matches the mean score
    assert pl.predict(x).mean() == pytest.approx(y.mean(), abs=1e-6)


def test_platt_logit_input_and_soft_labels(easy):
    conf, y = easy.confidences(), easy.scores()
    pl = PlattScaling(logit_input=True).fit(conf, y)
    assert M.nll(pl.predict(conf), y) <= M.nll(conf, y) + 1e-12
    soft = np.clip(y * 0.8 + 0.1, 0, 1)
    pl_soft = PlattScaling().fit(conf, soft)
    assert pl_soft.predict(conf).mean() == pytest.approx(soft.mean(), abs=1e-6)
    with pytest.raises(ValueError, match="needs x in"):
        PlattScaling(logit_input=True).fit(conf * 3, y)
    # l2 shrinks the slope
    assert abs(PlattScaling(l2=1.0).fit(conf, y).a_) < abs(PlattScaling().fit(conf, y).a_)


def test_histogram_binning_bins_and_values(easy):
    conf, y = easy.confidences(), easy.scores()
    hb = HistogramBinning(n_bins=15).fit(conf, y)
    assert hb.counts_.sum() == len(conf) and hb.counts_.max() - hb.counts_.min() <= 1
    # each bin's value is the mean score of its calibration samples
    b = M.equal_count_bins(conf, 15)
    ref = np.bincount(b, weights=y) / np.bincount(b)
    assert np.allclose(hb.values_, ref)
    # so on its own calibration data, grouped by its own bins, confidence equals accuracy
    pred = hb.predict(conf)
    assert np.allclose(np.bincount(b, weights=pred), np.bincount(b, weights=y))
    assert M.brier(pred, y) < M.brier(conf, y)
    hw = HistogramBinning(n_bins=5, binning="equal_width").fit(conf, y)
    assert hw.edges_.size == 6 and np.isfinite(hw.edges_).all()  # strict JSON: no infinities
    assert hw.predict([-5.0, 5.0]).tolist() == [hw.values_[0], hw.values_[-1]]
    # scikit-learn's shapes: predict_proba is (n, 2) = [P(wrong), P(correct)]
    proba = hb.predict_proba(conf)
    assert proba.shape == (len(conf), 2) and np.allclose(proba[:, 1], pred) and np.allclose(proba.sum(axis=1), 1)


def test_histogram_binning_with_a_third_at_one(easy):
    """A third of the confidences exactly 1.0: they form one bin whose value is their accuracy,
    and the other bins keep equal counts (the shared EqualCountBinner)."""
    from calib_harness.binning import EqualCountBinner

    conf, y = easy.confidences(), easy.scores()
    rng = np.random.default_rng(3)
    x = np.r_[conf, np.ones(conf.size // 2)]
    yy = np.r_[y, (rng.random(conf.size // 2) < 0.93).astype(float)]
    hb = HistogramBinning(n_bins=15).fit(x, yy)
    binner = EqualCountBinner(15).fit(x)
    assert np.array_equal(hb.edges_, binner.edges_) and hb.values_.size == binner.n_bins_
    assert hb.counts_[-1] == conf.size // 2
    assert hb.values_[-1] == pytest.approx(yy[conf.size :].mean())
    assert hb.predict([1.0])[0] == hb.values_[-1]
    assert (hb.predict(conf) != hb.values_[-1]).all() or hb.values_[-2] == hb.values_[-1]
    # every calibration sample is predicted the value of the bin it was fitted in
    assert np.array_equal(hb.predict(x), hb.values_[binner.labels_])


def test_histogram_binning_reads_old_json_with_infinite_edges(easy):
    conf, y = easy.confidences(), easy.scores()
    hb = HistogramBinning(n_bins=5).fit(conf, y)
    d = hb.to_dict()
    d["fitted"]["edges_"] = [float("-inf"), *d["fitted"]["edges_"][1:-1], float("inf")]  # version-1 files
    old = HistogramBinning.from_dict(d)
    assert np.array_equal(old.predict(conf), hb.predict(conf))
    assert np.isfinite(old.edges_).all() and json.loads(old.to_json())  # re-saved as strict JSON


def test_histogram_binning_fills_empty_bins():
    x = np.r_[np.zeros(10), np.ones(10)]
    y = np.r_[np.zeros(10), np.ones(10)]
    hw = HistogramBinning(n_bins=4, binning="equal_width").fit(x, y)
    assert hw.counts_.tolist() == [10, 0, 0, 10]
    assert np.allclose(hw.values_, [0, 1 / 3, 2 / 3, 1])


def test_isotonic_matches_sklearn(easy, challenge):
    conf, y = easy.confidences(), easy.scores()
    iso = IsotonicCalibration().fit(conf, y)
    ref = IsotonicRegression(y_min=0, y_max=1, out_of_bounds="clip").fit(conf, y)
    other = challenge.confidences()
    assert np.allclose(iso.predict(other), ref.predict(other), atol=1e-12)
    assert np.array_equal(iso.transform(other), iso.predict(other))
    # decreasing feature: entropy
    ent = easy.feature("entropy")
    iso_auto = IsotonicCalibration(increasing="auto").fit(ent, y)
    out = iso_auto.predict(np.sort(ent))
    assert np.all(np.diff(out) <= 1e-12)


@pytest.mark.parametrize(
    "make",
    [lambda: PlattScaling(), lambda: HistogramBinning(), lambda: IsotonicCalibration()],
)
def test_scalar_validation(make):
    with pytest.raises(ValueError, match="differ in length"):
        make().fit([0.1, 0.2], [1])
    with pytest.raises(ValueError, match=r"y \(verifier scores\) must lie"):
        make().fit([0.1, 0.2], [1, 3])
    with pytest.raises(ValueError, match="NaN"):
        make().fit([0.1, np.nan], [1, 0])
    with pytest.raises(ValueError, match="empty"):
        make().fit([], [])
    with pytest.raises(NotFittedError):
        make().predict_proba([0.3])
    with pytest.raises(NotFittedError):
        make().predict([0.3])


# -- JSON ----------------------------------------------------------------------------------


def test_json_round_trip_every_calibrator(easy, challenge):
    z, gold, _ = easy.option_matrix()
    zc, _, _ = challenge.option_matrix()
    conf, y = easy.confidences(), easy.scores()
    fitted = [
        (TemperatureScaling().fit(z, gold), zc),
        (PlattScaling(logit_input=True).fit(conf, y), challenge.confidences()),
        (HistogramBinning(n_bins=7).fit(conf, y), challenge.confidences()),
        (IsotonicCalibration().fit(conf, y), challenge.confidences()),
    ]
    for cal, x in fitted:
        s = cal.to_json()
        d = json.loads(s)
        assert d["type"] == type(cal).__name__ and "params" in d and "fitted" in d
        back = calibrator_from_json(s)
        assert type(back) is type(cal) and back.get_params() == cal.get_params()
        assert np.array_equal(back.predict_proba(x), cal.predict_proba(x))
        assert np.array_equal(type(cal).from_json(s).predict_proba(x), cal.predict_proba(x))
    with pytest.raises(ValueError, match="unknown calibrator type"):
        calibrator_from_json('{"type": "Nope"}')
    with pytest.raises(ValueError, match="not a PlattScaling"):
        PlattScaling.from_json(fitted[0][0].to_json())
    with pytest.raises(NotFittedError):
        PlattScaling().to_json()


# -- split protocol ------------------------------------------------------------------------


def test_split_indices_seeded_and_disjoint():
    cal, test = split_indices(101, 0.5, seed=3)
    assert len(cal) == 50 and len(test) == 51  # round(50.5) = 50 (banker's rounding)
    assert set(cal).isdisjoint(test) and set(cal) | set(test) == set(range(101))
    again = split_indices(101, 0.5, seed=3)
    assert np.array_equal(cal, again[0]) and np.array_equal(test, again[1])
    assert not np.array_equal(cal, split_indices(101, 0.5, seed=4)[0])
    assert len(split_indices(100, 0.3)[0]) == 30
    for bad in (0.0, 1.0, 1.5):
        with pytest.raises(ValueError, match="strictly between"):
            split_indices(10, bad)
    with pytest.raises(ValueError, match="non-empty"):
        split_indices(1, 0.5)


def test_split_runs_shares_documents_and_checks_alignment(easy):
    other = Run("other-model", [r.__class__(**{**r.to_dict(), "model": "other-model", "option_labels": tuple(r.option_labels), "option_scores": tuple(r.option_scores)}) for r in reversed(easy.records)])
    with pytest.raises(ValueError, match="not aligned"):
        split_runs(easy, other)
    a, b = align(easy, other)
    (ca, ta), (cb, tb) = split_runs(a, b, seed=1)
    assert ca.keys == cb.keys and ta.keys == tb.keys
    assert len(ca) + len(ta) == len(easy)
    assert set(ca.keys).isdisjoint(ta.keys)
    (ca2, _), = split_runs(a, seed=1)
    assert ca2.keys == ca.keys
    with pytest.raises(ValueError, match="not aligned"):
        split_runs(easy, easy.subset(range(10)))


# -- record level --------------------------------------------------------------------------


def test_fit_run_calibrator_temperature(easy, challenge):
    rc = fit_run_calibrator(easy, "temperature")
    assert rc.feature == "option_scores" and rc.meta["n_fit"] == len(easy)
    probs = rc.option_probs(challenge)
    conf = rc.confidence(challenge)
    _, _, pred = challenge.option_matrix()
    assert np.allclose(conf, probs[np.arange(len(challenge)), pred])
    # T = 1 would give back the raw confidences
    ident = RunCalibrator("temperature", "option_scores", TemperatureScaling.from_dict({**rc.calibrator.to_dict(), "fitted": {"temperature_": 1.0, "nll_before_": 0.0, "nll_after_": 0.0}}))
    assert np.allclose(ident.confidence(challenge), challenge.confidences(), atol=1e-9)


@pytest.mark.parametrize("method", ["platt", "histogram", "isotonic"])
@pytest.mark.parametrize("feature", ["confidence", "mean_logit", "margin"])
def test_fit_run_calibrator_scalar(easy, challenge, method, feature):
    rc = fit_run_calibrator(easy, method, feature)
    c = rc.confidence(challenge)
    assert c.shape == (len(challenge),) and np.all((0 <= c) & (c <= 1))
    assert M.brier(rc.confidence(easy), easy.scores()) <= M.brier(easy.confidences(), easy.scores()) + 0.02
    with pytest.raises(ValueError, match="temperature calibrator"):
        rc.option_probs(challenge)
    back = RunCalibrator.from_json(rc.to_json())
    assert back.method == method and back.feature == feature
    assert np.array_equal(back.confidence(challenge), c)


def test_fit_run_calibrator_errors(easy):
    with pytest.raises(ValueError, match="unknown calibration method"):
        fit_run_calibrator(easy, "beta")
    with pytest.raises(ValueError, match="no feature 'mean_entropy'"):
        fit_run_calibrator(easy, "platt", "mean_entropy")
    gen = Run("g", [r.__class__(task=r.task, doc_id=r.doc_id, model="g", prediction=r.prediction, confidence=r.confidence, score=r.score) for r in easy.records])
    with pytest.raises(ValueError, match="needs option scores"):
        fit_run_calibrator(gen, "temperature")
    with pytest.raises(ValueError, match="not a RunCalibrator"):
        RunCalibrator.from_json('{"type": "PlattScaling"}')


def test_apply_writes_calibrated_records(easy, challenge, tmp_path):
    rc = fit_run_calibrator(easy, "temperature")
    out = rc.apply(challenge, parts={challenge.records[0].key: "test"})
    assert len(out) == len(challenge) and out.keys == challenge.keys
    r0, raw0 = out.records[0], challenge.records[0]
    assert r0.features["raw_confidence"] == raw0.confidence
    assert r0.extra["calibration"]["method"] == "temperature" and r0.extra["calibration_split"] == "test"
    assert "calibration_split" not in out.records[1].extra
    # contract: confidence = max softmax(option_scores) still holds after temperature scaling
    for r in out.records:
        assert r.confidence == pytest.approx(r.option_probs.max(), abs=1e-9)
    t = rc.calibrator.temperature_
    assert np.allclose(np.array(r0.option_scores) * t, raw0.option_scores)
    path = out.save(tmp_path / "calibrated")
    back = load_records_jsonl(path)
    assert np.allclose(back.confidences(), out.confidences())
    # scalar methods keep option scores raw
    out_p = fit_run_calibrator(easy, "platt").apply(challenge)
    assert out_p.records[0].option_scores == raw0.option_scores


def test_evaluate_split_temperature_and_platt_reduce_test_ece(easy):
    for method in ("temperature", "platt", "isotonic", "histogram"):
        rep = evaluate_split(easy, method, "confidence", seed=0)
        cal_b, cal_a = rep.metrics["cal"]["before"]["ece"], rep.metrics["cal"]["after"]["ece"]
        assert cal_a < cal_b, method
        assert rep.metrics["cal"]["before"]["n"] + rep.metrics["test"]["before"]["n"] == len(easy)
        # Platt is a strictly increasing map of the confidence: the AUROC cannot change
        # (temperature scaling can reorder top-label confidences across questions; histogram
        # and isotonic tie samples)
        if method == "platt":
            for part in ("cal", "test"):
                assert rep.metrics[part]["after"]["auroc"] == pytest.approx(rep.metrics[part]["before"]["auroc"], abs=1e-9)
    rep = evaluate_split(easy, "temperature", seed=0)
    # the raw SmolLM2 option distribution is badly calibrated; T-scaling generalises to the test half
    assert rep.metrics["test"]["after"]["ece"] < rep.metrics["test"]["before"]["ece"]
    d = json.loads(json.dumps(rep.to_dict()))
    assert d["metrics"]["test"]["after"]["ece"] == rep.metrics["test"]["after"]["ece"]


def test_evaluate_shift_fit_on_a_apply_to_b(easy, challenge):
    rep = evaluate_split(easy, "temperature")
    m = evaluate_shift(rep.calibrator, challenge, report=rep)
    assert "shift" in rep.metrics and m["before"]["n"] == len(challenge)
    assert m["after"]["ece"] < m["before"]["ece"]
    assert rep.confidences["shift"]["after"].shape == (len(challenge),)


# -- invariants ----------------------------------------------------------------------------

from hypothesis import given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402


@functools.lru_cache(maxsize=1)
def _easy_run() -> Run:
    from pathlib import Path

    return load_records_jsonl(Path(__file__).parent / "fixtures" / "records" / "arc_easy_dev_smollm2.jsonl")


@settings(max_examples=60, deadline=None)
@given(seed=st.integers(0, 10_000), frac=st.floats(0.2, 0.8))
def test_monotone_calibrators_keep_auroc(seed, frac):
    """Platt scaling (a > 0) is a strictly increasing map of the confidence, so the AUROC on any
    held-out part is unchanged; isotonic regression is non-decreasing, so it can only merge
    samples into ties (AUROC moves by ties alone, never by reordering).  Not claimed: temperature
    scaling (not a map of the top-label confidence: it can reorder questions whose option
    distributions differ) and histogram binning (bin means need not increase)."""
    easy = _easy_run()
    cal, test = split_indices(len(easy), frac, seed)
    c_cal, c_test = easy.subset(cal), easy.subset(test)
    y = c_test.scores() == 1
    if y.all() or not y.any():
        return
    raw = c_test.confidences()
    before = M.auroc(raw, y)
    pl = PlattScaling(logit_input=True).fit(c_cal.confidences(), c_cal.scores())
    if pl.a_ > 0:
        assert M.auroc(pl.predict(raw), y) == pytest.approx(before, abs=1e-12)
    after = IsotonicCalibration().fit(c_cal.confidences(), c_cal.scores()).predict(raw)
    order = np.argsort(raw, kind="stable")
    assert (np.diff(after[order]) >= -1e-12).all()  # never reorders
    # the AUROC moves only through (correct, wrong) pairs it newly ties, by at most 1/2 each
    p, n = raw[y][:, None], raw[~y][None, :]
    ap, an = after[y][:, None], after[~y][None, :]
    newly_tied = ((ap == an) & (p != n)).mean()
    assert abs(M.auroc(after, y) - before) <= 0.5 * newly_tied + 1e-12


def test_histogram_binning_is_not_monotone(easy):
    """Documented: bin means can decrease, so histogram binning may reorder (and change AUROC)."""
    hb = HistogramBinning(n_bins=15).fit(easy.confidences(), easy.scores())
    assert (np.diff(hb.values_) < 0).any()


# -- sample-size guards --------------------------------------------------------------------


def test_split_refuses_too_few_records(easy):
    from calib_harness.calibration import MIN_FIT_SAMPLES, TooFewSamplesError, minimum_records

    assert minimum_records(0.5) == 2 * MIN_FIT_SAMPLES
    with pytest.raises(TooFewSamplesError, match="too few to fit and test a calibrator.*--calibrator"):
        evaluate_split(easy.subset(np.arange(2)), "platt", "confidence", n_bins=15)
    with pytest.raises(TooFewSamplesError):
        evaluate_split(easy.subset(np.arange(minimum_records(0.5) - 1)), "temperature")
    rep = evaluate_split(easy.subset(np.arange(minimum_records(0.5))), "temperature", n_bins=15)
    # 10 test samples in 15 bins: reported, with a warning and an interval
    assert any("fewer than 10 per bin" in w and "--bins 1" in w for w in rep.warnings)
    t = rep.metrics["test"]["after"]
    assert np.isfinite([t["ece"], t["ece_lo"], t["ece_hi"], t["accuracy_lo"], t["accuracy_hi"]]).all()
    assert rep.to_dict()["warnings"] == rep.warnings


def test_histogram_fits_fewer_bins_on_a_small_half(easy):
    rep = evaluate_split(easy.subset(np.arange(60)), "histogram", "confidence", n_bins=15)
    assert rep.calibrator.calibrator.values_.size <= 3
    assert any("histogram binning: 30 calibration samples allow 3 bin(s)" in w for w in rep.warnings)


@pytest.mark.parametrize("kind", ["identical", "all_correct"])
def test_degenerate_runs_give_finite_figures_and_warnings(easy, kind):
    import dataclasses

    recs = list(easy.records[:40])
    if kind == "identical":
        recs = [dataclasses.replace(r, confidence=0.6) for r in recs]
        method, feature = "isotonic", "confidence"
    else:
        recs = [dataclasses.replace(r, score=1.0) for r in recs]
        method, feature = "platt", "confidence"
    run = Run(easy.model, recs, easy.source)
    rep = evaluate_split(run, method, feature, n_bins=15)
    for part in ("cal", "test"):
        for stage in ("before", "after"):
            m = rep.metrics[part][stage]
            assert np.isfinite([m["accuracy"], m["ece"], m["brier"], m["nll"], m["ece_lo"], m["ece_hi"]]).all()
    if kind == "all_correct":
        assert any("only correct answers" in w for w in rep.warnings)
        assert rep.metrics["test"]["after"]["ece"] < rep.metrics["test"]["before"]["ece"]


def test_collapse_is_warned(easy):
    # 10 calibration samples allow one histogram bin: every sample gets the base rate, a collapse
    rep = evaluate_split(easy.subset(np.arange(20)), "histogram", "confidence")
    assert any("collapsed the confidences" in w for w in rep.warnings)
    rep_t = evaluate_split(easy, "temperature")
    assert not any("collapsed" in w for w in rep_t.warnings)
