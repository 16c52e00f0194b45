"""Record level: a calibrator fitted on a :class:`~calib_harness.records.Run`, applied to any run.

:func:`fit_run_calibrator` fits one of the estimators of
:mod:`calib_harness.calibration.estimators` on a run's records and returns a
:class:`RunCalibrator` (also JSON), which gives calibrated confidences for any run and
writes calibrated records.  :func:`default_method_and_feature` is the paper's choice.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from calib_harness.calibration.estimators import (
    JSON_VERSION,
    SCALAR_CALIBRATORS,
    TemperatureScaling,
    _Calibrator,
    calibrator_from_dict,
)
from calib_harness.records import Run

METHODS = ("temperature", "platt", "histogram", "isotonic")

#: features that are probabilities: Platt scaling fits on their logit by default
PROBABILITY_FEATURES = ("confidence",)


def _temperature_inputs(run: Run) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    try:
        return run.option_matrix()
    except ValueError as e:  # RecordError is a ValueError
        raise ValueError(f"temperature scaling needs option scores: {e}; use platt/histogram/isotonic") from e


@dataclass
class RunCalibrator:
    """A calibrator fitted on records, applicable to any run with the same kind of records.

    ``method`` is one of :data:`METHODS`; ``feature`` is ``"option_scores"`` for
    temperature scaling and the record feature the scalar calibrators read otherwise.
    """

    method: str
    feature: str
    calibrator: _Calibrator
    meta: dict[str, Any] = field(default_factory=dict)

    def confidence(self, run: Run) -> np.ndarray:
        """(n,) calibrated confidence of each record's prediction."""
        if self.method == "temperature":
            scores, _, pred = _temperature_inputs(run)
            probs = self.calibrator.predict_proba(scores)
            # the record's own prediction (argmax of the scores unless a producer chose otherwise)
            idx = np.where(pred >= 0, pred, probs.argmax(axis=1))
            return probs[np.arange(len(run)), idx]
        return self.calibrator.predict(run.feature(self.feature))

    def option_probs(self, run: Run) -> np.ndarray:
        """(n, k) calibrated option probabilities (temperature scaling only)."""
        if self.method != "temperature":
            raise ValueError(
                f"option_probs needs a temperature calibrator; a {self.method} calibrator only "
                "calibrates the top-label confidence"
            )
        scores, _, _ = _temperature_inputs(run)
        return self.calibrator.predict_proba(scores)

    def apply(self, run: Run, model: str | None = None, parts: dict[tuple[str, str], str] | None = None) -> Run:
        """Calibrated copies of the records.

        ``confidence`` becomes the calibrated one, the raw one moves to
        ``features["raw_confidence"]`` and ``extra["calibration"]`` names the method.
        Temperature scaling also divides ``option_scores`` by ``T`` so that
        ``softmax(option_scores)`` stays the calibrated option distribution (the raw
        scores are ``option_scores * T``); scalar calibrators leave ``option_scores`` raw.
        ``parts`` (record key -> ``"cal"`` / ``"test"``) is written to
        ``extra["calibration_split"]``.
        """
        conf = np.clip(self.confidence(run), 0.0, 1.0)
        info: dict[str, Any] = {"method": self.method, "feature": self.feature}
        if self.method == "temperature":
            info["temperature"] = self.calibrator.temperature_
        out = []
        for r, c in zip(run.records, conf):
            feats = dict(r.features)
            feats["raw_confidence"] = float(r.confidence)
            extra = dict(r.extra)
            extra["calibration"] = info
            if parts is not None and r.key in parts:
                extra["calibration_split"] = parts[r.key]
            changes: dict[str, Any] = {"confidence": float(c), "features": feats, "extra": extra}
            if model is not None:
                changes["model"] = model
            if self.method == "temperature" and r.option_scores is not None:
                t = self.calibrator.temperature_
                changes["option_scores"] = tuple(float(s) / t for s in r.option_scores)
            out.append(dataclasses.replace(r, **changes))
        meta = dict(run.meta)
        meta["calibration"] = self.to_dict()
        return Run(model or run.model, out, run.source, meta)

    # -- JSON --------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        return {
            "type": "RunCalibrator",
            "version": JSON_VERSION,
            "method": self.method,
            "feature": self.feature,
            "calibrator": self.calibrator.to_dict(),
            "meta": self.meta,
        }

    def to_json(self, indent: int | None = 2) -> str:
        return json.dumps(self.to_dict(), indent=indent, allow_nan=False)  # strict JSON

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "RunCalibrator":
        if d.get("type") != "RunCalibrator":
            raise ValueError(f"JSON holds a {d.get('type')!r}, not a RunCalibrator")
        if d.get("method") not in METHODS:
            raise ValueError(f"unknown method {d.get('method')!r}; known: {METHODS}")
        return cls(d["method"], d["feature"], calibrator_from_dict(d["calibrator"]), dict(d.get("meta", {})))

    @classmethod
    def from_json(cls, s: str) -> "RunCalibrator":
        try:
            d = json.loads(s)
        except json.JSONDecodeError as e:
            raise ValueError(f"not RunCalibrator JSON: {e}") from e
        return cls.from_dict(d)


def fit_run_calibrator(
    run: Run, method: str = "temperature", feature: str = "confidence", **params: Any
) -> RunCalibrator:
    """Fit ``method`` on a run's records.

    * ``"temperature"``: on ``run.option_matrix()`` (option log-likelihoods / logits) and the
      gold option; ``feature`` is ignored (recorded as ``"option_scores"``).
    * ``"platt"`` / ``"histogram"`` / ``"isotonic"``: on ``run.feature(feature)`` and the
      verifier scores.  Platt on a probability feature (``"confidence"``) fits on its logit
      unless ``logit_input=False`` is passed.

    ``params`` go to the calibrator's constructor.
    """
    if not len(run):
        raise ValueError("cannot calibrate an empty run")
    meta = {"n_fit": len(run), "fit_model": run.model, "fit_source": run.source, "fit_tasks": run.tasks}
    if method == "temperature":
        scores, gold, _ = _temperature_inputs(run)
        missing = gold < 0
        if missing.any():
            raise ValueError(
                f"{int(missing.sum())} of {len(run)} records have no gold option among their options "
                f"(e.g. {[run.records[i].key for i in np.flatnonzero(missing)[:3]]}); temperature scaling needs "
                "the gold label"
            )
        cal = TemperatureScaling(**params).fit(scores, gold)
        return RunCalibrator("temperature", "option_scores", cal, meta)
    if method not in SCALAR_CALIBRATORS:
        raise ValueError(f"unknown calibration method {method!r}; choose one of {METHODS}")
    if method == "platt" and "logit_input" not in params:
        params["logit_input"] = feature in PROBABILITY_FEATURES
    x = run.feature(feature)
    cal = SCALAR_CALIBRATORS[method](**params).fit(x, run.scores())
    return RunCalibrator(method, feature, cal, meta)


def default_method_and_feature(run: Run) -> tuple[str, str]:
    """The paper's choice: temperature scaling when records carry option scores, else Platt
    scaling of the mean logit (or of the confidence when no record has a mean logit)."""
    if run.records and all(r.option_scores is not None for r in run.records):
        return "temperature", "option_scores"
    if run.records and all("mean_logit" in r.features for r in run.records):
        return "platt", "mean_logit"
    return "platt", "confidence"


