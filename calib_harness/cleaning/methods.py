"""The cleaning rules of Hao et al. 2026, section 2.3 and appendix E, Algorithm 2, on arrays.

Shapes: ``m`` experts, ``n`` samples, ``k`` classes / options.

* ``pred``  (m, n) int: each expert's top-1 class (argmax of its calibrated probabilities);
* ``given`` (n,)   int: the given (possibly wrong) label;
* ``probs`` (m, n, k): calibrated class probabilities (rows sum to 1; padding = 0);
* ``ranks`` (m, n) int: rank (0 = most accurate) of the calibration-half confidence bin that
  each sample's confidence falls in, for each expert (see :class:`BinTable`).

Method 1, top-1 disagreement: flagged when every expert's prediction differs from the given
label.  Method 2, high-confidence disagreement: method 1 and, for every expert, its confidence
falls in one of its top-K bins by calibration-half accuracy.  Both take
``require_agreement=True`` to also demand that the experts predict the same (wrong) label.
Method 3, class thresholds ("CLEANLAB-inspired averaging"): per expert, the class threshold
``t_y`` is the mean probability of class ``y`` over the samples labelled ``y``; the candidates
of a sample are the classes whose probability exceeds their threshold; the sample is flagged
when a candidate set exists and its most probable candidate is not the given label (an empty
candidate set keeps the label, as the paper's pseudo-code has no ``Y*`` then).  Thresholds are
computed on the samples being cleaned, like Confident Learning does.  Several experts are
combined by ``combine``: ``"all"`` (default: every expert flags), ``"any"`` (one expert
flags), or ``"mean"`` (the rule applied once to the experts' averaged probabilities).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Sequence

import numpy as np

from calib_harness.binning import EqualCountBinner
from calib_harness.cleaning.base import CleaningMethod, MethodResult, register_cleaning_method

if TYPE_CHECKING:  # pragma: no cover
    from calib_harness.cleaning.experts import ExpertPanel

COMBINE_MODES = ("all", "any", "mean")


def _as_2d(pred) -> np.ndarray:
    p = np.asarray(pred)
    return p[None, :] if p.ndim == 1 else p


def agreed_label(pred) -> np.ndarray:
    """The label every expert predicts, or -1 where they differ."""
    p = _as_2d(pred)
    same = np.all(p == p[:1], axis=0)
    return np.where(same, p[0], -1)


def top1_disagreement(pred, given, require_agreement: bool = False) -> np.ndarray:
    """Method 1: every expert's top-1 prediction differs from the given label."""
    p = _as_2d(pred)
    g = np.asarray(given)
    flags = np.all(p != g[None, :], axis=0)
    if require_agreement:
        flags &= agreed_label(p) >= 0
    return flags


# -- method 2 -----------------------------------------------------------------------------


@dataclass
class BinTable:
    """Equal-count bins of one expert's calibrated confidence on the calibration half.

    The bins are :class:`calib_harness.binning.EqualCountBinner`'s (tie-aware: equal
    confidences never straddle a boundary, so a third of the confidences at exactly 1.0 make
    one bin, and ``n_bins`` may be smaller than asked).  ``rank[b]`` is bin ``b``'s rank by
    calibration-half accuracy (0 = most accurate; ties broken by the higher mean
    confidence).  New confidences are assigned by the binner's boundary rule (outside the
    fitted range: the first / last bin).
    """

    binner: EqualCountBinner
    upper: np.ndarray
    lower: np.ndarray
    accuracy: np.ndarray
    mean_confidence: np.ndarray
    count: np.ndarray
    rank: np.ndarray

    @property
    def n_bins(self) -> int:
        return int(self.upper.size)

    @classmethod
    def fit(cls, confidence, correct, n_bins: int = 15) -> "BinTable":
        c = np.asarray(confidence, dtype=np.float64).ravel()
        y = np.asarray(correct, dtype=np.float64).ravel()
        if c.shape != y.shape or c.size == 0:
            raise ValueError("confidence and correct must be non-empty and of one length")
        binner = EqualCountBinner(n_bins).fit(c)
        b = binner.labels_
        nb = binner.n_bins_
        count = np.bincount(b, minlength=nb)
        acc = np.bincount(b, weights=y, minlength=nb) / count
        mc = np.bincount(b, weights=c, minlength=nb) / count
        upper = np.array([c[b == i].max() for i in range(nb)])
        lower = np.array([c[b == i].min() for i in range(nb)])
        order = np.lexsort((-mc, -acc))  # primary: accuracy descending, then confidence
        rank = np.empty(nb, dtype=np.int64)
        rank[order] = np.arange(nb)
        return cls(binner, upper, lower, acc, mc, count, rank)

    def assign(self, confidence) -> np.ndarray:
        return self.binner.transform(np.asarray(confidence, dtype=np.float64).ravel())

    def ranks_of(self, confidence) -> np.ndarray:
        return self.rank[self.assign(confidence)]

    def rows(self) -> list[dict]:
        return [
            {
                "bin": i,
                "conf_low": float(self.lower[i]),
                "conf_high": float(self.upper[i]),
                "mean_confidence": float(self.mean_confidence[i]),
                "accuracy": float(self.accuracy[i]),
                "count": int(self.count[i]),
                "rank_by_accuracy": int(self.rank[i]),
            }
            for i in range(self.n_bins)
        ]


def min_k(pred, given, ranks, require_agreement: bool = False) -> np.ndarray:
    """Smallest K at which method 2 flags each sample (``inf`` if method 1 does not flag it).

    A sample is flagged at K iff it is flagged by method 1 and ``max_j rank_j < K``; so the
    sweep over K is a threshold on this number.
    """
    r = _as_2d(ranks)
    base = top1_disagreement(pred, given, require_agreement)
    need = r.max(axis=0).astype(np.float64) + 1.0
    return np.where(base, need, np.inf)


def high_confidence_disagreement(pred, given, ranks, k: int, require_agreement: bool = False) -> np.ndarray:
    """Method 2 at one K: disagreement and every expert's confidence in its top-K bins."""
    if k < 1:
        raise ValueError(f"K must be >= 1, got {k}")
    return min_k(pred, given, ranks, require_agreement) <= k


# -- method 3 -----------------------------------------------------------------------------


def class_thresholds(probs, given) -> np.ndarray:
    """``t_y`` = mean probability of class ``y`` over samples labelled ``y`` (``inf`` if none)."""
    p = np.asarray(probs, dtype=np.float64)
    g = np.asarray(given)
    k = p.shape[1]
    t = np.full(k, np.inf)
    for y in range(k):
        sel = g == y
        if sel.any():
            t[y] = p[sel, y].mean()
    return t


def class_threshold_single(probs, given) -> tuple[np.ndarray, np.ndarray]:
    """Method 3 for one expert: (flags, Y*) with ``Y* = -1`` where no class passes its threshold."""
    p = np.asarray(probs, dtype=np.float64)
    g = np.asarray(given)
    t = class_thresholds(p, g)
    cand = p > t[None, :]
    masked = np.where(cand, p, -np.inf)
    y_star = np.where(cand.any(axis=1), masked.argmax(axis=1), -1)
    flags = (y_star >= 0) & (y_star != g)
    return flags, y_star


def class_threshold(probs, given, combine: str = "all") -> tuple[np.ndarray, np.ndarray]:
    """Method 3 for m experts (``probs`` (m, n, k) or (n, k)): (flags, Y* per expert (m, n))."""
    p = np.asarray(probs, dtype=np.float64)
    if p.ndim == 2:
        p = p[None]
    if combine not in COMBINE_MODES:
        raise ValueError(f"combine must be one of {COMBINE_MODES}, got {combine!r}")
    if combine == "mean":
        f, y = class_threshold_single(p.mean(axis=0), given)
        return f, y[None]
    out = [class_threshold_single(pj, given) for pj in p]
    flags = np.stack([f for f, _ in out])
    ys = np.stack([y for _, y in out])
    return (flags.all(axis=0) if combine == "all" else flags.any(axis=0)), ys


# -- registered methods -----------------------------------------------------------------------


def _agreement_variants(require_agreement: bool | None) -> list[bool]:
    return [False, True] if require_agreement is None else [bool(require_agreement)]


@register_cleaning_method("top1")
class Top1Disagreement(CleaningMethod):
    """Method 1 (``M1 top-1``; ``M1 top-1 +agree`` when the experts must also agree).

    ``require_agreement=None`` returns both variants."""

    summary = "method 1: every expert's top-1 answer differs from the given label"

    def __init__(self, require_agreement: bool | None = None):
        self.require_agreement = require_agreement

    def find_label_issues(self, panel: "ExpertPanel") -> list[MethodResult]:
        return [
            self.result("M1 top-1" + (" +agree" if a else ""), top1_disagreement(panel.pred, panel.given, a), panel,
                        {"require_agreement": a})
            for a in _agreement_variants(self.require_agreement)
        ]


@register_cleaning_method("high-confidence")
class HighConfidenceDisagreement(CleaningMethod):
    """Method 2 at each K (``M2 K=<k>``, ``M2 +agree K=<k>``); ``ks=None`` sweeps 1 .. bins."""

    summary = "method 2: method 1, and every expert's confidence lies in its top-K bins by calibration-half accuracy"

    def __init__(self, ks: Sequence[int] | None = None, require_agreement: bool | None = None):
        self.ks = list(ks) if ks else None
        self.require_agreement = require_agreement

    def find_label_issues(self, panel: "ExpertPanel") -> list[MethodResult]:
        ks = self.ks or list(range(1, panel.n_bins + 1))
        if any(int(k) < 1 or int(k) > panel.n_bins for k in ks):
            raise ValueError(f"K must lie in 1..{panel.n_bins} (the number of bins, --bins), got {ks}")
        out = []
        for a in _agreement_variants(self.require_agreement):
            mk = min_k(panel.pred, panel.given, panel.ranks, a)
            for k in ks:
                out.append(
                    self.result(f"M2{' +agree' if a else ''} K={k}", mk <= k, panel,
                                {"K": int(k), "n_bins": panel.n_bins, "require_agreement": a})
                )
        return out


@register_cleaning_method("class-threshold")
class ClassThreshold(CleaningMethod):
    """Method 3 (``M3 class-threshold (<combine>)``); needs option scores."""

    needs_option_scores = True
    summary = "method 3: per-class thresholds on the experts' calibrated class probabilities"

    def __init__(self, combine: str = "all"):
        if combine not in COMBINE_MODES:
            raise ValueError(f"combine must be one of {COMBINE_MODES}, got {combine!r}")
        self.combine = combine

    def find_label_issues(self, panel: "ExpertPanel") -> list[MethodResult]:
        self.check_panel(panel)
        flags, y_star = class_threshold(panel.probs, panel.given, self.combine)
        quality = panel.p_given().mean(axis=0)
        return [
            self.result(f"M3 class-threshold ({self.combine})", flags, panel, {"combine": self.combine},
                        label_quality=quality, y_star=y_star)
        ]
