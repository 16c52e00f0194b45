"""The paper's split protocol: fit on the calibration half, report before / after on both halves.

:func:`split_indices` / :func:`split_runs` are the seeded calibration-half / test-half split
(shared by calibration, routing and cleaning); :func:`evaluate_split` and
:func:`evaluate_shift` are the "fit on one half, report on both" and "fit on run A, apply
to run B" protocols; they return / fill a :class:`SplitReport`.

Sample-size guards (stated in ``calib-harness calibrate --help``):

* :data:`MIN_FIT_SAMPLES` -- each half needs at least this many records, else
  :class:`TooFewSamplesError` (a ``ValueError``) says how many there are and what to do.
* :data:`MIN_PER_BIN` -- histogram binning fits at most ``n_cal // MIN_PER_BIN`` bins (fewer
  than asked, with a warning), and an ECE over fewer than ``MIN_PER_BIN`` samples per bin
  is reported with a warning (it is biased upward).
* a calibration half of one class only, and a calibrator that collapses the confidences
  (:func:`calib_harness.metrics.collapse_warning`), are warned about.

Warnings go to the log and to ``SplitReport.warnings`` (hence into metrics.json).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from calib_harness import metrics
from calib_harness.calibration.run_calibrator import RunCalibrator, fit_run_calibrator
from calib_harness.records import Run

logger = logging.getLogger(__name__)

#: records each half (calibration, test) must hold at least
MIN_FIT_SAMPLES = 10
#: samples per bin below which histogram binning fits fewer bins and an ECE is flagged
MIN_PER_BIN = 10


class TooFewSamplesError(ValueError):
    """Too few records for the split protocol; the message says how many are needed and what to do."""


def minimum_records(cal_fraction: float = 0.5) -> int:
    """The fewest records for which both halves hold :data:`MIN_FIT_SAMPLES`."""
    f = float(cal_fraction)
    if not 0.0 < f < 1.0:
        raise ValueError(f"cal_fraction must be strictly between 0 and 1, got {cal_fraction}")
    n = MIN_FIT_SAMPLES * 2
    while True:
        n_cal = int(round(n * f))
        if n_cal >= MIN_FIT_SAMPLES and n - n_cal >= MIN_FIT_SAMPLES:
            return n
        n += 1


def check_split_size(n: int, cal_fraction: float = 0.5) -> None:
    """Raise :class:`TooFewSamplesError` when ``n`` records cannot give two halves of :data:`MIN_FIT_SAMPLES`."""
    need = minimum_records(cal_fraction)
    if n < need:
        raise TooFewSamplesError(
            f"{n} records are too few to fit and test a calibrator: each half needs at least {MIN_FIT_SAMPLES} "
            f"({need} records at cal_fraction={cal_fraction}); evaluate more documents, or apply a calibrator "
            "fitted on a larger run with --calibrator"
        )


def ece_size_warning(n: int, n_bins: int, what: str = "") -> str | None:
    """A warning when ``n`` samples give fewer than :data:`MIN_PER_BIN` per ECE bin, else ``None``."""
    if n >= MIN_PER_BIN * int(n_bins):
        return None
    fit = max(1, n // MIN_PER_BIN)
    return (
        f"ECE{' on the ' + what if what else ''}: {n} samples in {n_bins} bins is fewer than {MIN_PER_BIN} per bin, "
        f"so the ECE is biased upward; read it with its interval or use --bins {fit}"
    )


def split_indices(n: int, cal_fraction: float = 0.5, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Seeded random split of ``range(n)`` into a calibration part and a test part.

    ``round(n * cal_fraction)`` indices go to calibration; both parts are sorted and
    non-empty.  The same ``(n, cal_fraction, seed)`` always gives the same split.
    """
    n = int(n)
    if not 0.0 < float(cal_fraction) < 1.0:
        raise ValueError(f"cal_fraction must be strictly between 0 and 1, got {cal_fraction}")
    n_cal = int(round(n * float(cal_fraction)))
    if n < 2 or n_cal < 1 or n_cal > n - 1:
        raise ValueError(f"cannot split {n} samples with cal_fraction={cal_fraction} into two non-empty parts")
    perm = np.random.default_rng(seed).permutation(n)
    return np.sort(perm[:n_cal]), np.sort(perm[n_cal:])


def split_runs(*runs: Run, cal_fraction: float = 0.5, seed: int = 0) -> list[tuple[Run, Run]]:
    """Split aligned runs with one shared split: ``[(cal_half, test_half), ...]``, one per run.

    The runs must hold the same (task, doc_id) keys in the same order (use
    :func:`calib_harness.records.align` first); each half then holds the same documents
    in every run.
    """
    if not runs:
        raise ValueError("split_runs needs at least one run")
    keys = runs[0].keys
    for r in runs[1:]:
        if r.keys != keys:
            n_diff = len(set(r.keys) ^ set(keys))
            what = f"{n_diff} documents differ" if n_diff else "the document order differs"
            raise ValueError(
                f"runs {runs[0].model!r} and {r.model!r} are not aligned ({what}); "
                "call calib_harness.records.align(...) first"
            )
    cal, test = split_indices(len(keys), cal_fraction, seed)
    return [(r.subset(cal), r.subset(test)) for r in runs]


@dataclass
class SplitReport:
    """Figures of one calibration method under the split protocol.

    ``metrics[part][stage]`` with ``part`` in ``"cal"``, ``"test"`` (and ``"shift"`` for
    :func:`evaluate_shift`) and ``stage`` in ``"before"``, ``"after"``: the dicts of
    :func:`calib_harness.metrics.summary`.  ``confidences[part][stage]`` and ``scores[part]``
    keep the arrays for plots.
    """

    method: str
    feature: str
    calibrator: RunCalibrator
    metrics: dict[str, dict[str, dict[str, float]]]
    confidences: dict[str, dict[str, np.ndarray]]
    scores: dict[str, np.ndarray]
    seed: int = 0
    cal_fraction: float = 0.5
    warnings: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {
            "method": self.method,
            "feature": self.feature,
            "seed": self.seed,
            "cal_fraction": self.cal_fraction,
            "calibrator": self.calibrator.to_dict(),
            "metrics": self.metrics,
            "warnings": list(self.warnings),
        }


def _measure(cal: RunCalibrator, run: Run, n_bins: int, seed: int = 0):
    raw, s = run.confidences(), run.scores()
    after = np.clip(cal.confidence(run), 0.0, 1.0)
    return (
        {
            "before": metrics.summary(raw, s, n_bins, seed=seed),
            "after": metrics.summary(after, s, n_bins, seed=seed),
        },
        {"before": raw, "after": after},
        s,
    )


def _warn(report_warnings: list[str], msg: str | None) -> None:
    if msg and msg not in report_warnings:
        logger.warning(msg)
        report_warnings.append(msg)


def _part_warnings(warnings: list[str], part: str, conf: dict[str, np.ndarray], scores: np.ndarray, n_bins: int, method: str):
    names = {"cal": "calibration half", "test": "test half", "shift": "shifted run", "all": "whole run"}
    _warn(warnings, ece_size_warning(scores.size, n_bins, names.get(part, part)))
    if part != "cal":
        msg = metrics.collapse_warning(conf["before"], conf["after"])
        if msg:
            _warn(warnings, f"{method} on the {names.get(part, part)}: {msg}")


def evaluate_split(
    run: Run,
    method: str = "temperature",
    feature: str = "confidence",
    cal_fraction: float = 0.5,
    seed: int = 0,
    n_bins: int = 15,
    **params: Any,
) -> SplitReport:
    """The paper's protocol: fit on the calibration half, report before/after on both halves.

    Refuses (:class:`TooFewSamplesError`) below :func:`minimum_records`; histogram binning
    fits at most ``n_cal // MIN_PER_BIN`` bins; sample-size and collapse warnings land in
    ``SplitReport.warnings``.
    """
    check_split_size(len(run), cal_fraction)
    (cal_run, test_run), = split_runs(run, cal_fraction=cal_fraction, seed=seed)
    warnings: list[str] = []
    if method == "histogram":
        asked = int(params.get("n_bins", 15))
        allowed = max(1, len(cal_run) // MIN_PER_BIN)
        if asked > allowed:
            params["n_bins"] = allowed
            _warn(
                warnings,
                f"histogram binning: {len(cal_run)} calibration samples allow {allowed} bin(s) of at least "
                f"{MIN_PER_BIN}; fitted {allowed} instead of {asked}",
            )
    y = cal_run.scores()
    if y.min() == y.max():
        _warn(
            warnings,
            f"the calibration half holds only {'correct' if y[0] >= 0.5 else 'wrong'} answers "
            f"({len(cal_run)} records): the calibrator can only learn to say {'1' if y[0] >= 0.5 else '0'}",
        )
    rc = fit_run_calibrator(cal_run, method, feature, **params)
    rc.meta.update({"split_seed": seed, "cal_fraction": cal_fraction, "split_part": "cal"})
    m, c, s = {}, {}, {}
    for part, r in (("cal", cal_run), ("test", test_run)):
        m[part], c[part], s[part] = _measure(rc, r, n_bins, seed)
        _part_warnings(warnings, part, c[part], s[part], n_bins, method)
    return SplitReport(method, rc.feature, rc, m, c, s, seed, cal_fraction, warnings)


def evaluate_shift(
    calibrator: RunCalibrator, run_b: Run, report: SplitReport | None = None, part: str = "shift", n_bins: int = 15,
    warnings: list[str] | None = None,
) -> dict[str, dict[str, float]]:
    """Apply a calibrator fitted on run A to run B (distribution shift): before/after figures.

    When ``report`` is given its ``metrics`` / ``confidences`` / ``scores`` gain ``part`` and
    its ``warnings`` any sample-size or collapse warning; otherwise they go to ``warnings``
    when given (and to the log).
    """
    m, c, s = _measure(calibrator, run_b, n_bins, report.seed if report is not None else 0)
    sink = report.warnings if report is not None else (warnings if warnings is not None else [])
    _part_warnings(sink, part, c, s, n_bins, calibrator.method)
    if report is not None:
        report.metrics[part], report.confidences[part], report.scores[part] = m, c, s
    return m
