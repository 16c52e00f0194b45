"""Shared by ``calib-hf`` and ``calib-vllm``: attach token figures to each response, row by row.

lm-eval's ``generate_until`` (both backends) decodes each batch row, trims it at the stop
sequences and hands the final string to ``self.cache_hook.add_partial(...)`` right away, in batch
order.  The backends' ``_model_generate`` overrides stash the per-token figures of the batch they
just generated; during ``generate_until`` we swap in a cache hook that takes the next stashed row
for each string it is given, builds the :class:`~calib_harness.capture.generation.GeneratedText`
(text + capture), passes *that* to the real hook (so ``--use_cache`` stores the numbers) and keeps
it.  Afterwards each returned plain string is replaced by its annotated twin, matched by context
and text (preferring the same generation kwargs), so lm-eval's reordering (``Collator``) cannot mix
rows up.  The context is the key because the backends do not hand the hook the request's own
kwargs: ``VLLM.generate_until`` passes its normalised ones (``until`` + EOS, ``max_gen_toks``).

The same mismatch would break resuming: ``--use_cache`` looks a request up by its own args, so a
partial result filed under the normalised kwargs is never found again, and a run killed before
its end (when ``CachingLM`` writes everything) starts over.  The hook therefore files each result
under the args of the request that has that context (``calib-hf`` already passes them); only when
one context comes with several different kwargs does it keep what the backend gave.
"""

from __future__ import annotations

import json
from collections import defaultdict, deque
from typing import Any, Callable

from calib_harness.capture.generation import GeneratedText, make_capture


class CaptureRow:
    """Figures of every generated token of one batch row (before stop trimming)."""

    __slots__ = ("tokens", "logit", "logprob", "entropy", "approx", "absent")

    def __init__(self, tokens, logit, logprob, entropy, approx=(), absent=None):
        # logit None: the backend has no raw logits; ``absent`` maps each missing figure to the reason
        self.tokens, self.logit, self.logprob, self.entropy = tokens, logit, logprob, entropy
        self.approx, self.absent = tuple(approx), dict(absent or {})


def _key(req: Any) -> str:
    return str(req[0])


def _kwargs_key(req: Any) -> str:
    return json.dumps(req[1], sort_keys=True, default=str)


class _CaptureHook:
    def __init__(self, lm: "CaptureMixin", real: Any, requests) -> None:
        self.lm, self.real = lm, real
        self.done: dict[str, deque] = defaultdict(deque)
        # context -> the requests' own args, for contexts whose requests all share one set of kwargs
        by_context: dict[str, dict[str, Any]] = defaultdict(dict)
        for req in requests:
            by_context[_key(req.args)][_kwargs_key(req.args)] = req.args
        self.own_args = {ctx: next(iter(a.values())) for ctx, a in by_context.items() if len(a) == 1}

    def add_partial(self, attr: str, req: Any, res: Any) -> None:
        if attr == "generate_until" and isinstance(res, str):
            row = self.lm._calib_take_row()
            cap = make_capture(self.lm.CAPTURE_BACKEND, res, row.tokens, row.logit, row.logprob, row.entropy,
                               self.lm._calib_decode, row.approx, row.absent)
            res = GeneratedText(res, cap)
            self.done[_key(req)].append((_kwargs_key(req), res))
        if self.real is not None:
            # filed under the args CachingLM looks the result up by (see the module docstring)
            own = self.own_args.get(_key(req), req) if attr == "generate_until" else req
            self.real.add_partial(attr, own, res)


class CaptureMixin:
    """Mixed into lm-eval's HFLM / VLLM: only ``generate_until`` and ``_model_generate`` change."""

    CAPTURE_BACKEND = "?"
    _calib_rows: list[CaptureRow]
    _calib_next: int

    def _calib_decode(self, tokens: list[int]) -> str:  # the decoding lm-eval used for the text
        raise NotImplementedError

    def _calib_stash(self, rows: list[CaptureRow]) -> None:
        self._calib_rows, self._calib_next = rows, 0

    def _calib_take_row(self) -> CaptureRow:
        rows, i = getattr(self, "_calib_rows", None), getattr(self, "_calib_next", 0)
        if rows is None or i >= len(rows):
            raise RuntimeError("calib capture: a response came back without a generated batch row "
                               "(lm-eval's generate_until changed?); cannot attach token figures")
        self._calib_next = i + 1
        return rows[i]

    def _calib_generate_until(self, parent: Callable, requests, disable_tqdm: bool = False):
        real = getattr(self, "cache_hook", None)
        hook = _CaptureHook(self, real, requests)
        self.cache_hook = hook
        self._calib_rows, self._calib_next = [], 0
        try:
            plain = parent(requests, disable_tqdm=disable_tqdm)
        finally:
            self.cache_hook = real
            self._calib_rows = []
        out = []
        for req, text in zip(requests, plain, strict=True):
            queue = hook.done.get(_key(req.args))
            match = None
            if queue:
                same = [j for j, (_, cand) in enumerate(queue) if str(cand) == str(text)]
                exact = [j for j in same if queue[j][0] == _kwargs_key(req.args)]
                if same:
                    j = (exact or same)[0]
                    match = queue[j][1]
                    del queue[j]
            if match is None:
                raise RuntimeError(f"calib capture: no token figures for a response to {str(req.args[0])[-80:]!r}")
            out.append(match)
        return out
