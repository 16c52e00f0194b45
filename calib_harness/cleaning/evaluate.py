"""Precision and detection rate of each method against a reference.

Over the evaluated samples the reference covers (``n_eval``):

* ``precision = TP / flagged`` (NaN when nothing is flagged);
* ``detection_rate = TP / errors`` — the share of the reference's errors that are flagged
  (recall); NaN when the reference marks no error;
* ``flag_rate = flagged / n_eval`` — what the paper's Figure 6 calls "detection rate" (flagged
  samples over the data set size), kept so both readings can be plotted.

Precision and detection rate carry 95% Wilson score intervals
(:func:`calib_harness.metrics.wilson_interval`): ``precision_lo`` / ``precision_hi`` and
``detection_rate_lo`` / ``detection_rate_hi`` (NaN, written as ``null`` in JSON, where undefined) --
the house ``X_lo`` / ``X_hi`` convention, so every table (:mod:`calib_harness.report.tables`)
prints them as ``v [lo, hi]``.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

from calib_harness.cleaning.pipeline import CleaningOutcome
from calib_harness.cleaning.reference import POSITIVES, Reference
from calib_harness.metrics import wilson_interval

#: Level of every interval in the cleaning tables.
INTERVAL_LEVEL = 0.95


@dataclass
class EvalRow:
    reference: str
    positives: str
    method: str
    family: str
    K: int | None
    require_agreement: bool | None
    n_eval: int
    n_errors: int
    n_flagged: int
    tp: int
    precision: float
    detection_rate: float
    flag_rate: float
    precision_lo: float = float("nan")
    precision_hi: float = float("nan")
    detection_rate_lo: float = float("nan")
    detection_rate_hi: float = float("nan")

    def __post_init__(self) -> None:
        alpha = 1.0 - INTERVAL_LEVEL
        self.precision_lo, self.precision_hi = wilson_interval(self.tp, self.n_flagged, alpha)
        self.detection_rate_lo, self.detection_rate_hi = wilson_interval(self.tp, self.n_errors, alpha)

    def to_dict(self) -> dict:
        return asdict(self)


def precision_detection(flags, is_error) -> tuple[int, int, int, float, float]:
    """(n_flagged, tp, n_errors, precision, detection_rate) of boolean arrays."""
    f = np.asarray(flags, dtype=bool)
    e = np.asarray(is_error, dtype=bool)
    nf, tp, ne = int(f.sum()), int((f & e).sum()), int(e.sum())
    return nf, tp, ne, (tp / nf if nf else float("nan")), (tp / ne if ne else float("nan"))


def evaluate(outcome: CleaningOutcome, reference: Reference, positives=POSITIVES) -> list[EvalRow]:
    """One row per (positives definition, method result)."""
    if isinstance(positives, str):
        positives = (positives,)
    rows = []
    for pos in positives:
        covered, err = reference.labels_for(outcome.panel.keys, pos)
        n_eval = int(covered.sum())
        if n_eval == 0:
            raise ValueError(
                f"reference {reference.name!r} covers none of the {outcome.panel.n} evaluated samples "
                f"(keys look like {outcome.panel.keys[:2]}, reference keys like {list(reference.entries)[:2]})"
            )
        for r in outcome.results:
            nf, tp, ne, p, d = precision_detection(r.flags[covered], err[covered])
            rows.append(
                EvalRow(
                    reference.name,
                    pos,
                    r.name,
                    r.method,
                    r.params.get("K"),
                    r.params.get("require_agreement"),
                    n_eval,
                    ne,
                    nf,
                    tp,
                    p,
                    d,
                    nf / n_eval,
                )
            )
    return rows


def correction_accuracy(outcome: CleaningOutcome, reference: Reference, flags) -> tuple[int, int]:
    """Among flagged samples with an agreed expert answer and a known right label: (right, total)."""
    right = total = 0
    for i in np.flatnonzero(np.asarray(flags) & (outcome.agreed >= 0)):
        e = reference.entries.get(outcome.panel.keys[i])
        if e is None or e.label is None or e.error_type == "ok":
            continue
        total += 1
        right += int(outcome.panel.label_name(i, int(outcome.agreed[i])) == e.label)
    return right, total


def format_table(rows: list[dict], columns: list[str] | None = None, floatfmt: str = "{:.3f}") -> str:
    """Fixed-width text (what the CLI prints) through the one table renderer
    (:mod:`calib_harness.report.tables`): ``X_lo`` / ``X_hi`` companions print as ``v [lo, hi]``."""
    from calib_harness.report.tables import Table

    if not rows:
        return "(no rows)"
    return Table.from_dicts("", rows, columns).render("text", floatfmt).strip("\n")
