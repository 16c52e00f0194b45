"""Confident Learning (Northcutt et al. 2021) through ``cleanlab.filter.find_label_issues``.

It runs on the same calibrated probabilities as the other methods.  With several experts, their
calibrated probabilities are averaged per sample (an equal-weight ensemble) and cleanlab sees
that one matrix.  Every result names the ``filter_by`` variant it used.
"""

from __future__ import annotations

import logging
import warnings
from dataclasses import dataclass
from typing import TYPE_CHECKING, Sequence

import numpy as np

from calib_harness.cleaning.base import CleaningMethod, MethodNotApplicable, MethodResult, register_cleaning_method

if TYPE_CHECKING:  # pragma: no cover
    from calib_harness.cleaning.experts import ExpertPanel

logger = logging.getLogger(__name__)

#: ``filter_by`` values of cleanlab 2.x that return a mask from labels + pred_probs alone.
FILTER_BY = (
    "prune_by_noise_rate",
    "prune_by_class",
    "both",
    "confident_learning",
    "predicted_neq_given",
    "low_normalized_margin",
    "low_self_confidence",
)


@dataclass
class CLResult:
    filter_by: str
    flags: np.ndarray  # (n,) bool
    ranked: np.ndarray  # indices of the flagged samples, most likely error first (self_confidence)
    pred_probs: np.ndarray  # (n, k) probabilities cleanlab saw


def ensemble_probs(probs) -> np.ndarray:
    """(m, n, k) -> (n, k): mean over experts, renormalised."""
    p = np.asarray(probs, dtype=np.float64)
    if p.ndim == 3:
        p = p.mean(axis=0)
    p = np.clip(p, 0.0, None)
    return p / p.sum(axis=1, keepdims=True)


def confident_learning(probs, given, filter_by: str = "prune_by_noise_rate") -> CLResult:
    """Flags of ``find_label_issues(given, mean calibrated probs, filter_by=...)``."""
    from cleanlab.filter import find_label_issues

    if filter_by not in FILTER_BY:
        raise ValueError(f"filter_by must be one of {FILTER_BY}, got {filter_by!r}")
    p = ensemble_probs(probs)
    g = np.asarray(given, dtype=np.int64)
    if g.min() < 0 or g.max() >= p.shape[1]:
        raise ValueError("given labels must index the probability columns")
    with warnings.catch_warnings(record=True) as caught:
        # cleanlab warns about classes with few examples (the result is still valid): its
        # UserWarnings are passed on to the log once each, not shown as warning source lines
        warnings.simplefilter("always", UserWarning)
        flags = find_label_issues(g, p, filter_by=filter_by, n_jobs=1)
        ranked = find_label_issues(
            g, p, filter_by=filter_by, n_jobs=1, return_indices_ranked_by="self_confidence"
        )
    for cat, msg in dict.fromkeys((w.category, str(w.message)) for w in caught):
        log = logger.info if issubclass(cat, UserWarning) else logger.warning
        log("cleanlab (%s): %s: %s", filter_by, cat.__name__, msg)
    return CLResult(filter_by, np.asarray(flags, dtype=bool), np.asarray(ranked, dtype=np.int64), p)


@register_cleaning_method("confident-learning")
class ConfidentLearning(CleaningMethod):
    """Confident Learning (``CL <filter_by>``), one result per ``filter_by``; needs option scores."""

    needs_option_scores = True
    summary = "Confident Learning: cleanlab's find_label_issues on the experts' mean calibrated probabilities"

    def __init__(self, filter_by: Sequence[str] | str = ("prune_by_noise_rate",)):
        fbs = [filter_by] if isinstance(filter_by, str) else list(filter_by)
        bad = [f for f in fbs if f not in FILTER_BY]
        if bad:
            raise ValueError(f"filter_by must be among {FILTER_BY}, got {bad}")
        self.filter_by = fbs

    def find_label_issues(self, panel: "ExpertPanel") -> list[MethodResult]:
        self.check_panel(panel)
        if np.unique(panel.given).size < 2:
            raise MethodNotApplicable("cleanlab needs at least 2 classes among the given labels; these samples have one")
        out = []
        for fb in self.filter_by:
            res = confident_learning(panel.probs, panel.given, fb)
            quality = res.pred_probs[np.arange(panel.n), panel.given]  # cleanlab's self_confidence
            out.append(
                self.result(f"CL {fb}", res.flags, panel, {"filter_by": fb, "ensemble": "mean of calibrated probs"},
                            filter_by=fb, label_quality=quality, cl=res)
            )
        return out
