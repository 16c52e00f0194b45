"""Confidence-advantage routing: Algorithm 1 of Hao et al. 2026 (section 2.2, appendix E).

Phase I (:meth:`AdvantageRouter.fit`, on the calibration half): cut the small model's
confidences into ``N`` equal-count bins ("histogram equalization"), and in each bin ``b_i``
compute the confidence advantage ``a_i = mean c_l - mean c_s`` of the large model over the
small one.  Sort the bins by ascending advantage; the first ``K`` form ``S``.

Phase II (:meth:`AdvantageRouter.keep_small`, on new inputs): find the bin of the small model's
confidence ``c_s(x)``; keep the small model's answer if that bin is in ``S``, else call the
large model.  ``K`` sweeps the trade-off (K = 0: everything to the large model; K = N:
everything on the small one).

CC feeds calibrated confidences of both models (each calibrated on the calibration half with
its own calibrator); UC feeds the raw ones.  The numeric router here does not care which.

Bins: :class:`calib_harness.binning.EqualCountBinner`, the project's one equal-count binner,
fitted on the small model's (calibrated) confidences of the calibration half.  Its rules apply
here unchanged: equal confidences never straddle a boundary (so a run with many tied
confidences, e.g. a third of them at exactly 1.0, ends with fewer than ``N`` bins:
``n_bins_`` says how many), bins are right-closed (a confidence equal to an edge goes to the
lower bin), values outside the fitted range go to the first / last bin, and every calibration
input goes back to the bin it was fitted in.

The registered routers (:mod:`calib_harness.routing.base`): ``UC`` (raw confidences) and ``CC``
(calibrated confidences, :class:`CalibratedConfidenceRouter`; its calibrators are chosen in
:mod:`calib_harness.routing.calibrated`).  Their ``score`` is the position of an input's
bin in the advantage order (higher = deferred earlier), and their curve has one point per K.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from calib_harness.binning import EqualCountBinner
from calib_harness.routing.base import Router, RoutingData, register_router
from calib_harness.routing.curves import RoutingCurve, routed_accuracy

logger = logging.getLogger(__name__)


@dataclass
class BinStats:
    """Per-bin statistics of Phase I (index = bin, in confidence order)."""

    count: np.ndarray
    mean_small: np.ndarray
    mean_large: np.ndarray
    advantage: np.ndarray
    acc_small: np.ndarray | None = None
    acc_large: np.ndarray | None = None


@dataclass
class AdvantageRouter:
    """Algorithm 1 on arrays of confidences (the algorithm; the registered routers ``CC`` / ``UC``
    and the N-model chains wrap it).

    Args:
        n_bins: number of equal-count bins N (on the small model's confidence).
        name: label used for curves (``CC`` / ``UC``).

    Fitted attributes: ``binner_`` (the :class:`~calib_harness.binning.EqualCountBinner`),
    ``edges_`` (its inner bin edges), ``stats_`` (:class:`BinStats`), ``order_`` (bins by
    ascending advantage: the first K are kept on the small model), ``n_bins_`` (bins made:
    fewer than ``n_bins`` when confidences tie).
    """

    n_bins: int = 15
    name: str = "CC"
    binner_: EqualCountBinner = field(default=None, repr=False)  # type: ignore[assignment]
    edges_: np.ndarray = field(default=None, repr=False)  # type: ignore[assignment]
    stats_: BinStats = field(default=None, repr=False)  # type: ignore[assignment]
    order_: np.ndarray = field(default=None, repr=False)  # type: ignore[assignment]

    @property
    def n_bins_(self) -> int:
        self._check()
        return len(self.edges_) + 1

    def _check(self) -> None:
        if self.edges_ is None:
            from sklearn.exceptions import NotFittedError

            raise NotFittedError(f"{self.name} router is not fitted; call fit() on the calibration half first")

    def fit(
        self,
        small_confidence: np.ndarray,
        large_confidence: np.ndarray,
        small_scores: np.ndarray | None = None,
        large_scores: np.ndarray | None = None,
        advantage: str = "confidence",
    ) -> "AdvantageRouter":
        """Phase I.  Scores are optional and only kept for the bin table (accuracy per bin).

        ``advantage="confidence"`` (Algorithm 1): ``a_i = mean c_l - mean c_s`` in bin ``i``.
        ``advantage="accuracy"``: ``a_i`` = the per-bin accuracy gain of the large model,
        each model's per-bin accuracy shrunk towards its overall accuracy
        (:func:`shrunk_bin_rates`); needs the scores.
        """
        cs = np.asarray(small_confidence, dtype=np.float64).ravel()
        cl = np.asarray(large_confidence, dtype=np.float64).ravel()
        if cs.shape != cl.shape:
            raise ValueError(f"small and large confidences differ in length: {cs.size} vs {cl.size}")
        if self.n_bins < 1:
            raise ValueError("n_bins must be >= 1")
        self.binner_ = EqualCountBinner(self.n_bins).fit(cs)
        self.edges_ = self.binner_.inner_edges_.copy()
        bins = self.binner_.labels_
        nb = self.binner_.n_bins_
        count = np.bincount(bins, minlength=nb).astype(np.float64)
        safe = np.maximum(count, 1)
        mean_s = np.bincount(bins, weights=cs, minlength=nb) / safe
        mean_l = np.bincount(bins, weights=cl, minlength=nb) / safe
        acc_s = acc_l = None
        if small_scores is not None and large_scores is not None:
            acc_s = np.bincount(bins, weights=np.asarray(small_scores, float), minlength=nb) / safe
            acc_l = np.bincount(bins, weights=np.asarray(large_scores, float), minlength=nb) / safe
        if advantage == "confidence":
            adv = mean_l - mean_s
        elif advantage == "accuracy":
            if acc_s is None:
                raise ValueError("advantage='accuracy' needs both models' scores")
            mean_s = shrunk_bin_rates(bins, np.asarray(small_scores, float), nb)
            mean_l = shrunk_bin_rates(bins, np.asarray(large_scores, float), nb)
            adv = mean_l - mean_s
        else:
            raise ValueError(f"advantage must be 'confidence' or 'accuracy', got {advantage!r}")
        self.stats_ = BinStats(count, mean_s, mean_l, adv, acc_s, acc_l)
        # ascending advantage; ties broken towards higher-confidence bins (more likely right)
        self.order_ = np.lexsort((-np.arange(nb), adv))
        return self

    def rank_of(self, small_confidence: np.ndarray) -> np.ndarray:
        """Position of each input's bin in the advantage order (0 = kept on the small model
        first): the input stays on the small model at K iff its rank is < K."""
        self._check()
        rank = np.empty(self.n_bins_, dtype=np.float64)
        rank[self.order_] = np.arange(self.n_bins_)
        return rank[self.bin_of(small_confidence)]

    def bin_of(self, small_confidence: np.ndarray) -> np.ndarray:
        self._check()
        return self.binner_.transform(np.asarray(small_confidence, dtype=np.float64).ravel())

    def selected_bins(self, k: int) -> np.ndarray:
        """The set S: the K bins with the smallest advantage."""
        self._check()
        if not 0 <= k <= self.n_bins_:
            raise ValueError(f"K must be in [0, {self.n_bins_}], got {k}")
        return np.sort(self.order_[:k])

    def keep_small(self, small_confidence: np.ndarray, k: int) -> np.ndarray:
        """Phase II: True where the input stays on the small model."""
        return np.isin(self.bin_of(small_confidence), self.selected_bins(k))

    def curve(self, small_confidence: np.ndarray, small_scores: np.ndarray, large_scores: np.ndarray) -> RoutingCurve:
        """Share kept on the small model and accuracy for K = 0..N on new data."""
        self._check()
        ks = np.arange(self.n_bins_ + 1)
        share, acc = [], []
        for k in ks:
            keep = self.keep_small(small_confidence, int(k))
            share.append(float(keep.mean()))
            acc.append(routed_accuracy(keep, small_scores, large_scores))
        return RoutingCurve(self.name, np.array(share), np.array(acc), ks, {"n_bins": self.n_bins_})


def shrunk_bin_rates(bins: np.ndarray, y: np.ndarray, n_bins: int) -> np.ndarray:
    """Per-bin mean of ``y`` shrunk towards the overall mean (empirical-Bayes beta-binomial).

    ``rate_i = (sum_i + m * p) / (n_i + m)`` with ``p`` the overall mean and the prior strength
    ``m = p (1 - p) / tau^2 - 1`` from the method of moments, ``tau^2`` the spread of the true
    bin rates (observed between-bin variance minus the binomial noise ``p (1 - p) / n_i``).
    No spread beyond noise: every bin gets ``p``.
    """
    bins = np.asarray(bins, dtype=np.int64)
    y = np.asarray(y, dtype=np.float64)
    n = np.bincount(bins, minlength=n_bins).astype(np.float64)
    sums = np.bincount(bins, weights=y, minlength=n_bins)
    p = float(y.mean()) if y.size else 0.0
    filled = n > 0
    rates = np.where(filled, sums / np.maximum(n, 1), p)
    if filled.sum() < 2 or p <= 0.0 or p >= 1.0:
        return rates
    w = n[filled] / n[filled].sum()
    observed = float(np.sum(w * (rates[filled] - p) ** 2))
    noise = float(np.sum(w * p * (1 - p) / n[filled]))
    tau2 = observed - noise
    if tau2 <= 0:
        return np.full(n_bins, p)
    m = max(p * (1 - p) / tau2 - 1.0, 0.0)
    return (sums + m * p) / (n + m)


# -- registered routers ------------------------------------------------------------------


class _BinnedRouter(Router):
    """Algorithm 1 behind the router protocol; subclasses say which confidences it bins."""

    binned = True

    def __init__(self, n_bins: int = 15):
        self.n_bins = n_bins

    def _confidences(self, data: RoutingData, fit: bool) -> tuple[np.ndarray, np.ndarray | None]:
        """(small, large) confidences the router bins; ``large`` only needed at fit time."""
        raise NotImplementedError

    def _advantage(self) -> str:
        return "confidence"

    def _fit(self, calib: RoutingData) -> None:
        cs, cl = self._confidences(calib, fit=True)
        self.router_ = AdvantageRouter(int(self.n_bins), self.name).fit(
            cs, cl, calib.small_scores, calib.large_scores, advantage=self._advantage()
        )

    def small_confidence(self, data: RoutingData) -> np.ndarray:
        """The small model's confidence as this router bins it."""
        self._check_router()
        return self._confidences(data, fit=False)[0]

    def _check_router(self) -> None:
        from sklearn.utils.validation import check_is_fitted

        check_is_fitted(self, "router_")

    def score(self, data: RoutingData) -> np.ndarray:
        return self.router_.rank_of(self.small_confidence(data))

    def curve(self, data: RoutingData) -> RoutingCurve:
        """One operating point per K = 0..N (``params`` = K)."""
        self._check()
        return self.router_.curve(self.small_confidence(data), data.small_scores, data.large_scores)

    def k_for_share(self, share_small: float) -> int:
        """Smallest K keeping at least ``share_small`` of the calibration half on the small model."""
        self._check()
        counts = self.router_.stats_.count
        shares = np.concatenate([[0.0], np.cumsum(counts[self.router_.order_]) / counts.sum()])
        ok = np.flatnonzero(shares >= share_small - 1e-12)
        return int(ok[0]) if ok.size else self.router_.n_bins_

    def bin_table(self) -> list[dict[str, Any]]:
        """Phase I per bin (calibration half): count, mean confidence and accuracy of both models,
        advantage, and the K at which the bin joins the small model's set."""
        self._check()
        st, r = self.router_.stats_, self.router_
        rank = np.empty(r.n_bins_, dtype=np.int64)
        rank[r.order_] = np.arange(r.n_bins_)
        edges = r.binner_.edges_
        rows = []
        for b in range(r.n_bins_):
            rows.append(
                {
                    "bin": b,
                    "low": float(edges[b]),
                    "high": float(edges[b + 1]),
                    "count": int(st.count[b]),
                    "small_confidence": float(st.mean_small[b]),
                    "small_accuracy": None if st.acc_small is None else float(st.acc_small[b]),
                    "large_confidence": float(st.mean_large[b]),
                    "large_accuracy": None if st.acc_large is None else float(st.acc_large[b]),
                    "advantage": float(st.advantage[b]),
                    "kept_from_k": int(rank[b]) + 1,
                }
            )
        return rows

    def info(self) -> dict[str, Any]:
        d = super().info()
        if hasattr(self, "router_"):
            d["n_bins_made"] = int(self.router_.n_bins_)
        return d


@register_router("UC")
class UncalibratedConfidenceRouter(_BinnedRouter):
    """Algorithm 1 on the raw confidences of both models (the paper's UC)."""

    order = 10
    plot_style = {"color": "tab:blue", "lw": 1.6, "marker": "s", "ms": 3}

    def _confidences(self, data: RoutingData, fit: bool):
        return data.small_confidence, data.large_confidence
