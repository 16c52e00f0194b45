"""RouteLLM MF router re-implementation: reference formulas on a hand-computed case,
checkpoint loading in both RouteLLM key layouts, ties, quantile thresholds, training, and the
real MiniLM prompt embeddings with their disk cache."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch

from calib_harness.routing.mf import MFModel, MFRouter, normalise_state_dict, pairwise_outcomes

# Hand-computed case (dim 2, two models, text_dim 3):
#   P = [[3, 4], [1, 0]]            -> P / ||P|| = [[0.6, 0.8], [1, 0]]
#   text_proj W = [[1, 0, 1], [0, 2, 0]], q = [1, 1, 2]  -> W q = [3, 2]
#   classifier w = [0.5, -1]
#   score(model 0) = 0.5 * 0.6 * 3 + (-1) * 0.8 * 2 = -0.7
#   score(model 1) = 0.5 * 1.0 * 3 + (-1) * 0.0 * 2 =  1.5
#   win rate of model 1 over model 0 = sigmoid(1.5 - (-0.7)) = sigmoid(2.2) = 0.9002495...
P = [[3.0, 4.0], [1.0, 0.0]]
W = [[1.0, 0.0, 1.0], [0.0, 2.0, 0.0]]
C = [[0.5, -1.0]]
Q = [1.0, 1.0, 2.0]
WIN_1_OVER_0 = 1 / (1 + math.exp(-2.2))


def _hand_state_dict(layout: str = "routing") -> dict[str, torch.Tensor]:
    if layout == "routing":  # routellm/routers/matrix_factorization/model.py (nn.Sequential)
        return {"P.weight": torch.tensor(P), "text_proj.0.weight": torch.tensor(W), "classifier.0.weight": torch.tensor(C)}
    # train_matrix_factorization.py's MFModel_Train (plain Linear + the Q prompt table)
    return {
        "P.weight": torch.tensor(P),
        "Q.weight": torch.zeros(5, 3),
        "text_proj.weight": torch.tensor(W),
        "classifier.weight": torch.tensor(C),
    }


def _hand_model() -> MFModel:
    m = MFModel(dim=2, num_models=2, text_dim=3)
    m.load_state_dict(_hand_state_dict())
    return m.eval()


def test_forward_matches_hand_computed_scores():
    m = _hand_model()
    scores = m.forward([0, 1], torch.tensor(Q))
    assert scores.tolist() == pytest.approx([-0.7, 1.5], abs=1e-6)
    # batched form: (n prompts, m models)
    batch = m.forward([0, 1], torch.tensor([Q, [0.0, 0.0, 0.0]]))
    assert batch.shape == (2, 2)
    assert batch[0].tolist() == pytest.approx([-0.7, 1.5], abs=1e-6)
    assert batch[1].tolist() == pytest.approx([0.0, 0.0], abs=1e-9)


def test_pred_win_rate_and_training_logit_agree():
    m = _hand_model()
    assert float(m.pred_win_rate(1, 0, torch.tensor(Q))) == pytest.approx(WIN_1_OVER_0, abs=1e-6)
    assert float(m.pred_win_rate(0, 1, torch.tensor(Q))) == pytest.approx(1 - WIN_1_OVER_0, abs=1e-6)
    # MFModel_Train: classifier((P^_w - P^_l) * W q) = 0.5 * 0.4 * 3 + (-1) * (-0.8) * 2 = 2.2
    logit = m.pair_logit(torch.tensor([1]), torch.tensor([0]), torch.tensor([Q]))
    assert logit.tolist() == pytest.approx([2.2], abs=1e-6)


def test_state_dict_keys_are_routellm_routing_layout():
    m = MFModel(dim=4, num_models=3, text_dim=5)
    assert sorted(m.state_dict()) == ["P.weight", "classifier.0.weight", "text_proj.0.weight"]


@pytest.mark.parametrize("layout", ["routing", "training"])
def test_load_checkpoint_both_layouts(tmp_path, layout):
    path = tmp_path / f"mf_{layout}.pt"
    torch.save(_hand_state_dict(layout), path)
    r = MFRouter.from_checkpoint(path, strong_id=1, weak_id=0)
    assert (r.dim, r.num_models, r.model_.text_dim) == (2, 2, 3)
    assert r.win_rate(np.array([Q])).tolist() == pytest.approx([WIN_1_OVER_0], abs=1e-6)
    # saving writes the routing layout, which loads back identically
    r.save(tmp_path / "again.pt")
    r2 = MFRouter.from_checkpoint(tmp_path / "again.pt", strong_id=1, weak_id=0)
    assert r2.win_rate(np.array([Q])).tolist() == pytest.approx([WIN_1_OVER_0], abs=1e-6)


def test_load_hub_folder_safetensors(tmp_path):
    from safetensors.torch import save_file

    save_file(_hand_state_dict("routing"), str(tmp_path / "model.safetensors"))
    r = MFRouter.from_checkpoint(tmp_path, strong_id=1, weak_id=0)
    assert r.win_rate(np.array([Q]))[0] == pytest.approx(WIN_1_OVER_0, abs=1e-6)


def test_checkpoint_errors(tmp_path):
    with pytest.raises(ValueError, match="not a RouteLLM MF state dict"):
        normalise_state_dict({"foo": torch.zeros(1)})
    with pytest.raises(ValueError, match="out of range"):
        MFRouter.from_checkpoint(_hand_state_dict())  # default ids 24 / 36 need 64 models
    r = MFRouter.from_checkpoint(_hand_state_dict(), strong_id=1, weak_id=0)
    with pytest.raises(ValueError, match=r"\(n, 3\)"):
        r.win_rate(np.zeros((2, 384)))  # RouteLLM checkpoints need embeddings of their own size


def test_pairwise_outcomes_drop_ties():
    weak = np.array([1, 0, 1, 0, 0.5])
    strong = np.array([1, 1, 0, 0, 0.75])
    idx, win, loss = pairwise_outcomes(weak, strong)
    assert idx.tolist() == [1, 2, 4]  # (1,1) and (0,0) are ties, dropped as in RouteLLM
    assert win.tolist() == [1, 0, 1] and loss.tolist() == [0, 1, 0]


def test_quantile_threshold_and_route():
    r = MFRouter.from_checkpoint(_hand_state_dict(), strong_id=1, weak_id=0)
    ref = np.array([0.1, 0.2, 0.3, 0.4, 0.5])
    # RouteLLM: threshold = quantile(win_rates, 1 - strong_pct); strong iff win_rate >= threshold
    assert r.calibrate_threshold(0.25, ref) == pytest.approx(np.quantile(ref, 0.75)) == pytest.approx(0.4)
    assert r.calibrate_threshold(1.0, ref) == pytest.approx(0.1)
    qs = np.array([Q, [0.0, 0.0, 0.0]])  # win rates 0.900 and 0.5
    assert r.route(qs, 0.6).tolist() == ["large", "small"]
    assert r.route(qs, 0.5).tolist() == ["large", "large"]


def test_training_learns_who_wins():
    """Prompts of cluster A: only the strong model is right; cluster B: only the weak one is.
    After training, held-out prompts of A get a higher strong win rate than those of B."""
    rng = np.random.default_rng(0)
    d = 16
    ca, cb = rng.normal(size=d), rng.normal(size=d)

    def sample(center, n):
        x = center + 0.3 * rng.normal(size=(n, d))
        return x / np.linalg.norm(x, axis=1, keepdims=True)

    xa, xb, xt = sample(ca, 60), sample(cb, 60), sample(ca, 10)
    xs = np.vstack([xa, xb, sample(cb, 30)])
    weak = np.r_[np.zeros(60), np.ones(60), np.ones(30)]
    strong = np.r_[np.ones(60), np.zeros(60), np.ones(30)]  # last 30: ties, ignored
    r = MFRouter(dim=8, epochs=60, lr=3e-3, seed=0).fit(xs, weak, strong)
    assert r.n_pairs_ == 120
    assert r.train_losses_[-1] < r.train_losses_[0]
    wa, wb = r.win_rate(xt), r.win_rate(sample(cb, 10))
    assert wa.min() > wb.max()
    # curve: one point per target strong share; the endpoints reach all-large and all-small
    curve = r.curve(np.vstack([xt, sample(cb, 10)]), np.r_[np.zeros(10), np.ones(10)], np.r_[np.ones(10), np.zeros(10)])
    i = int(np.argmin(np.abs(curve.share_small - 0.5)))
    assert curve.accuracy[i] == pytest.approx(1.0)  # routes cluster A to strong, B to weak
    assert curve.share_small.max() == 1.0


def test_minilm_embeddings_and_cache(tmp_path, shared_data):
    from calib_harness.routing import embeddings as E

    arc = shared_data / "arc" / "ARC-Easy" / "ARC-Easy-Dev.jsonl"
    questions = [json.loads(line)["question"]["stem"] for line in arc.read_text().splitlines()[:6]]
    texts = questions + ["What organ system coordinates the muscles when kicking a ball?"]
    v = E.embed_texts(texts, cache_dir=tmp_path, progress=False)
    assert v.shape == (7, 384) and v.dtype == np.float32
    assert np.allclose(np.linalg.norm(v, axis=1), 1.0, atol=1e-5)
    # question 2 of the ARC dev file is the soccer / nervous-system question: the paraphrase
    # is closest to it
    sims = v[:6] @ v[6]
    assert int(np.argmax(sims)) == 2, sims
    keys = json.loads((tmp_path / E.MINILM_TAG / "keys.json").read_text())
    assert set(keys) == {E.text_key(t) for t in texts}
    # second call: served from the cache file (same vectors, no new keys); new text appended
    v2 = E.embed_texts(texts[::-1], cache_dir=tmp_path, progress=False)
    assert np.array_equal(v2, v[::-1])
    stored = np.load(tmp_path / E.MINILM_TAG / "vectors.npy")
    assert stored.shape == (7, 384)
    E.embed_texts(["a brand new prompt"], cache_dir=tmp_path, progress=False)
    assert np.load(tmp_path / E.MINILM_TAG / "vectors.npy").shape == (8, 384)


def test_mf_behind_the_router_protocol():
    """The registered MF router: NotFittedError before fit; fitted on the calibration half's
    embeddings, its score (the strong model's win rate) separates the two clusters and route()
    sends the requested share of calibration-like inputs to the large model."""
    from calib_harness.routing.base import NotFittedError, RoutingData, get_router

    rng = np.random.default_rng(1)
    d = 16
    ca, cb = rng.normal(size=d), rng.normal(size=d)

    def sample(center, n):
        x = center + 0.3 * rng.normal(size=(n, d))
        return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)

    def data(n):
        emb = np.vstack([sample(ca, n), sample(cb, n)])
        weak = np.r_[np.zeros(n), np.ones(n)]  # cluster A: only the strong model is right
        strong = np.r_[np.ones(n), np.zeros(n)]
        return RoutingData.from_arrays(np.full(2 * n, 0.5), np.full(2 * n, 0.5), weak, strong, _embeddings=emb)

    mf = get_router("mf")(dim=8, epochs=60)
    assert get_router("MF").needs_prompts
    with pytest.raises(NotFittedError):
        mf.score(data(2))
    cal, test = data(60), data(20)
    mf.fit(cal)
    s = mf.score(test)
    assert s[:20].min() > s[20:].max()
    to_large = mf.route(test, 0.5)
    assert to_large[:20].all() and not to_large[20:].any()
    curve = mf.curve(test)
    assert curve.accuracy.max() == pytest.approx(1.0)
    assert mf.info()["n_pairs"] == 120
