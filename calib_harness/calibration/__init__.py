"""Post-hoc calibration: estimators, record-level calibrators and the split protocol.

Following section 2.1 of Hao et al. (2026).  Three modules, one stage each:

* :mod:`~calib_harness.calibration.estimators` -- the calibrators as scikit-learn style
  estimators on arrays: :class:`TemperatureScaling`, :class:`PlattScaling`,
  :class:`HistogramBinning`, :class:`IsotonicCalibration` (``fit`` / ``predict_proba`` /
  ``predict``, JSON round trip).
* :mod:`~calib_harness.calibration.run_calibrator` -- :func:`fit_run_calibrator` fits one of
  them on a :class:`~calib_harness.records.Run` and returns a :class:`RunCalibrator` that
  calibrates any run and writes calibrated records.
* :mod:`~calib_harness.calibration.split` -- the seeded calibration-half / test-half split
  (:func:`split_indices`, :func:`split_runs`), :func:`evaluate_split` (fit on one half,
  report on both) and :func:`evaluate_shift` (fit on run A, apply to run B), with the
  sample-size guards (:data:`MIN_FIT_SAMPLES`, :data:`MIN_PER_BIN`).

Everything is importable from ``calib_harness.calibration`` directly.
"""

from calib_harness.calibration.estimators import (
    JSON_VERSION,
    SCALAR_CALIBRATORS,
    HistogramBinning,
    IsotonicCalibration,
    PlattScaling,
    TemperatureScaling,
    calibrator_from_dict,
    calibrator_from_json,
)
from calib_harness.calibration.run_calibrator import (
    METHODS,
    PROBABILITY_FEATURES,
    RunCalibrator,
    default_method_and_feature,
    fit_run_calibrator,
)
from calib_harness.calibration.split import (
    MIN_FIT_SAMPLES,
    MIN_PER_BIN,
    SplitReport,
    TooFewSamplesError,
    check_split_size,
    ece_size_warning,
    evaluate_shift,
    evaluate_split,
    minimum_records,
    split_indices,
    split_runs,
)

__all__ = [
    "JSON_VERSION",
    "METHODS",
    "MIN_FIT_SAMPLES",
    "MIN_PER_BIN",
    "PROBABILITY_FEATURES",
    "SCALAR_CALIBRATORS",
    "HistogramBinning",
    "IsotonicCalibration",
    "PlattScaling",
    "RunCalibrator",
    "SplitReport",
    "TemperatureScaling",
    "TooFewSamplesError",
    "calibrator_from_dict",
    "calibrator_from_json",
    "check_split_size",
    "default_method_and_feature",
    "ece_size_warning",
    "evaluate_shift",
    "evaluate_split",
    "fit_run_calibrator",
    "minimum_records",
    "split_indices",
    "split_runs",
]
