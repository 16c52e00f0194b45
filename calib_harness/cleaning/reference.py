"""References that say which given labels are wrong: human (MMLU-Redux, MTurk) or pseudo-labels.

A :class:`Reference` maps a record key ``(task, doc_id)`` to a :class:`RefEntry` with an error
type (``"ok"`` = the given label is right) and, where known, the right label.  Precision and
detection rate are measured only over the evaluated samples the reference covers.

* :func:`mmlu_redux_reference`: MMLU-Redux 2.0 (Gema et al. 2024), 57 subjects x 100 annotated
  MMLU test questions.  Our MMLU tasks are ``calib_mmlu_<subject>`` with ``doc_id`` = the 0-based
  row of ``mmlu/data/test/<subject>_test.csv``, which is Redux's ``mmlu_test_index``.  The 37
  Redux questions without a unique MMLU row (MMLU holds them twice, or the text was edited)
  are left out.  Positives: ``"any"`` = every error type but ``ok``; ``"strict"`` =
  ``wrong_groundtruth`` only (bad question clarity, several correct answers ... are other
  kinds of problem).
* :func:`mturk_reference`: the cleanlab label-errors MTurk verdicts (Northcutt et al. 2021), 5
  votes per reviewed test example among ``given``/``guessed``/``both``/``neither``.  Only
  reviewed examples are covered (and cleanlab chose them with its own method: a biased sample).
  ``"any"``: the label is erroneous when the majority of the 5 votes is not ``given`` (fewer
  than 3 ``given`` votes); ``"strict"``: at least 3 votes say the given label does not fit
  (``guessed`` + ``neither`` >= 3).
* :func:`pseudo_label_reference`: a stronger model's answer as the reference label; the given
  label counts as wrong when it differs from that answer (paper, section 3.5, GPT-4o).
"""

from __future__ import annotations

import csv
import json
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import numpy as np

from calib_harness.records import Run, SampleRecord

MMLU_TASK_PREFIX = "calib_mmlu_"
LETTERS = ("A", "B", "C", "D")
POSITIVES = ("any", "strict")
CIFAR10_CLASSES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")


@dataclass(frozen=True)
class RefEntry:
    error_type: str  # "ok" when the given label is right
    label: str | None = None  # the right label where the reference knows it
    question: str | None = None
    choices: tuple[str, ...] | None = None


@dataclass
class Reference:
    """Reference verdicts per record key; ``strict_types`` name the 'strict' positives."""

    name: str
    entries: dict[tuple[str, str], RefEntry]
    strict_types: frozenset[str]
    description: str = ""
    meta: dict = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.entries)

    def is_error(self, entry: RefEntry, positives: str = "any") -> bool:
        if positives == "any":
            return entry.error_type != "ok"
        if positives == "strict":
            return entry.error_type in self.strict_types
        raise ValueError(f"positives must be one of {POSITIVES}, got {positives!r}")

    def labels_for(self, keys, positives: str = "any") -> tuple[np.ndarray, np.ndarray]:
        """(covered (n,) bool, is_error (n,) bool) for the given keys."""
        covered = np.array([k in self.entries for k in keys], dtype=bool)
        err = np.array(
            [k in self.entries and self.is_error(self.entries[k], positives) for k in keys], dtype=bool
        )
        return covered, err

    def counts(self) -> dict[str, int]:
        return dict(Counter(e.error_type for e in self.entries.values()))


def _redux_label(raw: str | None) -> str | None:
    s = (raw or "").strip().upper()
    if s in LETTERS:
        return s
    if s in ("0", "1", "2", "3"):
        return LETTERS[int(s)]
    return None


def mmlu_redux_reference(data_dir: str | Path, subjects: list[str] | None = None) -> Reference:
    """MMLU-Redux as reference for ``calib_mmlu_<subject>`` records (see module docstring)."""
    data_dir = Path(data_dir)
    path = data_dir / "mmlu_redux" / "mmlu_redux_normalized.jsonl"
    if not path.exists():
        raise FileNotFoundError(f"{path} not found (MMLU-Redux derived file)")
    entries: dict[tuple[str, str], RefEntry] = {}
    skipped = 0
    wanted = set(subjects) if subjects else None
    with path.open() as f:
        for line in f:
            r = json.loads(line)
            if wanted is not None and r["subject"] not in wanted:
                continue
            if r.get("mmlu_test_index") is None:
                skipped += 1
                continue
            et = r["error_type"]
            label = _redux_label(r.get("correct_answer")) if et == "wrong_groundtruth" else LETTERS[int(r["answer"])]
            entries[(MMLU_TASK_PREFIX + r["subject"], str(r["mmlu_test_index"]))] = RefEntry(
                et, label, r.get("question"), tuple(r.get("choices") or ()) or None
            )
    return Reference(
        "mmlu-redux",
        entries,
        frozenset({"wrong_groundtruth"}),
        "MMLU-Redux 2.0 human annotation; any = error_type != ok, strict = wrong_groundtruth",
        {"skipped_unmapped": skipped, "source": str(path)},
    )


def mmlu_question(data_dir: str | Path, subject: str, index: int) -> tuple[str, tuple[str, ...], str]:
    """(question, options, answer letter) of one MMLU test row."""
    path = Path(data_dir) / "mmlu" / "data" / "test" / f"{subject}_test.csv"
    with path.open(newline="") as f:
        for i, row in enumerate(csv.reader(f)):
            if i == index:
                return row[0], tuple(row[1:5]), row[5]
    raise IndexError(f"{path} has no row {index}")


def mturk_reference(
    data_dir: str | Path, dataset: str = "cifar10", task: str | None = None, class_names: Sequence[str] | None = None
) -> Reference:
    """MTurk verdicts of the cleanlab label-errors study; keys ``(task or dataset, str(id))``.

    ``class_names`` turn the guessed class index into the records' label text (CIFAR-10: the
    class names, as :func:`cleanlab_cifar10_run` uses them)."""
    if class_names is None and dataset == "cifar10":
        class_names = CIFAR10_CLASSES
    path = Path(data_dir) / "label_errors" / "cleanlab" / "mturk" / f"{dataset}_mturk.json"
    rows = json.loads(path.read_text())
    entries = {}
    for r in rows:
        v = r["mturk"]
        given, guessed, both, neither = (int(v.get(x, 0)) for x in ("given", "guessed", "both", "neither"))
        if given >= 3:
            et = "ok"
        elif guessed >= 3:
            et = "guessed"
        elif neither >= 3:
            et = "neither"
        elif both >= 3:
            et = "both"
        elif guessed + neither >= 3:
            et = "not_given_split"  # the label does not fit, workers split on the alternative
        else:
            et = "no_majority"
        guess = int(r["our_guessed_label"])
        label = (class_names[guess] if class_names else str(guess)) if et == "guessed" else None
        entries[(task or dataset, str(r["id"]))] = RefEntry(et, label)
    return Reference(
        f"mturk-{dataset}",
        entries,
        frozenset({"guessed", "neither", "not_given_split"}),
        "cleanlab MTurk verdicts (reviewed examples only); any = fewer than 3 of 5 'given' votes, "
        "strict = guessed + neither >= 3",
        {"source": str(path), "n_reviewed": len(rows)},
    )


def pseudo_label_reference(strong: Run) -> Reference:
    """A stronger model's prediction as the reference label ("wrong" = given != its answer)."""
    entries = {}
    for r in strong.records:
        if r.gold is None or r.prediction is None:
            continue
        entries[r.key] = RefEntry("ok" if r.prediction == r.gold else "disagrees_with_reference", r.prediction)
    return Reference(
        f"pseudo-{strong.model}",
        entries,
        frozenset({"disagrees_with_reference"}),
        f"pseudo-labels: {strong.model}'s answers; a given label is wrong where it differs",
        {"model": strong.model},
    )


def records_from_probs(
    probs: np.ndarray, labels: np.ndarray, task: str, model: str, class_names: list[str] | None = None
) -> Run:
    """A Run of classifier records from (n, k) probabilities: option_scores = log(probs)."""
    p = np.asarray(probs, dtype=np.float64)
    k = p.shape[1]
    names = tuple(class_names or [str(i) for i in range(k)])
    logp = np.log(np.clip(p, 1e-12, None))
    recs = [
        SampleRecord.from_option_scores(
            logp[i], names, int(labels[i]), task=task, doc_id=i, model=model, option_token_mode="logits"
        )
        for i in range(p.shape[0])
    ]
    return Run(model, recs)


def cleanlab_cifar10_run(data_dir: str | Path) -> Run:
    """CIFAR-10 test set: cleanlab's cross-validated predicted probabilities as one expert."""
    base = Path(data_dir) / "label_errors" / "cleanlab"
    p = np.load(base / "cross_validated_predicted_probabilities" / "cifar10_test_set_pyx.npy")
    y = np.load(base / "original_test_labels" / "cifar10_test_set_original_labels.npy")
    return records_from_probs(p, y, "cifar10", "cleanlab-cifar10-cv", list(CIFAR10_CLASSES))
