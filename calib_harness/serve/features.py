"""The small model's confidence features from an OpenAI-compatible response (standard library only).

Two kinds of request, as in the offline records (:mod:`calib_harness.records`):

* **Multiple choice** (the request names its options, ``"cascade": {"options": [" A", " B", ...]}``):
  the option scores are the log-probabilities of the option tokens at the first generated
  position, read from ``top_logprobs``; the confidence is the restricted-option softmax
  (the offline MC record's ``option_scores`` / ``confidence`` / ``margin`` / ``entropy``).  Each
  option must be one token of the small model, spelled exactly as the server returns it (mind the
  leading space of `` A`` after ``Answer:``).  An option missing from the ``top_logprobs`` list
  has no score: :class:`FeatureUnavailable` (the server then defers; it never guesses).
* **Generation** (no options): ``mean_logprob``, ``sum_logprob``, ``n_tokens`` and
  ``confidence = exp(mean_logprob)`` over the tokens of the returned text, or ``mean_logit`` and
  ``n_tokens`` when the server returns raw logits in the logprob fields (vLLM's
  ``--logprobs-mode raw_logits``; say so with ``logprobs_mode="raw_logits"``).  As in
  :mod:`calib_harness.capture.generation`, tokens after the returned text (the end-of-sequence
  token, listed by llama.cpp as ``""`` and by vLLM as e.g. ``<|im_end|>``) are not scored; an empty
  answer gets the figures of the token that ended it, with ``n_tokens = 0``.  ``mean_entropy`` needs the full
  next-token distribution, which the API does not return, so a router fitted on it cannot be served.

Both logprob layouts are read: the chat layout (``logprobs.content[i] = {token, logprob,
top_logprobs: [{token, logprob}]}``, also used by llama.cpp's completions) and the legacy
completions layout (``logprobs = {tokens, token_logprobs, top_logprobs: [{token: logprob}]}``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Mapping, Sequence

LOGPROBS_MODES = ("logprobs", "raw_logits")
#: features a generation request can give, per logprobs mode
GENERATION_FEATURES = {
    "logprobs": ("mean_logprob", "sum_logprob", "n_tokens", "confidence"),
    "raw_logits": ("mean_logit", "n_tokens"),
}
MC_FEATURES = ("option_scores", "confidence", "margin", "entropy")


class MalformedResponse(ValueError):
    """The upstream's body is not an OpenAI completion with the logprobs we asked for."""


class FeatureUnavailable(ValueError):
    """The response is well-formed but cannot give the feature the router needs."""


@dataclass
class TokenLogprob:
    token: str
    logprob: float
    top: dict[str, float] = field(default_factory=dict)
    empty: bool = False  # the token adds no text (e.g. llama.cpp lists its EOS as "")
    n_bytes: int | None = None  # UTF-8 bytes the token adds (the "bytes" field, else the token string's)


def _num(x: Any, what: str) -> float:
    if isinstance(x, bool) or not isinstance(x, (int, float)):
        raise MalformedResponse(f"{what} is not a number ({type(x).__name__})")
    return float(x)


def _content_entries(entries: Any) -> list[TokenLogprob]:
    if not isinstance(entries, list):
        raise MalformedResponse("logprobs.content is not a list")
    out = []
    for i, e in enumerate(entries):
        if not isinstance(e, Mapping) or "logprob" not in e or not isinstance(e.get("token"), str):
            raise MalformedResponse(f"logprobs.content[{i}] lacks token/logprob")
        top: dict[str, float] = {}
        for t in e.get("top_logprobs") or []:
            if not isinstance(t, Mapping) or not isinstance(t.get("token"), str):
                raise MalformedResponse(f"logprobs.content[{i}].top_logprobs is malformed")
            v = _num(t.get("logprob"), f"top logprob of {t.get('token')!r}")
            top[t["token"]] = max(v, top.get(t["token"], -math.inf))
        b = e.get("bytes")
        empty = e["token"] == "" and (b is None or b == [])
        n_bytes = len(b) if isinstance(b, list) else len(e["token"].encode())
        out.append(TokenLogprob(e["token"], _num(e["logprob"], f"logprob of token {i}"), top, empty, n_bytes))
    return out


def _legacy_entries(lp: Mapping[str, Any]) -> list[TokenLogprob]:
    tokens, values = lp.get("tokens"), lp.get("token_logprobs")
    if not isinstance(tokens, list) or not isinstance(values, list) or len(tokens) != len(values):
        raise MalformedResponse("legacy logprobs need tokens and token_logprobs of equal length")
    tops = lp.get("top_logprobs") or [None] * len(tokens)
    out = []
    for i, (tok, v) in enumerate(zip(tokens, values)):
        if not isinstance(tok, str):
            raise MalformedResponse(f"logprobs.tokens[{i}] is not a string")
        top = {}
        if isinstance(tops[i], Mapping):
            top = {str(k): _num(x, f"top logprob of {k!r}") for k, x in tops[i].items()}
        out.append(TokenLogprob(tok, _num(v, f"token_logprobs[{i}]"), top, tok == "", len(tok.encode())))
    return out


def token_logprobs(choice_logprobs: Any) -> list[TokenLogprob]:
    """Per-token entries of one choice's ``logprobs`` object (either layout)."""
    if not isinstance(choice_logprobs, Mapping):
        raise MalformedResponse("the choice has no logprobs (the upstream ignored the logprobs request)")
    if "content" in choice_logprobs and choice_logprobs["content"] is not None:
        return _content_entries(choice_logprobs["content"])
    if "tokens" in choice_logprobs:
        return _legacy_entries(choice_logprobs)
    raise MalformedResponse("logprobs has neither 'content' nor 'tokens'")


def first_choice(body: Any) -> Mapping[str, Any]:
    if not isinstance(body, Mapping):
        raise MalformedResponse("the body is not a JSON object")
    choices = body.get("choices")
    if not isinstance(choices, list) or not choices or not isinstance(choices[0], Mapping):
        raise MalformedResponse("the body has no choices")
    return choices[0]


def choice_text(choice: Mapping[str, Any]) -> str:
    if isinstance(choice.get("message"), Mapping):
        return choice["message"].get("content") or ""
    return choice.get("text") or ""


def text_tokens(entries: Sequence[TokenLogprob], text: str | None) -> int:
    """How many leading tokens make up the returned ``text`` (the fewest whose bytes cover it, as
    :func:`calib_harness.capture.generation.token_offsets`); the tokens after it (an EOS such as
    vLLM's ``<|im_end|>`` or llama.cpp's ``""``) are not part of the answer.  Without the text, or
    when the tokens do not add up to it, trailing tokens that add no text are dropped."""
    if text is not None:
        need = len(text.encode())
        if need == 0:
            return 0
        total = 0
        for i, e in enumerate(entries):
            total += e.n_bytes if e.n_bytes is not None else len(e.token.encode())
            if total >= need:
                return i + 1
    k = len(entries)
    while k and entries[k - 1].empty:
        k -= 1
    return k


def generation_features(entries: Sequence[TokenLogprob], finish_reason: str | None = None, logprobs_mode: str = "logprobs", text: str | None = None) -> dict[str, float]:
    """The generation figures of one answer (see the module doc); ``text`` is the returned text."""
    if logprobs_mode not in LOGPROBS_MODES:
        raise ValueError(f"logprobs_mode must be one of {LOGPROBS_MODES}")
    k = text_tokens(entries, text)
    scored = list(entries[:k])
    n = len(scored)
    if not scored:
        if not entries:
            raise MalformedResponse("no token logprobs in the answer")
        scored = [entries[k]]  # empty answer: the confidence of stopping right away
    vals = [e.logprob for e in scored]
    if not all(math.isfinite(v) for v in vals):
        raise MalformedResponse("non-finite token logprob")
    mean = sum(vals) / len(vals)
    if logprobs_mode == "raw_logits":
        return {"mean_logit": mean, "n_tokens": float(n)}
    return {"mean_logprob": mean, "sum_logprob": sum(vals), "n_tokens": float(n), "confidence": math.exp(mean)}


def option_scores(entries: Sequence[TokenLogprob], options: Sequence[str]) -> list[float]:
    """Log-probabilities (or raw logits) of the option tokens at the first generated position."""
    if not entries:
        raise MalformedResponse("no token logprobs in the answer")
    top = dict(entries[0].top)
    top.setdefault(entries[0].token, entries[0].logprob)
    missing = [o for o in options if o not in top]
    if missing:
        raise FeatureUnavailable(
            f"options {missing} are not among the {len(top)} top tokens at the first position; "
            "raise --top-logprobs or spell the options as the model's tokens"
        )
    return [top[o] for o in options]


def mc_features(scores: Sequence[float]) -> dict[str, Any]:
    """``option_scores``, ``confidence`` (restricted softmax max), ``margin``, ``entropy``."""
    m = max(scores)
    ex = [math.exp(s - m) for s in scores]
    z = sum(ex)
    probs = [e / z for e in ex]
    srt = sorted(probs)
    top2 = srt[-2] if len(srt) > 1 else 0.0
    return {
        "option_scores": [float(s) for s in scores],
        "option_probs": probs,
        "confidence": srt[-1],
        "margin": srt[-1] - top2,
        "entropy": -sum(p * math.log(max(p, 1e-300)) for p in probs),
        "prediction": int(max(range(len(scores)), key=lambda i: (scores[i], -i))),
    }


def router_input(features: Mapping[str, Any]) -> dict[str, Any]:
    """The dict :meth:`DeployableRouter.route` reads (features without the display-only keys)."""
    return {k: v for k, v in features.items() if k not in ("option_probs", "prediction")}


def needed_feature(calibrator: Mapping[str, Any]) -> str:
    """The input a router's calibrator reads: ``option_scores`` or a feature name."""
    if calibrator.get("kind") == "temperature":
        return "option_scores"
    return str(calibrator.get("feature", "confidence"))


def check_servable(calibrator: Mapping[str, Any], logprobs_mode: str) -> tuple[bool, bool]:
    """Which request kinds a router can serve: ``(multiple_choice, generation)``.

    Raises ``ValueError`` when neither can give the calibrator's input."""
    feat = needed_feature(calibrator)
    mc = feat in MC_FEATURES
    gen = feat in GENERATION_FEATURES[logprobs_mode]
    if not (mc or gen):
        extra = ""
        if feat == "mean_logit":
            extra = " (mean_logit needs an upstream that returns raw logits, e.g. vLLM with --logprobs-mode raw_logits, and --small-logprobs-mode raw_logits)"
        elif feat in GENERATION_FEATURES["logprobs"]:
            extra = " (the small upstream returns raw logits; this feature needs log-probabilities)"
        raise ValueError(f"the router's calibrator reads {feat!r}, which an OpenAI-compatible response cannot give{extra}")
    return mc, gen
