"""THE equal-count binner: fit bin edges on one set of values, assign any values to them.

Calibration (``HistogramBinning``), metrics (equal-count ECE, reliability tables), routing
(the advantage router's bins) and cleaning (per-bin tables) all use :class:`EqualCountBinner`,
so one boundary rule and one tie rule hold everywhere.

Fitting (``fit(x)`` on the calibration half)
    The values are sorted and the target cuts are the ``np.array_split`` ranks: ``n`` values
    into ``n_bins`` groups, the first ``n % n_bins`` groups one larger.  A cut may only fall
    between two *different* values, so equal values never straddle a boundary: a target cut
    inside a run of ties moves to the nearest position where the value changes (the lower
    one when both are equally near), and cuts that land on the same position merge.  Hence
    ``n_bins_ <= n_bins``; a third of the values at exactly 1.0 gives one bin holding all of
    them instead of five bins sharing one value.

Boundary rule (``transform(x)``)
    Inner edge ``j`` lies midway between the largest value of bin ``j`` and the smallest of
    bin ``j + 1`` (the largest value of bin ``j`` itself if the midpoint rounds up onto the
    next value).  Bins are right-closed: ``x`` goes to the number of inner edges strictly
    below it, so a value equal to an edge goes to the lower bin.  Values below the fitted
    range go to bin 0, values above it to the last bin.  Every fitting value goes back to
    the bin it was fitted in (``transform(x) == labels_``).

``edges_`` is ``[min(x), inner edges..., max(x)]`` (finite, so it is strict JSON); only the
inner edges decide bins.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from sklearn.base import BaseEstimator
from sklearn.exceptions import NotFittedError

__all__ = ["EqualCountBinner", "equal_count_cuts", "snap_cuts"]


def _as_values(x, name: str = "x") -> np.ndarray:
    a = np.asarray(x, dtype=np.float64)
    if a.ndim == 2 and a.shape[1] == 1:
        a = a[:, 0]
    if a.ndim != 1:
        raise ValueError(f"{name} must be a 1-d array, got shape {a.shape}")
    if np.isnan(a).any():
        raise ValueError(f"{name} contains NaN ({int(np.isnan(a).sum())} values)")
    return a


def equal_count_cuts(sorted_values: np.ndarray, n_bins: int) -> np.ndarray:
    """Cut positions (ranks ``p``: bins are ``xs[cut_{j-1}:cut_j]``) into sorted values, tie-aware.

    Targets are ``np.array_split``'s group boundaries; each one inside a run of equal
    values moves to the nearest rank where the value changes (the lower on a draw);
    duplicates merge.  Returns a sorted array of unique ranks in ``(0, n)``.
    """
    xs = np.asarray(sorted_values, dtype=np.float64)
    valid = np.flatnonzero(np.diff(xs) > 0) + 1  # ranks p with xs[p - 1] < xs[p]
    return snap_cuts(xs.size, n_bins, valid)


def snap_cuts(n: int, n_bins: int, valid: np.ndarray) -> np.ndarray:
    """:func:`equal_count_cuts` given ``n`` and the sorted ranks ``valid`` where the value changes."""
    k = max(1, min(int(n_bins), int(n)))
    if k == 1 or valid.size == 0:
        return np.zeros(0, dtype=np.int64)
    q, r = divmod(int(n), k)
    sizes = np.full(k, q, dtype=np.int64)
    sizes[:r] += 1
    targets = np.cumsum(sizes)[:-1]
    pos = np.searchsorted(valid, targets)  # valid[pos - 1] < target <= valid[pos]
    right = valid[np.minimum(pos, valid.size - 1)]
    left = valid[np.maximum(pos - 1, 0)]
    d_right = np.where(pos < valid.size, right - targets, np.iinfo(np.int64).max)
    d_left = np.where(pos > 0, targets - left, np.iinfo(np.int64).max)
    snapped = np.where(d_left <= d_right, left, right)
    return np.unique(snapped)


class EqualCountBinner(BaseEstimator):
    """Equal-count (histogram equalisation) bins fitted on one set of values, tie-aware.

    See the module docstring for the tie rule and the boundary rule.

    Args:
        n_bins: the number of bins asked for (>= 1); fewer are made when there are fewer
            values or fewer distinct values than that.

    Attributes:
        edges_: ``(n_bins_ + 1,)`` -- ``min(x)``, the inner edges, ``max(x)``.
        n_bins_: the number of bins actually made.
        counts_: ``(n_bins_,)`` fitting values per bin.
        labels_: ``(n,)`` bin of each fitting value (what ``transform`` gives them back).
    """

    def __init__(self, n_bins: int = 15):
        self.n_bins = n_bins

    def fit(self, x, y=None) -> "EqualCountBinner":
        if int(self.n_bins) < 1:
            raise ValueError(f"n_bins must be >= 1, got {self.n_bins}")
        x = _as_values(x)
        if x.size == 0:
            raise ValueError("cannot fit bins on no values")
        order = np.argsort(x, kind="stable")
        xs = x[order]
        cuts = equal_count_cuts(xs, int(self.n_bins))
        lower_max = xs[cuts - 1]  # largest value of the bin below each cut
        upper_min = xs[cuts]  # smallest value of the bin above it
        mid = lower_max + 0.5 * (upper_min - lower_max)
        inner = np.where(mid < upper_min, mid, lower_max)
        self.edges_ = np.concatenate([[xs[0]], inner, [xs[-1]]])
        self.n_bins_ = int(cuts.size + 1)
        sizes = np.diff(np.concatenate([[0], cuts, [x.size]]))
        self.counts_ = sizes.astype(np.int64)
        labels = np.empty(x.size, dtype=np.int64)
        labels[order] = np.repeat(np.arange(self.n_bins_), sizes)
        self.labels_ = labels
        return self

    def _check_fitted(self) -> None:
        if not hasattr(self, "edges_"):
            raise NotFittedError(f"{type(self).__name__} is not fitted yet; call fit() first")

    @property
    def inner_edges_(self) -> np.ndarray:
        self._check_fitted()
        return self.edges_[1:-1]

    def transform(self, x) -> np.ndarray:
        """Bin id (0 .. n_bins_ - 1) of each value: the number of inner edges strictly below it."""
        self._check_fitted()
        x = _as_values(x)
        return np.searchsorted(self.edges_[1:-1], x, side="left").astype(np.int64)

    def fit_transform(self, x, y=None) -> np.ndarray:
        return self.fit(x).labels_.copy()

    # -- JSON ---------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        self._check_fitted()
        return {
            "type": type(self).__name__,
            "n_bins": int(self.n_bins),
            "edges": self.edges_.tolist(),
            "counts": self.counts_.tolist(),
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "EqualCountBinner":
        if d.get("type") != cls.__name__:
            raise ValueError(f"JSON holds a {d.get('type')!r}, not a {cls.__name__}")
        obj = cls(int(d["n_bins"]))
        obj.edges_ = np.asarray(d["edges"], dtype=np.float64)
        obj.counts_ = np.asarray(d["counts"], dtype=np.int64)
        obj.n_bins_ = int(obj.edges_.size - 1)
        if obj.counts_.size != obj.n_bins_:
            raise ValueError(f"{cls.__name__} JSON: {obj.counts_.size} counts for {obj.n_bins_} bins")
        return obj
