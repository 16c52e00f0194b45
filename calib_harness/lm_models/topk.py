"""Per-step figures from vLLM's sampled-token log-probabilities (``calib-vllm``); importable without vLLM.

vLLM returns, for each generated token, the sampled token's value plus the top-``k`` values
(``SamplingParams(logprobs=k)``; ``k = -1``: the whole vocabulary).  What the values are is set
engine-wide by ``logprobs_mode`` (:data:`MODES`):

* ``raw_logprobs`` -- ``log_softmax`` of the raw logits.  The sampled token's log-probability is
  exact; the raw logit is not recoverable (log-probabilities are shift-invariant), so it is absent.
* ``raw_logits`` -- the raw logits.  The sampled token's logit is exact; its log-probability is
  ``logit - logsumexp(values)``, exact only over the whole vocabulary (else an upper bound).

Entropy is exact over the whole vocabulary, else that of the renormalised top-k (a lower bound on
the spread; the record names the k: ``entropy:top-20``).
"""

from __future__ import annotations

import math
from typing import Sequence

MODES = ("raw_logprobs", "raw_logits")
FULL_VOCAB = -1


def _logsumexp(xs: Sequence[float]) -> float:
    m = max(xs)
    return m + math.log(sum(math.exp(x - m) for x in xs)) if math.isfinite(m) else m


def step_from_values(sampled: float, values: Sequence[float], mode: str) -> tuple[float | None, float, float]:
    """(raw logit or None, log-probability, entropy) of one step.

    ``sampled``: the sampled token's value; ``values``: the values of the returned tokens (top-k or
    the whole vocabulary), the sampled token's included."""
    if mode not in MODES:
        raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
    lse = _logsumexp(values)
    lps = [v - lse for v in values]  # renormalised; over the whole vocabulary lse is 0 in raw_logprobs
    ent = -sum(math.exp(x) * x for x in lps if math.isfinite(x))
    if mode == "raw_logits":
        return sampled, sampled - lse, ent
    return None, sampled, ent


def approx_and_absent(mode: str, k: int) -> tuple[tuple[str, ...], dict[str, str]]:
    """Names of the approximate figures and the absent ones (with the reason) for a mode and top-k."""
    if k == FULL_VOCAB:
        approx: tuple[str, ...] = ()
    elif mode == "raw_logits":
        approx = (f"logprob:top-{k}", f"entropy:top-{k}")
    else:
        approx = (f"entropy:top-{k}",)
    absent = {} if mode == "raw_logits" else {
        "mean_logit": "calib-vllm capture_mode=raw_logprobs: vLLM returns log-probabilities, from which raw "
        "logits cannot be recovered; use capture_mode=raw_logits (generation-only runs) for mean_logit"
    }
    return approx, absent
