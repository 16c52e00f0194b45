"""Hybrid router: the small model's confidence *and* the prompt, predicting each model's correctness.

CC and the threshold router see only the small model's confidence; MF (RouteLLM) sees only the
prompt.  :class:`HybridRouter` (registered as ``hybrid``) uses both:

* features of an input: the small model's logit-confidence ``z = logit(c_s)`` and the first
  ``k`` principal components of the prompt's MiniLM embedding (the one MF uses,
  :meth:`~calib_harness.routing.base.RoutingData.embeddings`), standardised;
* two L2-regularised logistic regressions fitted on the calibration half: ``P(small right | x)``
  and ``P(large right | x)``.  The weight on ``z`` makes the first one a Platt scaling of the
  small model's confidence fitted jointly with the prompt features, so the confidence the router
  uses is calibrated on the calibration half, per prompt region;
* score (higher = defer) = predicted gain of the larger model,
  ``P(large right | x) - P(small right | x)``: inputs stay on the small model where the predicted
  gain is smallest.

Settings chosen by cross-fitting *inside the calibration half* (the test half is never seen):
the regularisation ``C`` (:data:`C_GRID`), the number of components ``k`` (:data:`K_GRID`,
capped by the number of inputs; ``k = 0`` = confidence only) and whether to use the confidence
at all (``False`` = prompt only).  For every candidate, out-of-fold gains over ``folds`` folds
give one curve on the whole calibration half; the candidate with the highest APGR of that curve
wins, and candidates within ``tolerance`` of the best prefer the simpler one (fewer
components, then smaller ``C``).  So where the prompt carries no information the choice falls
back to the confidence alone (and vice versa), which is how the router loses nothing
measurable when one of the two signals is empty.

The large model's confidence is never a feature: a cascade decides before calling the large
model.
"""

from __future__ import annotations

import itertools
import logging
import warnings
from typing import Any

import numpy as np
from sklearn.decomposition import PCA
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import KFold
from sklearn.preprocessing import StandardScaler

from calib_harness.routing.base import Router, RoutingData, register_router
from calib_harness.routing.curves import apgr, curve_from_priority

logger = logging.getLogger(__name__)

C_GRID = (0.01, 0.1, 1.0, 10.0)
K_GRID = (0, 4, 8, 16, 32)
_EPS = 1e-6


def _logit_conf(c: np.ndarray) -> np.ndarray:
    c = np.clip(np.asarray(c, dtype=np.float64), _EPS, 1 - _EPS)
    return np.log(c) - np.log1p(-c)


class _Side:
    """``P(right | x)`` of one model: a logistic regression, or a constant when the labels of the
    fitting data are all equal (or not 0/1: scores are thresholded at 0.5)."""

    def __init__(self, C: float):
        self.C = C

    def fit(self, X: np.ndarray, y: np.ndarray) -> "_Side":
        yb = (np.asarray(y) >= 0.5).astype(int)
        self.const_ = float(yb.mean()) if yb.min() == yb.max() else None
        if self.const_ is None:
            if X.shape[1] == 0:
                self.const_ = float(yb.mean())
            else:
                self.lr_ = LogisticRegression(C=self.C, solver="newton-cholesky", max_iter=200)
                with warnings.catch_warnings(record=True) as caught:
                    warnings.simplefilter("always", ConvergenceWarning)
                    self.lr_.fit(X, yb)
                for w in caught:  # a cross-fitting candidate that did not converge: its held-out score says so
                    if issubclass(w.category, ConvergenceWarning):
                        logger.debug("hybrid: %s", w.message)
                    else:
                        warnings.warn(w.message, w.category, stacklevel=2)
        return self

    def predict(self, X: np.ndarray) -> np.ndarray:
        if self.const_ is not None:
            return np.full(X.shape[0], self.const_)
        return self.lr_.predict_proba(X)[:, 1]


class _Model:
    """Feature map + the two sides for one setting ``(use_conf, k, C)``."""

    def __init__(self, use_conf: bool, k: int, C: float, seed: int = 0, pca: PCA | None = None):
        # ``pca``: a PCA with >= k components already fitted on the same inputs (full-SVD
        # components are nested, so its first k columns are PCA(k)'s)
        self.use_conf, self.k, self.C, self.seed = use_conf, k, C, seed
        if pca is not None:
            self.pca_ = pca

    def _features(self, z: np.ndarray, emb: np.ndarray | None, fit: bool) -> np.ndarray:
        parts = []
        if self.use_conf:
            parts.append(z[:, None])
        if self.k > 0:
            if fit and getattr(self, "pca_", None) is None:
                self.pca_ = PCA(n_components=self.k, svd_solver="full").fit(emb)
            parts.append(self.pca_.transform(emb)[:, : self.k])
        X = np.hstack(parts) if parts else np.zeros((z.size, 0))
        if X.shape[1]:
            if fit:
                self.scaler_ = StandardScaler().fit(X)
            X = self.scaler_.transform(X)
        return X

    def fit(self, z, emb, ys, yl) -> "_Model":
        X = self._features(z, emb, fit=True)
        self.small_ = _Side(self.C).fit(X, ys)
        self.large_ = _Side(self.C).fit(X, yl)
        return self

    def gain(self, z, emb) -> np.ndarray:
        X = self._features(z, emb, fit=False)
        return self.large_.predict(X) - self.small_.predict(X)

    def predict_correct(self, z, emb) -> tuple[np.ndarray, np.ndarray]:
        X = self._features(z, emb, fit=False)
        return self.small_.predict(X), self.large_.predict(X)


@register_router("hybrid")
class HybridRouter(Router):
    """Confidence + prompt embedding, routing by the predicted gain of the larger model.

    Args:
        folds: cross-fitting folds inside the calibration half.
        C_grid, k_grid: candidate regularisations and numbers of principal components.
        tolerance: APGR margin within which a simpler setting is preferred.
        use_prompt: ``False`` = confidence only (no embeddings are computed).
        seed: fold shuffling and PCA.

    Fitted attributes: ``setting_`` (``{"use_confidence", "k", "C"}``), ``selection_`` (held-out
    APGR of every candidate), ``model_``.
    """

    plot_style = {"color": "tab:purple", "lw": 2.0}
    needs_prompts = True

    def __init__(
        self,
        folds: int = 5,
        C_grid: tuple[float, ...] = C_GRID,
        k_grid: tuple[int, ...] = K_GRID,
        tolerance: float = 0.005,
        use_prompt: bool = True,
        seed: int = 0,
    ):
        self.folds = folds
        self.C_grid = C_grid
        self.k_grid = k_grid
        self.tolerance = tolerance
        self.use_prompt = use_prompt
        self.seed = seed

    def _inputs(self, data: RoutingData) -> tuple[np.ndarray, np.ndarray | None]:
        z = _logit_conf(data.small_confidence)
        emb = np.asarray(data.embeddings(), dtype=np.float64) if self.use_prompt else None
        return z, emb

    def _candidates(self, n_train: int, dim: int) -> list[tuple[bool, int, float]]:
        ks = sorted({k for k in self.k_grid if k == 0 or (self.use_prompt and k <= min(dim, max(n_train // 10, 1)))})
        cands = [(True, k, C) for k in ks for C in sorted(self.C_grid)]
        cands += [(False, k, C) for k in ks if k > 0 for C in sorted(self.C_grid)]
        return cands

    def _fit(self, calib: RoutingData) -> None:
        from threadpoolctl import threadpool_limits

        z, emb = self._inputs(calib)
        with threadpool_limits(1):  # hundreds of tiny fits: threads only add overhead
            self._fit_arrays(z, emb, calib)

    def _fit_arrays(self, z: np.ndarray, emb: np.ndarray | None, calib: RoutingData) -> None:
        ys, yl = calib.small_scores, calib.large_scores
        n = z.size
        if self.folds < 2:
            raise ValueError("folds must be >= 2")
        if n < 2 * self.folds:
            raise ValueError(f"hybrid router: {n} calibration inputs are too few for {self.folds}-fold cross-fitting")
        dim = 0 if emb is None else emb.shape[1]
        cands = self._candidates(n - n // self.folds, dim)
        kf = KFold(self.folds, shuffle=True, random_state=self.seed)
        splits = list(kf.split(z))
        p_s, p_l = float(ys.mean()), float(yl.mean())
        k_max = max(k for _, k, _ in cands)
        pcas = [PCA(n_components=k_max, svd_solver="full").fit(emb[tr]) if k_max > 0 else None for tr, _ in splits]
        results = []
        for use_conf, k, C in cands:
            oof = np.empty(n)
            for (tr, te), pca in zip(splits, pcas):
                m = _Model(use_conf, k, C, self.seed, pca).fit(z[tr], None if emb is None else emb[tr], ys[tr], yl[tr])
                oof[te] = m.gain(z[te], None if emb is None else emb[te])
            if np.isclose(p_s, p_l):
                score = float(np.mean(oof * (yl - ys)))  # APGR undefined: mean realised gain ranking proxy
            else:
                score = apgr(curve_from_priority("oof", -oof, ys, yl), p_s, p_l, warn=False)
            results.append({"use_confidence": use_conf, "k": k, "C": C, "heldout_apgr": float(score)})
        best = max(r["heldout_apgr"] for r in results)
        # simplest within tolerance: confidence-only first, then fewer components, then smaller C
        ok = [r for r in results if r["heldout_apgr"] >= best - self.tolerance]
        choice = min(ok, key=lambda r: (r["k"], not r["use_confidence"], r["C"]))
        self.selection_ = results
        self.setting_ = {k: choice[k] for k in ("use_confidence", "k", "C")}
        self.model_ = _Model(choice["use_confidence"], choice["k"], choice["C"], self.seed).fit(z, emb, ys, yl)
        logger.info("hybrid router: chose %s (held-out APGR %.4f, best %.4f)", self.setting_, choice["heldout_apgr"], best)

    def score(self, data: RoutingData) -> np.ndarray:
        """Predicted gain of the larger model (higher = defer)."""
        from sklearn.utils.validation import check_is_fitted

        check_is_fitted(self, "model_")
        z, emb = self._inputs(data) if self.model_.k > 0 else (_logit_conf(data.small_confidence), None)
        return self.model_.gain(z, emb)

    def predict_correct(self, data: RoutingData) -> tuple[np.ndarray, np.ndarray]:
        """Predicted ``P(small right)``, ``P(large right)`` per input."""
        from sklearn.utils.validation import check_is_fitted

        check_is_fitted(self, "model_")
        z, emb = self._inputs(data) if self.model_.k > 0 else (_logit_conf(data.small_confidence), None)
        return self.model_.predict_correct(z, emb)

    def info(self) -> dict[str, Any]:
        out = super().info()
        if hasattr(self, "setting_"):
            out["setting"] = dict(self.setting_)
            out["selection"] = list(self.selection_)
        return out
