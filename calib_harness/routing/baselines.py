"""Baseline routers: threshold on the small model's confidence, random, oracle.

* :class:`ThresholdRouter`: GATEKEEPER's deferral rule (Rabanser et al. 2025, section 3): keep
  the input on the small model when its confidence is at least ``tau``, defer otherwise.
  Sweeping ``tau`` gives the realised deferral curve.
* :func:`random_curve` (re-exported from :mod:`.curves`): the expected accuracy of random
  routing, ``s * p_small + (1 - s) * p_large`` (Hao et al. 2026 section 3.2, "theoretical
  accuracy").
* :class:`OracleRouter`: GATEKEEPER's ideal deferral (appendix B.3) realised per sample: the
  small model's errors are deferred first.  Among the small model's errors those the large model
  gets right come first, then the ones both get wrong; then the small model's correct answers
  that the large model also gets right, and last those only the small model gets right (for
  continuous scores: decreasing ``large - small`` gain, ties broken by the small model's
  score, lowest first).  Its curve is the best accuracy any router can reach at each share on
  these data; it lies on or above GATEKEEPER's stylised ideal curve eq. (11) and can exceed
  the large model's accuracy when the two models make different mistakes.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from calib_harness.routing.base import Router, RoutingData, register_router
from calib_harness.routing.curves import RoutingCurve, curve_from_priority, random_curve

__all__ = ["ThresholdRouter", "OracleRouter", "random_curve", "ThresholdCascadeRouter", "RandomRouter", "OracleCascadeRouter"]


@dataclass
class ThresholdRouter:
    """Keep on the small model iff ``confidence >= threshold``.

    ``fit(confidence, target_share_small)`` sets the threshold to the calibration-half quantile
    that keeps that share on the small model; ``curve`` sweeps every threshold on new data.
    """

    threshold: float = 0.5

    def fit(self, confidence: np.ndarray, target_share_small: float = 0.5) -> "ThresholdRouter":
        c = np.asarray(confidence, dtype=np.float64)
        if not 0.0 <= target_share_small <= 1.0:
            raise ValueError("target_share_small must be in [0, 1]")
        self.threshold = float(np.quantile(c, 1.0 - target_share_small)) if target_share_small > 0 else np.inf
        return self

    def keep_small(self, confidence: np.ndarray) -> np.ndarray:
        return np.asarray(confidence, dtype=np.float64) >= self.threshold

    def route(self, confidence: np.ndarray) -> np.ndarray:
        """``"small"`` / ``"large"`` per input."""
        return np.where(self.keep_small(confidence), "small", "large")

    @staticmethod
    def curve(confidence: np.ndarray, small_scores: np.ndarray, large_scores: np.ndarray, name: str = "threshold") -> RoutingCurve:
        """Every threshold on the given confidences (params = threshold per point)."""
        return curve_from_priority(name, confidence, small_scores, large_scores)


class OracleRouter:
    """Per-sample ideal deferral (needs both models' scores: an upper bound, not deployable)."""

    @staticmethod
    def keep_priority(small_scores: np.ndarray, large_scores: np.ndarray) -> np.ndarray:
        s = np.asarray(small_scores, dtype=np.float64).ravel()
        l = np.asarray(large_scores, dtype=np.float64).ravel()
        # Deferred first: largest gain of deferring (l - s); equal gain: lowest small score.
        # Returned as a dense rank (higher = kept on the small model longer); equal (s, l)
        # pairs share a rank and so move together.
        order = np.lexsort((s, -(l - s)))  # primary: gain descending, secondary: s ascending
        ks, kl = s[order], l[order]
        new_group = np.r_[True, (ks[1:] != ks[:-1]) | (kl[1:] != kl[:-1])]
        rank = np.empty(s.size, dtype=np.float64)
        rank[order] = np.cumsum(new_group)
        return rank

    @classmethod
    def curve(cls, small_scores: np.ndarray, large_scores: np.ndarray, name: str = "oracle") -> RoutingCurve:
        return curve_from_priority(name, cls.keep_priority(small_scores, large_scores), small_scores, large_scores)


# -- registered routers (protocol of calib_harness.routing.base) -----------------------------


@register_router("threshold")
class ThresholdCascadeRouter(Router):
    """Defer where the small model's raw confidence is lowest (GATEKEEPER's deferral rule)."""

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
class OracleCascadeRouter(Router):
    """Per-sample ideal deferral on the data it routes (reads their labels: an upper bound)."""

    order = 90
    plot_style = {"color": "black", "lw": 1.0, "ls": ":"}
    uses_test_labels = True

    def _fit(self, calib: RoutingData) -> None:
        pass

    def score(self, data: RoutingData) -> np.ndarray:
        return -OracleRouter.keep_priority(data.small_scores, data.large_scores)

    def route(self, data: RoutingData, share: float) -> np.ndarray:
        """The ``share`` of *these* inputs with the largest gain goes to the larger model."""
        self._check()
        s = np.asarray(self.score(data))
        n_large = int(round(share * s.size))
        mask = np.zeros(s.size, dtype=bool)
        mask[np.argsort(-s, kind="stable")[:n_large]] = True
        return mask
