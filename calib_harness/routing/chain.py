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

from calib_harness.report.tables import Table
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
    return apgr(curve, p_first, p_last, warn=False)


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


# -- runs: calibrate, fit, evaluate, deploy (what ``calib-harness cascade --models`` runs) -----
class _Identity:
    """Raw confidences (``--method none``), with the attributes the chain reads from a calibrator."""

    method, feature = "none", "confidence"

    @staticmethod
    def confidence(run) -> np.ndarray:
        return run.confidences()


#: per-model calibrators a chain can use (``auto`` chooses among the first four by held-out log-loss)
CHAIN_METHODS = ("auto", "temperature", "platt", "isotonic", "histogram", "none")


def _candidates(run, feature: str | None) -> list[tuple[str, str]]:
    from calib_harness.calibration import default_method_and_feature

    m0, f0 = default_method_and_feature(run)
    out = [("temperature", "option_scores")] if m0 == "temperature" else []
    scalar = feature or (f0 if m0 == "platt" else "confidence")
    return out + [("platt", scalar), ("isotonic", scalar), ("histogram", scalar)]


def _choose_calibrator(run, feature: str | None, folds: int = 5, seed: int = 0):
    """``auto``: the candidate with the lowest held-out log-loss of the calibrated confidence
    against the score (``folds``-fold cross-fitting inside the data given: the calibration half,
    never the test half).  A proper score: a calibrator that flattens confidences whose accuracy
    varies (temperature scaling on a weak model, issue #17) loses to one that does not."""
    from sklearn.model_selection import KFold

    from calib_harness.calibration import fit_run_calibrator

    y = run.scores()
    n = len(run)
    splits = list(KFold(min(folds, max(2, n // 20)), shuffle=True, random_state=seed).split(np.arange(n)))
    losses = {}
    for m, f in _candidates(run, feature):
        nll = []
        try:
            for tr, te in splits:
                c = np.clip(fit_run_calibrator(run.subset(tr), method=m, feature=f).confidence(run.subset(te)), 1e-6, 1 - 1e-6)
                nll.append(-np.mean(y[te] * np.log(c) + (1 - y[te]) * np.log(1 - c)))
        except (ValueError, KeyError) as e:  # e.g. a feature some records lack
            logger.info("chain calibrator %s(%s) skipped for %s: %s", m, f, run.model, e)
            continue
        losses[(m, f)] = float(np.mean(nll))
    if not losses:
        raise ValueError(f"no calibrator could be fitted on {run.model!r}")
    m, f = min(losses, key=losses.get)  # ties: candidate order
    cal = fit_run_calibrator(run, method=m, feature=f)
    cal.meta["auto_heldout_logloss"] = {f"{k[0]}({k[1]})": v for k, v in losses.items()}
    return cal


def _calibrate_runs(fit_runs, method: str, feature: str | None):
    """One calibrator per model, fitted on ``fit_runs`` (see :data:`CHAIN_METHODS`)."""
    from calib_harness.calibration import default_method_and_feature, fit_run_calibrator

    if method not in CHAIN_METHODS:
        raise ValueError(f"a chain calibrates each model on its own: --method must be one of {', '.join(CHAIN_METHODS)}, got {method!r}")
    cals = []
    for r in fit_runs:
        if method == "none":
            cals.append(_Identity())
        elif method == "auto":
            cals.append(_choose_calibrator(r, feature))
        else:
            f = feature
            if f is None:
                m0, f0 = default_method_and_feature(r)
                f = f0 if (m0 == method or method == "temperature") else "confidence"
            cals.append(fit_run_calibrator(r, method=method, feature=f))
    return cals


def token_counts(runs, feature: str = "n_tokens") -> np.ndarray:
    """``(n_models, n)`` token counts from each record's ``features[feature]`` (per-token costs)."""
    out = []
    for r in runs:
        vals = [(rec.features or {}).get(feature) for rec in r.records]
        missing = sum(v is None for v in vals)
        if missing:
            raise ValueError(
                f"per-token costs need features[{feature!r}] on every record; {missing} of {len(vals)} records of "
                f"{r.model!r} have none (use --cost-unit call)"
            )
        out.append(np.asarray(vals, dtype=np.float64))
    return np.asarray(out)


@dataclass
class ChainResult:
    """Everything :func:`run_chain` measured (test-half figures unless named ``cal``)."""

    models: list[str]
    costs: list[float]
    cost_unit: str
    n_cal: int
    n_test: int
    accuracies: list[float]
    router: ChainRouter
    curve: RoutingCurve
    path: list[ChainPoint]
    points: list[ChainPoint]
    pareto: list[ChainPoint]
    apgr_cost: float
    deployed: ChainPoint
    deployable: Any
    risk: dict[str, Any] | None = None
    meta: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "models": self.models,
            "costs": self.costs,
            "cost_unit": self.cost_unit,
            "n_cal": self.n_cal,
            "n_test": self.n_test,
            "test_accuracy": dict(zip(self.models, self.accuracies)),
            "apgr_cost": self.apgr_cost,
            "bins_per_stage": self.router.bins_per_stage_,
            "advantage_to": self.router.advantage_to,
            "path": [p.to_dict() for p in self.path],
            "pareto_front": [p.to_dict() for p in self.pareto],
            "n_settings": len(self.points),
            "deployed": self.deployed.to_dict(),
            "risk_control": self.risk,
            "meta": self.meta,
        }

    def to_markdown(self) -> str:
        acc = ", ".join(f"`{m}` {a:.4f}" for m, a in zip(self.models, self.accuracies))
        lines = [
            f"Chain {' -> '.join(self.models)} ({self.cost_unit} costs {self.costs}); {self.n_cal} calibration / "
            f"{self.n_test} test docs; test accuracy: {acc}.",
            "",
            f"APGR over normalised cost (path): {self.apgr_cost:.4f}; {len(self.points)} settings, "
            f"{len(self.pareto)} on the Pareto front (test half).",
        ]
        front = Table("Pareto front (test half)", ["setting (K per stage)", "normalised cost", "mean cost", "accuracy", "shares"],
                      [[str(list(p.setting)), f"{p.norm_cost:.3f}", f"{p.cost:.4g}", f"{p.accuracy:.4f}",
                        " / ".join(f"{s:.2f}" for s in p.shares)] for p in self.pareto])
        lines += ["", front.render("markdown")]
        d = self.deployed
        lines += ["", f"Deployed setting {list(d.setting)}: test accuracy {d.accuracy:.4f}, normalised cost {d.norm_cost:.3f}."]
        if self.risk:
            lines.append(f"Risk control: {self.risk['guarantee']}")
        return "\n".join(lines)

    def plot(self, path) -> None:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        fig, ax = plt.subplots(figsize=(6.4, 4.6))
        ax.scatter([p.norm_cost for p in self.points], [p.accuracy for p in self.points], s=6, c="lightgrey", label=f"all {len(self.points)} settings")
        ax.plot([p.norm_cost for p in self.pareto], [p.accuracy for p in self.pareto], "-", c="tab:orange", lw=1.2, label="Pareto front (test)")
        ax.plot([p.norm_cost for p in self.path], [p.accuracy for p in self.path], "o-", c="tab:red", ms=3, lw=1.6, label=f"path (fitted on cal.), APGR {self.apgr_cost:.3f}")
        ax.plot([0, 1], [self.accuracies[0], self.accuracies[-1]], "--", c="grey", lw=1, label="random M1 / Mn")
        ax.scatter([self.deployed.norm_cost], [self.deployed.accuracy], marker="*", s=140, c="black", zorder=5, label="deployed")
        ax.set_xlabel("normalised cost (0 = M1 only, 1 = every model called)")
        ax.set_ylabel("accuracy (test half)")
        ax.set_title(" -> ".join(self.models), fontsize=9)
        ax.legend(fontsize=7, loc="lower right")
        fig.tight_layout()
        fig.savefig(path, dpi=130)
        plt.close(fig)


def run_chain(
    runs,
    costs: Sequence[float] | None = None,
    cost_unit: str = "call",
    n_bins: int = 15,
    advantage_to: str = "next",
    method: str = "auto",
    feature: str | None = None,
    cal_fraction: float = 0.5,
    seed: int = 0,
    max_drop: float | None = None,
    delta: float = 0.1,
    risk_method: str = "clopper-pearson",
    ltt_fraction: float = 0.5,
    deploy_cost: float = 0.5,
) -> ChainResult:
    """Split aligned runs (chain order), fit the chain on the calibration half, evaluate on the
    test half, choose the deployed setting.

    With ``max_drop``, the calibration half is split again (``ltt_fraction`` of it for testing):
    calibrators and stages are fitted on the rest, and Learn-then-Test over the path picks the
    cheapest setting whose accuracy drop against the last model is certified ``<= max_drop``
    with probability ``>= 1 - delta``; when none is, everything goes to the last model.
    Without it, the deployed setting is the most accurate path point (calibration half) with
    normalised cost ``<= deploy_cost``.
    """
    from calib_harness.calibration import split_indices
    from calib_harness.routing.compare import calibrator_spec

    runs = list(runs)
    m = len(runs)
    if m < 2:
        raise ValueError("a chain needs at least two runs")
    costs = [float(c) for c in (costs if costs is not None else range(1, m + 1))]
    if len(costs) != m:
        raise ValueError(f"--costs needs one price per model: {m} models, {len(costs)} costs")
    if cost_unit not in ("call", "token"):
        raise ValueError("cost unit must be 'call' or 'token'")
    n = len(runs[0])
    cal_idx, test_idx = split_indices(n, cal_fraction, seed)
    fit_idx, ltt_idx = cal_idx, None
    if max_drop is not None:
        from calib_harness.risk import split_for_ltt

        a, b = split_for_ltt(len(cal_idx), ltt_fraction, seed)
        fit_idx, ltt_idx = cal_idx[a], cal_idx[b]

    def part(idx):
        return [r.subset(idx) for r in runs]

    def price(rs):
        return cost_matrix(costs, len(rs[0]), token_counts(rs) if cost_unit == "token" else None)

    fit_runs = part(fit_idx)
    cals = _calibrate_runs(fit_runs, method, feature)

    def conf(rs):
        return [c.confidence(r) for c, r in zip(cals, rs)]

    def sc(rs):
        return [r.scores() for r in rs]

    names = [r.model for r in runs]
    router = ChainRouter(n_bins, advantage_to, names).fit(conf(fit_runs), sc(fit_runs), price(fit_runs))
    test_runs = part(test_idx)
    ct, yt, pt = conf(test_runs), sc(test_runs), price(test_runs)
    curve, path_pts = router.curve(ct, yt, pt)
    points = router.evaluate(ct, yt, pt)
    front = pareto_front(points)
    accs = [float(y.mean()) for y in yt]
    a_cost = chain_apgr(curve, accs[0], accs[-1])  # nan when the first and last model tie

    risk = None
    if max_drop is not None:
        ltt_runs = part(ltt_idx)
        setting, sel = select_setting_ltt(router, conf(ltt_runs), sc(ltt_runs), max_drop, delta, risk_method, price(ltt_runs))
        from calib_harness.risk import guarantee_record

        if setting is None:
            setting = tuple([0] * (m - 1))
            point = None
        else:
            point = {"setting": list(setting), **sel.meta["path"][sel.index]}
        risk = guarantee_record(sel, point, f"everything to the last model ({names[-1]})")
        if sel.index == 0:
            risk["note"] = (f"only the most conservative point (everything to {names[-1]}) was certified: "
                            "no setting that keeps inputs on cheaper models meets the guarantee")
            logger.warning(risk["note"])
        risk.update(max_drop=max_drop, n_fit=int(len(fit_idx)), n_ltt=int(len(ltt_idx)),
                    loss="max(score_last - score_answering, 0): bounds the accuracy drop against the last model")
    else:
        cal_pts = router.evaluate(conf(fit_runs), sc(fit_runs), price(fit_runs), settings=router.path_)
        ok = [p for p in cal_pts if p.norm_cost <= deploy_cost + 1e-12] or [min(cal_pts, key=lambda p: p.norm_cost)]
        setting = max(ok, key=lambda p: (p.accuracy, -p.cost)).setting
    deployed = router.evaluate(ct, yt, pt, settings=[setting])[0]
    specs = [{"kind": "identity"} if isinstance(c, _Identity) else calibrator_spec(c) for c in cals[:-1]]
    meta = {"calibrators": [f"{c.method}({c.feature})" for c in cals], "costs": costs, "cost_unit": cost_unit}
    if risk is not None:
        meta["risk_control"] = risk
    dep = router.deployable(setting, specs, meta)
    dep.costs = costs
    return ChainResult(names, costs, cost_unit, len(cal_idx), len(test_idx), accs, router, curve, path_pts, points, front,
                       a_cost, deployed, dep, risk, {"method": method, "seed": seed, "cal_fraction": cal_fraction})


def write_chain_outputs(result: ChainResult, out, no_plots: bool = False) -> list[str]:
    """chain.json, chain.md, chain.png and router.json (for two models the stage's
    :class:`~calib_harness.routing.deploy.DeployableRouter`, else a chain file)."""
    from pathlib import Path

    from calib_harness.outputs import write_json, write_text

    out = Path(out)
    write_json(out / "chain.json", result.to_dict())
    write_text(out / "chain.md", result.to_markdown() + "\n")
    written = ["chain.json", "chain.md"]
    if not no_plots:
        result.plot(out / "chain.png")
        written.append("chain.png")
    dep = result.deployable
    if len(dep.stages) == 1:
        r = dep.stages[0]
        r.meta.update(dep.meta)
        write_json(out / "router.json", r.to_dict())
    else:
        write_json(out / "router.json", dep.to_dict())
    written.append(f"router.json (setting {list(result.deployed.setting)})")
    return written


# -- command line (``calib-harness cascade --models ... | --max-drop ...``) ------------------
def add_chain_args(p) -> None:
    """Flags of N-model chains and risk-controlled operating points on ``cascade``."""
    g = p.add_argument_group("chains of N models and risk-controlled operating points")
    g.add_argument("--models", nargs="+", default=None, metavar="RUN",
                   help="runs of a chain M1 -> ... -> Mn, cheapest first (instead of --small/--large): fits Algorithm 1 at every stage, writes chain.json, chain.md, chain.png and router.json; --method: auto (default; each model's calibrator by held-out log-loss inside the calibration half), temperature, platt, isotonic, histogram or none")
    g.add_argument("--costs", nargs="+", type=float, default=None, metavar="C",
                   help="price of each model of --models, chain order (per call, or per token with --cost-unit token; default 1 2 ... n)")
    g.add_argument("--cost-unit", choices=["call", "token"], default="call",
                   help="--costs are per call (default) or per token (token counts from each record's features['n_tokens'])")
    g.add_argument("--advantage-to", choices=list(ADVANTAGE_TO), default="next",
                   help="a chain stage's advantage of going further: against the next model (default) or the last")
    g.add_argument("--deploy-cost", type=float, default=0.5,
                   help="chain without --max-drop: router.json keeps the most accurate setting whose normalised cost on the calibration half is <= this (default 0.5)")
    g.add_argument("--max-drop", type=float, default=None, metavar="EPS",
                   help="choose router.json's operating point by Learn-then-Test: keep the most on cheaper models while the accuracy drop against the strongest model is <= EPS with probability >= 1 - --delta")
    g.add_argument("--delta", type=float, default=0.1, metavar="D",
                   help="allowed probability that the --max-drop guarantee fails (default 0.1)")
    g.add_argument("--risk-method", choices=["clopper-pearson", "hb"], default="clopper-pearson",
                   help="p-value of Learn-then-Test: exact binomial (0/1 scores; default) or Hoeffding-Bentkus (fractional scores)")
    g.add_argument("--ltt-fraction", type=float, default=0.5,
                   help="with --max-drop: share of the calibration half held out to test operating points; the router is fitted on the rest (default 0.5)")


def check_risk_args(n_docs: int, args) -> None:
    """Refuse ``--max-drop`` before anything is written when the held-out part of the calibration
    half is too small for any point to pass (:class:`calib_harness.risk.InsufficientSamplesError`)."""
    if getattr(args, "max_drop", None) is None:
        return
    if getattr(args, "method", "auto") not in CHAIN_METHODS:
        raise ValueError(f"--max-drop fits per-model calibrators: --method must be one of {', '.join(CHAIN_METHODS)}, got {args.method!r}")
    from calib_harness.calibration import split_indices
    from calib_harness.risk import InsufficientSamplesError, min_samples, split_for_ltt

    cal, _ = split_indices(n_docs, args.cal_fraction, args.seed)
    _, ltt = split_for_ltt(len(cal), args.ltt_fraction, args.seed)
    needed = min_samples(args.max_drop, args.delta)
    if len(ltt) < needed:
        raise InsufficientSamplesError(len(ltt), needed, args.max_drop, args.delta,
                                       what=f"held-out calibration samples ({args.ltt_fraction:g} of the {len(cal)}-doc calibration half)")


def run_chain_command(args, load) -> int:
    """``cascade --models``: a chain (or, with two runs, the two-model cascade through the chain code)."""
    from rich.console import Console

    from calib_harness.outputs import prepare_output_dir
    from calib_harness.records import align

    console = Console()
    runs = [load(p) for p in args.models]
    runs = align(*runs, on_mismatch="intersect" if getattr(args, "intersect", False) else "error")
    check_risk_args(len(runs[0]), args)
    out_dir = prepare_output_dir(args.output, args.force, "cascade", protect=list(args.models))
    result = run_chain(
        runs, costs=args.costs, cost_unit=args.cost_unit, n_bins=args.bins, advantage_to=args.advantage_to,
        method=args.method, feature=args.feature, cal_fraction=args.cal_fraction, seed=args.seed,
        max_drop=args.max_drop, delta=args.delta, risk_method=args.risk_method, ltt_fraction=args.ltt_fraction,
        deploy_cost=args.deploy_cost,
    )
    console.print(result.to_markdown())
    written = write_chain_outputs(result, out_dir.path, no_plots=args.no_plots)
    out_dir.finish()
    console.print(f"wrote {', '.join(written)} to {out_dir.path}")
    return 0


def risk_controlled_router_json(runs, args, out) -> str:
    """``cascade --small --large --max-drop``: router.json from Learn-then-Test (two-model chain:
    calibrators and bins fitted on part of the calibration half, the point tested on the rest)."""
    from pathlib import Path

    result = run_chain(
        runs, costs=args.costs, cost_unit=args.cost_unit, n_bins=args.bins, method=args.method, feature=args.feature,
        cal_fraction=args.cal_fraction, seed=args.seed, max_drop=args.max_drop, delta=args.delta,
        risk_method=args.risk_method, ltt_fraction=args.ltt_fraction,
    )
    written = write_chain_outputs(result, Path(out), no_plots=True)
    logger.info(result.risk["guarantee"] if result.risk else "")
    k = result.deployed.setting[0]
    status = "guarantee met" if result.risk and result.risk["satisfied"] else "no point certified: everything to the large model"
    return f"{written[-1].split(' (')[0]} (Learn-then-Test, K={k}, {status}; test drop {result.accuracies[-1] - result.deployed.accuracy:.4f})"
