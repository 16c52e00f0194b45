"""CC: Algorithm 1 on calibrated confidences, with the calibrator chosen inside the calibration half.

Hao et al. (2026) calibrate each model with temperature scaling before Algorithm 1.  That can
fail: temperature scaling has one parameter for all inputs, and on a weak model whose wrong
answers put near-zero probability on the gold option it flattens every confidence to ``1/k``
while the model's accuracy still runs from 0.2 to 0.8 across its confidence bins.  The
advantage ``mean c_l - mean c_s`` then ranks bins by the large model alone (issue #17).

:class:`CalibratedConfidenceRouter` (registered as ``CC``) therefore chooses the calibrator
(``method="auto"``, the default) among :data:`CANDIDATES` by cross-fitting **inside the
calibration half**: the half is cut into ``folds`` parts; for each candidate and each part, the
calibrators and the router are fitted on the other parts and the router's exact APGR is taken
on the held-out part; the candidate with the highest mean held-out APGR wins (ties: the earlier
in :data:`CANDIDATES`).  The test half is never seen.  The candidates:

* ``temperature`` (option scores), ``platt`` (logit of the confidence, or ``mean_logit`` for
  generation records), ``histogram`` (equal-count bins of the confidence), ``isotonic``: each
  model calibrated with the method, Algorithm 1 on the calibrated confidences;
* ``binwise``: bins on the small model's raw confidence, and the advantage of a bin is the
  large model's accuracy there minus the small model's, each shrunk towards the model's overall
  accuracy (:func:`~calib_harness.routing.advantage.shrunk_bin_rates`): each model's accuracy
  estimated per bin, i.e. confidences calibrated within the router's own bins;
* ``none``: raw confidences (UC), so the default never does worse than UC on held-out folds.

A calibrator that *collapses* a model's confidences (the project's one rule,
:func:`calib_harness.metrics.collapse_warning`: too few distinct values left, or a spread under
5% of the raw one) is reported: a warning for the one used, a flag in
the selection table for the others.  When the calibration half is too small for the choice (no
held-out part on which the two models differ in accuracy), CC falls back to the raw confidences
and says so.  :meth:`CalibratedConfidenceRouter.bin_table` gives the
per-bin table (calibrated confidence against accuracy for both models).
"""

from __future__ import annotations

import logging
from typing import Any

import numpy as np

from calib_harness.binning import EqualCountBinner
from calib_harness.routing.advantage import _BinnedRouter
from calib_harness.routing.base import RoutingData, register_router

logger = logging.getLogger(__name__)

#: calibrators CC can use, in tie-break order
CANDIDATES = ("binwise", "temperature", "platt", "isotonic", "histogram", "none")
METHODS = ("auto",) + CANDIDATES


class SideCalibrator:
    """One model's calibrator: a :class:`~calib_harness.calibration.RunCalibrator` when the data
    carry records, a scalar calibrator of the confidence otherwise."""

    def __init__(self, method: str, run_calibrator: Any = None, scalar: Any = None):
        self.method = method
        self.run_calibrator = run_calibrator
        self.scalar = scalar

    @classmethod
    def fit(cls, method: str, run, confidence: np.ndarray, scores: np.ndarray, feature: str | None = None) -> "SideCalibrator":
        from calib_harness.calibration import SCALAR_CALIBRATORS, default_method_and_feature, fit_run_calibrator

        if run is not None:
            if method == "platt" and feature is None:
                m, f = default_method_and_feature(run)
                feature = f if m == "platt" else "confidence"
            return cls(method, run_calibrator=fit_run_calibrator(run, method=method, feature=feature or "confidence"))
        if method == "temperature":
            raise ValueError("temperature scaling needs option scores (records), not bare confidences")
        params = {"logit_input": True} if method == "platt" else {}
        return cls(method, scalar=SCALAR_CALIBRATORS[method](**params).fit(confidence, scores))

    def transform(self, run, confidence: np.ndarray) -> np.ndarray:
        if self.run_calibrator is not None:
            if run is None:
                raise ValueError(f"this {self.method} calibrator was fitted on records; pass records (RoutingData.from_runs)")
            return np.clip(self.run_calibrator.confidence(run), 0.0, 1.0)
        return np.clip(self.scalar.predict(confidence), 0.0, 1.0)

    def describe(self) -> str:
        if self.run_calibrator is not None:
            return f"{self.method}({self.run_calibrator.feature})"
        return f"{self.method}(confidence)"


def available_candidates(data: RoutingData) -> list[str]:
    """Candidates that apply to these data (temperature needs option scores on every record)."""
    out = []
    for m in CANDIDATES:
        if m == "temperature":
            runs = (data.small_run, data.large_run)
            if any(r is None or not r.records or any(x.option_scores is None for x in r.records) for r in runs):
                continue
        out.append(m)
    return out


def collapse_check(raw: np.ndarray, calibrated: np.ndarray) -> dict[str, Any]:
    """Did a calibrator flatten these confidences?  The decision is the project's one collapse rule,
    :func:`calib_harness.metrics.collapse_warning`; the ranges are for the message and the JSON."""
    from calib_harness.metrics import collapse_warning

    raw = np.asarray(raw, dtype=np.float64)
    calibrated = np.asarray(calibrated, dtype=np.float64)
    why = collapse_warning(raw, calibrated, log=False)
    return {
        "collapsed": why is not None,
        "reason": why,
        "raw_range": [float(raw.min()), float(raw.max())],
        "calibrated_range": [float(calibrated.min()), float(calibrated.max())],
    }


@register_router("CC")
class CalibratedConfidenceRouter(_BinnedRouter):
    """Algorithm 1 on calibrated confidences; ``method="auto"`` chooses the calibrator by
    cross-fitting inside the calibration half (module docstring).

    Args:
        n_bins: equal-count bins N of the small model's (calibrated) confidence.
        method: ``auto`` or one of :data:`CANDIDATES`.
        feature: record feature for the scalar calibrators (default: ``mean_logit`` for Platt
            on generation records, else ``confidence``).
        folds: parts of the calibration half for the cross-fitted choice.
        seed: seed of the fold assignment.

    Fitted attributes: ``method_`` (the calibrator used), ``selection_`` (held-out APGR of
    every candidate, when ``auto``), ``small_calibrator_`` / ``large_calibrator_``
    (:class:`SideCalibrator` or ``None``), ``collapse_`` (collapse check per model),
    ``warnings_`` (messages for the user), ``router_`` (the fitted
    :class:`~calib_harness.routing.advantage.AdvantageRouter`).
    """

    order = 0
    plot_style = {"color": "tab:red", "lw": 2.2, "marker": "o", "ms": 3}

    def __init__(self, n_bins: int = 15, method: str = "auto", feature: str | None = None, folds: int = 5, seed: int = 0):
        self.n_bins = n_bins
        self.method = method
        self.feature = feature
        self.folds = folds
        self.seed = seed

    # -- fitting -----------------------------------------------------------------------
    def _fit(self, calib: RoutingData) -> None:
        if self.method not in METHODS:
            raise ValueError(f"unknown CC calibrator {self.method!r}; choose from {', '.join(METHODS)}")
        self.warnings_: list[str] = []
        if self.method == "auto":
            self.selection_ = self._select(calib)
            if self.selection_:
                # a calibrator that collapsed a model's confidences in any fold is taken only when every one did:
                # its bins then rank by the other model alone, which a few lucky folds can hide
                sel = self.selection_
                self.method_ = max(sel, key=lambda m: (not sel[m]["collapsed"], sel[m]["apgr"], -CANDIDATES.index(m)))
            else:
                self.method_ = "none"
                msg = (
                    f"CC: {len(calib)} calibration documents are too few to choose a calibrator by cross-fitting "
                    "(no held-out part had two models of different accuracy); CC uses the raw confidences (as UC)"
                )
                self.warnings_.append(msg)
                logger.warning(msg)
        else:
            self.selection_ = {}
            self.method_ = self.method
        self._fit_sides(calib)
        self.collapse_ = {}
        if self.small_calibrator_ is not None:
            for side, cal in (("small", self.small_calibrator_), ("large", self.large_calibrator_)):
                raw = calib.small_confidence if side == "small" else calib.large_confidence
                run = calib.small_run if side == "small" else calib.large_run
                chk = collapse_check(raw, cal.transform(run, raw))
                self.collapse_[side] = chk
                if chk["collapsed"] and not getattr(self, "_quiet", False):
                    model = calib.small_model if side == "small" else calib.large_model
                    msg = (
                        f"CC: the {cal.describe()} calibrator collapses {model}'s confidences from "
                        f"{chk['raw_range'][0]:.3f}-{chk['raw_range'][1]:.3f} to "
                        f"{chk['calibrated_range'][0]:.3f}-{chk['calibrated_range'][1]:.3f} (they no longer rank samples); "
                        "use --method auto or binwise"
                    )
                    self.warnings_.append(msg)
                    logger.warning(msg)
        super()._fit(calib)

    def _fit_sides(self, calib: RoutingData) -> None:
        if self.method_ in ("none", "binwise"):
            self.small_calibrator_ = self.large_calibrator_ = None
            return
        self.small_calibrator_ = SideCalibrator.fit(self.method_, calib.small_run, calib.small_confidence, calib.small_scores, self.feature)
        self.large_calibrator_ = SideCalibrator.fit(self.method_, calib.large_run, calib.large_confidence, calib.large_scores, self.feature)

    def _select(self, calib: RoutingData) -> dict[str, dict[str, Any]]:
        from calib_harness.routing.curves import apgr

        n = len(calib)
        k = int(min(max(2, self.folds), n // 2))
        if k < 2:
            return {}
        fold = np.random.default_rng(self.seed).permutation(n) % k
        out: dict[str, dict[str, Any]] = {}
        for m in available_candidates(calib):
            vals = []
            collapsed = False
            try:
                for f in range(k):
                    tr, te = calib.subset(fold != f), calib.subset(fold == f)
                    r = CalibratedConfidenceRouter(self.n_bins, m, self.feature)
                    r._quiet = True  # candidates' collapses go to the selection table, not the log
                    r.fit(tr)
                    collapsed |= any(c["collapsed"] for c in r.collapse_.values())
                    if te.p_small == te.p_large:
                        continue
                    vals.append(apgr(r.curve(te), te.p_small, te.p_large))
            except (ValueError, np.linalg.LinAlgError) as e:  # a calibrator that cannot fit here
                logger.info("CC: calibrator %s skipped in the cross-fitted choice: %s", m, e)
                continue
            if vals:
                a = np.asarray(vals)
                out[m] = {
                    "apgr": float(a.mean()),
                    "sd": float(a.std(ddof=1)) if a.size > 1 else 0.0,
                    "folds": int(a.size),
                    "collapsed": bool(collapsed),
                }
        return out

    def _advantage(self) -> str:
        return "accuracy" if self.method_ == "binwise" else "confidence"

    def _confidences(self, data: RoutingData, fit: bool):
        if self.small_calibrator_ is None:
            return data.small_confidence, data.large_confidence
        cs = self.small_calibrator_.transform(data.small_run, data.small_confidence)
        cl = self.large_calibrator_.transform(data.large_run, data.large_confidence) if fit else None
        return cs, cl

    # -- reporting ----------------------------------------------------------------------
    def describe(self) -> dict[str, str]:
        """What each model was calibrated with (``binwise`` / ``none``: raw confidences)."""
        self._check()
        if self.small_calibrator_ is None:
            return {"small": self.method_, "large": self.method_}
        return {"small": self.small_calibrator_.describe(), "large": self.large_calibrator_.describe()}

    def info(self) -> dict[str, Any]:
        d = super().info()
        if hasattr(self, "method_"):
            d.update(
                {
                    "calibrator": self.method_,
                    "calibrators": self.describe(),
                    "selection": self.selection_,
                    "collapse": self.collapse_,
                    "warnings": list(self.warnings_),
                }
            )
        return d

    def deploy_calibrator(self):
        """The small model's RunCalibrator for :func:`calib_harness.routing.compare.calibrator_spec`
        (``None`` = raw confidence)."""
        self._check()
        return None if self.small_calibrator_ is None else self.small_calibrator_.run_calibrator
