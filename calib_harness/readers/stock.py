"""Records from stock lm-eval sample logs (``lm_eval ... --log_samples``) of any task.

A stock sample line holds the document, the request arguments, the model's responses
(``resps``, and ``filtered_resps`` after the task's filter) and the task's own per-sample
metrics.  Two kinds of task become records:

``multiple_choice`` (``mmlu``, ``arc_easy``, ``hellaswag``, ...)
    One ``loglikelihood`` request per choice; ``filtered_resps`` holds one
    ``(log-likelihood, is_greedy)`` pair per choice.  The record's option scores are:

    * ``scoring="acc"`` (default): the summed log-likelihoods.  ``softmax`` over them is the
      *restricted softmax* (the choices' sequence probabilities renormalised over the choices);
      the prediction is lm-eval's ``acc`` prediction and ``score`` is the log's ``acc``.
    * ``scoring="acc_norm"``: the log-likelihoods divided by each choice's length in characters,
      as lm-eval's ``acc_norm`` does; the prediction is ``acc_norm``'s and ``score`` the log's
      ``acc_norm``.  Its softmax is a length-normalised (per-character) distribution: flatter
      than the restricted softmax, and best read after calibration.

    The variant is named in the record (``extra["scoring"]``); the other variant's confidence,
    prediction and score are kept as ``features["<variant>_confidence"]`` and
    ``extra["<variant>_prediction"]`` / ``extra["<variant>_score"]``.  Correctness always
    comes from the log's own metric, never recomputed.

``generate_until`` (``gsm8k``, ``gsm8k_cot``, ...)
    The filtered response becomes ``prediction`` (the raw one ``extra["output"]``), ``score``
    is the log's metric (``exact_match`` unless told), and the document is kept in
    ``extra["doc"]`` so a verifier can re-score the response (:func:`rescore`).  Stock lm-eval
    logs no token probabilities, so these records carry **no confidence**
    (``confidence=None``): ``calibrate`` and confidence routers refuse them with a clear
    message, while oracle, random and MF routing work.

Every record names the filter it was read from (``extra["filter"]``); the filter is part of
the record key, see :func:`calib_harness.lm_eval_io.load_run`.
"""

from __future__ import annotations

import ast
import dataclasses
import logging
import math
from typing import Any, Sequence

import numpy as np

from calib_harness.records import RecordError, Run, SampleRecord, softmax

logger = logging.getLogger(__name__)

#: Why a stock generation record has no confidence (used in messages).
NO_CONFIDENCE = (
    "stock lm-eval generate_until logs hold the generated text but no token probabilities, so these records "
    "carry no confidence; capture confidences with `calib-lm-eval --model calib-hf` (or calib-vllm) on the "
    "same task, or use routers that need none (oracle, random, MF)"
)

SCORINGS = ("acc", "acc_norm")
_MC_METRIC_PREFERENCE = ("acc", "acc_norm", "exact_match")
_GEN_METRIC_PREFERENCE = ("exact_match", "acc", "pass@1", "f1", "bleu", "score")


def _as_float(x: Any) -> float:
    if isinstance(x, (int, float)) and not isinstance(x, bool):
        return float(x)
    return float(str(x))


def _as_bool(x: Any) -> bool:
    if isinstance(x, bool):
        return x
    return str(x).strip().lower() in ("true", "1")


def _arguments(sample: dict[str, Any]) -> list[list[Any]]:
    """The request arguments, one list per request (the log stores ``gen_args_i: {arg_j: ...}``)."""
    args = sample.get("arguments")
    if isinstance(args, dict):
        keys = sorted(args, key=lambda k: int(str(k).rsplit("_", 1)[-1]) if str(k).rsplit("_", 1)[-1].isdigit() else 0)
        out = []
        for k in keys:
            a = args[k]
            if isinstance(a, dict):
                ak = sorted(a, key=lambda j: int(str(j).rsplit("_", 1)[-1]) if str(j).rsplit("_", 1)[-1].isdigit() else 0)
                out.append([a[j] for j in ak])
            else:
                out.append(list(a) if isinstance(a, (list, tuple)) else [a])
        return out
    if isinstance(args, list):
        return [list(a) if isinstance(a, (list, tuple)) else [a] for a in args]
    return []


def _is_loglikelihood_pair(x: Any) -> bool:
    if not isinstance(x, (list, tuple)) or len(x) != 2:
        return False
    try:
        _as_float(x[0])
    except (TypeError, ValueError):
        return False
    return str(x[1]).strip() in ("True", "False", "true", "false", "0", "1")


def output_type_of(sample: dict[str, Any], config: dict[str, Any] | None = None) -> str:
    """``multiple_choice``, ``loglikelihood`` or ``generate_until``: the task config's, else from the responses."""
    if config and config.get("output_type"):
        return str(config["output_type"])
    fr = sample.get("filtered_resps")
    if isinstance(fr, list) and fr and all(_is_loglikelihood_pair(x) for x in fr):
        return "multiple_choice" if len(fr) > 1 else "loglikelihood"
    return "generate_until"


def _gold_index(target: Any, n: int, choices: Sequence[str]) -> int | list[int] | None:
    """lm-eval logs ``target`` as ``str(doc_to_target(doc))``: an index, a choice text, or a list of indices."""
    if isinstance(target, bool):
        return None
    if isinstance(target, int):
        return target if 0 <= target < n else None
    text = str(target).strip()
    if text.lstrip("-").isdigit():
        i = int(text)
        return i if 0 <= i < n else None
    if text.startswith("["):
        try:
            value = ast.literal_eval(text)
        except (ValueError, SyntaxError):
            value = None
        if isinstance(value, list) and all(isinstance(v, int) for v in value):
            return [v for v in value if 0 <= v < n] or None
    stripped = [c.strip() for c in choices]
    if text in stripped:
        return stripped.index(text)
    return None


def _labels(choices: Sequence[str]) -> tuple[str, ...]:
    """Option labels: the choice texts, made unique where a task repeats one."""
    seen: dict[str, int] = {}
    out = []
    for c in choices:
        c = c.strip() or "(empty)"
        seen[c] = seen.get(c, 0) + 1
        out.append(c if seen[c] == 1 else f"{c} ({seen[c]})")
    return tuple(out)


def _metric(sample: dict[str, Any], names: Sequence[str], wanted: str | None) -> tuple[str, float] | None:
    candidates = [wanted] if wanted else [m for m in names if m in sample] + [
        m for m in (sample.get("metrics") or []) if m in sample
    ]
    for name in candidates:
        if name in sample:
            value = sample[name]
            if isinstance(value, (list, tuple)):  # e.g. pass@k lists
                continue
            try:
                v = _as_float(value)
            except (TypeError, ValueError):
                continue
            if math.isfinite(v) and 0.0 <= v <= 1.0:
                return name, v
    return None


def record_from_stock_sample(
    sample: dict[str, Any],
    task: str,
    model: str,
    *,
    config: dict[str, Any] | None = None,
    scoring: str = "acc",
    metric: str | None = None,
) -> SampleRecord:
    """One stock lm-eval sample line as a record (see the module docstring)."""
    if scoring not in SCORINGS:
        raise RecordError(f"scoring must be one of {SCORINGS}, got {scoring!r}")
    kind = output_type_of(sample, config)
    doc_id = sample.get("doc_id")
    if doc_id is None:
        raise RecordError(f"task {task!r}: sample without doc_id")
    if "filtered_resps" not in sample and "resps" not in sample:
        raise RecordError(
            f"task {task!r} doc {doc_id}: no responses (resps / filtered_resps) and no calib-harness record payload; "
            "was this written by lm-eval --log_samples?"
        )
    filt = str(sample.get("filter", "none"))
    args = _arguments(sample)
    if kind == "multiple_choice":
        return _mc_record(sample, task, model, args, filt, config or {}, scoring)
    if kind == "generate_until":
        return _gen_record(sample, task, model, args, filt, metric)
    raise RecordError(
        f"task {task!r}: output_type {kind!r} is not read (multiple_choice and generate_until are); "
        "loglikelihood / loglikelihood_rolling tasks have no choice to be confident about"
    )


def _mc_record(sample, task, model, args, filt, config, scoring) -> SampleRecord:
    fr = sample.get("filtered_resps")
    if not isinstance(fr, list) or not fr or not all(_is_loglikelihood_pair(x) for x in fr):
        raise RecordError(
            f"task {task!r} doc {sample.get('doc_id')}: filtered_resps is not one (log-likelihood, is_greedy) pair "
            "per choice"
        )
    lls = np.array([_as_float(x[0]) for x in fr])
    greedy = [_as_bool(x[1]) for x in fr]
    delim = str(config.get("target_delimiter", " "))
    contexts = [a[0] if a else "" for a in args]
    conts = [str(a[1]) if len(a) > 1 else "" for a in args]
    if len(conts) != len(lls):  # e.g. acc_mutual_info doubles the requests: keep the conditional ones
        if len(conts) == 2 * len(lls) or len(lls) == 2 * len(conts):
            n = min(len(conts), len(lls))
            conts, contexts, lls, greedy = conts[:n], contexts[:n], lls[:n], greedy[:n]
        else:
            raise RecordError(f"task {task!r} doc {sample.get('doc_id')}: {len(conts)} requests for {len(lls)} responses")
    choices = [c[len(delim):] if delim and c.startswith(delim) else c for c in conts]
    labels = _labels(choices)
    lengths = np.array([max(1.0, float(len(c))) for c in choices])
    gold = _gold_index(sample.get("target"), len(labels), choices)
    gold_label = None if gold is None else labels[gold if isinstance(gold, int) else gold[0]]
    variants = {"acc": lls, "acc_norm": lls / lengths}
    probs = {k: softmax(v) for k, v in variants.items()}
    preds = {k: int(np.argmax(v)) for k, v in variants.items()}
    scores = {}
    for k in variants:
        logged = _metric(sample, [k], None)
        if logged is not None:
            scores[k] = logged[1]
        elif gold is not None:  # the log did not compute this metric: same rule as lm-eval's
            golds = gold if isinstance(gold, list) else [gold]
            scores[k] = float(preds[k] in golds)
    if scoring not in scores:
        raise RecordError(
            f"task {task!r} doc {sample.get('doc_id')}: the log has no {scoring!r} metric and no usable target"
        )
    other = "acc_norm" if scoring == "acc" else "acc"
    features = {
        f"{k}_confidence": float(probs[k][preds[k]]) for k in variants
    }
    extra: dict[str, Any] = {
        "source": "lm-eval samples (stock task)",
        "scoring": scoring,
        "scoring_description": {
            "acc": "restricted softmax over the choices' summed log-likelihoods (lm-eval acc)",
            "acc_norm": "softmax over log-likelihood / choice length in characters (lm-eval acc_norm)",
        }[scoring],
        "filter": filt,
        "score_metric": scoring,
        f"{other}_prediction": labels[preds[other]],
        "is_greedy": greedy,
        "target": sample.get("target"),
    }
    if other in scores:
        extra[f"{other}_score"] = scores[other]
    if isinstance(gold, list):
        extra["gold_indices"] = gold
    rec = SampleRecord.from_option_scores(
        variants[scoring],
        labels,
        gold_label,
        task=task,
        doc_id=sample["doc_id"],
        model=model,
        option_token_mode="sequence",
        features=features,
        prompt=contexts[0] if contexts else None,
        extra=extra,
    )
    return dataclasses.replace(rec, score=float(scores[scoring]))


def _gen_record(sample, task, model, args, filt, metric) -> SampleRecord:
    fr = sample.get("filtered_resps")
    resps = sample.get("resps")
    filtered = fr[0] if isinstance(fr, list) and fr else fr
    if isinstance(filtered, list):  # repeats: the first
        filtered = filtered[0] if filtered else ""
    raw = resps[0] if isinstance(resps, list) and resps else resps
    while isinstance(raw, list):
        raw = raw[0] if raw else ""
    found = _metric(sample, _GEN_METRIC_PREFERENCE, metric)
    if found is None:
        raise RecordError(
            f"task {task!r} doc {sample.get('doc_id')}: no per-sample metric in [0, 1] "
            f"{'named ' + repr(metric) if metric else 'among ' + str(sample.get('metrics'))}"
        )
    name, value = found
    target = sample.get("target")
    return SampleRecord(
        task=task,
        doc_id=str(sample["doc_id"]),
        model=model,
        prediction=None if filtered is None else str(filtered),
        confidence=None,
        score=value,
        gold=None if target is None else str(target),
        prompt=str(args[0][0]) if args and args[0] else None,
        extra={
            "source": "lm-eval samples (stock task)",
            "filter": filt,
            "score_metric": name,
            "output": None if raw is None else str(raw),
            "doc": sample.get("doc"),
            "no_confidence": NO_CONFIDENCE,
        },
    )


def rescore(run: Run, verifier: str, **verifier_kwargs: Any) -> Run:
    """Re-score a run's generation records with a calib-harness verifier.

    Each record's filtered response (``prediction``, else ``extra["output"]``) is verified
    against its document (``extra["doc"]``); ``score`` becomes the verifier's, the log's own
    score moves to ``extra["logged_score"]``.
    """
    from calib_harness.verifiers import get_verifier

    v = get_verifier(verifier, **verifier_kwargs)
    missing = [r.key for r in run.records if not isinstance(r.extra.get("doc"), dict)]
    if missing:
        raise RecordError(f"run {run.model!r}: {len(missing)} records keep no document to verify against, e.g. {missing[:2]}")
    outputs = [r.extra.get("output") if r.prediction is None else r.prediction for r in run.records]
    results = v.verify_many([r.extra["doc"] for r in run.records], [str(o or "") for o in outputs])
    records = [
        dataclasses.replace(
            r,
            score=float(res.score),
            extra={**r.extra, "logged_score": r.score, "score_metric": f"verifier:{verifier}", "extracted": res.extracted},
        )
        for r, res in zip(run.records, results)
    ]
    return Run(run.model, records, run.source, dict(run.meta))
