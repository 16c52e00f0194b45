"""Hybrid router (confidence + prompt embedding): both signals, one signal empty, never above the
oracle, settings chosen inside the calibration half only."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from calib_harness.routing.base import RoutingData, get_router, list_routers, make_router
from calib_harness.routing.curves import apgr
from calib_harness.routing.hybrid import HybridRouter


def synth(n: int, seed: int, conf_info: bool = True, prompt_info: bool = True, n_clusters: int = 8, dim: int = 48) -> RoutingData:
    """Small model right with prob. sigmoid(latent); its confidence reads the latent (or is noise);
    the large model's accuracy depends on the prompt's topic cluster (or is flat); embeddings are
    the topic centres plus noise (or pure noise)."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(n_clusters, dim))
    topic = rng.integers(0, n_clusters, n)
    emb = centres[topic] + 0.8 * rng.normal(size=(n, dim)) if prompt_info else rng.normal(size=(n, dim))
    emb /= np.linalg.norm(emb, axis=1, keepdims=True)
    p_large = np.linspace(0.3, 0.95, n_clusters)[topic] if prompt_info else np.full(n, 0.65)
    latent = rng.normal(size=n)
    p_small = 1 / (1 + np.exp(-(1.5 * latent - 0.3)))
    ys = (rng.random(n) < p_small).astype(float)
    conf = 1 / (1 + np.exp(-(1.5 * latent - 0.3) + 0.3 * rng.normal(size=n))) if conf_info else rng.uniform(0.25, 0.99, n)
    yl = (rng.random(n) < np.maximum(p_large, p_small)).astype(float)
    return RoutingData.from_arrays(np.clip(conf, 0.01, 0.99), rng.random(n), ys, yl, _embeddings=emb)


def _apgr(name: str, cal: RoutingData, test: RoutingData, **kw) -> float:
    r = make_router(name, n_bins=15, **kw).fit(cal)
    return apgr(r.curve(test), test.p_small, test.p_large)


def _halves(d: RoutingData):
    n = len(d)
    return d.subset(np.arange(n // 2)), d.subset(np.arange(n // 2, n))


def test_registered():
    assert "hybrid" in list_routers() and get_router("HYBRID") is HybridRouter
    assert HybridRouter.needs_prompts


@pytest.fixture(scope="module")
def results():
    """APGR on the test half of three synthetic cases, 3 seeds each (hybrid vs single-signal routers)."""
    out = {}
    for case, (ci, pi) in {"both": (True, True), "prompt empty": (True, False), "confidence empty": (False, True)}.items():
        rows = []
        for seed in range(3):
            cal, test = _halves(synth(1200, seed, ci, pi))
            rows.append({
                "hybrid": _apgr("hybrid", cal, test),
                "threshold": _apgr("threshold", cal, test),
                "prompt only": _apgr("hybrid", cal, test, k_grid=(8, 16), C_grid=(0.1, 1.0)),
            })
        out[case] = {k: np.array([r[k] for r in rows]) for k in rows[0]}
    return out


def test_beats_each_signal_alone_when_both_carry_information(results):
    r = results["both"]
    assert (r["hybrid"] > r["threshold"] + 0.01).all()
    assert r["hybrid"].mean() > r["threshold"].mean() + 0.02


def test_loses_nothing_measurable_when_the_prompt_is_empty(results):
    r = results["prompt empty"]
    assert r["hybrid"].mean() >= r["threshold"].mean() - 0.01


def test_loses_nothing_measurable_when_the_confidence_is_empty(results):
    r = results["confidence empty"]
    assert r["hybrid"].mean() > r["threshold"].mean() + 0.05  # the prompt carries it
    assert r["hybrid"].mean() >= r["prompt only"].mean() - 0.02


def test_settings_chosen_inside_the_calibration_half_only():
    cal, test = _halves(synth(600, 7))
    r1 = HybridRouter(seed=0).fit(cal)
    # scrambling the test half's labels cannot change what was fitted
    rng = np.random.default_rng(0)
    scrambled = RoutingData.from_arrays(test.small_confidence, test.large_confidence, rng.permutation(test.small_scores),
                                        rng.permutation(test.large_scores), _embeddings=test.embeddings())
    r2 = HybridRouter(seed=0).fit(cal)
    assert r1.setting_ == r2.setting_
    np.testing.assert_array_equal(r1.score(test), r2.score(scrambled))
    # candidates: k up to a tenth of a training fold (240 inputs here: 32 components are too many)
    assert {c["k"] for c in r1.selection_} == {0, 4, 8, 16}
    p_s, p_l = r1.predict_correct(test)
    assert ((p_s >= 0) & (p_s <= 1) & (p_l >= 0) & (p_l <= 1)).all()


@settings(max_examples=15, deadline=None)
@given(seed=st.integers(0, 1000), ci=st.booleans(), pi=st.booleans())
def test_never_above_the_oracle(seed, ci, pi):
    cal, test = _halves(synth(300, seed, ci, pi, dim=16))
    hyb = HybridRouter(folds=3, C_grid=(0.1, 1.0), k_grid=(0, 4), seed=seed).fit(cal).curve(test)
    orc = make_router("oracle").fit(test).curve(test)
    # at every share the oracle reaches, nothing routes better
    for share, acc in zip(hyb.share_small, hyb.accuracy):
        best = np.interp(share, orc.share_small[::-1], orc.accuracy[::-1]) if orc.share_small[0] > orc.share_small[-1] else np.interp(share, orc.share_small, orc.accuracy)
        assert acc <= best + 1e-9


def test_clear_errors():
    from sklearn.exceptions import NotFittedError

    d = synth(40, 0)
    with pytest.raises(NotFittedError):
        HybridRouter().score(d)
    with pytest.raises(ValueError, match="too few"):
        HybridRouter(folds=5).fit(d.subset(np.arange(8)))
    no_prompts = RoutingData.from_arrays(d.small_confidence, d.large_confidence, d.small_scores, d.large_scores)
    with pytest.raises(ValueError, match="prompt"):
        HybridRouter().fit(no_prompts)
    # confidence only needs no prompt
    assert HybridRouter(use_prompt=False).fit(no_prompts).setting_["k"] == 0
