"""Cleaning with a precision guarantee: flag as many samples as possible while precision >= P
with probability >= 1 - delta (issue #17, item 3), via Learn then Test (:mod:`calib_harness.risk`).

Protocol (:func:`risk_controlled_flags`):

1. The operating points are method 2's flag sets over K (``M2 K=1`` .. ``M2 K=N``, or the
   ``+agree`` variant): nested, so a larger K flags a superset.  They come from the panel, whose
   calibrators and bins were fitted on the *given* labels only; the reference labels play no
   part in them.
2. The evaluated samples the reference covers are split at random (``cal_fraction``, ``seed``)
   into a **labelled calibration half** and a held-out half.
3. On the labelled calibration half, each point's loss is 1 for every flagged sample whose
   given label the reference says is right (:func:`calib_harness.risk.precision_losses`), and
   :func:`calib_harness.risk.ltt_select` certifies the points with ``1 - precision <= 1 - P`` at
   family-wise level ``delta`` (exact binomial p-values).  Default: fixed-sequence testing along K,
   starting at the first K that flags enough labelled samples to pass at all
   (:func:`calib_harness.risk.min_samples`; the counts depend on the flags, not on the reference
   labels, so the sequence is fixed before the losses are seen); ``procedure="bonferroni"`` tests
   every K at ``delta / #K``.  The chosen point is the certified one with the largest K -- the
   most flags.
4. No certified point: nothing is flagged, and the result says so.  Too few labelled flagged
   samples for any point to pass even with zero losses: a clear error that says how many are
   needed.

The held-out half gives an honest check of the chosen point (its precision there, with a 95%
Wilson interval); the guarantee itself is about the flagged population the calibration half
was drawn from (Angelopoulos et al. 2021, Learn then Test, arXiv:2110.01052).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from calib_harness.cleaning.pipeline import CleaningOutcome
from calib_harness.cleaning.reference import Reference
from calib_harness.metrics import wilson_interval
from calib_harness.risk import InsufficientSamplesError, guarantee_record, ltt_select, min_samples, precision_losses

logger = logging.getLogger(__name__)


@dataclass
class RiskControlResult:
    """The chosen point (``chosen`` is ``None`` when none is certified: ``flags`` is then empty)."""

    min_precision: float
    delta: float
    positives: str
    grid: list[str]
    chosen: str | None
    flags: np.ndarray
    record: dict[str, Any]
    holdout: dict[str, Any] = field(default_factory=dict)

    @property
    def guarantee(self) -> str:
        return str(self.record.get("guarantee", ""))

    @property
    def n_flagged(self) -> int:
        return int(self.flags.sum())

    def to_dict(self) -> dict[str, Any]:
        return {"min_precision": self.min_precision, "delta": self.delta, "positives": self.positives,
                "operating_points": self.grid, "chosen": self.chosen, "n_flagged": self.n_flagged,
                "holdout_check": self.holdout, **self.record}

    def summary_line(self) -> str:
        if self.chosen is None:
            return (f"risk control: no setting could be certified to keep precision >= {self.min_precision:g} with "
                    f"probability >= {1 - self.delta:g}; nothing is flagged")
        return (f"risk control: {self.chosen} flags {self.n_flagged} samples; {self.guarantee}")


def risk_controlled_flags(
    outcome: CleaningOutcome,
    reference: Reference,
    min_precision: float,
    delta: float = 0.1,
    *,
    require_agreement: bool = False,
    positives: str = "any",
    cal_fraction: float = 0.5,
    seed: int = 0,
    procedure: str = "fixed-sequence",
) -> RiskControlResult:
    """Method 2's largest K whose precision is certified ``>= min_precision`` w.p. ``>= 1 - delta``."""
    if not 0.0 < float(min_precision) < 1.0:
        raise ValueError(f"--min-precision must lie strictly between 0 and 1, got {min_precision}")
    if not 0.0 < float(delta) < 1.0:
        raise ValueError(f"--delta must lie strictly between 0 and 1, got {delta}")
    grid = sorted(
        (r for r in outcome.results
         if r.method == "high-confidence" and bool(r.params.get("require_agreement")) == bool(require_agreement)),
        key=lambda r: r.params["K"],
    )
    if not grid:
        raise ValueError("--min-precision chooses K of method 2: include high-confidence in --method "
                         f"(with --require-agreement {'yes' if require_agreement else 'no'} or both)")
    covered, is_err = reference.labels_for(outcome.panel.keys, positives)
    idx = np.flatnonzero(covered)
    if idx.size < 2:
        raise ValueError(f"--min-precision needs reference labels on the evaluated samples; {reference.name} covers "
                         f"{idx.size} of {outcome.panel.n}")
    perm = np.random.default_rng(seed).permutation(idx)
    n_cal = int(round(idx.size * float(cal_fraction)))
    n_cal = min(max(n_cal, 1), idx.size - 1)
    cal_idx, hold_idx = np.sort(perm[:n_cal]), np.sort(perm[n_cal:])
    losses = precision_losses([r.flags[cal_idx] for r in grid], is_err[cal_idx])
    alpha = 1.0 - float(min_precision)
    start = 0
    if procedure == "fixed-sequence":
        # test from the first K whose labelled flag count could pass at all: the counts depend on the
        # flags alone (fixed by the given labels), not on the reference labels, so the sequence is
        # still fixed before the losses are looked at
        needed = min_samples(alpha, delta)
        enough = [j for j, x in enumerate(losses) if len(x) >= needed]
        start = enough[0] if enough else len(losses) - 1
    tested = grid[start:]
    try:
        sel = ltt_select(losses[start:], alpha=alpha, delta=delta, method="clopper-pearson", procedure=procedure,
                         what="1 - precision (share of flagged samples whose label is right)")
    except InsufficientSamplesError as e:
        most = max(len(x) for x in losses)
        raise ValueError(
            f"--min-precision {min_precision:g} --delta {delta:g}: too few calibration samples. The labelled "
            f"calibration half holds {n_cal} of the {idx.size} reference-labelled documents, and the most permissive "
            f"setting ({grid[-1].name}) flags {most} of them; a guarantee needs at least {e.needed} flagged labelled "
            f"documents even if every one were a true error. Use more reference-labelled data, a lower "
            f"--min-precision or a larger --delta"
        ) from None
    chosen = tested[sel.index] if sel.found else None
    flags = chosen.flags.copy() if chosen is not None else np.zeros(outcome.panel.n, dtype=bool)
    point = None
    if chosen is not None:
        point = {"method": chosen.name, "K": int(chosen.params["K"]), "n_flagged": int(chosen.n_flagged),
                 "n_flagged_calibration": int(chosen.flags[cal_idx].sum()),
                 "calibration_precision": float(1.0 - sel.risks[sel.index])}
    record = guarantee_record(sel, point, fallback="flag nothing")
    record["n_labelled_calibration"] = int(n_cal)
    record["operating_point_order"] = "method 2 by K, fewest flags first"
    record["operating_points_tested"] = [r.name for r in tested]
    holdout: dict[str, Any] = {"n_labelled": int(hold_idx.size)}
    f_hold = flags[hold_idx]
    tp, nf = int((f_hold & is_err[hold_idx]).sum()), int(f_hold.sum())
    lo, hi = wilson_interval(tp, nf) if nf else (float("nan"), float("nan"))
    holdout.update({"n_flagged": nf, "tp": tp, "precision": tp / nf if nf else float("nan"),
                    "precision_lo": lo, "precision_hi": hi})
    res = RiskControlResult(float(min_precision), float(delta), positives, [r.name for r in grid],
                            chosen.name if chosen is not None else None, flags, record, holdout)
    logger.debug(res.summary_line())
    return res
