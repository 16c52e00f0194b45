"""``calib-vllm``: lm-eval's ``vllm`` model that also returns the token figures of each generated answer.

Install vLLM with ``make vllm`` (the CPU build without a GPU, the CUDA build with one).  Without
it, ``--model calib-vllm`` stops with a one-line error naming that target
(:mod:`calib_harness.lm_models.vllm_entry`).

Everything lm-eval's ``vllm`` model does stays as it is -- tokenisation, batching, stop sequences,
log-likelihoods of multi-token continuations (``prompt_logprobs``), tensor / pipeline parallelism
(``tensor_parallel_size``, ``pipeline_parallel_size`` go to ``vllm.LLM``) and data parallelism
(``data_parallel_size``: lm-eval runs one engine per replica through Ray; ``tests/test_vllm_parallel.py``
runs all three on the CPU build).  Only ``generate_until`` / ``_model_generate`` change: each
generation request also asks for the sampled token's log-probability plus the top-``capture_topk``
(:mod:`.topk` turns them into per-token figures).

One-token continuations (the letters of MMLU-style multiple choice) are scored the cheap way: stock
lm-eval sends one request per option, each the whole prompt plus the option with ``prompt_logprobs``
(which also turns prefix caching off), so a 4-option question costs four full forward passes.
``calib-vllm`` sends each distinct context once, with ``max_tokens=1``, greedy sampling and
``logprob_token_ids`` = the option tokens: one forward pass gives every option's log-probability (the
same numbers ``prompt_logprobs`` gives, from the same raw log-softmax) and ``is_greedy`` is "the greedy
token is this option".  Contexts that would be truncated, and vLLM versions without
``logprob_token_ids``, take lm-eval's own path.

model_args of its own:

* ``capture_mode=raw_logprobs`` (default) | ``raw_logits``.  vLLM's ``logprobs_mode`` is engine-wide
  and governs ``prompt_logprobs`` too, so it decides what log-likelihood requests get:

  - ``raw_logprobs``: log-likelihoods (multiple choice) exact; generation log-probabilities exact;
    ``mean_logit`` absent (the record says why in ``details.absent_features``): vLLM returns no raw
    logits in this mode.
  - ``raw_logits``: generation only.  ``mean_logit`` exact (and log-probabilities / entropy exact with
    ``capture_topk=-1``).  A log-likelihood request is refused (it would sum raw logits).
* ``capture_topk=20``: how many top tokens per step; ``-1`` = the whole vocabulary (entropy exact,
  costlier).  Approximate figures are named in the record's ``details.approx_features``
  (``entropy:top-20``).

``logprobs_mode`` given directly must be one of the raw modes (the processed ones apply temperature /
top-p, which is not the model's own distribution), and must agree with ``capture_mode``.

Usage: ``calib-lm-eval --model calib-vllm --model_args pretrained=smollm2-135m,dtype=float32 ...``.
"""

from __future__ import annotations

import logging
from collections import defaultdict

from lm_eval.models.vllm_causallms import VLLM  # imports vllm
from tqdm import tqdm
from vllm import SamplingParams
from vllm import sampling_params as _vllm_sp

from calib_harness.outputs import CliError

from ._capture import CaptureMixin, CaptureRow
from .topk import FULL_VOCAB, MODES, approx_and_absent, step_from_values

logger = logging.getLogger(__name__)


class CalibVLLM(CaptureMixin, VLLM):
    """Registered as ``calib-vllm`` by :mod:`calib_harness.lm_models` (target :mod:`.vllm_entry`)."""

    CAPTURE_BACKEND = "vllm"

    def __init__(self, *args, capture_mode: str | None = None, capture_topk: int = 20, **kwargs):
        given = kwargs.get("logprobs_mode")
        if given is not None and given not in MODES:
            raise CliError(f"calib-vllm: logprobs_mode={given} is not a raw mode; use capture_mode=raw_logprobs "
                           "(log-likelihoods and generation) or capture_mode=raw_logits (generation only)")
        mode = capture_mode or given or "raw_logprobs"
        if mode not in MODES:
            raise CliError(f"calib-vllm: capture_mode must be one of {', '.join(MODES)}, got {mode!r}")
        if given is not None and given != mode:
            raise CliError(f"calib-vllm: logprobs_mode={given} contradicts capture_mode={mode}; give only capture_mode")
        topk = int(capture_topk)
        if topk < 1 and topk != FULL_VOCAB:
            raise CliError(f"calib-vllm: capture_topk must be >= 1 or -1 (whole vocabulary), got {topk}")
        self._calib_mode, self._calib_topk = mode, topk
        self._calib_approx, self._calib_absent = approx_and_absent(mode, topk)
        _refuse_eager_pipeline_on_cpu(kwargs)
        kwargs["logprobs_mode"] = mode
        cap = int(kwargs.get("max_logprobs", 20))
        kwargs["max_logprobs"] = FULL_VOCAB if topk == FULL_VOCAB or cap == FULL_VOCAB else max(cap, topk)
        # one next-token request scores at most this many distinct options
        self._calib_max_ids = _MAX_IDS if kwargs["max_logprobs"] == FULL_VOCAB else min(_MAX_IDS, kwargs["max_logprobs"])
        super().__init__(*args, **kwargs)

    def _calib_decode(self, tokens):
        return self.tokenizer.decode(tokens, skip_special_tokens=True)

    # ------------------------------------------------------------------ log-likelihoods
    def _refuse_raw_logits(self) -> None:
        if self._calib_mode == "raw_logits":
            raise CliError(
                "calib-vllm: capture_mode=raw_logits makes vLLM return raw logits for prompt tokens too, which "
                "would corrupt every log-likelihood (multiple-choice) score; run these tasks with "
                "capture_mode=raw_logprobs (the default)"
            )

    def loglikelihood(self, requests, disable_tqdm: bool = False):
        self._refuse_raw_logits()
        return super().loglikelihood(requests, disable_tqdm=disable_tqdm)

    def loglikelihood_rolling(self, requests, disable_tqdm: bool = False):
        self._refuse_raw_logits()
        return super().loglikelihood_rolling(requests, disable_tqdm=disable_tqdm)

    def _loglikelihood_tokens(self, requests, disable_tqdm: bool = False):
        """One engine request per distinct context for one-token continuations; the rest as lm-eval does."""
        max_len = self.max_length - 1  # as lm-eval: vLLM needs room for one generated token
        by_ctx: dict[tuple[int, ...], list[int]] = defaultdict(list)
        rest = []
        for i, (_, ctx, cont) in enumerate(requests):
            if _NEXT_TOKEN_OK and len(cont) == 1 and 1 <= len(ctx) < max_len:
                by_ctx[tuple(ctx)].append(i)
            else:
                rest.append(i)
        option_ids = {c: sorted({requests[i][2][0] for i in idx}) for c, idx in by_ctx.items()}
        for ctx in [c for c, ids in option_ids.items() if len(ids) > self._calib_max_ids]:
            rest.extend(by_ctx.pop(ctx))  # more distinct options than one request may score
        out: list = [None] * len(requests)
        if by_ctx:
            self._next_token_scores(requests, by_ctx, option_ids, out, disable_tqdm)
        if rest:
            for i, answer in zip(rest, super()._loglikelihood_tokens([requests[i] for i in rest], disable_tqdm)):
                out[i] = answer
        self.calib_request_counts = {"next_token_contexts": len(by_ctx), "next_token_requests": len(requests) - len(rest),
                                     "prompt_logprobs_requests": len(rest)}  # of the last call; read by the tests
        return out

    def _next_token_scores(self, requests, by_ctx, option_ids, out, disable_tqdm) -> None:
        ctxs = sorted(by_ctx, key=lambda c: (-len(c), c))  # longest first, as lm-eval's Collator
        step = int(self.batch_size) if self.batch_size != "auto" else len(ctxs)
        pbar = tqdm(total=sum(map(len, by_ctx.values())), disable=disable_tqdm,
                    desc="Running loglikelihood requests (one per context)")
        for start in range(0, len(ctxs), step):
            chunk = ctxs[start : start + step]
            sps = [SamplingParams(temperature=0, max_tokens=1, logprob_token_ids=option_ids[c], detokenize=False,
                                  flat_logprobs=True) for c in chunk]
            # VLLM's own _model_generate (data-parallel replicas included), not our capturing override
            outputs = VLLM._model_generate(self, [list(c) for c in chunk], generate=True, sampling_params=sps)
            for c, o in zip(chunk, outputs, strict=True):
                greedy, values = _next_token_values(o.outputs[0].logprobs)
                for i in by_ctx[c]:
                    cache_key, _, cont = requests[i]
                    answer = (values[cont[0]], greedy == cont[0])
                    out[i] = answer
                    if cache_key is not None:
                        self.cache_hook.add_partial("loglikelihood", cache_key, answer)
                    pbar.update(1)
        pbar.close()

    # ------------------------------------------------------------------ generation
    def _model_generate(self, requests, generate=False, sampling_params=None):
        if not generate or sampling_params is None:
            return super()._model_generate(requests, generate=generate, sampling_params=sampling_params)
        sps = sampling_params if isinstance(sampling_params, list) else [sampling_params] * len(requests)
        for sp in sps:
            sp.logprobs = FULL_VOCAB if self._calib_topk == FULL_VOCAB else max(int(sp.logprobs or 0), self._calib_topk)
            sp.flat_logprobs = True  # flat arrays, not one dict of Logprob objects per token
        outputs = super()._model_generate(requests, generate=True, sampling_params=sps)
        self._calib_stash([self._row(out.outputs[0]) for out in outputs])
        return outputs

    def _row(self, o) -> CaptureRow:
        toks = list(o.token_ids)
        lg, lp, en = [], [], []
        for t, (sampled, values) in zip(toks, _steps(o.logprobs or [], toks)):
            a, b, c = step_from_values(sampled, values, self._calib_mode)
            lg.append(a), lp.append(b), en.append(c)
        n = len(lp)
        return CaptureRow(toks[:n], None if self._calib_mode == "raw_logprobs" else lg, lp, en,
                          self._calib_approx, self._calib_absent)

    def generate_until(self, requests, disable_tqdm: bool = False):
        if self.think_end_token:
            raise NotImplementedError("calib-vllm: think_end_token is not supported (the figures would cover the thinking)")
        return self._calib_generate_until(super().generate_until, requests, disable_tqdm=disable_tqdm)


def _refuse_eager_pipeline_on_cpu(kwargs) -> None:
    """vLLM's CPU build (0.32.0) allocates the buffers a later pipeline stage receives into only while it
    warms up the compiled model; with ``enforce_eager`` it skips that, and the engine dies on its first
    batch (``AssertionError`` in ``sync_and_gather_intermediate_tensors``).  One line instead."""
    eager = str(kwargs.get("enforce_eager", False)).lower() == "true"
    if eager and int(kwargs.get("pipeline_parallel_size", 1)) > 1:
        from vllm.platforms import current_platform

        if current_platform.is_cpu():
            raise CliError("calib-vllm: on vLLM's CPU build pipeline_parallel_size > 1 needs the compiled model "
                           "(with enforce_eager=True the engine dies on its first batch); drop enforce_eager")


_MAX_IDS = getattr(_vllm_sp, "MAX_LOGPROB_TOKEN_IDS", 128)
_NEXT_TOKEN_OK = "logprob_token_ids" in getattr(SamplingParams, "__struct_fields__", ())


def _next_token_values(logprobs) -> tuple[int, dict[int, float]]:
    """(greedy token, {token id: log-probability}) of the one generated position: the sampled token
    comes first, then the ``logprob_token_ids`` (which may repeat it)."""
    a, b = logprobs.start_indices[0], logprobs.end_indices[0]
    ids, vals = logprobs.token_ids, logprobs.logprobs
    return int(ids[a]), {int(ids[j]): float(vals[j]) for j in range(a, b)}


def _steps(logprobs, toks):
    """(sampled value, values of the distinct returned tokens) per generated token.

    Reads vLLM's ``FlatLogprobs`` arrays directly when given them (no per-token dicts): each
    position holds the sampled token first, then the top-k (which may repeat it)."""
    flat = getattr(logprobs, "start_indices", None)
    if flat is not None:
        ids, vals = logprobs.token_ids, logprobs.logprobs
        for pos, (a, b) in enumerate(zip(logprobs.start_indices, logprobs.end_indices)):
            sampled = float(vals[a])
            rest = vals[a + 1 : b]
            if ids[a] in ids[a + 1 : b]:
                yield sampled, [float(v) for v in rest]
            else:
                yield sampled, [sampled, *map(float, rest)]
        return
    for t, step in zip(toks, logprobs):
        values = {int(k): float(getattr(v, "logprob", v)) for k, v in step.items()}
        yield values[int(t)], list(values.values())
