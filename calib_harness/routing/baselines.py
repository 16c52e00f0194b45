"""Baseline routers: threshold on the small model's confidence, random, oracle.

All three follow the router protocol of :mod:`calib_harness.routing.base` (``fit`` / ``score`` /
``route`` / ``curve``) and are registered by name.

* :class:`ThresholdRouter` (``threshold``): GATEKEEPER's deferral rule (Rabanser et al. 2025,
  section 3): keep the input on the small model when its raw confidence is at least a threshold,
  defer otherwise; its curve sweeps every threshold.
* :class:`RandomRouter` (``random``): its curve is the expected accuracy of random routing,
  ``s * p_small + (1 - s) * p_large`` (Hao et al. 2026 section 3.2, "theoretical accuracy";
  :func:`random_curve`).
* :class:`OracleRouter` (``oracle``): GATEKEEPER's ideal deferral (appendix B.3) realised per
  sample (:func:`oracle_priority`): the small model's errors are deferred first.  Among the small
  model's errors those the large model gets right come first, then the ones both get wrong; then
  the small model's correct answers that the large model also gets right, and last those only
  the small model gets right (for continuous scores: decreasing ``large - small`` gain, ties
  broken by the small model's score, lowest first).  Its curve is the best accuracy any router
  can reach at each share on these data; it lies on or above GATEKEEPER's stylised ideal curve
  eq. (11) and can exceed the large model's accuracy when the two models make different
  mistakes.  It reads the labels of the data it routes: an upper bound, never deployable.
"""

from __future__ import annotations

import numpy as np

from calib_harness.routing.base import Router, RoutingData, register_router
from calib_harness.routing.curves import RoutingCurve, curve_from_priority, random_curve

__all__ = ["ThresholdRouter", "RandomRouter", "OracleRouter", "oracle_priority", "random_curve"]


def oracle_priority(small_scores: np.ndarray, large_scores: np.ndarray) -> np.ndarray:
    """Keep-on-small priority of the per-sample ideal deferral (higher = kept longer).

    Deferred first: largest gain of deferring (``large - small``); equal gain: lowest small
    score.  Returned as a dense rank; equal ``(small, large)`` pairs share a rank and so move
    together.
    """
    s = np.asarray(small_scores, dtype=np.float64).ravel()
    l = np.asarray(large_scores, dtype=np.float64).ravel()
    order = np.lexsort((s, -(l - s)))  # primary: gain descending, secondary: s ascending
    ks, kl = s[order], l[order]
    new_group = np.r_[True, (ks[1:] != ks[:-1]) | (kl[1:] != kl[:-1])]
    rank = np.empty(s.size, dtype=np.float64)
    rank[order] = np.cumsum(new_group)
    return rank


def oracle_curve(small_scores: np.ndarray, large_scores: np.ndarray, name: str = "oracle") -> RoutingCurve:
    """The oracle's accuracy-vs-share curve on labelled data."""
    return curve_from_priority(name, oracle_priority(small_scores, large_scores), small_scores, large_scores)


@register_router("threshold")
class ThresholdRouter(Router):
    """Defer where the small model's raw confidence is lowest (GATEKEEPER's deferral rule).

    ``score`` is minus the confidence; ``route(data, share)`` defers the inputs whose confidence
    is below the calibration half's ``share`` quantile.
    """

    order = 20
    plot_style = {"color": "tab:green", "lw": 1.2}

    def _fit(self, calib: RoutingData) -> None:
        pass

    def score(self, data: RoutingData) -> np.ndarray:
        return -data.small_confidence


@register_router("random")
class RandomRouter(Router):
    """Random routing.  ``score`` draws a uniform number per input (seeded); the curve is the
    expectation ``s * p_small + (1 - s) * p_large`` (APGR exactly 0.5)."""

    order = 80
    plot_style = {"color": "grey", "lw": 1.2, "ls": "--"}
    expected = True

    def __init__(self, seed: int = 0):
        self.seed = seed

    def _fit(self, calib: RoutingData) -> None:
        pass

    def score(self, data: RoutingData) -> np.ndarray:
        return np.random.default_rng(self.seed).random(len(data))

    def curve(self, data: RoutingData) -> RoutingCurve:
        self._check()
        return random_curve(data.p_small, data.p_large)


@register_router("oracle")
class OracleRouter(Router):
    """Per-sample ideal deferral on the data it routes (reads their labels: an upper bound)."""

    order = 90
    plot_style = {"color": "black", "lw": 1.0, "ls": ":"}
    uses_test_labels = True

    def _fit(self, calib: RoutingData) -> None:
        pass

    def score(self, data: RoutingData) -> np.ndarray:
        return -oracle_priority(data.small_scores, data.large_scores)

    def route(self, data: RoutingData, share: float) -> np.ndarray:
        """The ``share`` of *these* inputs with the largest gain goes to the larger model."""
        self._check()
        s = np.asarray(self.score(data))
        n_large = int(round(share * s.size))
        mask = np.zeros(s.size, dtype=bool)
        mask[np.argsort(-s, kind="stable")[:n_large]] = True
        return mask
