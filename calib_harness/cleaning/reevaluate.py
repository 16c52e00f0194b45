"""Re-evaluation on the cleaned set (the paper's Table 2): model accuracy and a cascade's.

Three label sets over the evaluated samples, given a flag mask:

* ``full``: every sample with its given label;
* ``removed``: flagged samples dropped;
* ``relabeled``: flagged samples whose experts agree on one answer get that answer as label;
  flagged samples without an agreed answer are dropped (nothing to replace the label with).

**Independence.**  The runs scored here must have taken no part in the cleaning (the paper
scores models that did not, to keep the measurement independent): an expert re-scored on a set
its own answers cleaned gains accuracy by construction.  :func:`reevaluate` refuses expert runs
unless ``allow_circular=True``; then every row they enter is labelled ``circular = True``.  The
relabelled set never takes its labels from the run it scores: its labels come from the experts
that are not being scored (``labels_from``); when no such expert is left, that relabelled row is
empty and says why.

The cascade is the calibrated confidence-advantage router (CC, Algorithm 1; the router
registry's ``"CC"``), fitted on the calibration half of each label set.  Its operating point
(K) is chosen on the calibration half -- the point with the best calibration-half accuracy --
and its accuracy is reported on the test half at that point, never the best test-half point.

Accuracies carry 95% Wilson intervals (``accuracy_lo`` / ``accuracy_hi``).
"""

from __future__ import annotations

import dataclasses
import logging
from dataclasses import dataclass
from typing import Sequence

import numpy as np

from calib_harness.cleaning.methods import agreed_label
from calib_harness.cleaning.pipeline import CleaningOutcome
from calib_harness.metrics import wilson_interval
from calib_harness.records import RecordError, Run

logger = logging.getLogger(__name__)

VARIANTS = ("full", "removed", "relabeled")


@dataclass
class LabelSet:
    name: str
    keep: np.ndarray  # (n,) bool over the panel's samples
    labels: list[str]  # (n,) label text (meaningful where keep)
    labels_from: str = "given labels"


def label_sets(outcome: CleaningOutcome, flags, exclude: Sequence[str] = ()) -> list[LabelSet]:
    """The three label sets; the relabelled one takes its labels from the experts not in ``exclude``."""
    p = outcome.panel
    f = np.asarray(flags, dtype=bool)
    given = [p.label_name(i, int(p.given[i])) for i in range(p.n)]
    others = [j for j, m in enumerate(p.models) if m not in set(exclude)]
    if others:
        agreed = agreed_label(p.pred[others])
        relab = [p.label_name(i, int(agreed[i])) if f[i] and agreed[i] >= 0 else given[i] for i in range(p.n)]
        keep_relab = ~f | (agreed >= 0)
        src = "agreed answer of experts " + ", ".join(p.models[j] for j in others)
    else:
        relab, keep_relab = given, np.zeros(p.n, dtype=bool)
        src = "none: every expert is being scored"
    return [
        LabelSet("full", np.ones(p.n, dtype=bool), given),
        LabelSet("removed", ~f, given),
        LabelSet("relabeled", keep_relab, relab, src),
    ]


def relabeled_run(run: Run, keys: Sequence[tuple[str, str]], label_set: LabelSet) -> Run:
    """The run's records of the kept samples, with ``gold`` replaced and ``score`` recomputed.

    Where the label is unchanged the record's own score stays (a verifier's verdict); a new
    label is scored by exact match of the prediction text."""
    by_key = {r.key: r for r in run.records}
    missing = [k for k in keys if k not in by_key]
    if missing:
        raise RecordError(f"run {run.model!r} lacks {len(missing)} evaluated documents, e.g. {missing[:2]}")
    out = []
    for i in np.flatnonzero(label_set.keep):
        r = by_key[keys[i]]
        lab = label_set.labels[i]
        if lab == (r.gold or "") or (r.gold is not None and " ".join(r.gold.split()) == lab):
            out.append(r)
        else:
            pred = None if r.prediction is None else " ".join(str(r.prediction).split())
            out.append(dataclasses.replace(r, gold=lab, score=float(pred == lab)))
    return Run(run.model, out, run.source, dict(run.meta))


def check_independent(outcome: CleaningOutcome, runs: Sequence[Run], allow_circular: bool, quiet: bool = False) -> list[str]:
    """The scored runs that were experts; raises unless ``allow_circular`` (then logs a warning unless ``quiet``)."""
    experts = set(outcome.panel.models)
    circular = [r.model for r in runs if r.model in experts]
    if circular and not allow_circular:
        raise ValueError(
            f"re-evaluation would re-score {', '.join(circular)}, which took part in the cleaning (experts: "
            f"{', '.join(outcome.panel.models)}): its accuracy on a set its own answers cleaned is inflated. Pass "
            "runs of other models with --reeval, or --allow-circular to score them anyway (the output is then "
            "labelled circular)"
        )
    if circular and not quiet:
        logger.warning("circular re-evaluation: %s took part in the cleaning; rows that score it are labelled "
                       "circular = True", ", ".join(circular))
    return circular


def _acc_row(label_set: LabelSet, run: Run, circular: bool) -> dict:
    s = run.scores()
    n = len(s)
    acc = float(s.mean()) if n else float("nan")
    lo, hi = wilson_interval(float(s.sum()), n) if n else (float("nan"), float("nan"))
    return {"label_set": label_set.name, "scored": run.model, "role": "model", "n": n, "accuracy": acc,
            "accuracy_lo": lo, "accuracy_hi": hi, "circular": circular, "labels_from": label_set.labels_from}


def reevaluate(
    outcome: CleaningOutcome,
    flags,
    runs: Sequence[Run],
    cascade: tuple[str, str] | None = None,
    n_bins: int = 15,
    seed: int = 0,
    cal_fraction: float = 0.5,
    allow_circular: bool = False,
) -> list[dict]:
    """One row per (label set, scored run) -- and, with ``cascade=(small, large)`` model names
    among ``runs``, one per label set for the CC cascade (K chosen on the calibration half).

    Raises ``ValueError`` when a run took part in the cleaning, unless ``allow_circular``.
    """
    keys = outcome.panel.keys
    circular = set(check_independent(outcome, runs, allow_circular))
    by_model = {r.model: r for r in runs}
    if cascade is not None:
        missing = [m for m in cascade if m not in by_model]
        if missing:
            raise ValueError(f"cascade models {missing} are not among the re-evaluated runs {list(by_model)}")
    rows: list[dict] = []
    for m, r in by_model.items():
        for ls in label_sets(outcome, flags, exclude=[m]):
            rows.append(_acc_row(ls, relabeled_run(r, keys, ls), m in circular))
    if cascade is not None:
        for ls in label_sets(outcome, flags, exclude=list(cascade)):
            small, large = (relabeled_run(by_model[m], keys, ls) for m in cascade)
            row = {"label_set": ls.name, "scored": f"CC {cascade[0]}->{cascade[1]}", "role": "cascade",
                   "circular": bool(circular & set(cascade)), "labels_from": ls.labels_from}
            row.update(_cascade_row(small, large, n_bins, seed, cal_fraction))
            rows.append(row)
    order = {v: i for i, v in enumerate(VARIANTS)}
    rows.sort(key=lambda r: (r["role"] != "model", r["scored"], order[r["label_set"]]))
    return rows


def _cascade_row(small: Run, large: Run, n_bins: int, seed: int, cal_fraction: float) -> dict:
    """CC fitted on the calibration half; K = the best calibration-half point; test-half accuracy there."""
    from calib_harness.calibration import split_runs
    from calib_harness.records import align
    from calib_harness.routing.base import RoutingData, make_router

    n = len(small)
    out: dict = {"n": 0, "accuracy": float("nan"), "accuracy_lo": float("nan"), "accuracy_hi": float("nan"),
                 "K": None, "share_small": float("nan"), "test_acc_small": float("nan"),
                 "test_acc_large": float("nan"), "operating_point_from": "calibration half"}
    if n < 4:
        out["note"] = f"{n} documents: too few for a calibration and a test half"
        return out
    # one document order, (task, doc_id), whatever order the panel used: the split depends on it
    small = small.subset(sorted(range(len(small)), key=lambda i: small.records[i].key))
    small, large = align(small, large)
    (s_cal, s_test), (l_cal, l_test) = split_runs(small, large, cal_fraction=cal_fraction, seed=seed)
    bins = int(max(1, min(n_bins, len(s_cal))))
    cal, test = RoutingData.from_runs(s_cal, l_cal), RoutingData.from_runs(s_test, l_test)
    try:
        router = make_router("CC", n_bins=bins, seed=seed).fit(cal)
    except ValueError as e:
        out["note"] = f"CC could not be fitted on the calibration half: {e}"
        return out
    cal_curve, test_curve = router.curve(cal), router.curve(test)
    acc_cal = np.asarray(cal_curve.accuracy, dtype=np.float64)
    share_cal = np.asarray(cal_curve.share_small, dtype=np.float64)
    # best calibration-half accuracy; among ties the point keeping most on the small model
    best = int(np.lexsort((-share_cal, -acc_cal))[0])
    ys, yl = test.small_scores, test.large_scores
    k = None
    if cal_curve.params is not None and test_curve.params is not None:
        k = cal_curve.params[best]
        j = list(test_curve.params).index(k)
        acc, share = float(test_curve.accuracy[j]), float(test_curve.share_small[j])
    else:
        to_large = router.route(test, 1.0 - float(share_cal[best]))
        acc = float(np.where(to_large, yl, ys).mean())
        share = float(1.0 - to_large.mean())
    n_test = len(test)
    lo, hi = wilson_interval(acc * n_test, n_test)
    out.update({"n": n_test, "accuracy": acc, "accuracy_lo": lo, "accuracy_hi": hi, "K": None if k is None else int(k),
                "share_small": share, "test_acc_small": float(ys.mean()), "test_acc_large": float(yl.mean()),
                "cal_accuracy_at_K": float(acc_cal[best])})
    return out
