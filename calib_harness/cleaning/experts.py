"""The expert panel: aligned runs of m models, calibrated on one half, evaluated on the other.

:func:`build_panel` aligns the runs, splits the documents with
``calib_harness.calibration.split_runs`` (calibration half / test half), fits one calibrator per
expert on its calibration half, and keeps for every evaluated sample each expert's prediction,
calibrated confidence and the accuracy rank of the calibration-half confidence bin the sample
falls in (:class:`~calib_harness.cleaning.methods.BinTable`, on
:class:`calib_harness.binning.EqualCountBinner`'s tie-aware bins).

Two kinds of records:

* **with option scores** (multiple choice, vision): every expert's calibrated class
  probabilities are kept (``panel.probs``); temperature scaling by default.  Every method runs.
* **with a confidence only** (generation logs, plain per-sample tables): an expert's answer
  counts as agreeing with the given label where its record's score is >= 0.5 (the log's own
  verdict); wrong answers are compared as text (stripped) to decide whether the experts agree.
  The confidence is calibrated with Platt scaling (a monotone map, so the bins are the same as
  on the raw confidence).  ``panel.probs`` is ``None``: the methods that need option scores
  (:func:`~calib_harness.cleaning.base.list_cleaning_methods` with ``needs_option_scores=True``)
  cannot run, the others can.

``cross_fit=True`` (default) also swaps the halves, so every document is evaluated once, with
calibrator and bins fitted on the other half: the detection rate then covers the whole set.
``cross_fit=False`` evaluates the test half only (the paper's protocol, section 3).

The calibration half's labels are the given (noisy) ones, as in the paper.  Records with
option scores whose given label is not among their options cannot be cleaned and are left out
(counted in ``panel.meta["dropped_no_gold"]``).

Minimum: each half must hold at least ``n_bins`` documents (:data:`MIN_DOCS_PER_BIN` per bin);
below :data:`FEW_DOCS_PER_BIN` documents per bin the bins' accuracy ranks are noisy, and
``panel.meta["warnings"]`` says so.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any, Sequence

import numpy as np

from calib_harness.calibration.split import TooFewSamplesError
from calib_harness.cleaning.methods import BinTable, agreed_label
from calib_harness.records import RecordError, Run, SampleRecord, align, softmax

logger = logging.getLogger(__name__)

CALIBRATIONS = ("temperature", "none")
#: Each calibration half needs at least this many documents per bin.
MIN_DOCS_PER_BIN = 1
#: Below this many calibration documents per bin, the panel warns that bin ranks are noisy.
FEW_DOCS_PER_BIN = 10


@dataclass
class ExpertPanel:
    """Calibrated views of m experts on the n evaluated samples (same order for all).

    Attributes:
        models: expert names.
        keys: (task, doc_id) per evaluated sample.
        given: (n,) given label index (into ``labels[i]``).
        pred: (m, n) each expert's answer index (``pred == given``: the expert agrees).
        conf: (m, n) each expert's calibrated confidence in its answer.
        probs: (m, n, k) calibrated probabilities (0 where an option is padding), or ``None``
            for records that carry a confidence only.
        ranks: (m, n) accuracy rank of the calibration-half bin of each expert's confidence.
        fold: (n,) which split evaluated the sample (0: the test half, 1: the swapped one).
        records: per expert, its records of the evaluated samples (prompts, option labels).
        labels: per sample, the label texts the indices refer to.
        bin_tables: per fold, per expert, the bins fitted on that fold's calibration half.
        n_bins: bins asked for (K of method 2 runs over 1 .. n_bins); a tie-aware table may
            hold fewer (``meta["effective_bins"]``), and K at or above that flags all of method 1.
    """

    models: list[str]
    keys: list[tuple[str, str]]
    given: np.ndarray
    pred: np.ndarray
    conf: np.ndarray
    probs: np.ndarray | None
    ranks: np.ndarray
    fold: np.ndarray
    records: list[list[SampleRecord]]
    labels: list[tuple[str, ...]]
    bin_tables: list[list[BinTable]]
    n_bins: int
    calibration: str
    meta: dict[str, Any] = field(default_factory=dict)

    @property
    def m(self) -> int:
        return len(self.models)

    @property
    def n(self) -> int:
        return len(self.keys)

    @property
    def has_option_scores(self) -> bool:
        return self.probs is not None

    def p_given(self) -> np.ndarray:
        """(m, n) calibrated probability of the given label (needs option scores)."""
        if self.probs is None:
            raise ValueError("the probability of the given label needs option scores; these records have a confidence only")
        return np.take_along_axis(self.probs, self.given[None, :, None], axis=2)[..., 0]

    def agreed(self) -> np.ndarray:
        """(n,) the answer every expert gives, -1 where they differ."""
        return agreed_label(self.pred)

    def disagreement_quality(self) -> np.ndarray:
        """(n,) 1 - the experts' mean calibrated confidence in an answer other than the given
        label (an expert agreeing with the label adds 0): low = a confident disagreement."""
        disagree = self.pred != self.given[None, :]
        return 1.0 - np.where(disagree, self.conf, 0.0).mean(axis=0)

    def option_labels(self, i: int) -> tuple[str, ...]:
        return self.labels[i]

    def label_name(self, i: int, idx: int) -> str:
        labels = self.labels[i]
        return labels[idx] if 0 <= idx < len(labels) else ""


def _check_runs(runs: Sequence[Run]) -> None:
    if not runs:
        raise ValueError("cleaning needs at least one run")
    names = [r.model for r in runs]
    if len(set(names)) != len(names):
        raise ValueError(f"expert runs must be of different models, got {names}")
    for r in runs:
        if not r.records:
            raise RecordError(f"run {r.model!r} holds no records")
        bad = [x.key for x in r.records if x.confidence is None or not np.isfinite(x.confidence)]
        if bad:
            raise RecordError(
                f"run {r.model!r}: {len(bad)} records carry no confidence (e.g. {bad[:2]}); cleaning ranks by "
                "confidence: capture runs with calib-lm-eval or give a confidence column"
            )


def has_option_scores(runs: Sequence[Run]) -> bool:
    """True when every record of every run carries option scores."""
    return all(x.option_scores is not None for r in runs for x in r.records)


def _probs(run: Run) -> np.ndarray:
    scores, _, _ = run.option_matrix()
    return softmax(scores)


def _calibrated_probs(cal: Run, ev: Run, calibration: str) -> tuple[np.ndarray, np.ndarray]:
    """(probs on the calibration half, probs on the evaluated half)."""
    if calibration == "none":
        return _probs(cal), _probs(ev)
    from calib_harness.calibration import fit_run_calibrator

    calibrator = fit_run_calibrator(cal, method=calibration, feature="confidence")
    return np.asarray(calibrator.option_probs(cal)), np.asarray(calibrator.option_probs(ev))


def _calibrated_confidence(cal: Run, ev: Run, calibration: str) -> tuple[np.ndarray, np.ndarray, str]:
    """Confidence-only records: (calibrated conf on cal, on ev, method used)."""
    raw_cal, raw_ev = cal.confidences(), ev.confidences()
    if calibration == "none":
        return raw_cal, raw_ev, "none"
    y = cal.scores() >= 0.5
    if y.all() or not y.any():
        logger.warning("%s: the calibration half is all %s; its confidence is left uncalibrated",
                       cal.model, "right" if y.all() else "wrong")
        return raw_cal, raw_ev, "none"
    from calib_harness.calibration import fit_run_calibrator

    calibrator = fit_run_calibrator(cal, method="platt", feature="confidence")
    return np.asarray(calibrator.confidence(cal)), np.asarray(calibrator.confidence(ev)), "platt"


def _norm(text: str | None) -> str | None:
    return None if text is None else " ".join(str(text).split())


def _confidence_only_labels(aligned: Sequence[Run]) -> tuple[np.ndarray, np.ndarray, list[tuple[str, ...]]]:
    """(given (n,), pred (m, n), labels per doc) for records without option scores.

    Index 0 is the given label; an expert whose record scores >= 0.5 answers 0; a wrong
    answer gets the index of its (whitespace-normalised) text, so two experts giving the
    same wrong answer agree.  A wrong answer without text never agrees with another.
    """
    m, n = len(aligned), len(aligned[0])
    pred = np.zeros((m, n), dtype=np.int64)
    labels: list[tuple[str, ...]] = []
    for i in range(n):
        gold = _norm(aligned[0].records[i].gold) or ""
        vocab = [gold]
        for j, run in enumerate(aligned):
            r = run.records[i]
            if r.score >= 0.5:
                continue
            text = _norm(r.prediction)
            if text is None or text == "":
                text = f"<no answer: {run.model}>"
            elif text == gold:  # scored wrong although the text matches: keep it apart
                text = f"{text} (scored wrong)"
            if text not in vocab:
                vocab.append(text)
            pred[j, i] = vocab.index(text)
        labels.append(tuple(vocab))
    return np.zeros(n, dtype=np.int64), pred, labels


def check_sizes(n_docs: int, n_bins: int, cal_fraction: float) -> None:
    """Refuse (:class:`~calib_harness.calibration.TooFewSamplesError`, a ``ValueError``: one line and the fix)
    when a half cannot fill every bin."""
    n_cal = int(round(n_docs * float(cal_fraction)))
    smallest = min(n_cal, n_docs - n_cal)
    if n_docs < 2 or smallest < n_bins * MIN_DOCS_PER_BIN:
        fix = f"pass --bins {max(1, smallest // MIN_DOCS_PER_BIN)} or fewer" if smallest >= 1 else "give more documents"
        raise TooFewSamplesError(
            f"{n_docs} documents are too few for {n_bins} bins: each calibration half needs at least "
            f"{MIN_DOCS_PER_BIN} document per bin ({n_bins * MIN_DOCS_PER_BIN}), the smaller half has {smallest}; {fix}"
        )


def build_panel(
    runs: Sequence[Run],
    *,
    calibration: str = "temperature",
    n_bins: int = 15,
    cal_fraction: float = 0.5,
    seed: int = 0,
    cross_fit: bool = True,
    on_mismatch: str = "error",
) -> ExpertPanel:
    """Align, split, calibrate and bin the expert runs (see the module docstring)."""
    from calib_harness.calibration import split_runs

    if calibration not in CALIBRATIONS:
        raise ValueError(f"calibration must be one of {CALIBRATIONS}, got {calibration!r}")
    if int(n_bins) < 1:
        raise ValueError(f"--bins must be >= 1, got {n_bins}")
    runs = list(runs)
    _check_runs(runs)
    aligned = align(*runs, on_mismatch=on_mismatch) if len(runs) > 1 else runs
    with_options = has_option_scores(aligned)
    if with_options:
        keep = np.ones(len(aligned[0]), dtype=bool)
        for r in aligned:
            keep &= np.array([x.gold_index is not None for x in r.records])
    else:
        keep = np.ones(len(aligned[0]), dtype=bool)
        lacking = [r.model for r in aligned if any(x.option_scores is None for x in r.records)]
        logger.info("records of %s carry no option scores: cleaning uses each expert's prediction and confidence",
                    ", ".join(lacking))
    dropped = int((~keep).sum())
    aligned = [r.subset(keep) for r in aligned]
    check_sizes(len(aligned[0]), n_bins, cal_fraction)

    splits = split_runs(*aligned, cal_fraction=cal_fraction, seed=seed)  # per run: (cal_run, test_run)
    folds = [[(c, t) for c, t in splits]]
    if cross_fit:
        folds.append([(t, c) for c, t in splits])

    index = {key: i for i, key in enumerate(aligned[0].keys)}
    m, n = len(aligned), len(aligned[0])
    if with_options:
        k = max(len(x.option_scores or ()) for r in aligned for x in r.records)
        probs: np.ndarray | None = np.zeros((m, n, k))
        given_all = np.array([r.gold_index for r in aligned[0].records], dtype=np.int64)
        labels_all = [tuple(r.option_labels or ()) for r in aligned[0].records]
        pred_all = np.zeros((m, n), dtype=np.int64)
    else:
        probs = None
        given_all, pred_all, labels_all = _confidence_only_labels(aligned)
    conf_all = np.zeros((m, n))
    ranks = np.full((m, n), -1, dtype=np.int64)
    fold_of = np.full(n, -1, dtype=np.int64)
    tables: list[list[BinTable]] = []
    used: set[str] = set()
    for f, pairs in enumerate(folds):
        fold_tables = []
        for j, (cal, ev) in enumerate(pairs):
            cal_idx = np.array([index[key] for key in cal.keys])
            idx = np.array([index[key] for key in ev.keys])
            if probs is not None:
                p_cal, p_ev = _calibrated_probs(cal, ev, calibration)
                _, g_cal, _ = cal.option_matrix()
                c_cal, c_ev = p_cal.max(axis=1), p_ev.max(axis=1)
                correct = p_cal.argmax(axis=1) == g_cal
                probs[j, idx, : p_ev.shape[1]] = np.nan_to_num(p_ev, nan=0.0)
                pred_all[j, idx] = p_ev.argmax(axis=1)
                used.add(calibration)
            else:
                c_cal, c_ev, how = _calibrated_confidence(cal, ev, calibration)
                correct = pred_all[j, cal_idx] == given_all[cal_idx]
                used.add(how)
            table = BinTable.fit(c_cal, correct, n_bins)
            fold_tables.append(table)
            conf_all[j, idx] = c_ev
            ranks[j, idx] = table.ranks_of(c_ev)
            fold_of[idx] = f
        tables.append(fold_tables)

    sel = np.flatnonzero(fold_of >= 0)
    effective = [[t.n_bins for t in ft] for ft in tables]
    n_cal_min = min(int(t.count.sum()) for ft in tables for t in ft)
    warn = []
    if n_cal_min < FEW_DOCS_PER_BIN * n_bins:
        better = max(1, n_cal_min // FEW_DOCS_PER_BIN)
        warn.append(
            f"{n_cal_min} calibration documents for {n_bins} bins (< {FEW_DOCS_PER_BIN} per bin): the bins' accuracy "
            "ranks are noisy" + (f"; fewer --bins (e.g. {better}) give steadier ranks" if better < n_bins else "")
        )
    if min(min(e) for e in effective) < n_bins:
        warn.append(
            f"tied confidences: some experts' calibration halves fill only {min(min(e) for e in effective)} of "
            f"{n_bins} bins (equal confidences share one bin); K at or above a table's bin count flags all of method 1"
        )
    for w in warn:
        logger.warning(w)
    return ExpertPanel(
        models=[r.model for r in aligned],
        keys=[aligned[0].records[i].key for i in sel],
        given=given_all[sel],
        pred=pred_all[:, sel],
        conf=conf_all[:, sel],
        probs=probs[:, sel] if probs is not None else None,
        ranks=ranks[:, sel],
        fold=fold_of[sel],
        records=[[r.records[i] for i in sel] for r in aligned],
        labels=[labels_all[i] for i in sel],
        bin_tables=tables,
        n_bins=int(n_bins),
        calibration="+".join(sorted(used)) if used else calibration,
        meta={
            "dropped_no_gold": dropped,
            "cross_fit": cross_fit,
            "cal_fraction": cal_fraction,
            "seed": seed,
            "option_scores": with_options,
            "effective_bins": effective,
            "warnings": warn,
        },
    )
