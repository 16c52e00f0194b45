"""Cascade routers (CC, UC, threshold, random, oracle), curves, APGR, s_d and the deployable router.

Hand-made data where the right answer is written out; end-to-end runs on hand-made records
through the real calibration module.
"""

from __future__ import annotations

import json
import math
import subprocess
import sys

import numpy as np
import pytest

from calib_harness.records import Run, SampleRecord
from calib_harness.routing.advantage import AdvantageRouter
from calib_harness.routing.baselines import oracle_curve
from calib_harness.routing.curves import (  # noqa: I001
    RoutingCurve,
    apgr,
    curve_from_priority,
    deferral_score,
    ideal_deferral_accuracy,
    on_grid,
    random_curve,
)
from calib_harness.routing.deploy import DeployableRouter, apply_calibrator

# -- curves ------------------------------------------------------------------------------


def test_curve_from_priority_hand_computed():
    small = np.array([1, 0, 1, 0])
    large = np.array([1, 1, 0, 1])
    prio = np.array([0.9, 0.1, 0.8, 0.2])
    c = curve_from_priority("t", prio, small, large)
    # keep order: 0 (0.9), 2 (0.8), 3 (0.2), 1 (0.1)
    # share 0: all large = 3/4; keep 0: same (1 vs 1) = 3/4; keep 0,2: 1+0+... small[2]=1 vs large 0 -> 4/4
    # keep 0,2,3: small[3]=0 vs large 1 -> 3/4; all small: 2/4
    assert c.share_small.tolist() == [0, 0.25, 0.5, 0.75, 1.0]
    assert c.accuracy.tolist() == [0.75, 0.75, 1.0, 0.75, 0.5]
    assert c.params[0] == np.inf and c.params[1:].tolist() == [0.9, 0.8, 0.2, 0.1]


def test_curve_from_priority_groups_ties():
    c = curve_from_priority("t", np.array([0.5, 0.5, 0.2]), np.array([1, 0, 0]), np.array([0, 1, 1]))
    assert c.share_small.tolist() == pytest.approx([0, 2 / 3, 1])
    assert c.accuracy.tolist() == pytest.approx([2 / 3, 2 / 3, 1 / 3])


def test_random_apgr_is_half_and_endpoints():
    r = random_curve(0.4, 0.9)
    assert r.accuracy[0] == pytest.approx(0.9) and r.accuracy[-1] == pytest.approx(0.4)
    assert apgr(r, 0.4, 0.9) == pytest.approx(0.5, abs=1e-9)
    assert deferral_score(r, 0.4, 0.9) == pytest.approx(0.0, abs=1e-9)


def test_apgr_and_sd_of_oracle_hand_computed():
    # small right on half the docs, large right everywhere: p_s = 0.5, p_l = 1.
    small = np.array([0, 0, 1, 1])
    large = np.array([1, 1, 1, 1])
    c = oracle_curve(small, large)
    # cost 0 -> 0.5, cost .25 -> .75, cost .5 -> 1, then flat: normalised area = 0.25 + 0.5
    assert apgr(c, 0.5, 1.0) == pytest.approx(0.75, abs=1e-6)
    # here the per-sample oracle is GATEKEEPER's eq. (11) exactly, so s_d = 1
    assert deferral_score(c, 0.5, 1.0) == pytest.approx(1.0, abs=1e-6)
    grid, acc = on_grid(c, 0.5, 1.0)
    assert np.allclose(acc, ideal_deferral_accuracy(grid, 0.5, 1.0), atol=1e-9)


def test_ideal_deferral_eq11():
    r = np.array([0.0, 0.1, 0.4, 0.7])
    # p_s = 0.6: slope (0.9 - 0.6) / 0.4 = 0.75 until r = 0.4, then flat at 0.9
    assert ideal_deferral_accuracy(r, 0.6, 0.9).tolist() == pytest.approx([0.6, 0.675, 0.9, 0.9])


def test_sd_and_apgr_identity():
    # With the A.1 normalisation and eq. (10)-(11): s_d = (2 APGR - 1) / p_s for any curve.
    rng = np.random.default_rng(3)
    s = rng.integers(0, 2, 200).astype(float)
    l = np.clip(s + rng.integers(0, 2, 200), 0, 1)
    c = curve_from_priority("threshold", rng.random(200), s, l)
    ps, pl = s.mean(), l.mean()
    assert deferral_score(c, ps, pl) == pytest.approx((2 * apgr(c, ps, pl) - 1) / ps, rel=1e-6)


def test_apgr_undefined_when_equal_accuracy():
    c = RoutingCurve("x", [0, 1], [0.5, 0.5])
    with pytest.warns(RuntimeWarning):
        assert math.isnan(apgr(c, 0.5, 0.5))


def test_oracle_defers_small_errors_first_and_beats_everyone():
    small = np.array([1, 0, 0, 1, 1, 0])
    large = np.array([1, 1, 0, 0, 1, 1])
    c = oracle_curve(small, large)
    # first deferred: the two docs only the large model gets right -> accuracy 3/6 -> 5/6
    assert c.share_small[0] == 0 and c.accuracy[0] == pytest.approx(4 / 6)
    i = np.flatnonzero(np.isclose(c.share_small, 4 / 6))[0]
    assert c.accuracy[i] == pytest.approx(5 / 6)  # best possible: union of right answers
    assert c.accuracy.max() == pytest.approx(5 / 6)
    rng = np.random.default_rng(0)
    other = curve_from_priority("threshold", rng.random(6), small, large)
    ps, pl = small.mean(), large.mean()
    assert apgr(c, ps, pl) >= apgr(other, ps, pl)


# -- threshold ------------------------------------------------------------------------------


def test_threshold_router_hand_made():
    from calib_harness.routing.base import RoutingData, make_router

    conf = np.array([0.95, 0.9, 0.6, 0.3])
    data = RoutingData.from_arrays(conf, np.ones(4), np.array([1, 1, 0, 0]), np.array([1, 0, 1, 1]))
    t = make_router("threshold").fit(data)
    assert t.route(data, 0.5).tolist() == [False, False, True, True]  # True = to the large model
    assert t.route(data, 0.0).tolist() == [False] * 4 and t.route(data, 1.0).tolist() == [True] * 4
    c = t.curve(data)
    assert c.accuracy.tolist() == pytest.approx([0.75, 0.75, 1.0, 0.75, 0.5])


# -- CC / UC (Algorithm 1) ------------------------------------------------------------------


def test_advantage_router_bins_are_the_equal_count_binner():
    """Algorithm 1's bins are calib_harness.binning.EqualCountBinner's: right-closed edges midway
    between neighbouring groups, calibration points back in their own bins."""
    from calib_harness.binning import EqualCountBinner

    conf = np.array([0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8])
    r = AdvantageRouter(n_bins=4).fit(conf, np.ones(8))
    assert r.edges_.tolist() == pytest.approx([0.25, 0.45, 0.65])
    assert np.array_equal(r.edges_, EqualCountBinner(4).fit(conf).inner_edges_)
    # a confidence equal to an edge belongs to the lower bin (right-closed)
    assert r.bin_of(np.array([0.0, 0.25, 0.26, 0.44, 0.9])).tolist() == [0, 0, 1, 1, 3]
    assert r.bin_of(conf).tolist() == [0, 0, 1, 1, 2, 2, 3, 3]


def test_advantage_router_third_of_confidences_at_one():
    """A strong model certain (confidence exactly 1.0) on a third of the inputs: that value forms
    one bin, never several bins sharing one value, and routing keeps it together."""
    rng = np.random.default_rng(0)
    n = 600
    cs = np.r_[np.ones(n // 3), rng.uniform(0.3, 0.99, n - n // 3)]
    ys = np.r_[np.ones(n // 3), (rng.random(n - n // 3) < cs[n // 3:]).astype(float)]
    yl = np.ones(n)
    r = AdvantageRouter(n_bins=15).fit(cs, np.full(n, 0.99), ys, yl, advantage="accuracy")
    bins = r.bin_of(cs)
    top = bins[: n // 3]
    assert np.unique(top).size == 1  # all the 1.0s in one bin ...
    assert (bins[n // 3:] != top[0]).all()  # ... and nothing else in it
    assert r.stats_.count[top[0]] == n // 3
    assert r.n_bins_ <= 15 and (r.stats_.count > 0).all()
    # the certain bin has no accuracy gain for the large model: it is the first kept (K = 1)
    assert r.selected_bins(1).tolist() == [top[0]]
    assert r.keep_small(np.array([1.0, 0.5]), 1).tolist() == [True, False]


def test_advantage_router_hand_made_non_monotone():
    """The large model is no better than the small one on the middle bin: K=1 picks it, not
    the most confident bin (what a threshold router would keep first)."""
    cs = np.array([0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8])
    cl = np.array([0.9, 0.9, 0.9, 0.9, 0.5, 0.6, 0.95, 0.95])
    r = AdvantageRouter(n_bins=4).fit(cs, cl)
    # bins {.1,.2} {.3,.4} {.5,.6} {.7,.8}; advantages .75, .55, 0.0, .2
    assert r.stats_.advantage.tolist() == pytest.approx([0.75, 0.55, 0.0, 0.2])
    assert r.stats_.count.tolist() == [2, 2, 2, 2]
    assert r.order_.tolist() == [2, 3, 1, 0]
    assert r.selected_bins(1).tolist() == [2]
    assert r.selected_bins(2).tolist() == [2, 3]
    new = np.array([0.05, 0.55, 0.62, 0.66, 0.99])
    assert r.keep_small(new, 1).tolist() == [False, True, True, False, False]
    assert r.keep_small(new, 2).tolist() == [False, True, True, True, True]
    assert not r.keep_small(new, 0).any() and r.keep_small(new, 4).all()
    # curve on test data: K = 0..4
    ys = np.array([0, 1, 1, 0, 1])
    yl = np.array([1, 0, 0, 1, 1])
    c = r.curve(new, ys, yl)
    assert c.params.tolist() == [0, 1, 2, 3, 4]
    assert c.share_small.tolist() == pytest.approx([0, 0.4, 0.8, 0.8, 1.0])
    assert c.accuracy.tolist() == pytest.approx([0.6, 1.0, 0.8, 0.8, 0.6])
    # the rank (router score) is the bin's position in the advantage order
    assert r.rank_of(new).tolist() == [3, 0, 0, 1, 1]


def test_advantage_router_merges_tied_edges():
    cs = np.array([0.5] * 6 + [0.9, 0.95])
    r = AdvantageRouter(n_bins=4).fit(cs, np.ones(8))
    assert r.n_bins_ < 4
    assert r.stats_.count.sum() == 8 and (r.stats_.count > 0).all()


def test_shrunk_bin_rates():
    from calib_harness.routing.advantage import shrunk_bin_rates

    # no spread beyond binomial noise: every bin gets the overall rate
    bins = np.repeat(np.arange(4), 50)
    y = np.tile([1.0, 0.0], 100)
    assert shrunk_bin_rates(bins, y, 4).tolist() == pytest.approx([0.5] * 4)
    # a real spread: rates keep their order and move towards the mean, never past it
    y = np.r_[np.zeros(50), np.r_[np.ones(10), np.zeros(40)], np.r_[np.ones(40), np.zeros(10)], np.ones(50)]
    raw = np.array([0.0, 0.2, 0.8, 1.0])
    got = shrunk_bin_rates(bins, y, 4)
    assert np.all(np.diff(got) > 0)
    assert np.all(np.abs(got - 0.5) <= np.abs(raw - 0.5) + 1e-12)


# -- hand-made records through the real calibration module -------------------------------


def _mc_runs(n: int = 400, seed: int = 0):
    """Small model right iff its confidence >= 0.75 (confidence spread over 0.5..0.99), large
    model always right and confident.  Two options, option 0 is the prediction (argmax)."""
    rng = np.random.default_rng(seed)
    conf = rng.uniform(0.5, 0.99, n)
    recs_s, recs_l = [], []
    for i, c in enumerate(conf):
        right = c >= 0.75
        gold = "A" if right else "B"
        prompt = f"Question {i}: which option is correct?"
        recs_s.append(SampleRecord.from_option_scores((math.log(c), math.log(1 - c)), ("A", "B"), gold, task="hand",
                                                      doc_id=i, model="small", option_token_mode="single_token", prompt=prompt))
        lg = (0.0, -6.0) if gold == "A" else (-6.0, 0.0)
        recs_l.append(SampleRecord.from_option_scores(lg, ("A", "B"), gold, task="hand", doc_id=i, model="large",
                                                      option_token_mode="single_token", prompt=prompt))
    return Run("small", recs_s), Run("large", recs_l)


from calib_harness.routing.synthetic import weak_strong_runs  # noqa: E402  (#17's pair)


LIGHT = ["CC", "UC", "threshold", "random", "oracle"]


@pytest.fixture(scope="module")
def hand_comparison():
    from calib_harness.routing.compare import compare_routers

    small, large = _mc_runs()
    return compare_routers(small, large, routers=LIGHT, n_bins=20, bins_sweep=(5, 20, 50), method="temperature",
                           progress=False, n_boot=200)


def test_compare_on_hand_made_records(hand_comparison):
    c = hand_comparison
    assert c.p_large == 1.0
    assert 0.3 < c.p_small < 0.7, c.p_small
    assert c.meta["calibrators"]["small"].startswith("temperature")
    assert c.roles["by"] == "calibration-half accuracy" and not c.roles["swapped"]
    oracle = c.apgr["oracle"]
    # the small model's confidence separates its right and wrong answers perfectly, so the
    # threshold router is the oracle and CC / UC lose at most the bin straddling 0.75
    assert c.apgr["threshold"] == pytest.approx(oracle, abs=1e-9)
    assert oracle == pytest.approx(0.5 + c.p_small / 2, abs=1e-9)  # eq. (11) area, exact
    for name in ("CC", "UC"):
        assert c.apgr[name] > oracle - 0.03
        assert c.s_d[name] > 0.9
        lo, hi = c.apgr_ci[name]
        assert lo <= c.apgr[name] <= hi and hi - lo < 0.2
    assert c.apgr["random"] == pytest.approx(0.5, abs=1e-12)
    assert set(c.bins_sensitivity) == {"CC", "UC"} and set(c.bins_sensitivity["CC"]) == {5, 20, 50}
    assert all(v > 0.5 for d in c.bins_sensitivity.values() for v in d.values())
    md = c.to_markdown()
    assert "| CC |" in md and "APGR by #bins" in md and "95% CI" in md
    assert set(c.bands) == set(LIGHT)
    b = c.bands["CC"]
    assert np.all(b["lo"] <= b["hi"] + 1e-12)


def test_strict_json_of_comparison(hand_comparison):
    from calib_harness.outputs import dumps_strict

    def no_constants(x):
        raise AssertionError(f"bare {x} in JSON")

    d = json.loads(dumps_strict(hand_comparison.to_dict()), parse_constant=no_constants)
    assert d["apgr"]["random"] == pytest.approx(0.5)
    assert len(d["apgr_ci95"]["CC"]) == 2 and d["bin_tables"]["CC"][0]["count"] > 0


def test_cc_uses_calibrated_confidences(hand_comparison):
    """The CC bins are on the temperature-scaled confidence of the small model."""
    from calib_harness.binning import EqualCountBinner
    from calib_harness.calibration import split_runs

    c = hand_comparison
    small, large = _mc_runs()
    (s_cal, _), _ = split_runs(small, large)
    calibrated = c.small_calibrator.confidence(s_cal)
    assert not np.allclose(calibrated, s_cal.confidences())  # T != 1
    assert np.allclose(EqualCountBinner(20).fit(calibrated).inner_edges_, c.cc_router.edges_)


def test_cc_default_beats_collapsing_temperature_on_issue17_pair():
    """#17: temperature scaling flattens the weak model's confidences and CC falls below random;
    the default (calibrator chosen by cross-fitting on the calibration half) is >= UC and
    >= random within sampling error, warns about nothing it uses, and reports the bin table."""
    from calib_harness.routing.compare import compare_routers

    small, large = weak_strong_runs()
    assert 0.27 < small.scores().mean() < 0.34 and 0.69 < large.scores().mean() < 0.76
    temp = compare_routers(small, large, routers=["CC", "UC", "random"], method="temperature", bins_sweep=(), progress=False, n_boot=200)
    assert temp.calibration["CC"]["collapse"]["small"]["collapsed"]
    assert any("collapses" in w and "weak" in w for w in temp.warnings)
    assert temp.apgr["CC"] < 0.5 < temp.apgr["UC"]  # the failure the default must avoid

    auto = compare_routers(small, large, routers=["CC", "UC", "random"], bins_sweep=(), progress=False, n_boot=200)
    sel = auto.calibration["CC"]["selection"]
    assert set(sel) == {"binwise", "temperature", "platt", "isotonic", "histogram", "none"}
    assert sel["temperature"]["collapsed"] and auto.calibration["CC"]["calibrator"] != "temperature"
    assert not any("collapses" in w for w in auto.warnings)
    lo, hi = auto.apgr_ci["CC"]
    half = (hi - lo) / 2
    assert auto.apgr["CC"] >= auto.apgr["UC"] - half
    assert lo > 0.5  # above random with 95% confidence
    rows = auto.bin_tables["CC"]
    assert sum(r["count"] for r in rows) == auto.n_cal
    assert all(r["small_accuracy"] is not None and r["large_accuracy"] is not None for r in rows)
    assert "CC bins (calibration half)" in auto.to_markdown()


def test_cc_calibrator_choice_never_sees_the_test_half():
    """Changing only the test half's labels changes no fitted CC setting."""
    from calib_harness.calibration import split_indices
    from calib_harness.routing.base import RoutingData, get_router

    small, large = weak_strong_runs(800, seed=3)
    data = RoutingData.from_runs(small, large)
    cal, test = split_indices(len(data), 0.5, 0)
    r1 = get_router("CC")().fit(data.subset(cal))
    flipped = data.subset(test)
    flipped.small_scores = 1 - flipped.small_scores
    r2 = get_router("CC")().fit(data.subset(cal))
    assert r1.method_ == r2.method_ and r1.selection_ == r2.selection_
    assert np.array_equal(r1.score(flipped), r2.score(flipped))


def test_roles_from_data_and_costs():
    from calib_harness.routing.compare import compare_routers

    small, large = _mc_runs(200)
    kw = dict(routers=["UC", "random", "oracle"], bins_sweep=(), progress=False, n_boot=0, n_bins=5)
    swapped = compare_routers(large, small, **kw)  # given in the wrong order
    assert (swapped.small_model, swapped.large_model) == ("small", "large") and swapped.roles["swapped"]
    assert any("roles swapped" in w for w in swapped.warnings)
    given = compare_routers(large, small, roles="given", **kw)
    assert given.small_model == "large" and not given.roles["swapped"]
    assert any("kept as given" in w for w in given.warnings)
    # APGR is normalised from the weaker to the stronger either way: the same figures
    for name in ("oracle", "random"):
        assert given.apgr[name] == pytest.approx(swapped.apgr[name], abs=1e-12)
    assert given.s_d["oracle"] == pytest.approx(swapped.s_d["oracle"], abs=1e-12)
    # costs decide the roles when given: the expensive model is "large" even if it is weaker
    by_cost = compare_routers(large, small, costs=(5.0, 1.0), **kw)
    assert by_cost.small_model == "small" and by_cost.roles["by"] == "cost"
    by_cost2 = compare_routers(small, large, costs=(5.0, 1.0), **kw)
    assert by_cost2.small_model == "large" and any("cheaper model is the more accurate" in w for w in by_cost2.warnings)
    # equal calibration-half accuracy: the tie is broken by the data (mean confidence), not the order
    rng = np.random.default_rng(5)
    right = rng.random(100) < 0.6
    a = _records_from_arrays("a", rng.uniform(0.3, 0.9, 100), right)
    b = _records_from_arrays("b", rng.uniform(0.5, 0.99, 100), right)
    ab, ba = compare_routers(a, b, **kw), compare_routers(b, a, **kw)
    assert ab.small_model == ba.small_model == "a" and "tie_break" in ab.roles


def test_same_size_pair_reports_combined_peak():
    """Two models of equal accuracy that are right on different halves of the docs: the pair
    beats both; the report shows the peak, the share at the peak and the calibration-chosen point."""
    from calib_harness.routing.compare import compare_routers

    rng = np.random.default_rng(0)
    n = 600
    a_right = np.r_[np.ones(n // 2), np.zeros(n // 2)].astype(bool)
    b_right = ~a_right
    noise = rng.random(n) < 0.15
    a_right, b_right = a_right ^ noise, b_right ^ (rng.random(n) < 0.15)
    runs = []
    for name, right in (("A", a_right), ("B", b_right)):
        recs = []
        for i in range(n):
            c = 0.9 if right[i] else 0.6  # each model knows where it is right
            c = float(np.clip(c + rng.normal(0, 0.05), 0.51, 0.99))
            scores = [math.log(c), math.log(1 - c)]
            recs.append(SampleRecord.from_option_scores(scores, ("x", "y"), "x" if right[i] else "y", task="t", doc_id=i,
                                                        model=name, option_token_mode="single_token"))
        runs.append(Run(name, recs))
    c = compare_routers(*runs, routers=["CC", "UC", "random", "oracle"], bins_sweep=(), progress=False, n_boot=300)
    ss = c.same_size
    assert ss["is_same_size"] and ss["difference_ci95"][0] <= 0 <= ss["difference_ci95"][1]
    peak = ss["peaks"]["CC"]
    assert peak["peak_accuracy"] > max(c.p_small, c.p_large) + 0.2
    assert 0.3 < peak["share_small_at_peak"] < 0.7
    assert peak["cal_chosen_test_accuracy"] > max(c.p_small, c.p_large) + 0.15
    assert "Same-size pair" in c.to_markdown()
    assert "oracle" not in ss["peaks"] and "random" not in ss["peaks"]


def test_operating_point_is_chosen_on_the_calibration_half(hand_comparison):
    c = hand_comparison
    op = c.operating_points["CC"]
    cc = c.routers["CC"]
    # the K of the calibration half's peak, and the test accuracy of that K (not the test peak)
    k = int(op["param"])
    test_curve = c.curves["CC"]
    assert op["test_accuracy"] == pytest.approx(test_curve.accuracy[list(test_curve.params).index(k)])
    assert cc.k_for_share(op["cal_share_small"]) == k


# -- registry and protocol ---------------------------------------------------------------


def test_registry_lists_and_finds_routers():
    from calib_harness.routing.base import NotFittedError, get_router, list_routers, make_router

    names = list_routers()
    assert names[:3] == ["CC", "UC", "threshold"] and {"MF", "random", "oracle"} <= set(names)
    assert get_router("cc") is get_router("CC")
    with pytest.raises(ValueError, match="unknown router 'nope'"):
        get_router("nope")
    for n in ("CC", "UC", "threshold", "random", "oracle"):
        r = make_router(n, n_bins=7, seed=1, progress=False)
        for call in (lambda: r.score(None), lambda: r.route(None, 0.5), lambda: r.curve(None)):
            with pytest.raises(NotFittedError):
                call()


@pytest.fixture
def extra_router():
    """A router defined in a test: one class and one registration, nothing else."""
    from calib_harness.routing import base

    @base.register_router("large-conf")
    class LargeConfidenceRouter(base.Router):
        """Defers where the large model is confident (reads the large model's output: a toy)."""

        plot_style = {"color": "tab:orange", "lw": 1.0, "ls": "-."}

        def _fit(self, calib):
            pass

        def score(self, data):
            return data.large_confidence

    yield "large-conf"
    base._REGISTRY.pop("large-conf", None)
    base._NAMES.pop("large-conf", None)


def test_new_router_is_one_class_and_one_registration(extra_router, tmp_path):
    from calib_harness.routing.base import list_routers, router_style
    from calib_harness.routing.compare import compare_routers
    from calib_harness.routing.plots import plot_curves

    assert extra_router in list_routers()
    small, large = _mc_runs(200)
    c = compare_routers(small, large, routers=["UC", extra_router, "oracle"], bins_sweep=(), progress=False, n_boot=50)
    assert extra_router in c.apgr and extra_router in c.apgr_ci and extra_router in c.bands
    assert c.apgr[extra_router] <= c.apgr["oracle"] + 1e-12
    assert router_style(extra_router)["color"] == "tab:orange"
    png = plot_curves(c, tmp_path / "curves.png")
    assert png.read_bytes()[:4] == b"\x89PNG"


def test_route_uses_the_calibration_quantile():
    from calib_harness.routing.base import RoutingData, make_router

    rng = np.random.default_rng(0)
    conf = rng.random(1000)
    data = RoutingData.from_arrays(conf, conf, (conf > 0.5).astype(float), np.ones(1000))
    r = make_router("threshold").fit(data)
    for share in (0.0, 0.1, 0.5, 0.9, 1.0):
        assert r.route(data, share).mean() == pytest.approx(share, abs=0.002)
    # a single new input is routed on its own (no test-set statistics)
    low = RoutingData.from_arrays([0.01], [0.9], [0.0], [1.0])
    assert r.route(low, 0.1).tolist() == [True]


def test_arrays_only_cc_uses_scalar_calibrators():
    from calib_harness.routing.base import RoutingData, get_router

    rng = np.random.default_rng(1)
    cs = rng.uniform(0.3, 1.0, 800)
    ys = (rng.random(800) < cs).astype(float)
    data = RoutingData.from_arrays(cs, rng.uniform(0.5, 1, 800), ys, np.ones(800))
    r = get_router("CC")().fit(data)
    assert "temperature" not in r.selection_  # needs option scores
    with pytest.raises(ValueError, match="option scores"):
        get_router("CC")(method="temperature").fit(data)


# -- property tests (hypothesis) ------------------------------------------------------------

from hypothesis import HealthCheck, Phase, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402


@st.composite
def pair_arrays(draw, min_n=20, max_n=120):
    n = draw(st.integers(min_n, max_n))
    seed = draw(st.integers(0, 2**31 - 1))
    rng = np.random.default_rng(seed)
    ps, pl = draw(st.floats(0.05, 0.95)), draw(st.floats(0.05, 0.95))
    ys = (rng.random(n) < ps).astype(float)
    yl = (rng.random(n) < pl).astype(float)
    cs = np.clip(rng.random(n) * 0.5 + 0.5 * ys * draw(st.floats(0, 1)), 0, 1)
    cl = np.clip(rng.random(n) * 0.5 + 0.5 * yl * draw(st.floats(0, 1)), 0, 1)
    if draw(st.booleans()):  # ties: a third of the confidences exactly 1.0
        cs[: n // 3] = 1.0
    return cs, cl, ys, yl


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(pair_arrays())
def test_property_no_router_beats_the_oracle(arrays):
    """At every share kept on the small model, no router's test accuracy exceeds the oracle's."""
    from calib_harness.routing.base import RoutingData, make_router
    from calib_harness.routing.curves import knots

    cs, cl, ys, yl = arrays
    n = cs.size
    data = RoutingData.from_arrays(cs, cl, ys, yl)
    cal, test = data.subset(np.arange(0, n, 2)), data.subset(np.arange(1, n, 2))
    oracle = make_router("oracle").fit(cal).curve(test)
    oc, oa = knots(oracle, test.p_small, test.p_large)
    curves = []
    for name in ("UC", "threshold", "random"):
        c = make_router(name, n_bins=5).fit(cal).curve(test)
        curves.append(c)
        assert np.all(c.accuracy <= np.interp(c.cost, oc, oa) + 1e-9), name
    for method in ("none", "binwise", "platt", "isotonic"):
        try:
            c = make_router("CC", n_bins=5, method=method).fit(cal).curve(test)
        except ValueError:
            continue  # e.g. Platt on one class
        curves.append(c)
        assert np.all(c.accuracy <= np.interp(c.cost, oc, oa) + 1e-9), method
    if not np.isclose(test.p_small, test.p_large):
        for c in curves:
            assert apgr(c, test.p_small, test.p_large) <= apgr(oracle, test.p_small, test.p_large) + 1e-9


@settings(max_examples=200, deadline=None)
@given(st.floats(0.0, 1.0), st.floats(0.0, 1.0))
def test_property_random_routing_has_apgr_one_half(ps, pl):
    if abs(ps - pl) < 1e-6:
        return
    assert apgr(random_curve(ps, pl), ps, pl) == pytest.approx(0.5, abs=1e-9)
    assert apgr(random_curve(ps, pl), pl, ps) == pytest.approx(0.5, abs=1e-9)
    assert deferral_score(random_curve(ps, pl), ps, pl) == pytest.approx(0.0, abs=1e-6) if min(ps, pl) > 1e-3 else True


def test_realised_random_routing_has_expected_apgr_one_half():
    """The random router's realised curves (uniform scores, seeded) average to APGR 0.5."""
    from calib_harness.routing.base import RoutingData, make_router

    rng = np.random.default_rng(0)
    n = 400
    data = RoutingData.from_arrays(rng.random(n), rng.random(n), (rng.random(n) < 0.4).astype(float), (rng.random(n) < 0.8).astype(float))
    vals = []
    for seed in range(200):
        r = make_router("random", seed=seed).fit(data)
        c = curve_from_priority("r", -r.score(data), data.small_scores, data.large_scores)
        vals.append(apgr(c, data.p_small, data.p_large))
    vals = np.asarray(vals)
    assert abs(vals.mean() - 0.5) < 3 * vals.std(ddof=1) / np.sqrt(vals.size)


@settings(max_examples=100, deadline=None)
@given(pair_arrays(min_n=4, max_n=60))
def test_property_apgr_is_order_free(arrays):
    """A curve and its mirror (small and large swapped) have the same exact APGR and s_d."""
    cs, cl, ys, yl = arrays
    ps, pl = ys.mean(), yl.mean()
    c = curve_from_priority("t", cs, ys, yl)
    mirror = curve_from_priority("t", -cs, yl, ys)  # the same routing seen from the other model
    if np.isclose(ps, pl):
        return
    assert apgr(c, ps, pl) == pytest.approx(apgr(mirror, pl, ps), abs=1e-9)
    if min(ps, pl) > 0:
        assert deferral_score(c, ps, pl) == pytest.approx(deferral_score(mirror, pl, ps), abs=1e-9)


def _records_from_arrays(name, conf, right):
    recs = []
    for i, (c, r) in enumerate(zip(conf, right)):
        c = float(np.clip(c, 0.26, 0.99))
        scores = [math.log(c)] + [math.log((1 - c) / 3)] * 3
        recs.append(SampleRecord.from_option_scores(scores, tuple("ABCD"), "A" if r else "B", task="p", doc_id=i, model=name,
                                                    option_token_mode="single_token"))
    return Run(name, recs)


@settings(max_examples=8, deadline=None, suppress_health_check=[HealthCheck.too_slow], phases=[Phase.explicit, Phase.generate])
@given(pair_arrays(min_n=40, max_n=100))
def test_property_swapping_small_and_large_gives_the_same_table(arrays):
    from calib_harness.routing.compare import compare_routers

    cs, cl, ys, yl = arrays
    a, b = _records_from_arrays("a", cs, ys > 0), _records_from_arrays("b", cl, yl > 0)
    if np.array_equal(a.scores(), b.scores()):
        return
    kw = dict(routers=["CC", "UC", "threshold", "random", "oracle"], n_bins=5, bins_sweep=(3,), progress=False, n_boot=30)
    t1, t2 = compare_routers(a, b, **kw), compare_routers(b, a, **kw)
    assert (t1.small_model, t1.large_model) == (t2.small_model, t2.large_model)
    assert json.dumps(t1.rows(), default=str) == json.dumps(t2.rows(), default=str)  # NaN == NaN here
    d1, d2 = t1.to_dict(), t2.to_dict()
    for d in (d1, d2):  # what differs legitimately: the order given and the warning saying so
        d.pop("roles"), d.pop("warnings"), d.pop("meta")
    assert json.dumps(d1, sort_keys=True, default=str) == json.dumps(d2, sort_keys=True, default=str)


def test_exact_area_not_a_grid():
    """A knot at cost 1/3: the exact area differs from a 1,001-point grid's trapezoid."""
    c = RoutingCurve("x", [1.0, 2 / 3, 0.0], [0.2, 0.9, 0.8])
    # knots (cost, acc): (0, .2) (1/3, .9) (1, .8): area = 1/3 * 1.1 / 2 + 2/3 * 1.7 / 2
    area = (1 / 3) * 1.1 / 2 + (2 / 3) * 1.7 / 2
    assert apgr(c, 0.2, 0.8) == pytest.approx((area - 0.2) / 0.6, abs=1e-15)
    grid = np.linspace(0, 1, 1001)
    grid_val = (np.trapezoid(np.interp(grid, [0, 1 / 3, 1], [0.2, 0.9, 0.8]), grid) - 0.2) / 0.6
    assert abs(grid_val - apgr(c, 0.2, 0.8)) > 1e-8


# -- deployable router ---------------------------------------------------------------------


def test_deployable_router_matches_fitted_router(hand_comparison, tmp_path):
    from calib_harness.calibration import split_runs
    from calib_harness.routing.compare import build_deployable

    c = hand_comparison
    dep = build_deployable(c, target_share_small=0.4)
    path = dep.save(tmp_path / "router.json")
    loaded = DeployableRouter.load(path)
    assert loaded == dep
    small, large = _mc_runs()
    (_, s_test), _ = split_runs(small, large)
    want = np.where(c.cc_router.keep_small(c.small_calibrator.confidence(s_test), dep.k), "small", "large")
    got = loaded.route_many([list(r.option_scores) for r in s_test.records])
    assert got == want.tolist()
    # the chosen K keeps at least 40% of the calibration half on the small model
    counts = c.cc_router.stats_.count
    assert counts[dep.selected_bins].sum() / counts.sum() >= 0.4
    assert loaded.route({"option_scores": [0.0, -9.0]}) == "small"  # very confident -> small
    assert loaded.route([-0.69, -0.70]) == "large"  # a coin flip -> large


@pytest.mark.parametrize("method,feature", [("platt", "confidence"), ("histogram", "confidence"), ("isotonic", "confidence"), ("temperature", "confidence")])
def test_calibrator_spec_reproduces_run_calibrator(method, feature):
    from calib_harness.calibration import fit_run_calibrator
    from calib_harness.routing.compare import calibrator_spec

    small, _ = _mc_runs(300, seed=1)
    rc = fit_run_calibrator(small, method=method, feature=feature)
    spec = json.loads(json.dumps(calibrator_spec(rc)))
    want = rc.confidence(small)
    if method == "temperature":
        got = [apply_calibrator(spec, list(r.option_scores)) for r in small.records]
    else:
        got = [apply_calibrator(spec, {"confidence": r.confidence}) for r in small.records]
    assert np.allclose(got, want, atol=1e-9)


def test_deploy_rejects_bad_input():
    r = DeployableRouter(edges=[0.5], selected_bins=[1], calibrator={"kind": "temperature", "temperature": 2.0})
    with pytest.raises(ValueError, match="option scores"):
        r.route(0.7)
    with pytest.raises(ValueError, match="out of range"):
        DeployableRouter(edges=[0.5], selected_bins=[3])
    with pytest.raises(ValueError, match="not a cascade router"):
        DeployableRouter.from_dict({"edges": []})


def test_deploy_import_is_light(hand_comparison, tmp_path):
    """Serving needs neither lm-eval nor numpy nor torch."""
    from calib_harness.routing.compare import build_deployable

    path = build_deployable(hand_comparison, k=3).save(tmp_path / "router.json")
    code = (
        "import sys\n"
        "from calib_harness.routing.deploy import DeployableRouter\n"
        f"r = DeployableRouter.load({str(path)!r})\n"
        "print(r.route([0.0, -9.0]), r.route([-0.69, -0.7]))\n"
        "heavy = [m for m in ('lm_eval', 'torch', 'numpy', 'transformers') if m in sys.modules]\n"
        "print('HEAVY', heavy)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert "HEAVY []" in out.stdout
    assert out.stdout.split()[:2] == ["small", "large"]
