"""N-model chains: Algorithm 1 of Hao et al. 2026 generalised to M1 -> M2 -> ... -> Mn.

A chain calls M1; at stage ``j`` (models 1 .. n-1) it keeps model ``j``'s answer or calls the
next model.  Stage ``j`` is Algorithm 1 on its own: equal-count bins of model ``j``'s calibrated
confidence (fitted on the calibration half), the calibrated *advantage of going further* in each
bin (mean calibrated confidence of the reference model minus that of model ``j``), bins sorted
by ascending advantage, and the first ``K_j`` kept at stage ``j``.  The reference model is the
next one (``advantage_to="next"``, default: "going further" is one step) or the last one
(``"last"``).  A setting is the vector ``(K_1, ..., K_{n-1})``.  With two models there is one
stage and the chain *is* the two-model cascade: same bins, same order, same curve
(:class:`~calib_harness.routing.advantage.AdvantageRouter` is reused for every stage).

Stages are fitted independently on all calibration inputs (each model's confidence exists for
every input), so the settings form a grid and every setting can be evaluated.

Costs (:func:`cost_matrix`): per call (one price per model) or per token (a price per model
times each input's token count).  An input answered at stage ``j`` has paid for models
``1..j``.  The *normalised cost* of a setting is ``(C - C_min) / (C_max - C_min)`` with
``C_min`` the mean cost of answering everything with M1 and ``C_max`` that of calling every
model; with two models it is the share sent to the large model, the cost axis of
:func:`calib_harness.routing.curves.apgr`.

Curves and figures:

* :meth:`ChainRouter.path`: one ordered sequence of settings from "everything goes through to
  Mn" to "everything stays on M1", built on the calibration half: starting from all ``K_j = 0``,
  each step adds one bin at the stage whose estimated accuracy lost per unit of cost saved is
  smallest (estimates: mean calibrated confidence of the answering model, no labels).  With two
  models the path is K = 0, 1, ..., N.
* the APGR analogue over cost (:func:`chain_apgr`): the path's accuracy against normalised cost on
  new data, normalised by M1's and Mn's accuracy and integrated exactly as
  :func:`~calib_harness.routing.curves.apgr` does (same grid, same interpolation).  With two
  models it equals the two-model APGR of CC.
* the Pareto front of all settings (:func:`pareto_front`).
* a deployable JSON (:meth:`ChainRouter.deployable`, served by
  :class:`calib_harness.routing.chain_deploy.DeployableChain`).
* risk control: the path, fitted on one part of the calibration half, is the ordered grid
  Learn-then-Test needs (:mod:`calib_harness.risk`); ``select_setting_ltt``.
"""

from __future__ import annotations

import itertools
import logging
from dataclasses import dataclass, field
from typing import Any, Sequence

import numpy as np

from calib_harness.routing.advantage import AdvantageRouter
from calib_harness.routing.curves import RoutingCurve, apgr

logger = logging.getLogger(__name__)

ADVANTAGE_TO = ("next", "last")


def cost_matrix(costs: Sequence[float], n: int, tokens: np.ndarray | None = None) -> np.ndarray:
    """``(n_models, n)`` cost of calling each model on each input.

    ``costs``: one price per model (per call, or per token when ``tokens`` is given);
    ``tokens``: ``(n_models, n)`` token counts per input (e.g. prompt + generated tokens).
    """
    c = np.asarray(costs, dtype=np.float64).ravel()
    if (c < 0).any() or not np.isfinite(c).all():
        raise ValueError(f"costs must be finite and >= 0, got {c.tolist()}")
    if tokens is None:
        return np.repeat(c[:, None], n, axis=1)
    t = np.asarray(tokens, dtype=np.float64)
    if t.shape != (c.size, n):
        raise ValueError(f"token counts must be (n_models, n) = ({c.size}, {n}), got {t.shape}")
    return c[:, None] * t


@dataclass
class ChainPoint:
    """One setting evaluated on one data set."""

    setting: tuple[int, ...]
    cost: float  # mean cost per input, in the units of the costs
    norm_cost: float  # (cost - C_min) / (C_max - C_min)
    accuracy: float
    shares: tuple[float, ...]  # share of inputs answered by each model

    def to_dict(self) -> dict[str, Any]:
        return {
            "setting": list(self.setting),
            "cost": self.cost,
            "norm_cost": self.norm_cost,
            "accuracy": self.accuracy,
            "shares": list(self.shares),
        }


@dataclass
class ChainRouter:
    """Algorithm 1 at every stage of a chain (see the module docstring).

    Args:
        n_bins: equal-count bins per stage.
        advantage_to: ``"next"`` or ``"last"``: the model whose calibrated confidence defines the
            advantage of going further.
        models: names of the models, in chain order (labels only).

    Fitted attributes: ``stages_`` (one :class:`AdvantageRouter` per stage), ``n_models_``,
    ``path_`` (list of settings, see :meth:`path`).
    """

    n_bins: int = 15
    advantage_to: str = "next"
    models: Sequence[str] | None = None
    stages_: list[AdvantageRouter] = field(default=None, repr=False)  # type: ignore[assignment]
    path_: list[tuple[int, ...]] = field(default=None, repr=False)  # type: ignore[assignment]

    @property
    def n_models_(self) -> int:
        self._check()
        return len(self.stages_) + 1

    @property
    def bins_per_stage_(self) -> list[int]:
        self._check()
        return [s.n_bins_ for s in self.stages_]

    def _check(self) -> None:
        if self.stages_ is None:
            from sklearn.exceptions import NotFittedError

            raise NotFittedError("chain router is not fitted; call fit() on the calibration half first")

    @staticmethod
    def _stack(confidences: Sequence[np.ndarray], what: str = "confidences") -> np.ndarray:
        c = np.asarray([np.asarray(x, dtype=np.float64).ravel() for x in confidences])
        if c.ndim != 2 or c.shape[0] < 2:
            raise ValueError(f"a chain needs {what} of at least two models, each an array of one length")
        return c

    def fit(
        self,
        confidences: Sequence[np.ndarray],
        scores: Sequence[np.ndarray] | None = None,
        costs: np.ndarray | Sequence[float] | None = None,
    ) -> "ChainRouter":
        """Fit every stage on the calibration half and build the path.

        Args:
            confidences: calibrated confidences, one array per model, chain order.
            scores: optional per-model scores (kept in the bin tables only).
            costs: per-call prices (one per model) or an ``(n_models, n)`` cost matrix for the
                path's cost estimates (default: equal prices).
        """
        c = self._stack(confidences)
        m, n = c.shape
        if self.advantage_to not in ADVANTAGE_TO:
            raise ValueError(f"advantage_to must be one of {ADVANTAGE_TO}, got {self.advantage_to!r}")
        if self.models is not None and len(self.models) != m:
            raise ValueError(f"{len(self.models)} model names for {m} models")
        y = None if scores is None else self._stack(scores, "scores")
        self.stages_ = []
        for j in range(m - 1):
            ref = j + 1 if self.advantage_to == "next" else m - 1
            st = AdvantageRouter(self.n_bins, name=f"stage{j + 1}")
            if y is None:
                st.fit(c[j], c[ref])
            else:
                st.fit(c[j], c[ref], y[j], y[ref])
            self.stages_.append(st)
        cm = self._costs(costs, m, n)
        self.path_ = self._greedy_path(c, cm)
        return self

    @staticmethod
    def _costs(costs, m: int, n: int) -> np.ndarray:
        if costs is None:
            return cost_matrix(np.ones(m), n)
        a = np.asarray(costs, dtype=np.float64)
        if a.ndim == 1:
            if a.size != m:
                raise ValueError(f"{a.size} costs for {m} models")
            return cost_matrix(a, n)
        if a.shape != (m, n):
            raise ValueError(f"cost matrix must be ({m}, {n}), got {a.shape}")
        return a

    # -- routing ----------------------------------------------------------------------------
    def _ranks(self, c: np.ndarray) -> np.ndarray:
        """``(n_stages, n)``: position of each input's bin in its stage's advantage order."""
        out = np.empty((len(self.stages_), c.shape[1]), dtype=np.int64)
        for j, st in enumerate(self.stages_):
            pos = np.empty(st.n_bins_, dtype=np.int64)
            pos[st.order_] = np.arange(st.n_bins_)
            out[j] = pos[st.bin_of(c[j])]
        return out

    @staticmethod
    def _answering_from_ranks(ranks: np.ndarray, setting: Sequence[int]) -> np.ndarray:
        n_stages, n = ranks.shape
        ans = np.full(n, n_stages, dtype=np.int64)
        for j in range(n_stages - 1, -1, -1):  # earlier stages override later ones
            ans[ranks[j] < setting[j]] = j
        return ans

    def _check_setting(self, setting: Sequence[int]) -> tuple[int, ...]:
        s = tuple(int(k) for k in setting)
        if len(s) != len(self.stages_):
            raise ValueError(f"a setting has one K per stage ({len(self.stages_)}), got {len(s)}")
        for j, (k, nb) in enumerate(zip(s, self.bins_per_stage_)):
            if not 0 <= k <= nb:
                raise ValueError(f"K of stage {j + 1} must be in [0, {nb}], got {k}")
        return s

    def answering_model(self, confidences: Sequence[np.ndarray], setting: Sequence[int]) -> np.ndarray:
        """Index (0-based, chain order) of the model that answers each input under ``setting``."""
        self._check()
        c = self._stack(confidences)
        return self._answering_from_ranks(self._ranks(c), self._check_setting(setting))

    def canonical(self, setting: Sequence[int]) -> tuple[int, ...]:
        """The setting with every K after a stage that keeps everything set to 0 (same routing)."""
        s = list(self._check_setting(setting))
        for j, nb in enumerate(self.bins_per_stage_):
            if s[j] == nb:
                s[j + 1 :] = [0] * (len(s) - j - 1)
                break
        return tuple(s)

    def settings(self) -> list[tuple[int, ...]]:
        """Every distinct setting (canonical form), in lexicographic order."""
        self._check()
        out = {self.canonical(s) for s in itertools.product(*[range(nb + 1) for nb in self.bins_per_stage_])}
        return sorted(out)

    # -- evaluation -------------------------------------------------------------------------
    def evaluate(
        self,
        confidences: Sequence[np.ndarray],
        scores: Sequence[np.ndarray],
        costs: np.ndarray | Sequence[float] | None = None,
        settings: Sequence[Sequence[int]] | None = None,
    ) -> list[ChainPoint]:
        """Cost and accuracy of each setting (default: all) on labelled data."""
        self._check()
        c = self._stack(confidences)
        y = self._stack(scores, "scores")
        m, n = c.shape
        if y.shape != c.shape:
            raise ValueError("scores and confidences must have the same shape")
        cm = np.cumsum(self._costs(costs, m, n), axis=0)  # cost of an input answered at stage j
        c_min, c_max = float(cm[0].mean()), float(cm[-1].mean())
        span = c_max - c_min
        ranks = self._ranks(c)
        idx = np.arange(n)
        out = []
        for s in settings if settings is not None else self.settings():
            s = self._check_setting(s)
            ans = self._answering_from_ranks(ranks, s)
            cost = float(cm[ans, idx].mean())
            shares = tuple(float(v) for v in np.bincount(ans, minlength=m) / n)
            out.append(ChainPoint(s, cost, (cost - c_min) / span if span > 0 else 0.0, float(y[ans, idx].mean()), shares))
        return out

    def _greedy_path(self, c: np.ndarray, cm: np.ndarray) -> list[tuple[int, ...]]:
        """Settings from all-through-to-Mn to all-on-M1 (module docstring), on calibration data."""
        ranks = self._ranks(c)
        cum = np.cumsum(cm, axis=0)
        idx = np.arange(c.shape[1])
        nbs = self.bins_per_stage_

        def est(s):
            ans = self._answering_from_ranks(ranks, s)
            return float(cum[ans, idx].mean()), float(c[ans, idx].mean())

        cur = tuple([0] * len(nbs))
        path = [cur]
        cur_cost, cur_acc = est(cur)
        while cur[0] < nbs[0]:
            best = None
            for j in range(len(nbs)):
                if cur[j] >= nbs[j] or any(cur[i] == nbs[i] for i in range(j)):
                    continue
                cand = cur[:j] + (cur[j] + 1,) + cur[j + 1 :]
                cost, acc = est(cand)
                d_cost, d_acc = cur_cost - cost, cur_acc - acc
                ratio = d_acc / d_cost if d_cost > 1e-15 else (-np.inf if d_acc <= 0 else np.inf)
                key = (ratio, j)  # ties: earlier stage first
                if best is None or key < best[0]:
                    best = (key, cand, cost, acc)
            assert best is not None
            _, cur, cur_cost, cur_acc = best
            path.append(self.canonical(cur))
        # drop consecutive duplicates (moves that change nothing)
        return [s for i, s in enumerate(path) if i == 0 or s != path[i - 1]]

    def path(self) -> list[tuple[int, ...]]:
        """The ordered settings (most expensive first) fitted on the calibration half."""
        self._check()
        return list(self.path_)

    def curve(
        self,
        confidences: Sequence[np.ndarray],
        scores: Sequence[np.ndarray],
        costs: np.ndarray | Sequence[float] | None = None,
        name: str = "chain",
    ) -> tuple[RoutingCurve, list[ChainPoint]]:
        """The path on new data as a :class:`RoutingCurve` (``share_small = 1 - normalised cost``,
        so :func:`~calib_harness.routing.curves.apgr` applies) and its points."""
        pts = self.evaluate(confidences, scores, costs, settings=self.path_)
        curve = RoutingCurve(
            name,
            np.array([1.0 - p.norm_cost for p in pts]),
            np.array([p.accuracy for p in pts]),
            np.arange(len(pts)),
            {"settings": [list(p.setting) for p in pts], "n_bins": self.bins_per_stage_},
        )
        return curve, pts

    # -- deployment -------------------------------------------------------------------------
    def deployable(self, setting: Sequence[int], calibrators: Sequence[dict[str, Any]] | None = None, meta: dict[str, Any] | None = None):
        """A :class:`~calib_harness.routing.chain_deploy.DeployableChain` at ``setting``.

        ``calibrators``: one calibrator spec per model except the last
        (:func:`calib_harness.routing.compare.calibrator_spec`); identity when omitted.
        """
        from calib_harness.routing.chain_deploy import DeployableChain
        from calib_harness.routing.deploy import DeployableRouter

        self._check()
        s = self._check_setting(setting)
        names = list(self.models or [f"model{j + 1}" for j in range(self.n_models_)])
        specs = list(calibrators or [{"kind": "identity"}] * len(self.stages_))
        if len(specs) != len(self.stages_):
            raise ValueError(f"{len(specs)} calibrator specs for {len(self.stages_)} stages")
        stages = [
            DeployableRouter(
                edges=st.edges_.tolist(),
                selected_bins=st.selected_bins(k).tolist(),
                calibrator=spec,
                advantage=[float(a) for a in st.stats_.advantage],
                k=int(k),
                small_model=names[j],
                large_model=names[j + 1],
                meta={"n_bins": st.n_bins_, "advantage_to": self.advantage_to},
            )
            for j, (st, k, spec) in enumerate(zip(self.stages_, s, specs))
        ]
        return DeployableChain(models=names, stages=stages, setting=list(s), meta=dict(meta or {}))


def pareto_front(points: Sequence[ChainPoint]) -> list[ChainPoint]:
    """Settings no other setting beats on both cost and accuracy (cheapest first)."""
    order = sorted(points, key=lambda p: (p.cost, -p.accuracy))
    front: list[ChainPoint] = []
    for p in order:
        if not front or p.accuracy > front[-1].accuracy + 1e-12:
            front.append(p)
    return front


def chain_apgr(curve: RoutingCurve, p_first: float, p_last: float) -> float:
    """APGR over normalised cost (module docstring): 0 = M1 alone, 1 = Mn alone, 0.5 = random."""
    return apgr(curve, p_first, p_last)


def select_setting_ltt(
    router: ChainRouter,
    confidences: Sequence[np.ndarray],
    scores: Sequence[np.ndarray],
    max_drop: float,
    delta: float,
    method: str = "clopper-pearson",
    costs: np.ndarray | Sequence[float] | None = None,
):
    """Learn-then-Test over the router's path (most expensive first) on data the router was
    *not* fitted on: the cheapest setting whose accuracy drop against the last model is
    certified ``<= max_drop`` with probability ``>= 1 - delta``.

    Returns ``(setting or None, Selection)``; ``None`` means: send everything to the last model.
    """
    from calib_harness.risk import cascade_losses, ltt_select

    c = router._stack(confidences)
    y = router._stack(scores, "scores")
    ranks = router._ranks(c)
    idx = np.arange(c.shape[1])
    answer = np.array([y[router._answering_from_ranks(ranks, s), idx] for s in router.path_])
    losses = cascade_losses(answer, y[-1])
    sel = ltt_select(losses, max_drop, delta, method=method, what="the accuracy drop against the last model")
    pts = router.evaluate(c, y, costs, settings=router.path_)
    sel.meta["path"] = [p.to_dict() for p in pts]
    return (None if sel.index is None else router.path_[sel.index]), sel
