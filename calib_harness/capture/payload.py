"""The per-sample payload that carries a record through lm-eval's samples log."""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np

from calib_harness import metrics

#: Name of the per-sample metric whose value is the record payload (a dict) and whose
#: aggregation is the equal-count ECE over the task.
PAYLOAD_METRIC = "ece"
#: Companion metric whose aggregation is the bootstrap standard error of that ECE.  lm-eval
#: computes stderrs only for its own aggregations (mean, median, ...) and prints N/A for
#: any other; a task metric named ``<metric>_stderr`` is what its results table reads as
#: the stderr of ``<metric>`` (it is not shown as a row of its own).  Its per-sample value
#: is ``{"confidence", "score"}``; process_results must list it after :data:`PAYLOAD_METRIC`
#: so that its value, not lm-eval's "N/A", is the one kept.
ECE_STDERR_METRIC = PAYLOAD_METRIC + "_stderr"
ECE_BINS = 15
#: bootstrap resamples (seeded) behind the ECE's stderr in lm-eval's table
ECE_STDERR_BOOT = 200


def ece_aggregation(items: Sequence[dict[str, Any]]) -> float:
    """lm-eval aggregation: equal-count ECE (15 bins) of the payloads' confidence vs score."""
    conf = np.array([float(i["confidence"]) for i in items])
    score = np.array([float(i["score"]) for i in items])
    return metrics.ece(conf, score, n_bins=ECE_BINS, binning="equal_count")


def ece_stderr_aggregation(items: Sequence[dict[str, Any]]) -> float:
    """lm-eval aggregation of :data:`ECE_STDERR_METRIC`: bootstrap standard error of the task's ECE
    (:func:`calib_harness.metrics.ece_stderr`, 200 seeded resamples; NaN below 2 samples)."""
    conf = np.array([float(i["confidence"]) for i in items])
    score = np.array([float(i["score"]) for i in items])
    return metrics.ece_stderr(conf, score, n_bins=ECE_BINS, binning="equal_count", n_boot=ECE_STDERR_BOOT, seed=0)


def ece_stderr_item(confidence: float, score: float) -> dict[str, float]:
    """The per-sample value of :data:`ECE_STDERR_METRIC`."""
    return {"confidence": float(confidence), "score": float(score)}
