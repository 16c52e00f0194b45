"""N-model chains (calib_harness.routing.chain): two models = the two-model cascade, exactly;
three models: settings, costs, Pareto front, path, deployable chain, CLI."""

from __future__ import annotations

import copy
import json

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from calib_harness.records import Run, SampleRecord
from calib_harness.routing.advantage import AdvantageRouter
from calib_harness.routing.chain import ChainRouter, cost_matrix, pareto_front, run_chain
from calib_harness.routing.curves import apgr


@pytest.fixture(scope="module")
def mnist_runs():
    from calib_harness.vision.mnist_pair import load_pair_runs

    s, l = load_pair_runs("test")
    return s.subset(np.arange(4000)), l.subset(np.arange(4000))


# -- two models: exactly the cascade -------------------------------------------------------------
def test_two_model_chain_equals_compare_routers_cc_on_real_pair(mnist_runs):
    from calib_harness.routing.compare import compare_routers

    small, large = mnist_runs
    comp = compare_routers(small, large, routers=["CC"], method="temperature", bins_sweep=(), n_boot=0, roles="given", seed=3, progress=False)
    res = run_chain([small, large], costs=[1.0, 25.0], method="temperature", seed=3)
    a, b = comp.curves["CC"], res.curve
    np.testing.assert_allclose(b.share_small, a.share_small, atol=1e-12)
    np.testing.assert_array_equal(b.accuracy, a.accuracy)
    assert res.apgr_cost == pytest.approx(comp.apgr["CC"], abs=1e-12)
    assert [p.setting[0] for p in res.path] == list(range(res.router.bins_per_stage_[0] + 1))


@settings(max_examples=60, deadline=None)
@given(n=st.integers(40, 400), n_bins=st.integers(1, 30), seed=st.integers(0, 10_000), c1=st.floats(0, 5), c2=st.floats(0.1, 50))
def test_two_model_chain_equals_algorithm_1(n, n_bins, seed, c1, c2):
    rng = np.random.default_rng(seed)
    cs, cl = rng.random(2 * n).round(2), rng.random(2 * n)  # rounded: ties in the small confidences
    ys, yl = (rng.random(2 * n) < cs).astype(float), (rng.random(2 * n) < 0.7).astype(float)
    cal, te = slice(0, n), slice(n, 2 * n)
    ch = ChainRouter(n_bins).fit([cs[cal], cl[cal]], costs=[c1, c2])
    curve, _ = ch.curve([cs[te], cl[te]], [ys[te], yl[te]], costs=[c1, c2])
    ar = AdvantageRouter(n_bins).fit(cs[cal], cl[cal])
    ref = ar.curve(cs[te], ys[te], yl[te])
    np.testing.assert_allclose(curve.share_small, ref.share_small, atol=1e-9)
    np.testing.assert_array_equal(curve.accuracy, ref.accuracy)
    if not np.isclose(ys[te].mean(), yl[te].mean()):
        assert apgr(curve, ys[te].mean(), yl[te].mean()) == pytest.approx(apgr(ref, ys[te].mean(), yl[te].mean()), abs=1e-9)


# -- three models ---------------------------------------------------------------------------------
def _runs(n: int = 600, seed: int = 0, strengths=(0.6, 1.4, 2.6)) -> list[Run]:
    """Three models answering the same 4-option questions; stronger = sharper logits on the gold."""
    rng = np.random.default_rng(seed)
    gold = rng.integers(0, 4, n)
    difficulty = rng.normal(size=n)
    runs = []
    for j, s in enumerate(strengths):
        recs = []
        for i in range(n):
            z = rng.normal(size=4)
            z[gold[i]] += s - 0.8 * difficulty[i]
            recs.append(SampleRecord.from_option_scores(
                z, ["A", "B", "C", "D"], int(gold[i]), task="synthetic", doc_id=i, model=f"m{j + 1}",
                option_token_mode="single", features={"n_tokens": float(5 + i % 7)}, prompt=f"question {i}",
            ))
        runs.append(Run(f"m{j + 1}", recs))
    return runs


@pytest.fixture(scope="module")
def three():
    return _runs()


def test_three_model_chain_settings_costs_and_front(three):
    res = run_chain(three, costs=[1, 4, 20], n_bins=6, seed=0)
    router = res.router
    nb = router.bins_per_stage_
    # settings: canonical (a stage keeping everything makes later stages irrelevant)
    sets = router.settings()
    assert len(sets) == len(set(sets)) == nb[0] * (nb[1] + 1) + 1
    # end points: all through to the last model / all on the first
    by = {p.setting: p for p in res.points}
    all_last, all_first = by[(0, 0)], by[(nb[0], 0)]
    assert all_last.norm_cost == pytest.approx(1.0) and all_last.accuracy == pytest.approx(res.accuracies[-1])
    assert all_first.norm_cost == pytest.approx(0.0) and all_first.accuracy == pytest.approx(res.accuracies[0])
    assert all_last.cost == pytest.approx(25.0) and all_first.cost == pytest.approx(1.0)
    for p in res.points:
        assert sum(p.shares) == pytest.approx(1.0)
        # mean cost = sum over models of (share answered there) x (prices paid up to there)
        assert p.cost == pytest.approx(p.shares[0] * 1 + p.shares[1] * 5 + p.shares[2] * 25)
    # Pareto front: cheapest first, strictly more accurate as cost grows, nothing dominates it
    front = res.pareto
    assert all(b.cost >= a.cost and b.accuracy > a.accuracy for a, b in zip(front, front[1:]))
    for f in front:
        assert not any(p.cost <= f.cost + 1e-12 and p.accuracy > f.accuracy + 1e-12 for p in res.points)
    assert pareto_front(res.points) == front
    # the path runs from all-to-last to all-on-first
    assert res.path[0].setting == (0, 0) and res.path[-1].setting == (nb[0], 0)
    # a 3-model chain beats random routing between M1 and M3 here
    assert res.apgr_cost > 0.5


def test_per_token_costs(three):
    tokens = np.array([[5 + i % 7 for i in range(600)]] * 3, dtype=float)
    cm = cost_matrix([0.1, 0.4, 2.0], 600, tokens)
    assert cm[2, 3] == pytest.approx(2.0 * 8) and cm[0, 0] == pytest.approx(0.5)
    res = run_chain(three, costs=[0.1, 0.4, 2.0], cost_unit="token", n_bins=5, seed=1)
    by = {p.setting: p for p in res.points}
    from calib_harness.calibration import split_indices

    _, test_idx = split_indices(600, 0.5, 1)
    mean_tokens = tokens[0, test_idx].mean()
    assert by[(0, 0)].cost == pytest.approx(2.5 * mean_tokens) and by[(5, 0)].cost == pytest.approx(0.1 * mean_tokens)
    bad = copy.deepcopy(three)
    for rec in bad[1].records:
        rec.features.pop("n_tokens")
    with pytest.raises(ValueError, match="per-token costs need"):
        run_chain(bad, costs=[1, 2, 3], cost_unit="token")


def test_clear_errors(three):
    with pytest.raises(ValueError, match="one price per model"):
        run_chain(three, costs=[1, 2])
    with pytest.raises(ValueError, match="at least two"):
        run_chain(three[:1])
    ch = ChainRouter(4).fit([np.random.default_rng(0).random(50) for _ in range(3)])
    with pytest.raises(ValueError, match="one K per stage"):
        ch.answering_model([np.zeros(3)] * 3, (1,))
    from sklearn.exceptions import NotFittedError

    with pytest.raises(NotFittedError):
        ChainRouter().settings()


def test_deployable_chain_routes_like_the_fitted_chain(three, tmp_path):
    from calib_harness.routing.chain_deploy import DeployableChain, load_router

    res = run_chain(three, costs=[1, 4, 20], n_bins=6, seed=0, method="temperature")
    dep = res.deployable
    path = tmp_path / "router.json"
    path.write_text(dep.to_json())
    back = load_router(path)
    assert isinstance(back, DeployableChain) and back.setting == list(res.deployed.setting)
    # route every record from its option scores only (what serving has) and compare with the chain
    from calib_harness.calibration import split_indices

    _, test_idx = split_indices(600, 0.5, 0)
    test = [r.subset(test_idx) for r in three]
    from calib_harness.routing.chain import _calibrate_runs

    served = [back.route([list(test[j].records[i].option_scores) for j in range(3)]) for i in range(len(test_idx))]
    # the fitted router on calibrated confidences (same calibrators: refit on the same half)
    from calib_harness.calibration import split_indices as _si

    cal_idx, _ = _si(600, 0.5, 0)
    cals = _calibrate_runs([r.subset(cal_idx) for r in three], "temperature", None)
    conf = [c.confidence(r) for c, r in zip(cals, test)]
    ans = res.router.answering_model(conf, res.deployed.setting)
    assert served == [res.models[a] for a in ans]
    # lazily: later models are not asked for once a stage keeps
    asked = []

    def get(j, i=0):
        asked.append(j)
        return list(test[j].records[i].option_scores)

    back.route(get)
    assert asked == list(range(min(ans[0] + 1, 2)))


def test_cli_chain_three_models(three, tmp_path):
    from calib_harness.cli import main
    from calib_harness.routing.chain_deploy import load_router

    paths = [str(r.save(tmp_path / r.model)) for r in three]
    out = tmp_path / "out"
    rc = main(["cascade", "--models", *paths, "--costs", "1", "4", "20", "--bins", "6", "-o", str(out)])
    assert rc == 0
    d = json.loads((out / "chain.json").read_text())
    assert d["models"] == ["m1", "m2", "m3"] and len(d["pareto_front"]) >= 2 and 0 <= d["deployed"]["norm_cost"] <= 0.5 + 1e-9
    assert (out / "chain.png").stat().st_size > 10_000
    chain = load_router(out / "router.json")
    assert chain.models == ["m1", "m2", "m3"] and len(chain.stages) == 2
    rc = main(["cascade", "--models", *paths, "--costs", "1", "2", "-o", str(tmp_path / "o2")])
    assert rc == 2


def _weak_strong(n: int = 1200, seed: int = 0) -> list[Run]:
    """A weak model whose wrong answers put ~zero probability on the gold option (temperature
    scaling then flattens all its confidences to ~1/4, issue #17) and a stronger one."""
    rng = np.random.default_rng(seed)
    gold, ease = rng.integers(0, 4, n), rng.random(n)
    runs = []
    for name in ("weak", "strong"):
        recs = []
        for i in range(n):
            z = rng.normal(size=4)
            if name == "weak":
                right = rng.random() < 0.1 + 0.6 * ease[i]
                z[gold[i]] = (z.max() + 1.5 * ease[i] + 0.5) if right else -20.0
            else:
                z[gold[i]] += 2.2 if rng.random() < 0.72 else -3.0
            recs.append(SampleRecord.from_option_scores(z, list("ABCD"), int(gold[i]), task="t", doc_id=i, model=name, option_token_mode="single"))
        runs.append(Run(name, recs))
    return runs


def test_auto_calibrators_avoid_the_temperature_collapse():
    from calib_harness.routing.chain import _calibrate_runs

    weak, strong = _weak_strong()
    flat = _calibrate_runs([weak], "temperature", None)[0].confidence(weak)
    assert np.ptp(flat) < 0.01  # the collapse: every confidence ~0.25
    cals = _calibrate_runs([weak, strong], "auto", None)
    assert cals[0].method != "temperature"
    losses = cals[0].meta["auto_heldout_logloss"]
    assert min(losses, key=losses.get) == f"{cals[0].method}({cals[0].feature})"
    a_temp = run_chain([weak, strong], method="temperature").apgr_cost
    a_auto = run_chain([weak, strong], method="auto").apgr_cost
    assert a_temp < 0.5 < a_auto and a_auto > a_temp + 0.15
    with pytest.raises(ValueError, match="--method must be one of"):
        run_chain([weak, strong], method="binwise")
