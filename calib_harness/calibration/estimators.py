"""Post-hoc calibrators as small scikit-learn estimators (section 2.1 of Hao et al., 2026).

* :class:`TemperatureScaling` -- ``softmax(z / T)`` over class logits or option
  log-likelihoods, ``T`` fitted by the NLL of the gold labels (``-inf`` pads rows with
  fewer options).  ``predict_proba`` gives the ``(n, k)`` class probabilities.
* :class:`PlattScaling` -- ``sigmoid(a x + b)`` over one scalar feature (the paper uses the
  mean logit of the sampled tokens), fitted by the NLL of the verifier's scores.
* :class:`HistogramBinning` -- the mean score of the calibration samples in the feature's
  bin (equal-count bins of :class:`calib_harness.binning.EqualCountBinner` by default).
* :class:`IsotonicCalibration` -- scikit-learn's isotonic regression of score on feature.

Shapes follow scikit-learn.  The three scalar calibrators are binary probabilistic
models of "the answer is correct": ``predict_proba(x)`` is ``(n, 2)`` with columns
``[P(wrong), P(correct)]`` as for any scikit-learn binary classifier, and ``predict(x)`` /
``transform(x)`` give the ``(n,)`` calibrated confidence ``P(correct)`` (as
``IsotonicRegression.predict`` does).  For :class:`TemperatureScaling` ``predict_proba`` and
``transform`` are the ``(n, k)`` calibrated class probabilities.

Solvers: the temperature is the root of the NLL's derivative in ``beta = 1/T`` found by
``scipy.optimize.brentq`` (the NLL is convex in ``beta``); Platt scaling minimises its NLL with
``scipy.optimize.minimize(method="trust-exact")`` with the exact gradient and Hessian;
isotonic regression is scikit-learn's.  ``to_json()`` / ``from_json()`` round-trip every
calibrator (:func:`calibrator_from_json` dispatches on ``"type"``).
"""

from __future__ import annotations

import json
import logging
from typing import Any, ClassVar

import numpy as np
from scipy.optimize import brentq, minimize
from scipy.special import expit, log_expit
from sklearn.base import BaseEstimator
from sklearn.exceptions import NotFittedError

from calib_harness.binning import EqualCountBinner

logger = logging.getLogger(__name__)

JSON_VERSION = 1
BINNINGS = ("equal_count", "equal_width")

# -- input validation ---------------------------------------------------------------------


def _as_1d(x, name: str) -> np.ndarray:
    a = np.asarray(x, dtype=np.float64)
    if a.ndim == 2 and a.shape[1] == 1:
        a = a[:, 0]
    if a.ndim != 1:
        raise ValueError(f"{name} must be a 1-d array of scalars, got shape {a.shape}")
    if a.size == 0:
        raise ValueError(f"{name} is empty")
    if not np.isfinite(a).all():
        raise ValueError(f"{name} contains NaN or inf ({int((~np.isfinite(a)).sum())} values)")
    return a


def _check_xy(x, y) -> tuple[np.ndarray, np.ndarray]:
    x = _as_1d(x, "x")
    y = _as_1d(y, "y")
    if x.shape != y.shape:
        raise ValueError(f"x and y differ in length: {x.size} vs {y.size}")
    if y.min() < 0 or y.max() > 1:
        raise ValueError(f"y (verifier scores) must lie in [0, 1], got range [{y.min()}, {y.max()}]")
    return x, y


def _check_logits(logits) -> np.ndarray:
    z = np.asarray(logits, dtype=np.float64)
    if z.ndim != 2:
        raise ValueError(f"logits must be a (n, k) matrix, got shape {z.shape}")
    if z.shape[0] == 0:
        raise ValueError("logits has no rows")
    if z.shape[1] < 2:
        raise ValueError(f"logits needs at least 2 columns (classes / options), got {z.shape[1]}")
    if np.isnan(z).any() or np.isposinf(z).any():
        raise ValueError("logits contains NaN or +inf (only -inf padding is allowed)")
    finite_rows = np.isfinite(z).any(axis=1)
    if not finite_rows.all():
        raise ValueError(f"{int((~finite_rows).sum())} logit rows are all -inf")
    return z


# -- base class ---------------------------------------------------------------------------


class _Calibrator(BaseEstimator):
    """Shared plumbing: fitted check, ``transform`` alias and the JSON round trip."""

    _fitted_attrs: ClassVar[tuple[str, ...]] = ()
    _registry: ClassVar[dict[str, type["_Calibrator"]]] = {}

    def __init_subclass__(cls, **kw):
        super().__init_subclass__(**kw)
        if not cls.__name__.startswith("_"):
            _Calibrator._registry[cls.__name__] = cls

    def _check_fitted(self) -> None:
        missing = [a for a in self._fitted_attrs if not hasattr(self, a)]
        if missing:
            raise NotFittedError(f"{type(self).__name__} is not fitted yet; call fit() first")

    def transform(self, x):
        """Same as :meth:`predict_proba` (scikit-learn transformer style)."""
        return self.predict_proba(x)


    def to_dict(self) -> dict[str, Any]:
        self._check_fitted()
        fitted = {}
        for a in self._fitted_attrs:
            v = getattr(self, a)
            fitted[a] = v.tolist() if isinstance(v, np.ndarray) else v
        return {"type": type(self).__name__, "version": JSON_VERSION, "params": self.get_params(), "fitted": fitted}

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), allow_nan=False)  # strict JSON: fitted values are finite

    @classmethod
    def from_dict(cls, d: dict[str, Any]):
        if d.get("type") != cls.__name__:
            raise ValueError(f"JSON holds a {d.get('type')!r}, not a {cls.__name__}")
        obj = cls(**d.get("params", {}))
        fitted = d.get("fitted", {})
        missing = [a for a in cls._fitted_attrs if a not in fitted]
        if missing:
            raise ValueError(f"{cls.__name__} JSON lacks fitted values {missing}")
        for a in cls._fitted_attrs:
            v = fitted[a]
            setattr(obj, a, np.asarray(v, dtype=np.float64) if isinstance(v, list) else v)
        return obj

    @classmethod
    def from_json(cls, s: str):
        return cls.from_dict(json.loads(s))


class _ScalarCalibrator(_Calibrator):
    """A calibrator of one scalar feature into P(correct): ``predict`` is ``(n,)``, ``predict_proba`` ``(n, 2)``."""

    def predict(self, x) -> np.ndarray:  # pragma: no cover - abstract
        raise NotImplementedError

    def predict_proba(self, x) -> np.ndarray:
        """``(n, 2)``: ``[1 - p, p]`` with ``p = predict(x)``, scikit-learn's binary-classifier shape."""
        p = self.predict(x)
        return np.column_stack([1.0 - p, p])

    def transform(self, x) -> np.ndarray:
        """``(n,)`` calibrated confidence, the same as :meth:`predict` (like ``IsotonicRegression.transform``)."""
        return self.predict(x)


def calibrator_from_dict(d: dict[str, Any]) -> "_Calibrator":
    kind = d.get("type") if isinstance(d, dict) else None
    if kind not in _Calibrator._registry:
        raise ValueError(f"unknown calibrator type {kind!r}; known: {sorted(_Calibrator._registry)}")
    return _Calibrator._registry[kind].from_dict(d)


def calibrator_from_json(s: str) -> "_Calibrator":
    """Load any calibrator written by ``to_json()`` (dispatches on its ``"type"`` field)."""
    try:
        d = json.loads(s)
    except json.JSONDecodeError as e:
        raise ValueError(f"not calibrator JSON: {e}") from e
    return calibrator_from_dict(d)


# -- temperature scaling ------------------------------------------------------------------


class TemperatureScaling(_Calibrator):
    """``softmax(z / T)`` with one temperature ``T > 0`` fitted by multiclass NLL.

    ``z`` are class logits or option log-likelihoods, ``-inf`` where a row has fewer
    options.  Rows are shifted by their maximum first (softmax is shift invariant), so
    large negative log-likelihoods are fine.  The NLL is convex in ``beta = 1/T``; its
    minimum is the root of the exact derivative, found by ``scipy.optimize.brentq``.

    Attributes:
        temperature_: the fitted ``T``.
        nll_before_, nll_after_: mean NLL of the fitting labels at ``T = 1`` and at ``T``.
    """

    _fitted_attrs = ("temperature_", "nll_before_", "nll_after_")

    def __init__(self, min_temperature: float = 1e-3, max_temperature: float = 1e3):
        self.min_temperature = min_temperature
        self.max_temperature = max_temperature

    @staticmethod
    def _shift(z: np.ndarray) -> np.ndarray:
        return z - z.max(axis=1, keepdims=True)

    def fit(self, logits, labels) -> "TemperatureScaling":
        if not 0 < self.min_temperature < self.max_temperature:
            raise ValueError("need 0 < min_temperature < max_temperature")
        z = self._shift(_check_logits(logits))
        y = np.asarray(labels).ravel()
        if y.shape[0] != z.shape[0]:
            raise ValueError(f"logits and labels differ in length: {z.shape[0]} vs {y.shape[0]}")
        if not np.issubdtype(y.dtype, np.integer):
            raise ValueError(f"labels must be integer class indices, got dtype {y.dtype}")
        bad = (y < 0) | (y >= z.shape[1])
        if bad.any():
            raise ValueError(
                f"{int(bad.sum())} labels are outside [0, {z.shape[1] - 1}] (e.g. {y[bad][:3].tolist()}); "
                "records without a gold option cannot fit a temperature"
            )
        zy = z[np.arange(z.shape[0]), y]
        if not np.isfinite(zy).all():
            raise ValueError(f"{int((~np.isfinite(zy)).sum())} labels point at -inf (padding) logits")
        z0 = np.where(np.isfinite(z), z, 0.0)  # rows are shifted: max 0, padding -> exp(-inf) = 0
        ones = np.ones(z.shape[1])

        def stats(beta: float) -> tuple[float, float]:
            """NLL and dNLL/dbeta at inverse temperature beta (the NLL is convex in beta)."""
            e = np.exp(beta * z)
            tot = e @ ones  # >= 1: the row maximum contributes exp(0)
            m1 = np.einsum("ij,ij->i", e, z0) / tot
            return float(np.mean(np.log(tot) - beta * zy)), float(np.mean(m1 - zy))

        # the NLL is convex in beta = 1/T: its minimum inside [1/max_T, 1/min_T] is the root of the
        # derivative (brentq on the sign change), or the bound where the derivative says it lies beyond
        b_lo, b_hi = 1.0 / self.max_temperature, 1.0 / self.min_temperature
        self.nll_before_ = stats(1.0)[0]

        def grad(beta: float) -> float:
            return stats(beta)[1]

        if grad(b_lo) >= 0.0:
            beta = b_lo
        elif grad(b_hi) <= 0.0:
            beta = b_hi
        else:
            # on log(beta): the bracket spans six decades
            beta = float(np.exp(brentq(lambda t: grad(float(np.exp(t))), np.log(b_lo), np.log(b_hi), xtol=1e-12)))
        beta = float(np.clip(beta, 1.0 / self.max_temperature, 1.0 / self.min_temperature))
        self.temperature_ = 1.0 / beta
        self.nll_after_ = stats(beta)[0]
        return self

    def predict_proba(self, logits) -> np.ndarray:
        """(n, k) calibrated probabilities (0 where the logits are -inf padding)."""
        self._check_fitted()
        e = np.exp(self._shift(_check_logits(logits)) / self.temperature_)  # row max -> exp(0) = 1
        return e / (e @ np.ones(e.shape[1]))[:, None]

    def scale_logits(self, logits) -> np.ndarray:
        """``z / T`` (padding stays ``-inf``): calibrated scores whose softmax is :meth:`predict_proba`."""
        self._check_fitted()
        return _check_logits(logits) / self.temperature_


# -- scalar calibrators ---------------------------------------------------------------------


def _logit(p: np.ndarray, eps: float = 1e-12) -> np.ndarray:
    p = np.clip(p, eps, 1.0 - eps)
    return np.log(p) - np.log1p(-p)


class PlattScaling(_ScalarCalibrator):
    """``sigmoid(a * x + b)`` over one scalar feature, fitted by binary NLL (Platt 1999).

    ``y`` may be soft (continuous verifier scores act as targets of the cross-entropy).
    With ``logit_input=True`` the feature is a probability and ``x`` is replaced by
    ``logit(x)`` first, so ``a=1, b=0`` is the identity.  ``l2`` adds ``l2 * a^2 / 2`` to
    the mean NLL (0 = plain Platt; a small value keeps ``a`` finite on separable data).

    Attributes:
        a_, b_: slope and intercept on the (possibly logit-transformed) feature.
    """

    _fitted_attrs = ("a_", "b_")

    def __init__(self, logit_input: bool = False, l2: float = 0.0):
        self.logit_input = logit_input
        self.l2 = l2

    def _x(self, x) -> np.ndarray:
        x = _as_1d(x, "x")
        if self.logit_input:
            if x.min() < 0 or x.max() > 1:
                raise ValueError(f"logit_input=True needs x in [0, 1], got range [{x.min()}, {x.max()}]")
            x = _logit(x)
        return x

    def fit(self, x, y) -> "PlattScaling":
        x, y = _check_xy(x, y)
        x = self._x(x)
        if self.l2 < 0:
            raise ValueError(f"l2 must be >= 0, got {self.l2}")
        # standardise for conditioning, convert back at the end
        mu, sd = float(x.mean()), float(x.std())
        sd = sd if sd > 0 else 1.0
        u = (x - mu) / sd
        l2 = float(self.l2)

        def loss(w):
            # w = (a * sd, b + a * mu): the same line on the standardised feature
            m = w[0] * u + w[1]
            return -np.mean(y * log_expit(m) + (1.0 - y) * log_expit(-m)) + 0.5 * l2 * (w[0] / sd) ** 2

        def grad(w):
            p = expit(w[0] * u + w[1])
            r = p - y
            return np.array([np.mean(r * u) + l2 * w[0] / sd**2, np.mean(r)])

        def hess(w):
            p = expit(w[0] * u + w[1])
            q = p * (1.0 - p)
            h01 = np.mean(q * u)
            return np.array([[np.mean(q * u * u) + l2 / sd**2, h01], [h01, np.mean(q)]])

        ybar = float(np.clip(y.mean(), 1e-6, 1 - 1e-6))
        w0 = np.array([0.0, np.log(ybar / (1 - ybar))])
        res = minimize(loss, w0, jac=grad, hess=hess, method="trust-exact", options={"gtol": 1e-10, "maxiter": 200})
        w = res.x
        a_u, b_u = w
        self.a_ = float(a_u / sd)
        self.b_ = float(b_u - a_u * mu / sd)
        return self

    def decision_function(self, x) -> np.ndarray:
        self._check_fitted()
        return self.a_ * self._x(x) + self.b_

    def predict(self, x) -> np.ndarray:
        """(n,) calibrated confidence."""
        return expit(self.decision_function(x))


class HistogramBinning(_ScalarCalibrator):
    """Mean verifier score of the calibration samples falling in the feature's bin.

    ``binning="equal_count"`` (default) uses :class:`calib_harness.binning.EqualCountBinner`
    (tie-aware, right-closed bins, see its boundary rule), so fewer than ``n_bins`` bins may
    result when the feature has ties; ``"equal_width"`` cuts ``[min, max]`` of the
    calibration feature into equal intervals (left-closed, as ``np.histogram``).  Values
    outside the fitted range go to the first / last bin; an equal-width bin left empty at
    fit time takes the value interpolated from its neighbours.

    Attributes:
        edges_: (n_bins_ + 1,) bin edges; the outer two are the fitted range and decide nothing.
        values_: (n_bins_,) calibrated confidence of each bin.
        counts_: (n_bins_,) calibration samples per bin.
    """

    _fitted_attrs = ("edges_", "values_", "counts_")

    def __init__(self, n_bins: int = 15, binning: str = "equal_count"):
        self.n_bins = n_bins
        self.binning = binning

    def fit(self, x, y) -> "HistogramBinning":
        x, y = _check_xy(x, y)
        if int(self.n_bins) < 1:
            raise ValueError(f"n_bins must be >= 1, got {self.n_bins}")
        if self.binning == "equal_count":
            binner = EqualCountBinner(int(self.n_bins)).fit(x)
            edges, b, k = binner.edges_, binner.labels_, binner.n_bins_
        elif self.binning == "equal_width":
            k = min(int(self.n_bins), x.size)
            edges = np.linspace(x.min(), x.max(), k + 1)
            b = self._bin(x, edges, "equal_width")
        else:
            raise ValueError(f"binning must be one of {BINNINGS}, got {self.binning!r}")
        counts = np.bincount(b, minlength=k).astype(np.float64)
        sums = np.bincount(b, weights=y, minlength=k)
        filled = counts > 0
        values = np.empty(k)
        values[filled] = sums[filled] / counts[filled]
        if not filled.all():
            idx = np.arange(k)
            values[~filled] = np.interp(idx[~filled], idx[filled], values[filled])
        self.edges_, self.values_, self.counts_ = np.asarray(edges, dtype=np.float64), values, counts
        return self

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "HistogramBinning":
        obj = super().from_dict(d)
        e = obj.edges_
        if not np.isfinite(e[[0, -1]]).all():  # version-1 files: outer edges -inf / +inf (they decide nothing)
            inner = e[1:-1]
            e = e.copy()
            e[0] = inner[0] if inner.size else 0.0
            e[-1] = inner[-1] if inner.size else e[0]
            obj.edges_ = e
        return obj

    @staticmethod
    def _bin(x: np.ndarray, edges: np.ndarray, binning: str) -> np.ndarray:
        inner = edges[1:-1]
        if binning == "equal_count":  # EqualCountBinner's rule: right-closed
            return np.searchsorted(inner, x, side="left")
        return np.searchsorted(inner, x, side="right")  # np.histogram's: left-closed

    def predict(self, x) -> np.ndarray:
        """(n,) calibrated confidence."""
        self._check_fitted()
        return self.values_[self._bin(_as_1d(x, "x"), self.edges_, self.binning)]


class IsotonicCalibration(_ScalarCalibrator):
    """Isotonic regression of the verifier score on one scalar feature (scikit-learn's).

    Outputs are clipped to [0, 1] and inputs outside the fitted range take the end values.
    ``increasing="auto"`` lets scikit-learn pick the direction (for features such as
    ``mean_entropy`` where higher means less confident).  Prediction is the same piecewise
    linear interpolation between ``X_thresholds_`` / ``y_thresholds_`` that
    ``IsotonicRegression.predict`` does, so the JSON needs no pickled model.
    """

    _fitted_attrs = ("X_thresholds_", "y_thresholds_")

    def __init__(self, increasing: bool | str = True):
        self.increasing = increasing

    def fit(self, x, y) -> "IsotonicCalibration":
        from sklearn.isotonic import IsotonicRegression

        x, y = _check_xy(x, y)
        if self.increasing not in (True, False, "auto"):
            raise ValueError(f"increasing must be True, False or 'auto', got {self.increasing!r}")
        iso = IsotonicRegression(y_min=0.0, y_max=1.0, increasing=self.increasing, out_of_bounds="clip")
        iso.fit(x, y)
        self.X_thresholds_ = np.asarray(iso.X_thresholds_, dtype=np.float64)
        self.y_thresholds_ = np.asarray(iso.y_thresholds_, dtype=np.float64)
        return self

    def predict(self, x) -> np.ndarray:
        """(n,) calibrated confidence."""
        self._check_fitted()
        x = _as_1d(x, "x")
        if self.X_thresholds_.size == 1:
            return np.full(x.size, float(self.y_thresholds_[0]))
        return np.clip(np.interp(x, self.X_thresholds_, self.y_thresholds_), 0.0, 1.0)


SCALAR_CALIBRATORS: dict[str, type[_ScalarCalibrator]] = {
    "platt": PlattScaling,
    "histogram": HistogramBinning,
    "isotonic": IsotonicCalibration,
}

