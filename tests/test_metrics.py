"""calib_harness.metrics against netcal, scikit-learn and scipy on real and synthetic inputs."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.integrate import quad
from scipy.stats import gaussian_kde
from sklearn.metrics import brier_score_loss, log_loss, roc_auc_score

from calib_harness import metrics as M
from calib_harness.records import load_records_jsonl


@pytest.fixture(scope="module")
def arc_run(fixtures_dir):
    return load_records_jsonl(fixtures_dir / "records" / "arc_easy_dev_smollm2.jsonl")


@pytest.fixture(scope="module")
def synthetic():
    rng = np.random.default_rng(7)
    conf = rng.beta(5, 2, size=1500)
    score = (rng.random(1500) < conf**1.5).astype(float)
    return conf, score


def netcal_ece(conf, score, equal_intervals: bool) -> float:
    from netcal.metrics import ECE

    return float(ECE(bins=15, equal_intervals=equal_intervals).measure(conf, score))


# -- ECE ------------------------------------------------------------------------------------


def test_ece_matches_netcal_on_real_records(arc_run):
    conf, score = arc_run.confidences(), arc_run.scores()
    assert len(arc_run) >= 195 and 0 < score.mean() < 1
    # equal width: identical bins
    assert M.ece(conf, score, 15, "equal_width") == pytest.approx(netcal_ece(conf, score, True), abs=1e-12)
    # equal count: netcal cuts at quantiles, we split the sorted samples; with n a multiple of
    # the bin count and distinct confidences both give the same bins
    c, s = conf[:195], score[:195]
    assert np.unique(c).size == c.size
    assert M.ece(c, s, 15, "equal_count") == pytest.approx(netcal_ece(c, s, False), abs=1e-12)


def test_ece_matches_netcal_synthetic(synthetic):
    conf, score = synthetic
    assert M.ece(conf, score) == pytest.approx(netcal_ece(conf, score, False), abs=1e-12)
    assert M.ece(conf, score, binning="equal_width") == pytest.approx(netcal_ece(conf, score, True), abs=1e-12)


def test_ece_equal_count_close_to_netcal_when_not_divisible(arc_run):
    # 200 samples in 15 bins: the two binnings move at most one sample per bin edge
    conf, score = arc_run.confidences(), arc_run.scores()
    diff = abs(M.ece(conf, score) - netcal_ece(conf, score, False))
    assert diff <= 14 * 2 / len(conf)


def test_perfectly_calibrated_and_constant_inputs():
    rng = np.random.default_rng(0)
    conf = np.repeat(np.linspace(0.05, 0.95, 15), 2000)
    # score exactly matching the confidence in each equal-width bin
    score = np.concatenate([rng.permutation(np.r_[np.ones(int(round(c * 2000))), np.zeros(2000 - int(round(c * 2000)))]) for c in np.linspace(0.05, 0.95, 15)])
    assert M.ece(conf, score, binning="equal_width") == pytest.approx(0.0, abs=1e-3)
    assert M.ece(np.full(10, 0.7), np.ones(10)) == pytest.approx(0.3)


def test_equal_count_bins_sizes_and_ties():
    conf = np.r_[np.ones(100), np.linspace(0, 0.5, 50)]  # two thirds tied at 1.0
    bins = M.equal_count_bins(conf, 15)
    sizes = np.bincount(bins)
    # the tied 1.0s share one bin; the 50 others keep equal-count bins of 10
    assert sizes.tolist() == [10, 10, 10, 10, 10, 100]
    assert np.unique(bins[conf == 1.0]).size == 1
    order = np.argsort(conf, kind="stable")
    assert np.all(np.diff(bins[order]) >= 0)
    assert M.equal_count_bins(np.array([0.3, 0.1]), 15).tolist() == [1, 0]


def test_ece_with_a_third_at_one(arc_run):
    """A third of the confidences at exactly 1.0 (a saturated strong model): ECE's bins keep the
    1.0s together, so the top bin's gap is exactly 1 - accuracy of those samples."""
    conf, score = arc_run.confidences(), arc_run.scores()
    rng = np.random.default_rng(0)
    c = np.r_[conf, np.ones(conf.size // 2)]
    s = np.r_[score, (rng.random(conf.size // 2) < 0.9).astype(float)]
    rows = M.bin_table(c, s, 15)
    top = rows[-1]
    assert top.lo == top.hi == 1.0 and top.count == conf.size // 2
    assert top.gap == pytest.approx(1.0 - s[conf.size :].mean())
    assert all(r.hi < 1.0 for r in rows[:-1])
    assert sum(r.count * abs(r.gap) for r in rows) / c.size == pytest.approx(M.ece(c, s))
    lo, hi = M.ece_interval(c, s)
    assert 0.0 <= lo <= M.ece(c, s) <= hi <= 1.0


def test_equal_width_bins_edges():
    edges = np.linspace(0, 1, 16)
    b = M.equal_width_bins(edges, 15)
    assert b.tolist() == list(range(15)) + [14]  # right-open, last bin closed
    x = np.r_[np.random.default_rng(3).random(1000), edges, 0.2, 0.4, 0.6]
    counts = np.bincount(M.equal_width_bins(x, 15), minlength=15)
    assert np.array_equal(counts, np.histogram(x, bins=edges)[0])


# -- Brier, NLL, AUROC -----------------------------------------------------------------------


def test_brier_nll_match_sklearn(arc_run, synthetic):
    for conf, score in [(arc_run.confidences(), arc_run.scores()), synthetic]:
        assert M.brier(conf, score) == pytest.approx(brier_score_loss(score, conf), rel=1e-12)
        assert M.nll(conf, score) == pytest.approx(log_loss(score, conf), rel=1e-9)


def test_nll_multiclass_matches_sklearn(arc_run):
    probs = np.stack([r.option_probs for r in arc_run.records if len(r.option_labels) == 4])
    gold = np.array([r.gold_index for r in arc_run.records if len(r.option_labels) == 4])
    assert M.nll_multiclass(probs, gold) == pytest.approx(log_loss(gold, probs, labels=[0, 1, 2, 3]), rel=1e-9)
    with pytest.raises(ValueError, match="labels must lie"):
        M.nll_multiclass(probs, gold + 4)


def test_auroc_matches_sklearn_with_ties(arc_run, synthetic):
    conf, score = arc_run.confidences(), arc_run.scores()
    assert M.auroc(conf, score) == pytest.approx(roc_auc_score(score, conf), abs=1e-12)
    c, s = synthetic
    c = np.round(c, 1)  # heavy ties
    assert M.auroc(c, s.astype(bool)) == pytest.approx(roc_auc_score(s, c), abs=1e-12)
    assert M.auroc([0.1, 0.2, 0.8, 0.9], [0, 0, 1, 1]) == 1.0


def test_auroc_rejects_bad_input():
    with pytest.raises(ValueError, match="both correct and incorrect"):
        M.auroc([0.2, 0.3], [1, 1])
    with pytest.raises(ValueError, match="binary"):
        M.auroc([0.2, 0.3], [0.5, 1])


# -- GATEKEEPER s_o -------------------------------------------------------------------------


def scipy_overlap(conf, correct) -> float:
    kc, ki = gaussian_kde(conf[correct]), gaussian_kde(conf[~correct])
    return quad(lambda t: min(kc(t)[0], ki(t)[0]), 0.0, 1.0, limit=400)[0]


def test_overlap_so_matches_scipy_kde_on_real_records(arc_run):
    conf, correct = arc_run.confidences(), arc_run.scores() == 1
    ref = scipy_overlap(conf, correct)
    assert M.overlap_so(conf, correct) == pytest.approx(ref, abs=2e-4)
    # the binned (large-n) path agrees with the exact one
    assert M.overlap_so(conf, correct, exact_limit=0) == pytest.approx(ref, abs=2e-4)
    # symmetric in which side is called correct
    assert M.overlap_so(conf, ~correct) == pytest.approx(M.overlap_so(conf, correct), abs=1e-12)


def test_overlap_so_synthetic_and_extremes(synthetic):
    conf, score = synthetic
    conf, correct = conf[:400], score[:400] == 1  # scipy's quad over two KDEs is slow
    assert M.overlap_so(conf, correct) == pytest.approx(scipy_overlap(conf, correct), abs=2e-4)
    rng = np.random.default_rng(1)
    sep = np.r_[rng.uniform(0.05, 0.15, 500), rng.uniform(0.85, 0.95, 500)]
    lab = np.r_[np.zeros(500, bool), np.ones(500, bool)]
    assert M.overlap_so(sep, lab) < 0.01
    same = rng.uniform(0.3, 0.7, 4000)
    assert M.overlap_so(same, rng.random(4000) < 0.5) > 0.9
    assert M.overlap_so(sep, lab, bandwidth=0.05) < M.overlap_so(sep, lab, bandwidth=0.3)


def test_overlap_so_needs_two_per_group():
    with pytest.raises(ValueError, match="at least 2 incorrect"):
        M.overlap_so([0.2, 0.5, 0.9], [1, 1, 0])
    with pytest.raises(ValueError, match="all equal"):
        M.overlap_so([0.2, 0.5, 0.9, 0.9], [1, 1, 0, 0])
    assert 0 <= M.overlap_so([0.2, 0.5, 0.9, 0.9], [1, 1, 0, 0], bandwidth=0.1) <= 1


# -- bin tables, summary, validation ---------------------------------------------------------


@pytest.mark.parametrize("binning", ["equal_count", "equal_width"])
def test_bin_table_consistent_with_ece(arc_run, binning):
    conf, score = arc_run.confidences(), arc_run.scores()
    rows = M.bin_table(conf, score, 15, binning)
    assert len(rows) == 15 and sum(r.count for r in rows) == len(conf)
    assert sum(r.count * abs(r.gap) for r in rows) / len(conf) == pytest.approx(M.ece(conf, score, 15, binning))
    filled = [r for r in rows if r.count]
    assert all(r.lo <= r.mean_conf <= r.hi for r in filled)
    assert [r.mean_conf for r in filled] == sorted(r.mean_conf for r in filled)
    if binning == "equal_count":
        assert max(r.count for r in rows) - min(r.count for r in rows) <= 1
        # Wilson interval of each bin's accuracy holds its mean score
        assert all(r.score_lo <= r.mean_score <= r.score_hi for r in rows)
    else:
        assert rows[0].lo == 0.0 and rows[-1].hi == 1.0
        for r in rows:
            if not r.count:
                assert np.isnan(r.mean_conf) and r.gap == 0.0
    assert set(rows[0].to_dict()) == {"index", "lo", "hi", "count", "mean_conf", "mean_score", "gap", "score_lo", "score_hi"}


def test_summary_on_real_records(arc_run):
    conf, score = arc_run.confidences(), arc_run.scores()
    s = M.summary(conf, score)
    assert s["n"] == len(conf)
    assert s["accuracy"] == pytest.approx(score.mean())
    assert s["ece"] == pytest.approx(M.ece(conf, score))
    assert s["auroc"] == pytest.approx(roc_auc_score(score, conf))
    assert 0 < s["s_o"] < 1
    assert np.isnan(M.summary([0.5, 0.6], [1, 1])["auroc"])
    assert s["accuracy_lo"] < s["accuracy"] < s["accuracy_hi"]
    assert s["ece_lo"] < s["ece"] < s["ece_hi"]


@pytest.mark.parametrize(
    "conf,score",
    [
        ([0.9, 0.2], [1.0, 0.0]),  # 2 samples
        ([0.7] * 50, [1.0] * 20 + [0.0] * 30),  # all confidences identical
        (np.linspace(0.5, 1.0, 40), [1.0] * 40),  # all correct
        ([1.0] * 30, [1.0] * 30),  # all identical and all correct
    ],
)
def test_summary_on_degenerate_inputs_has_no_nan_in_core_figures(conf, score):
    s = M.summary(conf, score, n_bins=15)
    for key in ("accuracy", "ece", "ece_equal_width", "brier", "nll", "accuracy_lo", "accuracy_hi"):
        assert np.isfinite(s[key]), key
    assert s["accuracy_lo"] <= s["accuracy"] <= s["accuracy_hi"]
    assert 0.0 <= s["ece_lo"] <= s["ece"] <= s["ece_hi"] <= 1.0


# -- intervals -------------------------------------------------------------------------------


@pytest.mark.parametrize("k,n", [(0, 10), (3, 10), (10, 10), (117, 200), (1, 1)])
def test_wilson_interval_matches_scipy(k, n):
    from scipy.stats import binomtest

    ref = binomtest(k, n).proportion_ci(0.95, method="wilson")
    lo, hi = M.wilson_interval(k, n)
    assert lo == pytest.approx(ref.low, abs=1e-12) and hi == pytest.approx(ref.high, abs=1e-12)
    assert np.isnan(M.wilson_interval(0, 0)[0])


def test_bootstrap_ci_of_a_mean_matches_the_normal_interval(arc_run):
    score = arc_run.scores()
    lo, hi = M.bootstrap_ci(np.mean, score, n_boot=2000, seed=1)
    se = score.std() / np.sqrt(score.size)
    assert lo == pytest.approx(score.mean() - 1.96 * se, abs=0.01)
    assert hi == pytest.approx(score.mean() + 1.96 * se, abs=0.01)
    # seeded: the same call gives the same interval
    assert M.bootstrap_ci(np.mean, score, n_boot=2000, seed=1) == (lo, hi)
    # resamples on which the statistic is undefined are dropped, not fatal
    conf = arc_run.confidences()
    lo_a, hi_a = M.bootstrap_ci(M.auroc, conf, score, n_boot=300, seed=0)
    assert lo_a < M.auroc(conf, score) < hi_a
    assert M.bootstrap_ci(np.mean, [1.0]) != M.bootstrap_ci(np.mean, [1.0])  # (nan, nan) below 2 rows


def test_ece_stderr_shrinks_with_n():
    rng = np.random.default_rng(5)
    se = []
    for n in (200, 3200):
        c = rng.beta(5, 2, n)
        s = (rng.random(n) < c).astype(float)
        se.append(M.ece_stderr(c, s))
    assert se[1] < se[0] / 2  # roughly 1/sqrt(n): 16x the samples, ~1/4 the error


def test_collapse_warning(arc_run, caplog):
    conf = arc_run.confidences()
    assert M.collapse_warning(conf, np.sqrt(conf)) is None
    with caplog.at_level("WARNING"):
        msg = M.collapse_warning(conf, np.full(conf.size, conf.mean()))
    assert msg and "collapsed" in msg and msg in caplog.text
    assert M.collapse_warning(conf, np.where(conf > 0.5, 0.8, 0.3)) is not None


@pytest.mark.parametrize(
    "conf,score,match",
    [
        ([0.1, 0.2], [1], "differ in length"),
        ([], [], "no samples"),
        ([0.1, np.nan], [1, 0], "NaN"),
        ([0.1, 1.5], [1, 0], r"confidence must lie in \[0, 1\]"),
        ([0.1, 0.5], [1, 2], r"score must lie in \[0, 1\]"),
    ],
)
def test_validation_errors(conf, score, match):
    with pytest.raises(ValueError, match=match):
        M.ece(conf, score)


def test_bad_binning_and_bins():
    with pytest.raises(ValueError, match="binning must be one of"):
        M.ece([0.2], [1], binning="quantile")
    with pytest.raises(ValueError, match="n_bins must be >= 1"):
        M.ece([0.2], [1], n_bins=0)


@pytest.mark.parametrize("ties", [False, True])
def test_fast_ece_bootstrap_equals_refitting_on_materialised_resamples(arc_run, ties):
    """The counts-based ECE bootstrap gives exactly the ECEs of the materialised resamples."""
    conf, score = arc_run.confidences(), arc_run.scores()
    if ties:  # a third at exactly 1.0 and the rest rounded: many ties
        conf = np.where(np.arange(conf.size) % 3 == 0, 1.0, np.round(conf, 2))
    c, s = M._sorted_pairs(conf, score)
    fast = M._ece_replicates(c, s, 15, 40, seed=4)
    slow = M.bootstrap_replicates(lambda a, b: M.ece(a, b, 15), c, s, n_boot=40, seed=4)
    assert np.allclose(fast, slow, atol=1e-12, rtol=0)
