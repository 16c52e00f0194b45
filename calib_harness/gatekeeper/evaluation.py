"""Cascade evaluation for GATEKEEPER: s_o, s_d, AUROC, deferral curves and the CC baseline.

Definitions follow the GATEKEEPER paper (section 4 metrics, appendix B.3, C.3); every metric is
the shared implementation, wrapped only where this module's argument conventions differ:

* ``s_o`` (distributional overlap, eq. 9): :func:`calib_harness.metrics.overlap_so` -- integral
  over [0, 1] of min(Gaussian KDE (Scott) of the confidences of correct predictions, KDE of the
  incorrect ones); lower is better.
* ``AUROC`` of confidence for separating correct from incorrect predictions (eq. 12, C.3):
  :func:`calib_harness.metrics.auroc` (Mann-Whitney, ties one half).
* deferral curves over the deferral ratio r in [0, 1] (:mod:`calib_harness.routing.curves`):
  *realized* defers inputs in ascending order of a key (the confidence); each distinct key value
  is one operating point (tied inputs move together) and the curve is linearly interpolated
  between operating points (:func:`~calib_harness.routing.curves.curve_from_priority`,
  :func:`~calib_harness.routing.curves.on_grid`); joint accuracy uses the large model's actual
  per-sample correctness when given.  *random* is ``(1 - r) p_s + r p_l``; *ideal* is eq. 11
  (B.3, :func:`~calib_harness.routing.curves.ideal_deferral_accuracy`):
  ``p_s + (p_l - p_s) / (1 - p_s) r`` up to ``r = 1 - p_s``, then ``p_l``.
* ``s_d = int (acc_real - acc_rand) dr / int (acc_ideal - acc_rand) dr`` (eq. 10,
  :func:`~calib_harness.routing.curves.deferral_score`); 1 is ideal, 0 random.  Without a large
  model an oracle large model is used (``p_l = 1``, every deferred input answered correctly),
  which needs only the small model's correctness.

The training-free baseline of the calibration paper (temperature scaling,
:class:`calib_harness.calibration.TemperatureScaling`, + calibrated advantage routing, "CC",
Alg. 1, :class:`calib_harness.routing.advantage.AdvantageRouter`) has one operating point per
number K of bins kept on the small model, so its s_d is computed from that K-curve; its s_o /
AUROC are those of the temperature-scaled small-model confidence.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

import numpy as np

from calib_harness import metrics
from calib_harness.calibration import TemperatureScaling
from calib_harness.records import softmax
from calib_harness.routing.advantage import AdvantageRouter
from calib_harness.routing.curves import (
    RoutingCurve,
    curve_from_priority,
    deferral_score,
    ideal_deferral_accuracy,
    on_grid,
)

R_GRID = np.linspace(0.0, 1.0, 201)  # grid of the stored / plotted curves (s_d uses the finer shared grid)

# the bounds of the temperature search used since the first GATEKEEPER runs
T_MIN, T_MAX = 0.02, 50.0


# -- metrics: thin adapters around calib_harness.metrics ----------------------------------
def _binary(correct) -> np.ndarray:
    """This module passes 0/1 floats (or soft scores): correct means ``>= 0.5``."""
    return np.asarray(correct, dtype=np.float64).ravel() >= 0.5


def degenerate_reason(correct) -> str | None:
    """Why s_o and AUROC are undefined for this correctness vector (one group empty), or None.

    The project's one policy for degenerate inputs: the figure is NaN in numpy code (as in
    :mod:`calib_harness.metrics`) and ``null`` plus this reason in JSON (:meth:`CascadeEval.to_dict`,
    :func:`calib_harness.outputs.write_json`) -- never a made-up 0.0 or 0.5.
    """
    y = _binary(correct)
    if y.size == 0:
        return "undefined: no samples"
    if y.all():
        return "undefined: every prediction is correct (no incorrect group)"
    if not y.any():
        return "undefined: every prediction is wrong (no correct group)"
    return None


def overlap_so(confidence, correct) -> float:
    """GATEKEEPER's s_o: :func:`calib_harness.metrics.overlap_so` with this module's conventions.

    ``correct`` is binarised at 0.5.  NaN where s_o is undefined: one group empty
    (:func:`degenerate_reason`), or the shared KDE undefined (a group with fewer than two samples, or
    all of its confidences equal).
    """
    c = np.asarray(confidence, dtype=np.float64).ravel()
    y = _binary(correct)
    if c.shape != y.shape:
        raise ValueError(f"confidence and correct differ in length: {c.size} vs {y.size}")
    if degenerate_reason(y):
        return float("nan")
    try:
        return metrics.overlap_so(c, y)
    except ValueError:
        if min(int(y.sum()), int((~y).sum())) >= 2 and np.std(c[y]) > 0 and np.std(c[~y]) > 0:
            raise  # not a degenerate group: a real input error
        return float("nan")


def auroc(confidence, correct) -> float:
    """AUROC of confidence for correct-vs-incorrect: :func:`calib_harness.metrics.auroc`.

    ``correct`` is binarised at 0.5; NaN when one group is empty (:func:`degenerate_reason`).
    """
    y = _binary(correct)
    if degenerate_reason(y):
        return float("nan")
    return metrics.auroc(confidence, y)


# -- deferral ----------------------------------------------------------------------------
@dataclass
class DeferralCurves:
    """Joint accuracy of the cascade against the deferral ratio ``r`` (on :data:`R_GRID`).

    ``routing`` is the underlying :class:`~calib_harness.routing.curves.RoutingCurve`
    (operating points); ``s_d`` is computed from it by
    :func:`~calib_harness.routing.curves.deferral_score`.
    """

    r: np.ndarray
    realized: np.ndarray
    random: np.ndarray
    ideal: np.ndarray
    p_s: float
    p_l: float
    routing: RoutingCurve = field(repr=False)

    @property
    def s_d(self) -> float:
        return deferral_score(self.routing, self.p_s, self.p_l)

    @classmethod
    def from_routing(cls, curve: RoutingCurve, p_s: float, p_l: float, r_grid_size: int = R_GRID.size) -> "DeferralCurves":
        r, realized = on_grid(curve, p_s, p_l, r_grid_size)
        return cls(
            r=r,
            realized=realized,
            random=(1 - r) * p_s + r * p_l,
            ideal=ideal_deferral_accuracy(r, p_s, p_l),
            p_s=p_s,
            p_l=p_l,
            routing=curve,
        )


def _large_correct(small_correct: np.ndarray, large_correct) -> np.ndarray:
    """The large model's per-sample correctness; ``None`` means an oracle large model (all 1)."""
    if large_correct is None:
        return np.ones(small_correct.size)
    lc = np.asarray(large_correct, dtype=np.float64).ravel()
    if lc.size != small_correct.size:
        raise ValueError("small_correct and large_correct must have the same length")
    return lc


def deferral_curves(small_correct, defer_order_key, large_correct=None) -> DeferralCurves:
    """Curves for deferring inputs in ascending order of ``defer_order_key`` (confidence).

    The inputs with the lowest key go to the large model first; inputs with equal keys move
    together (one operating point per distinct key, linear interpolation in between).
    ``large_correct=None`` means an oracle large model (p_l = 1).
    """
    s = np.asarray(small_correct, dtype=np.float64).ravel()
    key = np.asarray(defer_order_key, dtype=np.float64).ravel()
    lc = _large_correct(s, large_correct)
    if key.size != s.size:
        raise ValueError("small_correct, defer_order_key and large_correct must have the same length")
    curve = curve_from_priority("realized", key, s, lc)
    return DeferralCurves.from_routing(curve, float(s.mean()), float(lc.mean()))


# -- post-hoc baseline (calibration paper) ------------------------------------------------
def fit_temperature(logits, labels) -> float:
    """NLL-optimal temperature T for ``softmax(logits / T)``: :class:`calib_harness.calibration.TemperatureScaling`
    searched in [T_MIN, T_MAX] (``-inf`` pads rows with fewer options)."""
    ts = TemperatureScaling(min_temperature=T_MIN, max_temperature=T_MAX)
    return float(ts.fit(logits, np.asarray(labels, dtype=np.int64)).temperature_)


def max_prob(logits, temperature: float = 1.0) -> np.ndarray:
    return softmax(np.asarray(logits, dtype=np.float64) / temperature).max(axis=1)


def fit_cc_router(conf_small, conf_large, n_bins: int = 10) -> AdvantageRouter:
    """Calibrated advantage routing (calibration paper, Alg. 1) fitted on calibrated confidences."""
    return AdvantageRouter(n_bins, "CC").fit(conf_small, conf_large)


# -- one row of the table -----------------------------------------------------------------
@dataclass
class CascadeEval:
    """Metrics of one small-model variant in the cascade (one row of the sweep table)."""

    method: str  # "untuned", "gatekeeper", "posthoc_cc"
    alpha: float | None
    acc_small: float
    acc_large: float | None
    s_o: float
    s_d: float
    auroc: float
    n: int
    large_model: str | None = None
    extra: dict = field(default_factory=dict)
    curves: dict = field(default_factory=dict)  # r, realized, random, ideal (lists) for plots

    def to_dict(self) -> dict:
        """Plain data; an undefined s_o / s_d / AUROC is :class:`~calib_harness.outputs.Null` with the reason
        (``null`` plus ``null_reasons`` in JSON written by :func:`calib_harness.outputs.write_json`)."""
        from calib_harness.outputs import Null

        d = asdict(self)
        why = self.extra.get("degenerate") or "undefined for these inputs"
        for k in ("s_o", "s_d", "auroc"):
            v = d[k]
            if v is None or (isinstance(v, float) and not np.isfinite(v)):
                d[k] = Null(why)
        return d


def evaluate_confidences(
    method: str,
    alpha: float | None,
    conf,
    small_correct,
    large_correct=None,
    defer_key=None,
    large_model: str | None = None,
    extra: dict | None = None,
    router: AdvantageRouter | None = None,
) -> CascadeEval:
    """s_o / AUROC of ``conf`` and s_d of deferring in ascending ``defer_key`` (default ``conf``),
    or, with a fitted ``router``, of that router's K-curve on ``conf``."""
    conf = np.asarray(conf, dtype=np.float64)
    sc = np.asarray(small_correct, dtype=np.float64)
    if router is not None:
        if defer_key is not None:
            raise ValueError("pass defer_key or router, not both")
        lc = _large_correct(sc, large_correct)
        curves = DeferralCurves.from_routing(router.curve(conf, sc, lc), float(sc.mean()), float(lc.mean()))
    else:
        curves = deferral_curves(sc, conf if defer_key is None else defer_key, large_correct)
    extra = dict(extra or {})
    why = degenerate_reason(sc)
    if why:
        extra["degenerate"] = why
    return CascadeEval(
        method=method,
        alpha=alpha,
        acc_small=float(sc.mean()),
        acc_large=None if large_correct is None else float(np.mean(large_correct)),
        s_o=overlap_so(conf, sc),
        s_d=curves.s_d,
        auroc=auroc(conf, sc),
        n=int(sc.size),
        large_model=large_model,
        extra=extra,
        curves={k: getattr(curves, k).tolist() for k in ("r", "realized", "random", "ideal")},
    )
