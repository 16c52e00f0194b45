"""Token-level confidences of generated answers, from the model to ``process_results``.

How the numbers travel (``calib-hf`` / ``calib-vllm`` -> filters -> cache -> ``process_results``)
---------------------------------------------------------------------------------------------------
lm-eval's ``generate_until`` returns strings, may reorder and batch requests, applies filters to
the responses, caches them with ``--use_cache`` (sqlite, pickled values) and stringifies ``resps``
in the samples log.  Our model types therefore return each response as a :class:`GeneratedText`:
a ``str`` subclass (so every stock consumer sees the plain text) carrying ``.capture``, a small
JSON-able dict with one entry per token of the *returned*, stop-trimmed text:

    {"v": 1, "backend": "hf", "text": <returned text>, "tokens": [ids], "offsets": [[start, end], ...],
     "logit": [raw logit of each sampled token], "logprob": [...], "entropy": [...],
     "stop": {"logit", "logprob", "entropy"} | None, "approx": [names of approximate figures]}

* **Reordering / batching**: the model attaches the capture row by row, in the loop where lm-eval
  decodes each batch row (see :mod:`calib_harness.lm_models`), so it can never pair a text with
  another row's numbers.
* **Cache**: the same annotated object is what lm-eval's cache hook and ``CachingLM`` store; the
  sqlite cache pickles it with its capture, so a cache hit returns the numbers too.
* **Filters**: the default filter (``take_first``) passes the object through unchanged.  Filters
  that build new strings (``regex``, ``lowercase`` ...) drop the attribute, so wrap them in our
  ``calib`` filter, which runs the inner pipeline on the plain text and re-attaches each raw
  response's capture to its filtered result::

      filter_list:
        - name: strict-match
          filter:
            - function: calib
              filters:
                - {function: regex, regex_pattern: "The answer is (\\-?[0-9\\.\\,]+)."}
                - {function: take_first}

* **Samples log**: ``process_results`` turns the capture into the record payload (per-sample
  metric ``ece``), whose ``features`` hold the figures below.

Figures (see :data:`calib_harness.records.FEATURE_NAMES`), over exactly the tokens of the returned
text (a token counts when it contributes at least one character of it; a trailing EOS or the stop
sequence is not part of the text, so it is not scored)::

    n_tokens, mean_logit, mean_logprob, sum_logprob, mean_entropy     (+ span_* twins)

Log-probabilities and entropies are those of the model's own next-token distribution
(``log_softmax`` of the raw logits: temperature 1, no top-k/p, no repetition penalty), whatever the
decoding settings were.  An empty answer has no tokens: its figures are those of the token that
ended it (the model's confidence in stopping right away), with ``n_tokens = 0``.

Spans: a task names the part of the output the verifier reads (``span="final_answer"``: the
extracted answer, last occurrence; ``"code_block"``: the extracted code, first occurrence;
``"regex:<pattern>"``: group 1, else the whole match, of the last match).  The ``span_*`` figures
cover the tokens that overlap it; when the span is not found they repeat the whole-output
figures and ``span_found`` is 0.

A new generation benchmark is a YAML plus one line in its folder's ``utils.py``::

    process_results = make_process_results(verifier="numeric", span="final_answer", prompt="question")
"""

from __future__ import annotations

import json
import math
import re
from typing import Any, Callable, Iterable, Sequence

from calib_harness.capture.payload import ECE_STDERR_METRIC, PAYLOAD_METRIC, ece_stderr_item

CAPTURE_VERSION = 1
FIGURES = ("mean_logit", "mean_logprob", "sum_logprob", "mean_entropy", "n_tokens")


class CaptureError(RuntimeError):
    """A response reached ``process_results`` without its token figures."""


class GeneratedText(str):
    """A generated response (plain ``str``) carrying its token figures in ``.capture``."""

    capture: dict[str, Any]

    def __new__(cls, text: str, capture: dict[str, Any]):
        obj = super().__new__(cls, text)
        obj.capture = capture
        return obj

    def __reduce__(self):  # pickled by lm-eval's sqlite cache: keep the capture
        return (_rebuild, (str(self), self.capture))

    def __copy__(self):
        return self

    def __deepcopy__(self, memo):
        return GeneratedText(str(self), json.loads(json.dumps(self.capture)))


def _rebuild(text: str, capture: dict[str, Any]) -> "GeneratedText":
    return GeneratedText(text, capture)


def get_capture(resp: Any) -> dict[str, Any] | None:
    return getattr(resp, "capture", None) if isinstance(resp, str) else None


# ----------------------------------------------------------------------------- token alignment
def token_offsets(decode: Callable[[list[int]], str], tokens: Sequence[int], text: str) -> tuple[int, list[list[int]]]:
    """Which generated tokens make up ``text`` (the decoded, stop-trimmed output) and where.

    Returns ``(k, offsets)``: the first ``k`` tokens are the returned text's tokens (the fewest
    whose decoding covers it), ``offsets[i] = [start, end)`` is token ``i``'s character range,
    clipped to the text.  ``decode`` must be the decoding the backend used for the text.
    """
    offsets: list[list[int]] = []
    n = len(text)
    prev = 0
    if n == 0:
        return 0, offsets
    for i in range(1, len(tokens) + 1):
        cur = len(decode(list(tokens[:i])))
        start, end = min(prev, n), min(max(cur, prev), n)
        offsets.append([start, end])
        prev = max(cur, prev)
        if cur >= n:
            return i, offsets
    return len(tokens), offsets  # text longer than the decoded tokens (should not happen)


def make_capture(
    backend: str,
    text: str,
    tokens: Sequence[int],
    logit: Sequence[float],
    logprob: Sequence[float],
    entropy: Sequence[float],
    decode: Callable[[list[int]], str],
    approx: Iterable[str] = (),
    absent: dict[str, str] | None = None,
) -> dict[str, Any]:
    """Build the capture of one response from per-step figures of *all* its generated tokens.

    ``logit`` is None when the backend has no raw logits (``absent`` then says why, per figure)."""
    k, offsets = token_offsets(decode, tokens, text)
    stop = None
    if k < len(tokens):
        stop = {"token": int(tokens[k]), "logit": None if logit is None else float(logit[k]),
                "logprob": float(logprob[k]), "entropy": float(entropy[k])}
    return {
        "v": CAPTURE_VERSION,
        "backend": backend,
        "text": str(text),
        "tokens": [int(t) for t in tokens[:k]],
        "offsets": offsets[:k],
        "logit": None if logit is None else [float(x) for x in logit[:k]],  # None: backend has no raw logits
        "logprob": [float(x) for x in logprob[:k]],
        "entropy": [float(x) for x in entropy[:k]],
        "stop": stop,
        "approx": sorted(set(approx)),
        **({"absent": dict(absent)} if absent else {}),
    }


# ----------------------------------------------------------------------------- figures
def _figures(logit: Sequence[float], logprob: Sequence[float], entropy: Sequence[float], n: int) -> dict[str, float]:
    m = len(logprob)
    if m == 0:
        out = {"mean_logit": 0.0, "mean_logprob": -math.inf, "sum_logprob": -math.inf, "mean_entropy": 0.0, "n_tokens": 0.0}
    else:
        out = {
            "mean_logit": float(sum(logit) / m) if logit is not None else 0.0,
            "mean_logprob": float(sum(logprob) / m),
            "sum_logprob": float(sum(logprob)),
            "mean_entropy": float(sum(entropy) / m),
            "n_tokens": float(n),
        }
    if logit is None:  # the backend returned no raw logits: the figure is absent, never NaN
        del out["mean_logit"]
    return out


def capture_figures(capture: dict[str, Any], span: tuple[int, int] | None = None) -> dict[str, float]:
    """``n_tokens, mean_logit, mean_logprob, sum_logprob, mean_entropy`` over the tokens of the text,
    or over those overlapping the character range ``span``."""
    idx = list(range(len(capture["tokens"])))
    if span is not None:
        a, b = span
        idx = [i for i in idx if capture["offsets"][i][0] < b and capture["offsets"][i][1] > a]
    if not idx and span is None and capture.get("stop"):
        s = capture["stop"]  # empty answer: the confidence of stopping right away
        f = _figures(None if s["logit"] is None else [s["logit"]], [s["logprob"]], [s["entropy"]], 0)
        return f
    pick = lambda key: None if capture[key] is None else [capture[key][i] for i in idx]  # noqa: E731
    return _figures(pick("logit"), pick("logprob"), pick("entropy"), len(idx))


# ----------------------------------------------------------------------------- spans
def _locate(text: str, needle: str | None, last: bool) -> tuple[int, int] | None:
    if not needle:
        return None
    i = text.rfind(needle) if last else text.find(needle)
    if i < 0:
        needle = needle.strip()
        i = text.rfind(needle) if last else text.find(needle)
    return None if i < 0 or not needle else (i, i + len(needle))


def find_span(span: str | None, text: str, extracted: str | None) -> tuple[int, int] | None:
    """Character range of the span the verifier reads (see the module doc for the names)."""
    if span is None:
        return None
    if span in ("final_answer", "gsm8k_answer"):
        return _locate(text, extracted, last=True)
    if span in ("code_block", "extracted"):
        return _locate(text, extracted, last=False)
    if span.startswith("regex:"):
        ms = list(re.finditer(span[len("regex:") :], text, re.S))
        if not ms:
            return None
        m = ms[-1]
        g = 1 if m.re.groups and m.group(1) is not None else 0
        return m.span(g)
    raise ValueError(f"unknown span {span!r}: use final_answer, code_block or regex:<pattern>")


def check_task_config(verifier: str, span: str | None) -> None:
    """Check a generation task's verifier name and span when the task loads, before any model call.

    Raises ``ValueError`` naming the bad value and what is allowed (a wrong name would
    otherwise fail only at the first ``process_results``, after all generation is done).
    """
    from calib_harness.verifiers import available_verifiers

    known = available_verifiers()
    if verifier not in known:
        raise ValueError(f"task config: unknown verifier {verifier!r}; available: {', '.join(known)}")
    if span is None or span in ("final_answer", "gsm8k_answer", "code_block", "extracted"):
        return
    if isinstance(span, str) and span.startswith("regex:"):
        try:
            re.compile(span[len("regex:") :])
        except re.error as e:
            raise ValueError(f"task config: span {span!r} is not a valid regular expression ({e})") from None
        return
    raise ValueError(f"task config: unknown span {span!r}; use final_answer, code_block or regex:<pattern>")


def generation_features(capture: dict[str, Any], span: str | None = None, extracted: str | None = None) -> dict[str, float]:
    """Record features of one response: whole-output figures plus ``span_*`` twins when a span is named."""
    feats = capture_figures(capture)
    if span is not None:
        rng = find_span(span, capture["text"], extracted)
        sf = capture_figures(capture, rng) if rng is not None else None
        if sf is None or sf["n_tokens"] == 0:
            sf, found = dict(feats), 0.0
        else:
            found = 1.0
        feats.update({f"span_{k}": v for k, v in sf.items()})
        feats["span_found"] = found
    return feats


# ----------------------------------------------------------------------------- process_results
def _check_capture(resp: Any) -> dict[str, Any]:
    cap = get_capture(resp)
    if cap is None:
        raise CaptureError(
            "this response carries no token figures: run calib_* generation tasks with `--model calib-hf` or "
            "`--model calib-vllm` (a --use_cache database written by another model type returns plain text; "
            "use a fresh cache path), and wrap string-building filters (regex ...) in the `calib` filter"
        )
    if cap.get("v") != CAPTURE_VERSION:
        raise CaptureError(f"capture version {cap.get('v')!r} != {CAPTURE_VERSION}; clear the --use_cache database")
    return cap


def make_process_results(
    verifier: str,
    span: str | None = None,
    prompt: str | Callable[[dict], str] | None = None,
    metric: str = "score",
    **verifier_kwargs: Any,
) -> Callable[[dict, list], dict[str, Any]]:
    """Generic ``process_results`` of a generation task.

    verifier / verifier_kwargs: the verifier name for ``calib_harness.verifiers.get_verifier``.
    span: the part of the output the verifier reads (``final_answer``, ``code_block``, ``regex:...``).
    prompt: doc field (or callable) kept as the record's prompt.  metric: name of the verifier-score
    metric in the results table (``exact_match``, ``pass_at_1`` ...).  Returns ``metric``,
    ``confidence`` (= exp(mean_logprob)), ``brier`` and the record payload under ``ece``.
    """
    check_task_config(verifier, span)  # at task load: a typo fails before any model call
    state: dict[str, Any] = {}

    def _verifier():
        if "v" not in state:
            from calib_harness.verifiers import get_verifier

            state["v"] = get_verifier(verifier, **verifier_kwargs)
        return state["v"]

    def process_results(doc: dict, results: list) -> dict[str, Any]:
        resp = results[0]
        cap = _check_capture(resp)
        text = cap["text"]
        # the verifier reads the (filtered) response; without a string-building filter that is the output
        res = _verifier().verify(doc, str(resp))
        feats = generation_features(cap, span, res.extracted)
        conf = math.exp(feats["mean_logprob"]) if math.isfinite(feats["mean_logprob"]) else 0.0
        score = float(res.score)
        details = dict(res.details)
        if cap.get("approx"):
            details["approx_features"] = list(cap["approx"])
        if cap.get("absent"):  # e.g. calib-vllm in raw_logprobs mode has no raw logits: {"mean_logit": why}
            details["absent_features"] = dict(cap["absent"])
        details["backend"] = cap.get("backend")
        gold = details.get("gold")
        p = prompt(doc) if callable(prompt) else (doc.get(prompt) if prompt else None)
        return {
            metric: score,
            "confidence": conf,
            "brier": (conf - score) ** 2,
            PAYLOAD_METRIC: {
                "kind": "generation",
                "prediction": res.extracted,
                "gold": None if gold is None else str(gold),
                "confidence": conf,
                "score": score,
                "option_labels": None,
                "option_scores": None,
                "option_token_mode": None,
                "features": feats,
                "prompt": None if p is None else str(p),
                "output": text,
                "extracted": res.extracted,
                "verifier": verifier,
                "details": details,
            },
            ECE_STDERR_METRIC: ece_stderr_item(conf, score),  # after the payload: see payload.ECE_STDERR_METRIC
        }

    process_results.verifier = verifier  # type: ignore[attr-defined]
    process_results.span = span  # type: ignore[attr-defined]
    return process_results


# ----------------------------------------------------------------------------- the `calib` filter
def _register_filter() -> None:
    import lm_eval.filters  # noqa: F401  (registers the stock filters the inner pipelines name)
    from lm_eval.api.filter import Filter
    from lm_eval.api.registry import filter_registry, get_filter

    if "calib" in filter_registry:
        return

    class CalibFilter(Filter):
        """Run an inner filter pipeline on the plain text and keep each response's token figures.

        ``filters``: a list of ``{function: name, **kwargs}`` as in a task's ``filter_list``.
        Results that are strings get the capture of the raw response they come from (element-wise
        when the pipeline keeps one result per response, else the first response's).
        """

        def __init__(self, filters: list | None = None) -> None:
            self.filters = []
            for f in filters or []:
                f = dict(f)
                fn = f.pop("function")
                self.filters.append((get_filter(fn), f))

        def apply(self, resps, docs):
            resps = [list(r) for r in resps]
            caps = [[get_capture(x) for x in r] for r in resps]
            out = [[str(x) if isinstance(x, str) else x for x in r] for r in resps]
            for cls, kw in self.filters:
                out = list(cls(**kw).apply(out, docs))
            result = []
            for o, c in zip(out, caps):
                if isinstance(o, (list, tuple)):
                    if len(o) == len(c):
                        o = [GeneratedText(x, ci) if isinstance(x, str) and ci else x for x, ci in zip(o, c)]
                    else:
                        o = [GeneratedText(x, c[0]) if isinstance(x, str) and c and c[0] else x for x in o]
                elif isinstance(o, str) and c and c[0]:
                    o = GeneratedText(o, c[0])
                result.append(o)
            return result

    filter_registry.register("calib")(CalibFilter)


_register_filter()
