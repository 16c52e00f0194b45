"""``calib-vllm`` on vLLM's CPU build (``make vllm``) with the shipped SmolLM2-135M, against stock
``--model vllm``, ``calib-hf`` and a teacher-forced recompute.

Engine starts are the cost here (about a minute each on a small CPU), so the module starts three
and reuses them: stock ``vllm`` (multiple choice only, shut down after), ``calib-vllm`` in its default
``raw_logprobs`` mode with the whole vocabulary per token (every test of MC and generation, one run
mixing both kinds of task), and ``calib-vllm`` in ``raw_logits`` mode (mean raw logit, and the refusal
of log-likelihood requests).  ``scripts/gpu_check.sh`` runs this module on a GPU machine.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from vllm_helpers import (ENGINE, by_doc, captures, device, evaluate, hf_evaluate, hf_teacher_forced, load_hf_model,
                          option_scores, shutdown)

pytestmark = pytest.mark.slow

MC_TASKS = ["calib_arc_easy", "calib_mmlu_astronomy"]
GEN_TASKS = ["calib_gsm8k", "calib_mbpp"]
LIMIT_MC, LIMIT_GEN = 8, 2


@pytest.fixture(scope="module", autouse=True)
def _env(shared_data):
    from calib_harness.data_sources import set_data_dir
    from calib_harness.lm_eval_cli import add_task_folder

    os.environ.setdefault("VLLM_CPU_KVCACHE_SPACE", "1")  # GiB; CPU build only
    set_data_dir(shared_data)
    add_task_folder()


@pytest.fixture(scope="module")
def model_path(smollm2_path):
    return smollm2_path


@pytest.fixture(scope="module")
def stock_mc(model_path):
    from lm_eval.models.vllm_causallms import VLLM

    lm = VLLM(pretrained=model_path, **ENGINE)
    try:
        return evaluate(lm, MC_TASKS, LIMIT_MC)
    finally:
        shutdown(lm)


@pytest.fixture(scope="module")
def hf_mc(model_path):
    return hf_evaluate(model_path, MC_TASKS, LIMIT_MC)


@pytest.fixture(scope="module")
def calib_lm(model_path, stock_mc, hf_mc):  # after the others: one engine alive at a time
    from calib_harness.lm_models.vllm_entry import CalibVLLM

    lm = CalibVLLM(pretrained=model_path, capture_topk=-1, **ENGINE)
    yield lm
    shutdown(lm)


@pytest.fixture(scope="module")
def mixed(calib_lm):
    """One run, one engine, MC and generation tasks together."""
    return evaluate(calib_lm, MC_TASKS + GEN_TASKS, None, samples={t: list(range(LIMIT_MC if t in MC_TASKS else LIMIT_GEN))
                                                                      for t in MC_TASKS + GEN_TASKS})


# ----------------------------------------------------------------------------- multiple choice
@pytest.mark.parametrize("task", MC_TASKS)
def test_mc_identical_to_stock_vllm_and_calib_hf(task, mixed, stock_mc, hf_mc):
    ours, stock, hf = by_doc(mixed, task), by_doc(stock_mc, task), by_doc(hf_mc, task)
    assert sorted(ours) == sorted(stock) == sorted(hf) == list(range(LIMIT_MC))
    for d in ours:
        o, s, h = option_scores(ours[d]), option_scores(stock[d]), option_scores(hf[d])
        pred = max(range(len(o)), key=o.__getitem__)
        assert pred == max(range(len(s)), key=s.__getitem__) == max(range(len(h)), key=h.__getitem__), (task, d, o, h)
        assert ours[d]["acc"] == stock[d]["acc"] == hf[d]["acc"]
        # the same engine settings and lm-eval code; the mixed run batches other requests beside these, and
        # on the CPU build a different batch changes the float32 reductions in the last digits (4.6e-6 seen)
        assert max(abs(a - b) for a, b in zip(o, s)) < 1e-4, (task, d, o, s)
        assert max(abs(a - b) for a, b in zip(o, h)) < 1e-3, (task, d, o, h)
        assert ours[d]["ece"]["prediction"] == hf[d]["ece"]["prediction"]
    acc = lambda out: out["results"][task]["acc,none"]  # noqa: E731
    assert acc(mixed) == acc(stock_mc) == acc(hf_mc)


def test_one_token_continuations_take_one_request_per_context(calib_lm):
    """MMLU-style letters: one engine request per context (logprob_token_ids) gives lm-eval's own
    prompt_logprobs numbers; longer continuations, and contexts with more options than one request may
    score, take lm-eval's path."""
    from lm_eval.models.vllm_causallms import VLLM
    from vllm import SamplingParams, TokensPrompt

    enc = calib_lm.tok_encode
    ctxs = ["Question: Which planet is the largest?\nA. Mars\nB. Jupiter\nC. Venus\nD. Mercury\nAnswer:",
            "The capital of France is"]
    greedy = calib_lm.model.generate([TokensPrompt(prompt_token_ids=enc(ctxs[1]))],
                                     SamplingParams(max_tokens=1, temperature=0), use_tqdm=False)[0].outputs[0].token_ids[0]
    reqs = [((c, o), enc(c), enc(o)) for c in ctxs for o in (" A", " B", " C", " D")]
    assert all(len(r[2]) == 1 for r in reqs)
    reqs += [(None, enc(ctxs[1]), [greedy]),  # the greedy token: is_greedy True; no cache key (rolling-style)
             ((ctxs[1], " A"), enc(ctxs[1]), enc(" A")),  # a duplicate request
             ((ctxs[1], " Paris, the city"), enc(ctxs[1]), enc(" Paris, the city"))]  # several tokens
    stock = VLLM._loglikelihood_tokens(calib_lm, reqs, disable_tqdm=True)
    ours = calib_lm._loglikelihood_tokens(reqs, disable_tqdm=True)
    assert calib_lm.calib_request_counts == {"next_token_contexts": 2, "next_token_requests": 10,
                                             "prompt_logprobs_requests": 1}
    assert [g for _, g in ours] == [g for _, g in stock]
    assert ours[8][1] is True and sum(g for _, g in ours) >= 1
    assert max(abs(a - b) for (a, _), (b, _) in zip(ours, stock)) < 1e-4, (ours, stock)
    calib_lm._calib_max_ids, keep = 3, calib_lm._calib_max_ids  # four options > 3: lm-eval's path
    try:
        again = calib_lm._loglikelihood_tokens(reqs[:8], disable_tqdm=True)
        assert calib_lm.calib_request_counts["prompt_logprobs_requests"] == 8
    finally:
        calib_lm._calib_max_ids = keep
    assert max(abs(a - b) for (a, _), (b, _) in zip(again, stock[:8])) < 1e-4

    # any order of the requests: each gets its own answer back
    @settings(max_examples=5, deadline=None, suppress_health_check=list(HealthCheck))
    @given(st.permutations(range(len(reqs))))
    def same_answers_in_any_order(perm):
        shuffled = calib_lm._loglikelihood_tokens([reqs[i] for i in perm], disable_tqdm=True)
        for j, i in enumerate(perm):
            assert shuffled[j][1] == ours[i][1] and abs(shuffled[j][0] - ours[i][0]) < 1e-4, (i, shuffled[j], ours[i])

    same_answers_in_any_order()


# ----------------------------------------------------------------------------- generation
def _teacher_forced(lm, context: str, tokens: list[int]) -> list[float]:
    """Log-probability of each given token after the context, scored as a prompt by the same engine
    (``prompt_logprobs``: no sampling path involved)."""
    from vllm import SamplingParams, TokensPrompt

    ctx = lm.tok_encode(context)
    out = lm.model.generate([TokensPrompt(prompt_token_ids=ctx + tokens)],
                            SamplingParams(max_tokens=1, temperature=0, prompt_logprobs=1), use_tqdm=False)[0]
    return [float(out.prompt_logprobs[len(ctx) + i][t].logprob) for i, t in enumerate(tokens)]


@pytest.fixture(scope="module")
def hf_model(model_path):
    return load_hf_model(model_path)


@pytest.mark.parametrize("task", GEN_TASKS)
def test_generation_figures_match_teacher_forcing(task, mixed, calib_lm, hf_model):
    caps = captures(mixed, task)
    assert len(caps) == LIMIT_GEN
    for s, cap in caps:
        feats = s["ece"]["features"]
        text = cap["text"]
        assert str(s["resps"][0][0]) == text
        # n tokens: exactly the tokens that spell the returned text
        assert calib_lm.tokenizer.decode(cap["tokens"], skip_special_tokens=True) == text
        assert feats["n_tokens"] == len(cap["tokens"]) > 0
        lps = _teacher_forced(calib_lm, s["arguments"][0][0], cap["tokens"])
        n = len(lps)
        assert abs(feats["sum_logprob"] - sum(lps)) < 1e-4, (feats["sum_logprob"], sum(lps))
        assert abs(feats["mean_logprob"] - sum(lps) / n) < 1e-4
        # entropy over the whole vocabulary (capture_topk=-1), against transformers' own forward pass
        _, hf_lp, hf_ent = hf_teacher_forced(hf_model, calib_lm.tok_encode(s["arguments"][0][0]), cap["tokens"])
        assert abs(feats["mean_entropy"] - hf_ent.mean().item()) < 1e-3, (feats["mean_entropy"], hf_ent.mean().item())
        assert abs(feats["mean_logprob"] - hf_lp.mean().item()) < 1e-3
        # raw logits do not exist in raw_logprobs mode: absent with the reason, never NaN
        assert "mean_logit" not in feats
        assert "raw_logits" in s["ece"]["details"]["absent_features"]["mean_logit"]
        assert "approx_features" not in s["ece"]["details"]
        assert s["ece"]["details"]["backend"] == "vllm"


def test_every_written_value_is_strict_json(mixed):
    from lm_eval.utils import handle_non_serializable

    json.dumps(mixed["results"], allow_nan=False, default=handle_non_serializable)
    for task in MC_TASKS + GEN_TASKS:
        for s in mixed["samples"][task]:
            json.dumps(s["ece"], allow_nan=False)


def test_reordered_requests_keep_their_own_figures(calib_lm):
    """generate_until sorts requests by length; duplicates and kwargs variants come back to the right caller."""
    from lm_eval.api.instance import Instance

    from calib_harness.capture.generation import get_capture

    prompts = ["Q: 2+2=?\nA:", "Q: What is the capital of France? Answer in one word.\nA:", "Q: 2+2=?\nA:", "Hello"]
    kw = [{"until": ["\n"], "max_gen_toks": 12}, {"until": ["\n"], "max_gen_toks": 12},
          {"until": ["\n"], "max_gen_toks": 3}, {"until": ["\n"], "max_gen_toks": 12}]
    reqs = [Instance("generate_until", {}, (p, k), i) for i, (p, k) in enumerate(zip(prompts, kw))]
    outs = calib_lm.generate_until(reqs)
    for req, out in zip(reqs, outs):
        cap = get_capture(out)
        assert cap["text"] == str(out)
        lps = _teacher_forced(calib_lm, req.args[0], cap["tokens"])
        assert all(abs(a - b) < 1e-4 for a, b in zip(cap["logprob"], lps))
    assert len(get_capture(outs[2])["tokens"]) <= 3


def test_request_cache_returns_the_figures(calib_lm, tmp_path):
    first = evaluate(calib_lm, ["calib_gsm8k"], 1, use_cache=str(tmp_path / "cache"))
    again = evaluate(calib_lm, ["calib_gsm8k"], 1, use_cache=str(tmp_path / "cache"))
    a, b = first["samples"]["calib_gsm8k"][0]["ece"], again["samples"]["calib_gsm8k"][0]["ece"]
    assert a["features"] == b["features"] and a["output"] == b["output"]


def test_a_killed_run_resumes_from_what_it_filed(calib_lm, tmp_path):
    """Each answer is filed as it finishes, under the key ``--use_cache`` looks it up by.  lm-eval's
    VLLM files it under its normalised kwargs (``until`` + EOS), which no lookup finds, so a run
    killed before CachingLM's end-of-run write started over."""
    from lm_eval.api.instance import Instance
    from lm_eval.api.model import CacheHook, CachingLM, hash_args

    from calib_harness.capture.generation import get_capture

    kw = {"until": ["\n"], "max_gen_toks": 8}
    reqs = [Instance("generate_until", {}, (p, dict(kw)), i) for i, p in enumerate(["Q: 2+2=?\nA:", "Hello"])]
    cache = CachingLM(calib_lm, str(tmp_path / "cache.db"))  # sets the model's cache hook
    try:
        outs = calib_lm.generate_until(reqs)  # the model alone: as if killed before CachingLM's own write
        for req, out in zip(reqs, outs):
            key = hash_args("generate_until", req.args)
            assert key in cache.dbdict, f"no cache entry under the request's own args for {req.args[0]!r}"
            hit = cache.dbdict[key]
            assert str(hit) == str(out) and get_capture(hit) == get_capture(out)
    finally:
        calib_lm.set_cache_hook(CacheHook(None))
        cache.dbdict.close()


# ----------------------------------------------------------------------------- raw_logits mode
@pytest.fixture(scope="module")
def raw_logits_lm(model_path, calib_lm, mixed):
    from calib_harness.lm_models.vllm_entry import CalibVLLM

    shutdown(calib_lm)
    lm = CalibVLLM(pretrained=model_path, capture_mode="raw_logits", capture_topk=-1, **ENGINE)
    yield lm
    shutdown(lm)


def test_raw_logits_mode_gives_exact_mean_logit_and_refuses_loglikelihoods(raw_logits_lm, mixed, hf_model):
    from calib_harness.capture.generation import get_capture
    from calib_harness.outputs import CliError

    out = evaluate(raw_logits_lm, ["calib_gsm8k"], LIMIT_GEN)
    ref = {s["doc_id"]: s["ece"]["features"] for s in mixed["samples"]["calib_gsm8k"]}
    for s in out["samples"]["calib_gsm8k"]:
        cap, feats = get_capture(s["resps"][0][0]), s["ece"]["features"]
        raw, _, _ = hf_teacher_forced(hf_model, raw_logits_lm.tok_encode(s["arguments"][0][0]), cap["tokens"])
        assert abs(feats["mean_logit"] - raw.mean().item()) < 1e-3, (feats["mean_logit"], raw.mean().item())
        # same greedy text as the raw_logprobs engine, and the same (exact) log-probabilities
        assert cap["text"] == mixed_text(mixed, s["doc_id"])
        assert abs(feats["mean_logprob"] - ref[s["doc_id"]]["mean_logprob"]) < 1e-4
        assert abs(feats["mean_entropy"] - ref[s["doc_id"]]["mean_entropy"]) < 1e-4
    with pytest.raises(CliError, match="corrupt every log-likelihood"):
        evaluate(raw_logits_lm, ["calib_arc_easy"], 2)


def mixed_text(mixed, doc_id):
    return next(s["ece"]["output"] for s in mixed["samples"]["calib_gsm8k"] if s["doc_id"] == doc_id)


# ----------------------------------------------------------------------------- bad input (no engine)
def test_without_vllm_one_line_error_naming_make_vllm():
    code = ("import sys; sys.modules['vllm'] = None\n"
            "from calib_harness.lm_eval_cli import main\n"
            "main(['--model', 'calib-vllm', '--model_args', 'pretrained=smollm2-135m', '--tasks', 'calib_arc_easy', '--limit', '1'])")
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=600)
    assert p.returncode == 2
    last = p.stderr.strip().splitlines()[-1]
    assert last.startswith("calib-lm-eval: error: --model calib-vllm needs vLLM") and "make vllm" in last
    assert "Traceback" not in p.stderr


@pytest.mark.parametrize("args, match", [
    (dict(logprobs_mode="processed_logprobs"), "not a raw mode"),
    (dict(capture_mode="raw_logits", logprobs_mode="raw_logprobs"), "contradicts"),
    (dict(capture_mode="logits"), "capture_mode must be one of"),
    (dict(capture_topk=0), "capture_topk"),
])
def test_bad_settings_refused_before_the_engine_starts(args, match):
    from calib_harness.lm_models.vllm_entry import CalibVLLM
    from calib_harness.outputs import CliError

    with pytest.raises(CliError, match=match):
        CalibVLLM(pretrained="/nonexistent", **args)
