"""Risk-controlled operating points: Learn-then-Test with binomial tail p-values.

A router (or a cleaning method) reaches a finite, ordered set of operating points
``lambda_0, lambda_1, ...``: ``lambda_0`` is the most conservative one (everything sent to the
strongest model, nothing flagged) and later points are more aggressive (more kept on cheap
models, more flagged).  Each point ``j`` has a per-sample loss ``L_ij`` in ``[0, 1]`` on ``n``
calibration samples, and an unknown risk ``R_j = E[L_j]``.  We want the most aggressive point
with ``R_j <= alpha``, and a guarantee that holds with probability ``>= 1 - delta`` over the
calibration samples.

Learn then Test (Angelopoulos, Bates, Candès, Jordan and Lei 2021, "Learn then Test:
Calibrating predictive algorithms to achieve risk control", arXiv:2110.01052) turns this into
multiple testing: for every point test the null ``H_j: R_j > alpha`` with a valid p-value, and
control the family-wise error rate at ``delta``.  Every point whose null is rejected then has
``R_j <= alpha``, all of them simultaneously, with probability ``>= 1 - delta`` (LTT Theorem 1).

p-values (LTT section 3.1; Bates, Angelopoulos, Lei, Malik and Jordan 2021, "Distribution-free,
risk-controlling prediction sets", JACM 68(6), arXiv:2101.02703, section 3):

* ``"clopper-pearson"`` (exact binomial; losses must be 0/1): with ``k`` losses among ``n``,
  ``p = P(Binomial(n, alpha) <= k)``.  ``p <= delta`` exactly when the one-sided Clopper-Pearson
  upper confidence bound of level ``1 - delta`` on the risk is below ``alpha``
  (:func:`clopper_pearson_upper`).  Valid because ``k ~ Binomial(n, R_j)`` and the binomial CDF
  decreases in the success probability.
* ``"hb"`` (Hoeffding-Bentkus; any losses in ``[0, 1]``): ``p = min(exp(-n h(R^ ^ alpha, alpha)),
  e * P(Binomial(n, alpha) <= ceil(n R^)))`` with ``h(a, b) = a log(a/b) + (1-a) log((1-a)/(1-b))``
  (Bates et al. 2021, Proposition 3; LTT eq. (7)).

Family-wise error control: ``"fixed-sequence"`` (default; LTT section 4.1, after Bauer 1991)
tests ``lambda_0, lambda_1, ...`` in order at level ``delta`` each and stops at the first point
it cannot reject; it suits grids whose risk grows along the order (cascades: every later point
keeps a superset on the cheap model).  ``"bonferroni"`` rejects every point with
``p <= delta / m``; it needs no order, and suits grids whose first points have too few samples to
pass (precision of very small flag sets).

**Validity needs independence.**  The grid, its order and the loss function must be fixed
before the samples passed in here are looked at: fit the router (calibrators, bins, embeddings
models) on other data, e.g. one part of the calibration half, and run LTT on the rest.
:func:`split_for_ltt` makes that split.

Two uses in the project:

* cascades (:func:`cascade_losses`): loss of a sample at a point = ``max(s_strong - s_answer, 0)``
  where ``s_answer`` is the score of the model that answers it at that point.  Its mean bounds
  the accuracy drop against the strongest model from above (drop = ``E[s_strong - s_answer]``
  <= ``E[max(., 0)]``), so controlling it at ``alpha = eps`` controls the drop.  For 0/1 scores
  it is 1 exactly when the strongest model is right and the answering model wrong, so the exact
  binomial test applies; for fractional scores use ``"hb"``.
* cleaning (:func:`precision_losses`): at a flag set ``F_j``, loss = 1 for each flagged sample
  whose label is in fact right.  Conditionally on ``|F_j| = n_j`` those samples are i.i.d. from
  the flagged population, so the binomial test on them bounds ``1 - precision`` by ``alpha``:
  "precision >= 1 - alpha".  The number of samples differs between points, hence the ragged
  ``losses`` argument.

Worked example (two points, 100 samples, alpha = 0.1, delta = 0.1)::

    >>> import numpy as np
    >>> L = [np.zeros(100), np.r_[np.ones(3), np.zeros(97)], np.r_[np.ones(12), np.zeros(88)]]
    >>> sel = ltt_select(L, alpha=0.1, delta=0.1)
    >>> sel.index, [round(float(p), 4) for p in sel.p_values]
    (1, [0.0, 0.0078, 0.8018])

Point 1 (3 losses in 100) passes, point 2 (12 in 100) does not: the selection is point 1.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass, field
from typing import Any, Sequence

import numpy as np
from scipy import stats

logger = logging.getLogger(__name__)

METHODS = ("clopper-pearson", "hb")
PROCEDURES = ("fixed-sequence", "bonferroni")
REFERENCES = (
    "Angelopoulos, Bates, Candès, Jordan, Lei 2021, Learn then Test: Calibrating predictive algorithms "
    "to achieve risk control (arXiv:2110.01052)",
    "Bates, Angelopoulos, Lei, Malik, Jordan 2021, Distribution-free, risk-controlling prediction sets "
    "(JACM 68(6); arXiv:2101.02703)",
)


class InsufficientSamplesError(ValueError):
    """Too few calibration samples for the requested ``alpha`` and ``delta``: even zero losses
    cannot reach ``p <= delta``.  ``needed`` says how many are required."""

    def __init__(self, n: int, needed: int, alpha: float, delta: float, what: str = "calibration samples"):
        self.n, self.needed, self.alpha, self.delta = n, needed, alpha, delta
        super().__init__(
            f"{n} {what} cannot give a guarantee at risk level {alpha:g} with probability 1 - {delta:g}: "
            f"even with zero losses the test needs at least {needed} (n >= log(delta) / log(1 - alpha)); "
            f"use more calibration data, a larger risk level or a larger delta"
        )


def _check_level(name: str, v: float) -> float:
    v = float(v)
    if not 0.0 < v < 1.0:
        raise ValueError(f"{name} must be in (0, 1), got {v}")
    return v


def min_samples(alpha: float, delta: float) -> int:
    """Smallest ``n`` at which zero losses in ``n`` samples give ``p <= delta``.

    Both p-values equal ``(1 - alpha)^n`` at zero losses (the Hoeffding term ``exp(-n h(0, alpha))``
    is exactly that), so ``n = ceil(log(delta) / log(1 - alpha))``.
    """
    alpha, delta = _check_level("alpha", alpha), _check_level("delta", delta)
    n = math.ceil(math.log(delta) / math.log1p(-alpha) - 1e-12)
    return max(int(n), 1)


def _h1(a: float, b: float) -> float:
    """Bernoulli KL divergence ``h(a, b)`` of Bates et al. 2021 (Hoeffding's bound)."""
    out = 0.0
    if a > 0:
        out += a * math.log(a / b)
    if a < 1:
        out += (1 - a) * math.log((1 - a) / (1 - b))
    return out


def binomial_p_value(k: int, n: int, alpha: float) -> float:
    """Exact binomial p-value of ``H: R > alpha`` from ``k`` losses in ``n`` 0/1 samples."""
    if n <= 0:
        return 1.0
    return float(stats.binom.cdf(int(k), int(n), alpha))


def hb_p_value(risk_hat: float, n: int, alpha: float) -> float:
    """Hoeffding-Bentkus p-value of ``H: R > alpha`` for losses in ``[0, 1]`` with mean ``risk_hat``
    (Bates et al. 2021, Proposition 3)."""
    if n <= 0:
        return 1.0
    r = float(risk_hat)
    hoeffding = math.exp(-n * _h1(min(r, alpha), alpha))
    bentkus = math.e * stats.binom.cdf(math.ceil(n * r - 1e-9), n, alpha)
    return float(min(hoeffding, bentkus, 1.0))


def clopper_pearson_upper(k: int, n: int, delta: float) -> float:
    """One-sided upper confidence bound of level ``1 - delta`` on a binomial proportion."""
    if n <= 0:
        return 1.0
    if k >= n:
        return 1.0
    return float(stats.beta.ppf(1.0 - delta, k + 1, n - k))


def p_value(losses: np.ndarray, alpha: float, method: str = "clopper-pearson") -> float:
    """p-value of ``H: E[loss] > alpha`` from one point's losses."""
    x = np.asarray(losses, dtype=np.float64).ravel()
    if x.size and (x.min() < 0 or x.max() > 1 or not np.isfinite(x).all()):
        raise ValueError("losses must lie in [0, 1]")
    if method == "clopper-pearson":
        if x.size and not np.isin(x, (0.0, 1.0)).all():
            raise ValueError("the exact binomial (clopper-pearson) p-value needs 0/1 losses; use method='hb' for losses in [0, 1]")
        return binomial_p_value(int(x.sum()), x.size, alpha)
    if method == "hb":
        return hb_p_value(float(x.mean()) if x.size else 0.0, x.size, alpha)
    raise ValueError(f"unknown p-value method {method!r}; choose from {', '.join(METHODS)}")


@dataclass
class Selection:
    """Result of :func:`ltt_select`.

    Attributes:
        index: the chosen operating point (the most aggressive one whose null was rejected), or
            ``None`` when no point passed (then use the most conservative behaviour: everything to
            the strongest model, nothing flagged).
        p_values, risks, n: per point: p-value, empirical risk, number of samples.
        rejected: per point: whether ``R_j <= alpha`` is certified.
        alpha, delta, method, procedure: the settings.
        guarantee: one sentence a user can read.
    """

    index: int | None
    p_values: np.ndarray
    risks: np.ndarray
    n: np.ndarray
    rejected: np.ndarray
    alpha: float
    delta: float
    method: str
    procedure: str
    guarantee: str
    meta: dict[str, Any] = field(default_factory=dict)

    @property
    def found(self) -> bool:
        return self.index is not None

    def to_dict(self) -> dict[str, Any]:
        return {
            "index": self.index,
            "alpha": self.alpha,
            "delta": self.delta,
            "method": self.method,
            "procedure": self.procedure,
            "guarantee": self.guarantee,
            "p_values": [float(p) for p in self.p_values],
            "empirical_risks": [float(r) for r in self.risks],
            "n": [int(v) for v in self.n],
            "certified": [bool(r) for r in self.rejected],
            "references": list(REFERENCES),
            **({"meta": self.meta} if self.meta else {}),
        }


def ltt_select(
    losses: np.ndarray | Sequence[np.ndarray],
    alpha: float,
    delta: float,
    method: str = "clopper-pearson",
    procedure: str = "fixed-sequence",
    what: str = "risk",
) -> Selection:
    """Learn-then-Test selection of the most aggressive operating point with risk ``<= alpha``.

    Args:
        losses: per point (in order, most conservative first) the per-sample losses in ``[0, 1]``:
            an ``(n_points, n)`` array, or a list of 1-D arrays of possibly different lengths.
        alpha: the risk level (e.g. the allowed accuracy drop, or ``1 - min precision``).
        delta: the allowed probability that the guarantee fails.
        method: ``"clopper-pearson"`` (exact binomial; 0/1 losses) or ``"hb"`` (Hoeffding-Bentkus).
        procedure: ``"fixed-sequence"`` (stop at the first point not rejected) or ``"bonferroni"``.
        what: a short name of the risk for the guarantee text.

    Raises:
        InsufficientSamplesError: when the largest per-point sample count is below
            :func:`min_samples` (no point could ever pass, whatever the losses).
    """
    alpha, delta = _check_level("alpha", alpha), _check_level("delta", delta)
    if method not in METHODS:
        raise ValueError(f"unknown p-value method {method!r}; choose from {', '.join(METHODS)}")
    if procedure not in PROCEDURES:
        raise ValueError(f"unknown testing procedure {procedure!r}; choose from {', '.join(PROCEDURES)}")
    if isinstance(losses, np.ndarray) and losses.ndim == 2:
        rows = [losses[j] for j in range(losses.shape[0])]
    else:
        rows = [np.asarray(x, dtype=np.float64).ravel() for x in losses]
    m = len(rows)
    if m == 0:
        raise ValueError("no operating points to test")
    n = np.array([r.size for r in rows], dtype=np.int64)
    level = delta if procedure == "fixed-sequence" else delta / m
    needed = min_samples(alpha, level)
    if n.max() < needed:
        raise InsufficientSamplesError(int(n.max()), needed, alpha, level)
    p = np.array([p_value(r, alpha, method) for r in rows])
    risks = np.array([float(r.mean()) if r.size else 0.0 for r in rows])
    rejected = np.zeros(m, dtype=bool)
    if procedure == "fixed-sequence":
        for j in range(m):
            if p[j] > delta:
                break
            rejected[j] = True
    else:
        rejected = p <= level
    passed = np.flatnonzero(rejected)
    index = int(passed[-1]) if passed.size else None
    proc = f"{procedure} testing over {m} points"
    pv = "exact binomial (Clopper-Pearson)" if method == "clopper-pearson" else "Hoeffding-Bentkus"
    if index is None:
        guarantee = (
            f"no operating point could be certified to keep {what} <= {alpha:g} with probability >= {1 - delta:g} "
            f"(Learn then Test, {proc}, {pv} p-values, smallest p = {p.min():.3g}); fall back to the most "
            f"conservative behaviour"
        )
        logger.warning(guarantee)
    else:
        guarantee = (
            f"with probability >= {1 - delta:g} over the {int(n[index])} calibration samples used for testing, "
            f"{what} at the chosen point is <= {alpha:g} (Learn then Test, {proc}, {pv} p-values; "
            f"p = {p[index]:.3g}, empirical {risks[index]:.4f})"
        )
    return Selection(index, p, risks, n, rejected, alpha, delta, method, procedure, guarantee)


def naive_select(losses: np.ndarray | Sequence[np.ndarray], alpha: float) -> int | None:
    """The point-estimate choice LTT replaces: the most aggressive point whose *empirical* risk
    is ``<= alpha`` (no guarantee; used as the baseline in ``bench/bench_risk.py``)."""
    rows = losses if not (isinstance(losses, np.ndarray) and losses.ndim == 2) else list(losses)
    ok = [j for j, r in enumerate(rows) if (np.mean(r) if np.size(r) else 0.0) <= alpha]
    return ok[-1] if ok else None


# -- cascades ---------------------------------------------------------------------------------
def cascade_losses(answering_scores: np.ndarray, strong_scores: np.ndarray) -> np.ndarray:
    """Per-sample cascade loss ``max(s_strong - s_answer, 0)``: its mean bounds the accuracy drop
    against the strongest model from above.

    ``answering_scores`` is ``(n_points, n)`` (the score of the model that answers each sample at
    each point) or ``(n,)``; ``strong_scores`` is ``(n,)``.
    """
    a = np.asarray(answering_scores, dtype=np.float64)
    s = np.asarray(strong_scores, dtype=np.float64)
    if a.shape[-1] != s.shape[-1]:
        raise ValueError(f"scores differ in length: {a.shape[-1]} vs {s.shape[-1]}")
    return np.clip(s - a, 0.0, 1.0)


def two_model_losses(keep_small: np.ndarray, small_scores: np.ndarray, large_scores: np.ndarray) -> np.ndarray:
    """Loss matrix of a two-model cascade from ``(n_points, n)`` keep-on-small masks."""
    keep = np.asarray(keep_small, dtype=bool)
    s, l = np.asarray(small_scores, np.float64), np.asarray(large_scores, np.float64)
    return cascade_losses(np.where(keep, s, l), l)


def precision_losses(flagged: Sequence[np.ndarray] | np.ndarray, is_error: np.ndarray) -> list[np.ndarray]:
    """Ragged losses for precision control: for each point the flagged samples' ``1 - is_error``.

    ``flagged``: ``(n_points, n)`` boolean masks (most conservative = fewest flags first);
    ``is_error``: the reference labels on the calibration half (1 = the given label is wrong).
    Controlling the risk at ``alpha`` certifies precision ``>= 1 - alpha``.
    """
    e = np.asarray(is_error, dtype=np.float64).ravel()
    return [1.0 - e[np.asarray(f, dtype=bool)] for f in flagged]


def split_for_ltt(n: int, test_fraction: float = 0.5, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Indices ``(fit, test)`` of a random split of ``n`` calibration samples: fit the router on
    ``fit``, run :func:`ltt_select` on ``test`` (the independence LTT needs)."""
    if not 0.0 < test_fraction < 1.0:
        raise ValueError("test_fraction must be in (0, 1)")
    perm = np.random.default_rng(seed).permutation(n)
    k = int(round(n * test_fraction))
    if k == 0 or k == n:
        raise ValueError(f"cannot split {n} samples into a fit part and a test part")
    return np.sort(perm[k:]), np.sort(perm[:k])


def guarantee_record(selection: Selection, point: dict[str, Any] | None, fallback: str) -> dict[str, Any]:
    """What router.json / the cleaning output store: the chosen point (or the fallback) and the
    guarantee."""
    d = selection.to_dict()
    d["chosen_point"] = point
    d["satisfied"] = selection.found
    if not selection.found:
        d["fallback"] = fallback
    return d
