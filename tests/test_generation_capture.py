"""Token figures of generated answers (calib-hf): alignment, recompute check, cache/filter/reorder survival.

The slow tests load the shipped SmolLM2-135M (float32, CPU) once and generate a few short answers.
"""

from __future__ import annotations

import pickle

import pytest
import torch

from calib_harness.capture.generation import (
    CaptureError,
    GeneratedText,
    capture_figures,
    find_span,
    generation_features,
    make_capture,
    make_process_results,
    token_offsets,
)

TOL = 1e-4


# ----------------------------------------------------------------------------- no model
def _toy_decode(vocab):
    return lambda toks: "".join(vocab[t] for t in toks)


def test_token_offsets_cover_exactly_the_trimmed_text():
    vocab = {0: " The", 1: " answer", 2: " is", 3: " 4", 4: "2", 5: ".\n\nQ", 6: ":", 7: ""}
    dec = _toy_decode(vocab)
    toks = [0, 1, 2, 3, 4, 5, 6, 7]
    text = " The answer is 42."  # stop "\n\nQ:" cut inside token 5
    k, offs = token_offsets(dec, toks, text)
    assert k == 6  # token 5 (".\n\nQ") contributes the final "."
    assert offs[3] == [14, 16] and offs[4] == [16, 17] and offs[5] == [17, 18]
    k, _ = token_offsets(dec, toks, " The answer is 42")  # stop exactly at a token boundary
    assert k == 5
    assert token_offsets(dec, toks, "") == (0, [])


def test_capture_figures_and_span():
    vocab = {0: " The", 1: " answer", 2: " is", 3: " 4", 4: "2", 5: "<eos>"}
    dec = lambda toks: "".join(vocab[t] for t in toks if t != 5)  # noqa: E731  (EOS is special: no text)
    cap = make_capture("toy", " The answer is 42", [0, 1, 2, 3, 4, 5], [1, 2, 3, 4, 5, 6],
                       [-0.1, -0.2, -0.3, -0.4, -0.5, -0.6], [1, 1, 1, 2, 2, 9], dec)
    assert cap["tokens"] == [0, 1, 2, 3, 4] and cap["stop"]["token"] == 5  # EOS not scored
    f = capture_figures(cap)
    assert f["n_tokens"] == 5 and f["mean_logit"] == pytest.approx(3.0)
    assert f["sum_logprob"] == pytest.approx(-1.5) and f["mean_logprob"] == pytest.approx(-0.3)
    feats = generation_features(cap, "final_answer", "42")
    assert feats["span_n_tokens"] == 2 and feats["span_mean_logit"] == pytest.approx(4.5)
    assert feats["span_sum_logprob"] == pytest.approx(-0.9) and feats["span_mean_entropy"] == pytest.approx(2.0)
    assert feats["span_found"] == 1.0
    nf = generation_features(cap, "final_answer", "17")
    assert nf["span_found"] == 0.0 and nf["span_mean_logit"] == nf["mean_logit"]
    assert find_span("regex:is (\\d+)", cap["text"], None) == (15, 17)
    assert find_span("code_block", "x\ndef f(): pass\n", "def f(): pass") == (2, 15)
    # empty answer: the confidence of stopping at once, 0 tokens
    empty = make_capture("toy", "", [5], [7.0], [-0.05], [0.3], dec)
    ef = capture_figures(empty)
    assert ef["n_tokens"] == 0 and ef["mean_logprob"] == pytest.approx(-0.05)


def test_generated_text_pickles_with_its_capture():
    g = GeneratedText("hello", {"v": 1, "text": "hello", "tokens": [1]})
    h = pickle.loads(pickle.dumps(g, protocol=pickle.HIGHEST_PROTOCOL))
    assert isinstance(h, GeneratedText) and h == "hello" and h.capture == g.capture


def test_calib_filter_keeps_capture_through_regex():
    from lm_eval.api.registry import get_filter

    cap = {"v": 1, "text": "so 3 + 4 = 7. The answer is 7."}
    raw = [[GeneratedText(cap["text"], cap)], [GeneratedText("no number", {"v": 1, "text": "no number"})]]
    f = get_filter("calib")(filters=[{"function": "regex", "regex_pattern": r"The answer is (\-?[0-9\.\,]+)."},
                                     {"function": "take_first"}])
    out = list(f.apply(raw, [{}, {}]))
    assert out[0] == "7" and out[0].capture is cap
    assert out[1] == "[invalid]" and out[1].capture["text"] == "no number"
    # the stock regex filter alone drops the figures: process_results says what to do
    plain = list(get_filter("regex")().apply(raw, [{}, {}]))
    with pytest.raises(CaptureError, match="calib"):
        make_process_results("numeric")({"answer": "#### 7"}, [plain[0][0]])


# ----------------------------------------------------------------------------- real model
PROMPTS = [
    "Q: What is 2 + 3?\nA:",
    "Q: Tom has 3 apples and buys 4 more. How many apples does he have?\nA: Tom has",
    "The capital of France is",
    "def square(x):\n    return",
]
GEN = {"until": ["\n", "Q:"], "max_gen_toks": 12, "do_sample": False}


@pytest.fixture(scope="module")
def lm():
    import calib_harness.lm_models  # noqa: F401
    from lm_eval.api.registry import get_model

    from calib_harness.models import resolve_model

    torch.manual_seed(0)
    return get_model("calib-hf")(pretrained=resolve_model("smollm2-135m"), batch_size=4, device="cpu", dtype="float32")


def _requests(prompts, gen=GEN):
    from lm_eval.api.instance import Instance

    return [Instance("generate_until", {}, (p, dict(gen)), i) for i, p in enumerate(prompts)]


def _generate(lm, prompts, batch_size):
    old = lm.batch_size_per_gpu
    lm.batch_size_per_gpu = batch_size
    try:
        return lm.generate_until(_requests(prompts), disable_tqdm=True)
    finally:
        lm.batch_size_per_gpu = old


def _teacher_forced(lm, prompts, outs, batched: bool):
    """Independent forward pass over prompt + generated tokens; per-token (logit, logprob, entropy)."""
    seqs = []
    for p, o in zip(prompts, outs):
        ids = lm.tok_batch_encode([p])[0][0].tolist()
        seqs.append((ids, list(o.capture["tokens"])))
    groups = [seqs] if batched else [[s] for s in seqs]
    figs = []
    for g in groups:
        L = max(len(a) + len(b) for a, b in g)
        pad = lm.tokenizer.pad_token_id if lm.tokenizer.pad_token_id is not None else 0
        ids = torch.full((len(g), L), pad, dtype=torch.long)
        mask = torch.zeros((len(g), L), dtype=torch.long)
        for i, (a, b) in enumerate(g):  # left padding, as lm-eval does
            full = a + b
            ids[i, L - len(full):] = torch.tensor(full)
            mask[i, L - len(full):] = 1
        pos = (mask.cumsum(-1) - 1).clamp(min=0)
        with torch.no_grad():
            logits = lm.model(input_ids=ids, attention_mask=mask, position_ids=pos).logits.float()
        for i, (a, b) in enumerate(g):
            n = len(b)
            if n == 0:
                figs.append(([], [], []))
                continue
            rows = logits[i, L - n - 1: L - 1]  # the distributions that produced each generated token
            tok = torch.tensor(b).view(-1, 1)
            logp = torch.log_softmax(rows, -1)
            ent = -(logp.exp() * logp).sum(-1)
            figs.append((rows.gather(1, tok).squeeze(1).tolist(), logp.gather(1, tok).squeeze(1).tolist(), ent.tolist()))
    return figs


def _assert_close(outs, figs):
    for o, (lg, lp, en) in zip(outs, figs):
        c = o.capture
        assert len(c["logit"]) == len(lg)
        for name, got, ref in (("logit", c["logit"], lg), ("logprob", c["logprob"], lp), ("entropy", c["entropy"], en)):
            diff = max((abs(x - y) for x, y in zip(got, ref)), default=0.0)
            assert diff < TOL, f"{name}: max |capture - recompute| = {diff:.2e} for {str(o)!r}"


@pytest.mark.slow
def test_recompute_matches_capture_batch_1_and_batched(lm):
    out1 = _generate(lm, PROMPTS, batch_size=1)
    out4 = _generate(lm, PROMPTS, batch_size=4)  # left-padded batch, reordered by length
    for o, p in zip(out1, PROMPTS):
        c = o.capture
        assert isinstance(o, GeneratedText) and c["text"] == str(o) and c["backend"] == "hf"
        assert lm.tok_decode(c["tokens"]).startswith(str(o)) and len(c["tokens"]) >= (1 if str(o) else 0)
        assert not any(s in str(o) for s in GEN["until"])
    assert any(len(o.capture["tokens"]) > 2 for o in out1)
    assert [str(o) for o in out1] == [str(o) for o in out4]
    # each generation against an unpadded (batch 1) and a left-padded batched teacher-forced pass
    for outs in (out1, out4):
        _assert_close(outs, _teacher_forced(lm, PROMPTS, outs, batched=False))
        _assert_close(outs, _teacher_forced(lm, PROMPTS, outs, batched=True))


@pytest.mark.slow
def test_reordering_duplicates_and_cache(lm, tmp_path):
    """lm-eval sorts requests by length and batches them; duplicates and a sqlite cache hit keep their figures."""
    from lm_eval.api.model import CachingLM

    prompts = [PROMPTS[2], PROMPTS[1], PROMPTS[2], PROMPTS[3]]
    cached = CachingLM(lm, str(tmp_path / "cache.db"))
    first = cached.generate_until(_requests(prompts))
    for p, o in zip(prompts, first):
        assert isinstance(o, GeneratedText) and o.capture["text"] == str(o)
    assert first[0].capture == first[2].capture  # same request, same greedy answer
    _assert_close(first, _teacher_forced(lm, prompts, first, batched=False))
    # second pass: every request is a cache hit (the model is not called), the figures come back
    calls = []
    orig = lm._model_generate
    lm._model_generate = lambda *a, **k: calls.append(1) or orig(*a, **k)
    try:
        again = CachingLM(lm, str(tmp_path / "cache.db")).generate_until(_requests(prompts))
    finally:
        del lm._model_generate
    assert not calls
    assert [o.capture for o in again] == [o.capture for o in first]
    assert all(isinstance(o, GeneratedText) for o in again)


def test_vllm_topk_figures_and_lazy_registration():
    """calib-vllm is registered without importing vLLM; its per-step reduction matches the exact figures
    when the values cover the whole distribution, and the raw logit is absent (None, never NaN) in
    raw_logprobs mode."""
    from lm_eval.api.registry import model_registry

    import calib_harness.lm_models  # noqa: F401
    from calib_harness.lm_models.topk import approx_and_absent, step_from_values

    assert "calib-vllm" in model_registry and "calib-hf" in model_registry
    logits = torch.tensor([3.0, 1.0, 0.5, -2.0])
    logp = torch.log_softmax(logits, -1)
    ent = float(-(logp.exp() * logp).sum())
    lg, lp, en = step_from_values(1.0, logits.tolist(), "raw_logits")
    assert lg == 1.0 and lp == pytest.approx(float(logp[1]), abs=1e-6) and en == pytest.approx(ent, abs=1e-6)
    lg, lp, en = step_from_values(float(logp[1]), logp.tolist(), "raw_logprobs")
    assert lg is None and lp == pytest.approx(float(logp[1])) and en == pytest.approx(ent, abs=1e-6)
    # truncated top-k: the log-probability is an upper bound, and the record names the k
    _, lp2, _ = step_from_values(1.0, logits.tolist()[:2], "raw_logits")
    assert lp2 > float(logp[1])
    approx, absent = approx_and_absent("raw_logprobs", 20)
    assert approx == ("entropy:top-20",) and "mean_logit" in absent
    assert approx_and_absent("raw_logits", -1) == ((), {})
