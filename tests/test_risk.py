"""Learn-then-Test risk control (calib_harness.risk) and the cascade's --max-drop on real runs."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats

from calib_harness.risk import (
    InsufficientSamplesError,
    binomial_p_value,
    cascade_losses,
    clopper_pearson_upper,
    hb_p_value,
    ltt_select,
    min_samples,
    naive_select,
    precision_losses,
    split_for_ltt,
    two_model_losses,
)


# -- p-values ---------------------------------------------------------------------------------
def test_binomial_p_value_hand_computed():
    # P(Bin(100, 0.1) <= 3) = sum_{k<=3} C(100,k) 0.1^k 0.9^(100-k)
    hand = sum(math.comb(100, k) * 0.1**k * 0.9 ** (100 - k) for k in range(4))
    assert binomial_p_value(3, 100, 0.1) == pytest.approx(hand, rel=1e-12)
    assert binomial_p_value(0, 50, 0.05) == pytest.approx(0.95**50)


def test_clopper_pearson_duality():
    # p <= delta exactly when the (1 - delta) upper bound is <= alpha
    for k, n, alpha, delta in [(3, 100, 0.1, 0.1), (12, 100, 0.1, 0.1), (0, 45, 0.05, 0.1), (5, 300, 0.03, 0.05)]:
        p = binomial_p_value(k, n, alpha)
        ucb = clopper_pearson_upper(k, n, delta)
        assert (p <= delta) == (ucb <= alpha)


def test_hb_at_zero_losses_and_above_alpha():
    assert hb_p_value(0.0, 60, 0.05) == pytest.approx(0.95**60)
    assert hb_p_value(0.2, 100, 0.1) == pytest.approx(1.0)  # empirical risk above alpha: no evidence


@settings(max_examples=200, deadline=None)
@given(n=st.integers(1, 400), k=st.integers(0, 400), alpha=st.floats(0.01, 0.5))
def test_hb_is_never_smaller_than_exact_binomial(n, k, alpha):
    k = min(k, n)
    assert hb_p_value(k / n, n, alpha) >= binomial_p_value(k, n, alpha) - 1e-12


def test_min_samples_is_the_smallest_n_where_zero_losses_pass():
    for alpha, delta in [(0.05, 0.1), (0.01, 0.05), (0.1, 0.1), (0.2, 0.01)]:
        n = min_samples(alpha, delta)
        assert (1 - alpha) ** n <= delta < (1 - alpha) ** (n - 1)
        assert ltt_select(np.zeros((1, n)), alpha, delta).index == 0
        with pytest.raises(InsufficientSamplesError, match=f"needs at least {n}"):
            ltt_select(np.zeros((1, n - 1)), alpha, delta)


def test_clear_errors():
    with pytest.raises(ValueError, match="method='hb'"):
        ltt_select([np.full(100, 0.5)], 0.1, 0.1)  # fractional losses need Hoeffding-Bentkus
    with pytest.raises(ValueError, match="alpha must be in"):
        ltt_select([np.zeros(100)], 1.5, 0.1)
    with pytest.raises(ValueError, match="unknown p-value method"):
        ltt_select([np.zeros(100)], 0.1, 0.1, method="bonf")
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        ltt_select([np.full(100, 2.0)], 0.1, 0.1, method="hb")


# -- selection ---------------------------------------------------------------------------------
def test_doc_example_and_fixed_sequence_stops_at_first_failure():
    L = [np.zeros(100), np.r_[np.ones(3), np.zeros(97)], np.r_[np.ones(12), np.zeros(88)], np.zeros(100)]
    sel = ltt_select(L, alpha=0.1, delta=0.1)
    assert sel.index == 1  # point 3 would pass alone, but fixed-sequence stopped at point 2
    assert sel.rejected.tolist() == [True, True, False, False]
    bon = ltt_select(L, alpha=0.1, delta=0.1, procedure="bonferroni")
    assert bon.index == 3 and bon.rejected.tolist() == [True, True, False, True]


def test_no_point_passes_says_so(caplog):
    L = [np.ones(200), np.ones(200)]
    sel = ltt_select(L, 0.05, 0.1)
    assert sel.index is None and not sel.found
    assert "no operating point could be certified" in sel.guarantee
    assert json.loads(json.dumps(sel.to_dict()))["index"] is None


@settings(max_examples=150, deadline=None)
@given(
    rates=st.lists(st.floats(0.0, 0.6), min_size=1, max_size=12),
    n=st.integers(30, 300),
    alpha=st.floats(0.02, 0.3),
    delta=st.floats(0.01, 0.3),
    method=st.sampled_from(["clopper-pearson", "hb"]),
    procedure=st.sampled_from(["fixed-sequence", "bonferroni"]),
    seed=st.integers(0, 10_000),
)
def test_ltt_never_returns_a_point_whose_p_value_exceeds_delta(rates, n, alpha, delta, method, procedure, seed):
    rng = np.random.default_rng(seed)
    L = (rng.random((len(rates), n)) < np.sort(rates)[:, None]).astype(float)
    try:
        sel = ltt_select(L, alpha, delta, method=method, procedure=procedure)
    except InsufficientSamplesError as e:
        assert n < e.needed
        return
    level = delta if procedure == "fixed-sequence" else delta / len(rates)
    assert (sel.p_values[sel.rejected] <= level).all()
    if sel.index is not None:
        assert sel.p_values[sel.index] <= level
        if procedure == "fixed-sequence":
            assert sel.rejected[: sel.index + 1].all()
    # order independence: shuffling the samples (columns) changes nothing
    perm = rng.permutation(n)
    again = ltt_select(L[:, perm], alpha, delta, method=method, procedure=procedure)
    assert again.index == sel.index


def test_family_wise_error_is_at_most_delta_by_simulation():
    # 16 nested points with known risks crossing alpha; how often is a point with risk > alpha chosen?
    rng = np.random.default_rng(0)
    alpha, delta, n, reps = 0.1, 0.1, 200, 3000
    risks = np.linspace(0.0, 0.2, 16)
    bad = 0
    for _ in range(reps):
        u = rng.random(n)
        L = (u[None, :] < risks[:, None]).astype(float)  # nested losses, like a cascade's
        sel = ltt_select(L, alpha, delta)
        bad += sel.index is not None and risks[sel.index] > alpha
    rate = bad / reps
    # bound with 3 standard errors of slack for the simulation itself
    assert rate <= delta + 3 * math.sqrt(delta * (1 - delta) / reps)
    # and the naive choice violates far more often
    naive_bad = 0
    for _ in range(500):
        u = rng.random(n)
        L = (u[None, :] < risks[:, None]).astype(float)
        j = naive_select(L, alpha)
        naive_bad += j is not None and risks[j] > alpha
    assert naive_bad / 500 > 2 * delta


def test_losses_helpers():
    s = np.array([1, 0, 1, 0, 1.0])
    l = np.array([1, 1, 0, 0, 1.0])
    keep = np.array([[False] * 5, [True, True, False, False, False], [True] * 5])
    L = two_model_losses(keep, s, l)
    assert L.tolist() == [[0, 0, 0, 0, 0], [0, 1, 0, 0, 0], [0, 1, 0, 0, 0]]
    # the mean loss bounds the signed drop from above
    for row, k in zip(L, keep):
        assert row.mean() >= np.mean(l - np.where(k, s, l)) - 1e-12
    assert cascade_losses(np.array([0.2, 0.9]), np.array([0.7, 0.5])).tolist() == pytest.approx([0.5, 0.0])
    P = precision_losses([np.array([1, 0, 0, 0]), np.array([1, 1, 1, 0])], np.array([1, 0, 1, 0]))
    assert [p.tolist() for p in P] == [[0.0], [0.0, 1.0, 0.0]]
    fit, test = split_for_ltt(10, 0.3, seed=1)
    assert sorted(np.r_[fit, test].tolist()) == list(range(10)) and test.size == 3


def test_binomial_tail_matches_scipy():
    assert binomial_p_value(7, 250, 0.05) == pytest.approx(stats.binom.cdf(7, 250, 0.05))


# -- cascades on the shipped real MNIST pair -----------------------------------------------------
@pytest.fixture(scope="module")
def mnist_runs():
    from calib_harness.vision.mnist_pair import load_pair_runs

    return load_pair_runs("test")


def test_max_drop_on_real_pair_chooses_a_certified_point(mnist_runs):
    from calib_harness.routing.chain import run_chain

    small, large = mnist_runs
    res = run_chain([small, large], max_drop=0.01, delta=0.1, seed=0)
    risk = res.risk
    assert risk["satisfied"] and risk["p_values"][risk["index"]] <= 0.1
    assert risk["n_fit"] + risk["n_ltt"] == res.n_cal
    # everything before the chosen point was certified too (fixed sequence), nothing after it
    assert all(risk["certified"][: risk["index"] + 1])
    # the chosen point keeps a real share on the small model, and the test half agrees with the bound
    k = res.deployed.setting[0]
    assert 0 < k and res.deployed.shares[0] > 0.5
    assert res.accuracies[-1] - res.deployed.accuracy <= 0.01
    assert "with probability >= 0.9" in risk["guarantee"]


def test_max_drop_unreachable_routes_everything_to_the_strongest(mnist_runs):
    from calib_harness.routing.chain import run_chain

    small, large = mnist_runs
    # one bin: the only points are "all to the large model" and "all kept" (a 5-point drop)
    res = run_chain([small, large], n_bins=1, max_drop=0.01, delta=0.1, seed=0)
    assert res.risk["index"] == 0 and res.risk["certified"] == [True, False]
    assert "only the most conservative point" in res.risk["note"]
    assert res.deployed.setting == (0,) and res.deployed.shares == (0.0, 1.0)
    assert res.deployable.stages[0].selected_bins == []


def test_max_drop_too_few_samples_is_a_clear_error(mnist_runs):
    from calib_harness.routing.chain import run_chain

    small, large = (r.subset(np.arange(400)) for r in mnist_runs)
    with pytest.raises(InsufficientSamplesError, match=r"100 calibration samples .* needs at least 230"):
        run_chain([small, large], max_drop=0.01, delta=0.1, seed=0)


def test_cli_max_drop_writes_guarantee_into_router_json(mnist_runs, tmp_path):
    from calib_harness.cli import main
    from calib_harness.routing.deploy import DeployableRouter

    small, large = mnist_runs
    a, b = small.save(tmp_path / "small"), large.save(tmp_path / "large")
    out = tmp_path / "out"
    rc = main(["cascade", "--models", str(a), str(b), "--max-drop", "0.01", "--delta", "0.1", "-o", str(out), "--no-plots"])
    assert rc == 0
    d = json.loads((out / "router.json").read_text())
    router = DeployableRouter.from_dict(d)
    rc_meta = d["meta"]["risk_control"]
    assert rc_meta["satisfied"] and rc_meta["max_drop"] == 0.01 and rc_meta["delta"] == 0.1
    assert router.k == rc_meta["chosen_point"]["setting"][0]
    # too few samples: exit code 2 and the number needed, no traceback
    rc = main(["cascade", "--models", str(a), str(b), "--max-drop", "0.001", "--delta", "0.01", "-o", str(tmp_path / "o2"), "--no-plots"])
    assert rc == 2


def test_cli_two_model_cascade_with_max_drop(mnist_runs, tmp_path):
    from calib_harness.cli import main
    from calib_harness.routing.chain_deploy import load_router

    small, large = (r.subset(np.arange(3000)) for r in mnist_runs)
    # given in the wrong order: the comparison swaps the roles, and the guarantee follows it
    a, b = large.save(tmp_path / "large"), small.save(tmp_path / "small")
    out = tmp_path / "out"
    rc = main(["cascade", "--small", str(a), "--large", str(b), "--routers", "UC", "threshold", "--bins-sweep",
               "--n-boot", "0", "--max-drop", "0.01", "--delta", "0.1", "-o", str(out), "--no-plots"])
    assert rc == 0
    router = load_router(out / "router.json")
    risk = router.meta["risk_control"]
    assert router.small_model == small.model and router.large_model == large.model
    assert risk["satisfied"] and risk["n_ltt"] == 750 and "probability >= 0.9" in risk["guarantee"]
    assert json.loads((out / "chain.json").read_text())["risk_control"]["index"] == risk["index"]
    # refused before any file is written when the held-out part is too small
    rc = main(["cascade", "--small", str(a), "--large", str(b), "--routers", "UC", "--bins-sweep", "--n-boot", "0",
               "--max-drop", "0.001", "--delta", "0.05", "-o", str(tmp_path / "o2"), "--no-plots"])
    assert rc == 2 and not (tmp_path / "o2").exists()
