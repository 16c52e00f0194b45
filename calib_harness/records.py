"""Typed per-sample records: the one format every post-processor reads.

A :class:`SampleRecord` is one model's answer to one document of one task, with the
confidence features captured while it ran and the verifier's score.  A :class:`Run` is
the records of one model on one task (or a suite of tasks), as read from an lm-eval
output folder, from our own ``records.jsonl``, or from the vision adapter.

Multiple choice and vision records carry ``option_scores`` (choice log-likelihoods or
class logits): ``softmax(option_scores)`` gives ``option_probs`` and temperature scaling
rescales them.  Generation records carry scalar ``features`` instead (mean logit, mean
and summed log-probability, mean entropy, token count) and Platt / histogram / isotonic
calibrators map one of them to a confidence.

Feature names are shared by every producer (see :data:`FEATURE_NAMES`).
"""

from __future__ import annotations

import dataclasses
import json
import math
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Iterator, Sequence

import numpy as np

#: Confidence features and what they hold.  ``span_*`` variants hold the same figure
#: restricted to the span the verifier reads (e.g. the number after ``####``).
FEATURE_NAMES = {
    "confidence": "probability of the prediction (restricted softmax for multiple choice and vision, "
    "exp(mean_logprob) for generation)",
    "mean_logit": "mean raw logit of the sampled tokens (Platt-scaling input)",
    "mean_logprob": "mean log-probability of the sampled tokens",
    "sum_logprob": "summed log-probability of the sampled tokens (joint likelihood)",
    "mean_entropy": "mean entropy of the next-token distributions (GATEKEEPER's deferral score)",
    "n_tokens": "number of generated tokens scored",
    "span_found": "1 when the verifier's span was located in the output, else 0 (span_* then repeat the whole-output figures)",
    "margin": "top-1 minus top-2 option probability",
    "entropy": "entropy of the option distribution",
}

RECORDS_FILENAME = "records.jsonl"


class RecordError(ValueError):
    """Records that cannot be read or aligned: bad files, duplicated ids, mismatched docs."""


@dataclass(frozen=True)
class SampleRecord:
    """One model's answer to one document.

    Attributes:
        task: task name (``calib_arc_easy``, ``calib_mmlu_anatomy``, ``mnist`` ...).
        doc_id: stable id of the document inside the task (lm-eval's ``doc_id`` or an image id).
        model: model name as given to the harness.
        prediction: predicted option label / extracted answer / class index as text.
        confidence: confidence in ``prediction`` (uncalibrated), in [0, 1]; ``None`` when the source logged
            none (stock lm-eval generation logs): post-processors that need one refuse such runs.
        score: verifier score in [0, 1] (1 = correct); may be continuous.
        gold: the given (possibly wrong) label, as text; ``None`` when the task has none.
        option_labels: labels of the options / classes, in order (multiple choice, vision).
        option_scores: per-option log-likelihoods or class logits (``None`` for generation).
        option_token_mode: ``"single_token"`` when every option is one token (restricted
            token softmax), ``"sequence"`` when options span several tokens (sequence
            probabilities renormalised over options), ``"logits"`` for classifiers.
        features: scalar confidence features, see :data:`FEATURE_NAMES`.
        prompt: the question / input text (used by the MF router and the cleaning report).
        extra: anything else a producer wants to keep (raw output text, verifier details).
    """

    task: str
    doc_id: str
    model: str
    prediction: str | None
    confidence: float | None
    score: float
    gold: str | None = None
    option_labels: tuple[str, ...] | None = None
    option_scores: tuple[float, ...] | None = None
    option_token_mode: str | None = None
    features: dict[str, float] = field(default_factory=dict)
    prompt: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not (0.0 <= self.score <= 1.0) or math.isnan(self.score):
            raise RecordError(f"{self.task}/{self.doc_id}: score must be in [0, 1], got {self.score!r}")
        if self.confidence is not None and (math.isnan(self.confidence) or not (0.0 <= self.confidence <= 1.0 + 1e-9)):
            raise RecordError(
                f"{self.task}/{self.doc_id}: confidence must be in [0, 1], got {self.confidence!r}"
            )
        if (self.option_scores is None) != (self.option_labels is None):
            raise RecordError(f"{self.task}/{self.doc_id}: option_scores and option_labels go together")
        if self.option_scores is not None and len(self.option_scores) != len(self.option_labels or ()):
            raise RecordError(
                f"{self.task}/{self.doc_id}: {len(self.option_scores)} option scores for "
                f"{len(self.option_labels or ())} option labels"
            )

    # -- construction -----------------------------------------------------------------
    @classmethod
    def from_option_scores(
        cls,
        option_scores: Sequence[float] | np.ndarray,
        option_labels: Sequence[Any],
        gold: int | str | None,
        *,
        task: str,
        doc_id: str | int,
        model: str,
        option_token_mode: str,
        features: dict[str, float] | None = None,
        prompt: str | None = None,
        extra: dict[str, Any] | None = None,
    ) -> "SampleRecord":
        """THE way to build a record from option scores (multiple choice, vision, GATEKEEPER, references).

        ``option_scores`` are log-likelihoods or logits; ``prediction`` is their argmax (the first index on
        ties, as lm-eval's ``acc``); ``confidence`` is the softmax probability of the prediction; ``score`` is
        1 when the prediction is the ``gold`` option (an index or a label; ``None``: no gold, score 0).
        ``features`` gets the option distribution's ``margin`` (top-1 minus top-2 probability) and
        ``entropy``; ``features`` passed in (e.g. ``mean_entropy``) are kept and win.

        >>> r = SampleRecord.from_option_scores([-1.0, -3.0, -2.0], ["A", "B", "C"], "A",
        ...                                     task="t", doc_id=0, model="m", option_token_mode="sequence")
        >>> r.prediction, round(r.confidence, 4), r.score, sorted(r.features)
        ('A', 0.6652, 1.0, ['entropy', 'margin'])
        """
        scores = np.asarray(option_scores, dtype=np.float64)
        labels = tuple(str(x) for x in option_labels)
        if scores.ndim != 1 or scores.size == 0 or scores.size != len(labels):
            raise RecordError(f"{task}/{doc_id}: {scores.size} option scores for {len(labels)} option labels")
        if isinstance(gold, (int, np.integer)) and not isinstance(gold, bool):
            if not 0 <= int(gold) < len(labels):
                raise RecordError(f"{task}/{doc_id}: gold index {gold} outside {len(labels)} options")
            gold_label: str | None = labels[int(gold)]
        else:
            gold_label = None if gold is None else str(gold)
        probs = softmax(scores)
        pred = int(np.argmax(scores))
        top2 = np.sort(probs)[-2:] if probs.size > 1 else np.array([0.0, probs[0]])
        feats = {
            "margin": float(top2[-1] - top2[0]),
            "entropy": float(-np.sum(probs * np.log(np.clip(probs, 1e-300, None)))),
        }
        feats.update({k: float(v) for k, v in (features or {}).items()})
        return cls(
            task=task,
            doc_id=str(doc_id),
            model=model,
            prediction=labels[pred],
            confidence=float(min(1.0, probs[pred])),
            score=float(gold_label is not None and labels[pred] == gold_label),
            gold=gold_label,
            option_labels=labels,
            option_scores=tuple(float(x) for x in scores),
            option_token_mode=option_token_mode,
            features=feats,
            prompt=prompt,
            extra=dict(extra or {}),
        )

    # -- identity ---------------------------------------------------------------------
    @property
    def key(self) -> tuple[str, str]:
        """What aligns records of two models: (task, doc_id)."""
        return (self.task, self.doc_id)

    # -- derived ----------------------------------------------------------------------
    @property
    def option_probs(self) -> np.ndarray | None:
        """softmax of ``option_scores`` (the restricted, renormalised distribution)."""
        if self.option_scores is None:
            return None
        return softmax(np.asarray(self.option_scores, dtype=np.float64))

    def _option_index(self, label: str | None) -> int | None:
        """Position of ``label`` among the option labels (``None`` when absent or not an option)."""
        if label is None or self.option_labels is None:
            return None
        try:
            return self.option_labels.index(label)
        except ValueError:
            return None

    @property
    def gold_index(self) -> int | None:
        return self._option_index(self.gold)

    @property
    def prediction_index(self) -> int | None:
        return self._option_index(self.prediction)

    def feature(self, name: str) -> float:
        """A confidence feature by name; ``confidence`` is always available."""
        if name == "confidence":
            if self.confidence is None:
                raise RecordError(f"{self.task}/{self.doc_id}: {self.extra.get('no_confidence', 'this record carries no confidence')}")
            return float(self.confidence)
        if name in self.features:
            return float(self.features[name])
        raise RecordError(
            f"{self.task}/{self.doc_id}: no feature {name!r}; this record has "
            f"{sorted(['confidence', *self.features])}"
        )

    # -- (de)serialisation ------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        for k in ("option_labels", "option_scores"):
            if d[k] is not None:
                d[k] = list(d[k])
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "SampleRecord":
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = set(d) - known
        if unknown:
            raise RecordError(f"unknown record fields {sorted(unknown)}")
        d = dict(d)
        d["doc_id"] = str(d["doc_id"])
        for k in ("option_labels", "option_scores"):
            if d.get(k) is not None:
                d[k] = tuple(d[k])
        if d.get("option_scores") is not None:  # strict JSON wrote -inf / NaN scores as null
            d["option_scores"] = tuple(-math.inf if x is None else x for x in d["option_scores"])
        if d.get("features"):
            d["features"] = {k: math.nan if v is None else v for k, v in d["features"].items()}
        return cls(**d)


def name_tasks(tasks: Iterable[str], head: int = 3) -> str:
    """Task names for a log line or a table title: all of them when few, else a count and the ends.

    ``name_tasks(["calib_mmlu_anatomy", ...57 subjects])`` ->
    ``"57 tasks: calib_mmlu_abstract_algebra, calib_mmlu_anatomy, calib_mmlu_astronomy, ..., calib_mmlu_world_religions"``.
    """
    names = sorted(set(tasks))
    if len(names) <= head + 1:
        return ", ".join(names)
    return f"{len(names)} tasks: {', '.join(names[:head])}, ..., {names[-1]}"


def softmax(x: np.ndarray, axis: int = -1) -> np.ndarray:
    """Numerically stable softmax that ignores ``-inf`` / ``nan`` padding."""
    x = np.asarray(x, dtype=np.float64)
    x = np.where(np.isnan(x), -np.inf, x)
    m = np.max(x, axis=axis, keepdims=True)
    m = np.where(np.isfinite(m), m, 0.0)
    e = np.exp(x - m)
    return e / np.sum(e, axis=axis, keepdims=True)


@dataclass
class Run:
    """The records of one model over one or more tasks, in a stable order."""

    model: str
    records: list[SampleRecord]
    source: str | None = None
    meta: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        counts = Counter(r.key for r in self.records)
        dups = [k for k, c in counts.items() if c > 1]
        if dups:
            raise RecordError(
                f"run {self.model!r}: {len(dups)} duplicated (task, doc_id) keys, e.g. {dups[:3]}; "
                "was the same task logged twice?"
            )

    def __len__(self) -> int:
        return len(self.records)

    def __iter__(self) -> Iterator[SampleRecord]:
        return iter(self.records)

    @property
    def tasks(self) -> list[str]:
        return sorted({r.task for r in self.records})

    @property
    def keys(self) -> list[tuple[str, str]]:
        return [r.key for r in self.records]

    # -- array views used by the numeric code -----------------------------------------
    @property
    def has_confidence(self) -> bool:
        """False when some record carries no confidence (e.g. read from a stock generate_until log)."""
        return all(r.confidence is not None for r in self.records)

    def confidences(self) -> np.ndarray:
        missing = [r for r in self.records if r.confidence is None]
        if missing:
            why = missing[0].extra.get("no_confidence", "they were written without one")
            raise RecordError(f"run {self.model!r}: {len(missing)} of {len(self.records)} records carry no confidence: {why}")
        return np.array([r.confidence for r in self.records], dtype=np.float64)

    def scores(self) -> np.ndarray:
        return np.array([r.score for r in self.records], dtype=np.float64)

    def feature(self, name: str) -> np.ndarray:
        return np.array([r.feature(name) for r in self.records], dtype=np.float64)

    def option_matrix(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(scores, gold_index, pred_index) with ``-inf`` padding to the widest option set.

        ``gold_index`` is -1 where the record has no gold label among its options.
        """
        if not self.records or any(r.option_scores is None for r in self.records):
            raise RecordError(f"run {self.model!r}: option scores are missing (generation records?)")
        k = max(len(r.option_scores or ()) for r in self.records)
        m = np.full((len(self.records), k), -np.inf)
        for i, r in enumerate(self.records):
            m[i, : len(r.option_scores or ())] = r.option_scores
        gold = np.array([-1 if r.gold_index is None else r.gold_index for r in self.records])
        pred = np.array([-1 if r.prediction_index is None else r.prediction_index for r in self.records])
        return m, gold, pred

    def subset(self, index: Sequence[int] | np.ndarray) -> "Run":
        idx = np.asarray(index)
        if idx.dtype == bool:
            idx = np.flatnonzero(idx)
        return Run(self.model, [self.records[int(i)] for i in idx], self.source, dict(self.meta))

    def filter_tasks(self, tasks: Iterable[str]) -> "Run":
        wanted = set(tasks)
        return Run(self.model, [r for r in self.records if r.task in wanted], self.source, dict(self.meta))

    # -- files ------------------------------------------------------------------------
    def save(self, path: str | Path) -> Path:
        """Write ``records.jsonl`` (a folder gets the default file name)."""
        path = Path(path)
        if path.suffix != ".jsonl":
            path.mkdir(parents=True, exist_ok=True)
            path = path / RECORDS_FILENAME
        from calib_harness.outputs import write_jsonl

        # strict JSON, atomically: an undefined feature (NaN) is written as null and read back as NaN
        return write_jsonl(path, (r.to_dict() for r in self.records))


def align(*runs: Run, on_mismatch: str = "error") -> list[Run]:
    """Put several runs in the same document order.

    ``on_mismatch="error"`` (default) raises when the runs do not cover exactly the same
    (task, doc_id) keys; ``"intersect"`` keeps the common keys and says how many were
    dropped in each run's ``meta["dropped_on_align"]``.  The prompt of a document must
    agree across runs when both have one: a different prompt means different documents
    under the same id, which is never aligned silently.
    """
    if len(runs) < 2:
        return list(runs)
    key_sets = [set(r.keys) for r in runs]
    common = set.intersection(*key_sets)
    if on_mismatch not in ("error", "intersect"):
        raise ValueError("on_mismatch must be 'error' or 'intersect'")
    if on_mismatch == "error" and any(ks != common for ks in key_sets):
        details = "; ".join(
            f"{r.model!r}: {len(ks - common)} docs not in every run (e.g. {sorted(ks - common)[:2]})"
            for r, ks in zip(runs, key_sets)
            if ks != common
        )
        task_sets = [set(r.tasks) for r in runs]
        shared = set.intersection(*task_sets)
        hint = ""
        if any(ts != shared for ts in task_sets):  # name only the tasks not in every run
            only = "; ".join(
                f"{r.model!r} also has {name_tasks(ts - shared)}" for r, ts in zip(runs, task_sets) if ts - shared
            )
            hint = f" Tasks differ: {only} ({len(shared)} tasks in every run)."
        raise RecordError(f"runs cover different documents: {details}.{hint} Pass --intersect (Python: on_mismatch='intersect') to keep the common ones.")
    if not common:
        raise RecordError("runs share no (task, doc_id) keys")
    order = [k for k in runs[0].keys if k in common]
    out = []
    by_key0 = {r.key: r for r in runs[0].records}
    for run in runs:
        by_key = {r.key: r for r in run.records}
        for k in order:
            a, b = by_key0[k].prompt, by_key[k].prompt
            if a is not None and b is not None and a != b:
                raise RecordError(
                    f"{k}: runs {runs[0].model!r} and {run.model!r} have different prompts for the same doc id "
                    f"({a[:60]!r} vs {b[:60]!r}); they are not the same documents"
                )
        meta = dict(run.meta)
        meta["dropped_on_align"] = len(run.records) - len(order)
        out.append(Run(run.model, [by_key[k] for k in order], run.source, meta))
    return out


def load_records_jsonl(path: str | Path, model: str | None = None) -> Run:
    path = Path(path)
    recs = []
    with path.open() as f:
        for n, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                recs.append(SampleRecord.from_dict(json.loads(line)))
            except (json.JSONDecodeError, TypeError, KeyError) as e:
                raise RecordError(f"{path}:{n}: not a record ({e})") from e
    if not recs:
        raise RecordError(f"{path}: no records")
    models = {r.model for r in recs}
    if model is None and len(models) > 1:
        raise RecordError(f"{path}: records of several models {sorted(models)}; pick one with --model NAME (Python: model=)")
    name = model or recs[0].model
    return Run(name, [r for r in recs if r.model == name], source=str(path))
