"""Accuracy-vs-share curves of two-model routers, normalised APGR and GATEKEEPER's s_d.

Pure numpy.  Conventions used everywhere in :mod:`calib_harness.routing`:

* model 1 is the *small* (weak, cheap) model, model 2 the *large* one (for two large models,
  model 1 is "the first model");
* ``share_small`` is the fraction of test inputs kept on model 1;
* ``cost`` = ``1 - share_small`` is the fraction sent to model 2, which is both the relative
  cost of Hao et al. 2026 (appendix A.1) and GATEKEEPER's deferral ratio ``r`` (Rabanser et al.
  2025, section 4.1);
* ``accuracy`` is the mean per-sample score of the routed system: the small model's score where
  the input stays, the large model's where it is sent.

Interpolation (how every area here is computed): a router reaches only a finite set of
operating points (one per K, threshold or quantile).  Each curve is sorted by cost, points at
the same cost are averaged, the two trivial end points (cost 0 = all on the small model, cost 1
= all on the large model) are added when missing (:func:`knots`), and the curve between them is
the straight line.  Linear interpolation between two operating points is what a router achieves
by flipping a biased coin between them, so the interpolated curve is achievable.  Areas are
exact: the trapezoid rule on the knots of that piecewise-linear curve (:func:`curve_area`).

Roles in the normalisation: APGR and s_d are always normalised from the weaker to the stronger
model *of the data they are computed on* (``p_weak = min``, ``p_strong = max``).  The area under
the curve does not depend on which end is called "small", so a curve and its mirror image
(small and large swapped) get the same figures, and a larger model that happens to be less
accurate on the test half never flips their sign.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from typing import Any

import numpy as np

GRID_SIZE = 1001


@dataclass
class RoutingCurve:
    """Operating points of one router on one data split.

    Attributes:
        name: router name (``CC``, ``UC``, ``threshold``, ``MF``, ``random``, ``oracle`` ...).
        share_small: fraction of inputs kept on the small model, per operating point.
        accuracy: accuracy of the routed system at that point.
        params: the knob per point (K, threshold, strong-model quantile ...), same length.
        meta: anything else (number of bins, calibrator ...).
    """

    name: str
    share_small: np.ndarray
    accuracy: np.ndarray
    params: np.ndarray | None = None
    meta: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.share_small = np.asarray(self.share_small, dtype=np.float64)
        self.accuracy = np.asarray(self.accuracy, dtype=np.float64)
        if self.share_small.shape != self.accuracy.shape:
            raise ValueError(f"{self.name}: share_small and accuracy differ in length")
        if self.params is not None:
            self.params = np.asarray(self.params)

    @property
    def cost(self) -> np.ndarray:
        """Share of inputs sent to the large model (= deferral ratio r)."""
        return 1.0 - self.share_small

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "share_small": self.share_small.tolist(),
            "accuracy": self.accuracy.tolist(),
            "params": None if self.params is None else np.asarray(self.params).tolist(),
            "meta": self.meta,
        }


def routed_accuracy(keep_small: np.ndarray, small_scores: np.ndarray, large_scores: np.ndarray) -> float:
    """Accuracy of the system that answers with the small model where ``keep_small`` is true."""
    keep = np.asarray(keep_small, dtype=bool)
    return float(np.mean(np.where(keep, small_scores, large_scores)))


def curve_from_priority(
    name: str,
    keep_priority: np.ndarray,
    small_scores: np.ndarray,
    large_scores: np.ndarray,
    meta: dict[str, Any] | None = None,
) -> RoutingCurve:
    """Curve of the router that keeps inputs on the small model in decreasing ``keep_priority``.

    Every distinct priority value is one operating point (tied inputs move together, as a
    threshold on that value would move them), from "everything on the large model" (share 0)
    to "everything on the small model" (share 1).  ``params`` holds the threshold: inputs
    with priority >= it stay on the small model (``+inf`` for the all-large point).
    """
    p = np.asarray(keep_priority, dtype=np.float64).ravel()
    s = np.asarray(small_scores, dtype=np.float64).ravel()
    l = np.asarray(large_scores, dtype=np.float64).ravel()
    if not (p.shape == s.shape == l.shape) or p.size == 0:
        raise ValueError("priority, small_scores and large_scores must be non-empty and of one length")
    n = p.size
    order = np.argsort(-p, kind="stable")
    gain = (s - l)[order]  # accuracy change when one input moves from large to small
    cum = np.concatenate([[0.0], np.cumsum(gain)])
    ps = p[order]
    # cut points: after the last input of each group of equal priority
    ends = np.flatnonzero(np.r_[ps[1:] != ps[:-1], True]) + 1
    counts = np.concatenate([[0], ends])
    base = l.sum()
    acc = (base + cum[counts]) / n
    thresholds = np.concatenate([[np.inf], ps[ends - 1]])
    return RoutingCurve(name, counts / n, acc, thresholds, dict(meta or {}))


def random_curve(p_small: float, p_large: float, n_points: int = 101) -> RoutingCurve:
    """Random routing: expected accuracy ``s * p_small + (1 - s) * p_large`` (a straight line)."""
    share = np.linspace(0.0, 1.0, n_points)
    return RoutingCurve("random", share, share * p_small + (1 - share) * p_large, share, {"expected": True})


def ideal_deferral_accuracy(r: np.ndarray, p_small: float, p_large: float) -> np.ndarray:
    """GATEKEEPER's ideal deferral curve, eq. (11) of appendix B.3 (Rabanser et al. 2025).

    ``acc_ideal(r) = p_s + (p_l - p_s) / (1 - p_s) * r`` for ``r <= 1 - p_s``, else ``p_l``:
    the small model's mistakes are deferred first and the joint accuracy reaches ``p_l`` once
    all of them are deferred.
    """
    r = np.asarray(r, dtype=np.float64)
    d = 1.0 - p_small
    if d <= 0:
        return np.full_like(r, p_small)
    return np.where(r <= d, p_small + (p_large - p_small) / d * r, p_large)


def on_grid(curve: RoutingCurve, p_small: float, p_large: float, grid_size: int = GRID_SIZE) -> tuple[np.ndarray, np.ndarray]:
    """(cost grid, accuracy on the grid) of the piecewise-linear curve (for plots and tables;
    areas use :func:`curve_area`)."""
    ucost, uacc = knots(curve, p_small, p_large)
    grid = np.linspace(0.0, 1.0, grid_size)
    return grid, np.interp(grid, ucost, uacc)


def knots(curve: RoutingCurve, p_small: float, p_large: float) -> tuple[np.ndarray, np.ndarray]:
    """(cost, accuracy) knots of the piecewise-linear curve: sorted by cost, equal costs
    averaged, end points ``(0, p_small)`` and ``(1, p_large)`` added when missing."""
    cost = curve.cost
    _, inv = np.unique(np.round(cost, 12), return_inverse=True)  # float noise: same cost
    cnt = np.bincount(inv)
    ucost = np.bincount(inv, weights=cost) / cnt  # the costs themselves, not their rounding
    uacc = np.bincount(inv, weights=curve.accuracy) / cnt
    if ucost.size == 0 or ucost[0] > 0:
        ucost, uacc = np.r_[0.0, ucost], np.r_[p_small, uacc]
    if ucost[-1] < 1:
        ucost, uacc = np.r_[ucost, 1.0], np.r_[uacc, p_large]
    return ucost, uacc


def curve_area(curve: RoutingCurve, p_small: float, p_large: float) -> float:
    """Exact area under the piecewise-linear accuracy-vs-cost curve on [0, 1]."""
    c, a = knots(curve, p_small, p_large)
    return float(np.sum(np.diff(c) * (a[1:] + a[:-1]) / 2.0))


def apgr(curve: RoutingCurve, p_small: float, p_large: float, grid_size: int | None = None, warn: bool = True) -> float:
    """Normalised APGR (Hao et al. 2026, appendix A.1, eqs. 1-2), exact.

    ``P~(c) = (P(c) - P_weak) / (P_strong - P_weak)`` and ``APGR = int_0^1 P~(c) dc``, with
    ``c`` the share of inputs sent to the stronger model, ``P_weak = min(p_small, p_large)``
    and ``P_strong = max``: ``APGR = (area - P_weak) / (P_strong - P_weak)`` with the exact area
    of the piecewise-linear curve (module docstring).  Random routing gives 0.5; the weak model
    alone 0, the strong model alone 1.  ``nan`` (with a warning) when both models score the same.
    ``grid_size`` is accepted for backward compatibility and ignored; ``warn=False`` for callers
    that handle the ``nan`` themselves.
    """
    p_weak, p_strong = min(p_small, p_large), max(p_small, p_large)
    if np.isclose(p_strong, p_weak):
        if warn:
            warnings.warn("APGR undefined: the two models have the same accuracy", RuntimeWarning, stacklevel=2)
        return float("nan")
    return (curve_area(curve, p_small, p_large) - p_weak) / (p_strong - p_weak)


def deferral_score(curve: RoutingCurve, p_small: float, p_large: float, grid_size: int | None = None) -> float:
    """GATEKEEPER's deferral performance s_d (Rabanser et al. 2025, section 4.1, eq. 10).

    ``s_d = int_0^1 (acc_real(r) - acc_rand(r)) dr / int_0^1 (acc_ideal(r) - acc_rand(r)) dr``
    with ``r`` the deferral ratio (share sent to the large model), ``acc_rand`` the straight line
    from ``p_s`` to ``p_l`` and ``acc_ideal`` eq. (11) of its appendix B.3
    (:func:`ideal_deferral_accuracy`).  The denominator has the closed form
    ``p_s (p_l - p_s) / 2``.  1 = ideal deferral, 0 = no better than random.  ``nan`` (with a
    warning) when the denominator is 0 (equal accuracies or a weaker model that is never right).
    As APGR, exact and normalised from the weaker to the stronger model (``p_s = min``,
    ``p_l = max``): the numerator ``area - (p_s + p_l) / 2`` does not depend on the direction,
    so ``s_d = (2 APGR - 1) / p_weak``.  ``grid_size`` is accepted and ignored.
    """
    p_weak, p_strong = min(p_small, p_large), max(p_small, p_large)
    denom = p_weak * (p_strong - p_weak) / 2.0
    if np.isclose(denom, 0.0):
        warnings.warn("s_d undefined: ideal and random deferral coincide", RuntimeWarning, stacklevel=2)
        return float("nan")
    return (curve_area(curve, p_small, p_large) - (p_weak + p_strong) / 2.0) / denom


def accuracy_at_share(curve: RoutingCurve, share_small: float, p_small: float, p_large: float) -> float:
    """Interpolated accuracy of a curve at a given share kept on the small model."""
    c, a = knots(curve, p_small, p_large)
    return float(np.interp(1.0 - share_small, c, a))
