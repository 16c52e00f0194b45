"""Every router on two aligned runs: roles, split, fit on one half, evaluate on the other.

:func:`compare_routers` is what ``calib-harness cascade`` runs:

1. align the runs (same docs, same order) and split them into a calibration half and a test
   half with :func:`calib_harness.calibration.split_indices` (same docs in each run's halves);
2. **roles from data**: the "small" model is the cheaper one when costs are given, else the one
   less accurate on the calibration half; a disagreeing argument order is swapped (``roles=
   "data"``, the default) or kept (``roles="given"``), with a warning either way;
3. fit every requested router (:mod:`calib_harness.routing.base` registry: CC, UC, threshold,
   random, oracle, MF, and whatever else is registered) on the calibration half;
4. on the test half: accuracy-vs-share curves, the exact APGR and GATEKEEPER's s_d (normalised
   from the weaker to the stronger model), 95% bootstrap intervals over test docs
   (:func:`calib_harness.metrics.bootstrap_ci`), the APGR of binned routers for several
   numbers of bins, and each router's operating point chosen on the calibration half (its
   peak accuracy there) with the accuracy it reaches on the test half;
5. **same-size pairs** (the paired 95% interval of the test accuracy difference covers 0): the
   combined peak accuracy against each model alone, and the share at the peak (Hao et al. 2026,
   section 3.3, Figs. 2b-c and 3f).

Degenerate inputs never crash and never give NaN tables: too few docs or two identical runs are
refused with a :class:`~calib_harness.outputs.CliError` saying what to do; a router that cannot
be fitted on these data is left out with a warning; APGR / s_d are ``None`` with a reason when
the two models score the same on the test half.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from calib_harness.outputs import CliError, Null
from calib_harness.records import Run, align
from calib_harness.report.tables import Interval, Table, format_cell
from calib_harness.routing.base import Router, RoutingData, canonical_name, get_router, list_routers, make_router
from calib_harness.routing.curves import RoutingCurve, curve_area, curve_from_priority, ideal_deferral_accuracy, routed_accuracy
from calib_harness.routing.deploy import DeployableRouter

logger = logging.getLogger(__name__)

DEFAULT_BINS_SWEEP = (5, 15, 50, 100)
#: refuse below this many documents in common (each half gets at least half of them)
MIN_DOCS = 20
#: warn when the calibration half has fewer documents than this per bin
MIN_DOCS_PER_BIN = 10


def default_routers() -> list[str]:
    """Every registered router (the CLI's default ``--routers``)."""
    return list_routers()


def _exact_apgr(curve: RoutingCurve, p_small: float, p_large: float) -> float:
    lo, hi = min(p_small, p_large), max(p_small, p_large)
    if np.isclose(lo, hi):
        return float("nan")
    return (curve_area(curve, p_small, p_large) - lo) / (hi - lo)


def _exact_sd(curve: RoutingCurve, p_small: float, p_large: float) -> float:
    lo, hi = min(p_small, p_large), max(p_small, p_large)
    denom = lo * (hi - lo) / 2.0
    if np.isclose(denom, 0.0):
        return float("nan")
    return (curve_area(curve, p_small, p_large) - (lo + hi) / 2.0) / denom


def _iv(value: Any, ci: Sequence[float] | None) -> Interval:
    """A figure with its 95% interval (printed ``v [lo, hi]``; an undefined figure or bound prints ``n/a``)."""
    ok = lambda x: x is not None and np.isfinite(x)  # noqa: E731
    lo, hi = (ci[0], ci[1]) if ci is not None and all(ok(v) for v in ci) else (None, None)
    return Interval(float(value) if ok(value) else None, lo, hi)


@dataclass
class CascadeComparison:
    """Results of :func:`compare_routers` (figures on the test half unless named otherwise)."""

    small_model: str
    large_model: str
    n_cal: int
    n_test: int
    n_bins: int
    p_small: float
    p_large: float
    curves: dict[str, RoutingCurve]
    apgr: dict[str, float]
    s_d: dict[str, float]
    apgr_ci: dict[str, tuple[float, float]] = field(default_factory=dict)
    s_d_ci: dict[str, tuple[float, float]] = field(default_factory=dict)
    bins_sensitivity: dict[str, dict[int, float]] = field(default_factory=dict)
    calibration: dict[str, dict[str, Any]] = field(default_factory=dict)
    roles: dict[str, Any] = field(default_factory=dict)
    same_size: dict[str, Any] = field(default_factory=dict)
    operating_points: dict[str, dict[str, Any]] = field(default_factory=dict)
    bin_tables: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)
    meta: dict[str, Any] = field(default_factory=dict)
    routers: dict[str, Router] = field(default_factory=dict, repr=False)
    bands: dict[str, dict[str, np.ndarray]] = field(default_factory=dict, repr=False)
    p_small_ci: tuple[float, float] = (float("nan"), float("nan"))
    p_large_ci: tuple[float, float] = (float("nan"), float("nan"))

    # -- derived -----------------------------------------------------------------------
    @property
    def cc_router(self):
        """The fitted CC :class:`~calib_harness.routing.advantage.AdvantageRouter` (or None)."""
        r = self.routers.get("CC")
        return None if r is None else r.router_

    @property
    def small_calibrator(self):
        r = self.routers.get("CC")
        return None if r is None else r.deploy_calibrator()

    @property
    def ideal_curve(self) -> RoutingCurve:
        r = np.linspace(0, 1, 201)
        lo, hi = min(self.p_small, self.p_large), max(self.p_small, self.p_large)
        acc = ideal_deferral_accuracy(r, lo, hi)
        share_small = 1 - r if self.p_small <= self.p_large else r
        return RoutingCurve("ideal (GATEKEEPER eq. 11)", share_small, acc)

    @property
    def apgr_ideal(self) -> float:
        """APGR of GATEKEEPER's stylised ideal curve (eq. 11): ``(1 + p_weak) / 2``."""
        return (1.0 + min(self.p_small, self.p_large)) / 2.0

    def rows(self) -> list[dict[str, Any]]:
        out = []
        for name, c in self.curves.items():
            out.append(
                {
                    "router": name,
                    "APGR": self.apgr.get(name, float("nan")),
                    "APGR_ci": self.apgr_ci.get(name),
                    "s_d": self.s_d.get(name, float("nan")),
                    "s_d_ci": self.s_d_ci.get(name),
                    "points": int(c.share_small.size),
                    "best_acc": float(c.accuracy.max()),
                    "cal_choice_acc": self.operating_points.get(name, {}).get("test_accuracy"),
                }
            )
        return out

    def _null(self, value: float, reason: str) -> Any:
        return Null(reason) if value is None or not np.isfinite(value) else value

    def to_dict(self) -> dict[str, Any]:
        """Plain data for comparison.json (write it with :func:`calib_harness.outputs.write_json`:
        undefined figures become ``null`` with a reason)."""
        why = "undefined: the two models have the same accuracy on the test half"
        return {
            "small_model": self.small_model,
            "large_model": self.large_model,
            "roles": self.roles,
            "n_cal": self.n_cal,
            "n_test": self.n_test,
            "n_bins": self.n_bins,
            "p_small": self.p_small,
            "p_large": self.p_large,
            "p_small_ci95": list(self.p_small_ci),
            "p_large_ci95": list(self.p_large_ci),
            "apgr": {k: self._null(v, why) for k, v in self.apgr.items()},
            "apgr_ci95": {k: list(v) for k, v in self.apgr_ci.items()},
            "s_d": {k: self._null(v, why) for k, v in self.s_d.items()},
            "s_d_ci95": {k: list(v) for k, v in self.s_d_ci.items()},
            "apgr_ideal_eq11": self.apgr_ideal,
            "bins_sensitivity": {k: {str(n): v for n, v in d.items()} for k, d in self.bins_sensitivity.items()},
            "operating_points": self.operating_points,
            "same_size": self.same_size,
            "calibration": self.calibration,
            "bin_tables": self.bin_tables,
            "warnings": self.warnings,
            "curves": {k: c.to_dict() for k, c in self.curves.items()},
            "bands95": {k: {kk: np.asarray(v).tolist() for kk, v in b.items()} for k, b in self.bands.items()},
            "meta": self.meta,
        }

    def header(self) -> str:
        """Who is small and large (test accuracy with its 95% interval), by what, and the split sizes."""
        ro = self.roles
        how = ro.get("by", "")
        return (
            f"Weaker/cheaper (\"small\"): `{self.small_model}` (test acc {format_cell(_iv(self.p_small, self.p_small_ci), '{:.4f}')}); "
            f"stronger (\"large\"): `{self.large_model}` (test acc {format_cell(_iv(self.p_large, self.p_large_ci), '{:.4f}')}); "
            f"roles by {how}; {self.n_cal} calibration / {self.n_test} test docs; {self.n_bins} bins."
        )

    def tables(self) -> list[Table]:
        """The comparison as :class:`~calib_harness.report.tables.Table` s: routers (APGR, s_d with 95%
        intervals), the same-size peaks, APGR by number of bins, the CC calibrator's selection and the
        bins of each binned router.  :meth:`to_markdown` and ``calib-harness cascade`` render them."""
        note = ("APGR: exact area under the accuracy-cost curve, normalised from the weaker to the stronger model "
                "(random = 0.5); s_d: GATEKEEPER's deferral score (1 = ideal). [..]: 95% bootstrap interval over test docs.")
        rows = [[r["router"], _iv(r["APGR"], r["APGR_ci"]), _iv(r["s_d"], r["s_d_ci"]), r["best_acc"],
                 _iv(r["cal_choice_acc"], None), r["points"]] for r in self.rows()]
        rows.append(["ideal (GATEKEEPER eq. 11)", self.apgr_ideal, 1.0, max(self.p_small, self.p_large), "-", "-"])
        out = [Table(f"Cascade {self.small_model} (weaker) -> {self.large_model} (stronger); test half, n={self.n_test}",
                     ["router", "APGR (95% CI)", "s_d (95% CI)", "best acc (test)", "acc at cal.-chosen point", "points"],
                     rows, note)]
        ss = self.same_size
        if ss.get("is_same_size"):
            out.append(Table(
                "Same-size pair: combined peak vs each model alone",
                ["router", "peak acc (test)", "share on small at peak", "gain over best single",
                 "peak chosen on cal. half: test acc", "share"],
                [[name, _iv(p["peak_accuracy"], None), _iv(p["share_small_at_peak"], None),
                  f"{p['gain_over_best_single']:+.4f}", _iv(p.get("cal_chosen_test_accuracy"), None),
                  _iv(p.get("cal_chosen_share_small"), None)] for name, p in ss["peaks"].items()],
                f"test accuracy difference {format_cell(_iv(ss['difference'], ss['difference_ci95']), '{:+.4f}')} covers 0.",
            ))
        if self.bins_sensitivity:
            ns = sorted({n for d in self.bins_sensitivity.values() for n in d})
            out.append(Table("APGR by number of bins", ["APGR by #bins", *map(str, ns)],
                             [[name, *[_iv(d.get(n), None) for n in ns]] for name, d in self.bins_sensitivity.items()]))
        cc = self.calibration.get("CC")
        if cc and cc.get("selection"):
            out.append(Table(
                f"CC calibrator: {cc['calibrator']} (chosen by {cc.get('folds', '?')}-fold cross-fitting on the calibration half)",
                ["candidate", "held-out APGR", "sd", "collapses a model"],
                [[m, v["apgr"], v["sd"], "yes" if v["collapsed"] else "no"] for m, v in cc["selection"].items()]))
        for name, bins in self.bin_tables.items():
            out.append(Table(
                f"{name} bins (calibration half): calibrated confidence against accuracy",
                ["bin", "range", "n", "small conf", "small acc", "large conf", "large acc", "advantage", "kept from K"],
                [[b["bin"], f"{b['low']:.3f}-{b['high']:.3f}", b["count"], b["small_confidence"], _iv(b["small_accuracy"], None),
                  b["large_confidence"], _iv(b["large_accuracy"], None), f"{b['advantage']:+.3f}", b["kept_from_k"]]
                 for b in bins]))
        return out

    def to_markdown(self) -> str:
        parts = [self.header()]
        for t in self.tables():
            parts.append(t.render("markdown", "{:.3f}" if t.title.endswith("against accuracy") else "{:.4f}"))
        if self.warnings:
            parts.append("\n".join(["Warnings:", ""] + [f"- {w}" for w in self.warnings]))
        return "\n\n".join(parts)

    def summary_tables(self) -> list[Table]:
        """The router, same-size and bins tables (without the CC calibrator's selection and the per-bin tables)."""
        return [t for t in self.tables() if not t.title.startswith("CC calibrator") and not t.title.endswith("against accuracy")]

    def to_text(self) -> str:
        """What ``calib-harness cascade`` prints: :meth:`summary_tables` as plain text."""
        return "\n\n".join(t.render("text", "{:.4f}") for t in self.summary_tables())


# -- the comparison ------------------------------------------------------------------------------


def _weaker_is_second(cal: RoutingData) -> bool:
    """Is the second model the weaker one?  Calibration-half accuracy; ties broken by the mean
    confidence (lower = weaker), then the model name, so the answer never depends on the order."""
    key_a = (cal.p_small, float(cal.small_confidence.mean()), cal.small_model)
    key_b = (cal.p_large, float(cal.large_confidence.mean()), cal.large_model)
    return key_b < key_a


def _decide_roles(cal: RoutingData, costs: Sequence[float] | None, roles: str) -> tuple[bool, dict[str, Any], list[str]]:
    """(swap?, role record, warnings) for the pair as given (first = user's "small")."""
    a, b = cal.small_model, cal.large_model
    acc_a, acc_b = cal.p_small, cal.p_large
    warns: list[str] = []
    rec: dict[str, Any] = {"given_order": [a, b], "cal_accuracy": {"first": acc_a, "second": acc_b}}
    if costs is not None:
        ca, cb = float(costs[0]), float(costs[1])
        rec.update(by="cost", costs={"first": ca, "second": cb})
        data_swap = cb < ca
        if ca == cb:
            data_swap = _weaker_is_second(cal)
            rec["by"] = "calibration-half accuracy (equal costs)"
        elif (acc_b < acc_a) != data_swap and acc_a != acc_b:
            warns.append(
                f"the cheaper model is the more accurate one on the calibration half ({acc_a:.3f} vs {acc_b:.3f}); "
                "a cascade cannot beat it alone on accuracy, only the curves tell whether routing adds anything"
            )
    else:
        rec["by"] = "calibration-half accuracy"
        data_swap = _weaker_is_second(cal)
        if acc_a == acc_b:
            rec["tie_break"] = "equal calibration-half accuracy: the less confident model, then the model name"
    swap = data_swap if roles == "data" else False
    if data_swap:
        weaker = b
        vb, va = (cb, ca) if rec["by"] == "cost" else (acc_b, acc_a)
        if roles == "data":
            warns.append(
                f"roles swapped: {b!r} is the weaker/cheaper model ({rec['by']}: {vb:.3f} vs {va:.3f} for {a!r}), "
                "so it is the small model although it was given second"
            )
        else:
            warns.append(
                f"{a!r} was given as the small model but {weaker!r} is the weaker/cheaper one ({rec['by']}); "
                "kept as given (--roles given); APGR and s_d are still normalised from the weaker to the stronger"
            )
    rec["swapped"] = bool(swap)
    return swap, rec, warns


def check_pair(small: Run, large: Run, n_bins: int = 15, cal_fraction: float = 0.5) -> list[str]:
    """Refuse (CliError) pairs no cascade can be measured on; return warnings for thin ones.

    Refused: fewer than :data:`MIN_DOCS` documents in common, or two runs with identical
    scores and confidences (the same run twice).  Warned: fewer than :data:`MIN_DOCS_PER_BIN`
    calibration documents per bin.
    """
    n = len(small)
    if n < MIN_DOCS:
        raise CliError(
            f"the two runs share {n} documents; a cascade needs at least {MIN_DOCS} (half to fit, half to test); "
            "rerun lm-eval with a larger --limit"
        )
    ys, yl = small.scores(), large.scores()
    if np.array_equal(ys, yl) and np.allclose(small.confidences(), large.confidences()):
        raise CliError(
            f"the two runs ({small.model!r}, {large.model!r}) give identical scores and confidences on every document "
            "(the same run passed twice?); pass the runs of two different models"
        )
    warns = []
    n_cal = int(round(n * cal_fraction))
    if n_cal < MIN_DOCS_PER_BIN * n_bins:
        warns.append(
            f"{n_cal} calibration documents for {n_bins} bins (< {MIN_DOCS_PER_BIN} per bin): per-bin figures are noisy; "
            f"use at most --bins {max(1, n_cal // MIN_DOCS_PER_BIN)}, or more documents"
        )
    return warns


def _bootstrap(test: RoutingData, router: Router, score: np.ndarray | None, n_boot: int, seed: int):
    """95% percentile bootstrap intervals (over test docs) of APGR and s_d of one router."""
    from calib_harness.metrics import bootstrap_ci

    def curve_of(s, ys, yl):
        return _curve_on(router, s, ys, yl)

    if router.expected:  # random: the expected curve has APGR 0.5 and s_d 0 on every resample
        return (0.5, 0.5), (0.0, 0.0)
    s = np.zeros(len(test)) if score is None else score
    args = (s, test.small_scores, test.large_scores)
    a = bootstrap_ci(lambda s, ys, yl: _exact_apgr(curve_of(s, ys, yl), ys.mean(), yl.mean()), *args, n_boot=n_boot, seed=seed)
    d = bootstrap_ci(lambda s, ys, yl: _exact_sd(curve_of(s, ys, yl), ys.mean(), yl.mean()), *args, n_boot=n_boot, seed=seed)
    return a, d


def _curve_on(router: Router, score: np.ndarray | None, ys: np.ndarray, yl: np.ndarray) -> RoutingCurve:
    """A router's test curve from its (precomputed) scores on resampled docs."""
    from calib_harness.routing.baselines import oracle_priority
    from calib_harness.routing.curves import random_curve

    if router.expected:
        return random_curve(float(ys.mean()), float(yl.mean()))
    prio = oracle_priority(ys, yl) if router.uses_test_labels else -score
    return curve_from_priority(router.name, prio, ys, yl)


def _bands(test: RoutingData, fitted: dict[str, Router], scores: dict[str, np.ndarray | None], n_boot: int, seed: int,
           n_grid: int = 51) -> dict[str, dict[str, np.ndarray]]:
    """Pointwise 95% bootstrap bands (over test docs) of each curve on a grid of shares."""
    from calib_harness.routing.curves import knots

    grid = np.linspace(0.0, 1.0, n_grid)
    rng = np.random.default_rng(seed + 1)
    n = len(test)
    reps: dict[str, list[np.ndarray]] = {k: [] for k in fitted}
    for _ in range(int(n_boot)):
        idx = np.sort(rng.integers(0, n, n))
        ys, yl = test.small_scores[idx], test.large_scores[idx]
        for name, r in fitted.items():
            s = None if scores[name] is None else scores[name][idx]
            cost, acc = knots(_curve_on(r, s, ys, yl), float(ys.mean()), float(yl.mean()))
            reps[name].append(np.interp(1.0 - grid, cost, acc))
    out = {}
    for name, v in reps.items():
        if v:
            lo, hi = np.quantile(np.vstack(v), [0.025, 0.975], axis=0)
            out[name] = {"share_small": grid, "lo": lo, "hi": hi}
    return out


def _operating_point(router: Router, cal: RoutingData, test: RoutingData) -> dict[str, Any] | None:
    """The calibration half's peak-accuracy point, applied to the test half."""
    if router.uses_test_labels or router.expected:
        return None
    c_cal = router.curve(cal)
    i = int(np.argmax(c_cal.accuracy))
    share_small = float(c_cal.share_small[i])
    to_large = router.route(test, 1.0 - share_small)
    keep = ~to_large
    return {
        "cal_share_small": share_small,
        "cal_accuracy": float(c_cal.accuracy[i]),
        "param": None if c_cal.params is None else float(np.asarray(c_cal.params, dtype=float)[i]),
        "test_share_small": float(keep.mean()),
        "test_accuracy": routed_accuracy(keep, test.small_scores, test.large_scores),
    }


def compare_routers(
    small: Run,
    large: Run,
    routers: Sequence[str] | None = None,
    n_bins: int = 15,
    bins_sweep: Sequence[int] = DEFAULT_BINS_SWEEP,
    method: str = "auto",
    feature: str | None = None,
    cal_fraction: float = 0.5,
    seed: int = 0,
    mf_options: dict[str, Any] | None = None,
    mf_checkpoint: str | Path | None = None,
    embedding_cache: str | Path | None = None,
    progress: bool = True,
    roles: str = "data",
    costs: Sequence[float] | None = None,
    n_boot: int = 1000,
    router_options: dict[str, dict[str, Any]] | None = None,
) -> CascadeComparison:
    """Fit every requested router on the calibration half and evaluate it on the test half.

    Args:
        small, large: the two runs; their order is a suggestion (``roles``).
        routers: registered router names (default: every registered router).
        n_bins, bins_sweep: bins of the binned routers, and the counts of the sensitivity table.
        method, feature: CC's calibrator (``auto``: chosen by cross-fitting on the calibration half).
        roles: ``"data"`` (default): the cheaper (``costs``) or less accurate on the calibration
            half is the small model; ``"given"``: keep the order, warn when it disagrees.
        costs: per-call cost of ``(small, large)`` as given.
        n_boot: bootstrap resamples of the test half for the intervals (0: none).
        router_options: extra constructor options per router name.
    """
    from calib_harness import metrics
    from calib_harness.calibration import split_indices

    if roles not in ("data", "given"):
        raise ValueError(f"roles must be 'data' or 'given', got {roles!r}")
    wanted = [canonical_name(r) for r in (routers if routers is not None else default_routers())]
    wanted = list(dict.fromkeys(wanted))
    if not (getattr(small, "has_confidence", True) and getattr(large, "has_confidence", True)):
        from calib_harness.readers.stock import NO_CONFIDENCE

        need = [r for r in wanted if r not in ("oracle", "random", "MF")]
        if need:
            raise CliError(
                f"routers {', '.join(need)} need per-sample confidences, and these runs carry none "
                f"({NO_CONFIDENCE}); pass --routers oracle random MF"
            )
    small, large = align(small, large)
    warns = check_pair(small, large, n_bins, cal_fraction)
    data = RoutingData.from_runs(small, large, embedding_cache=embedding_cache, progress=progress)
    cal_idx, test_idx = split_indices(len(data), cal_fraction, seed)
    swap, role_rec, role_warns = _decide_roles(data.subset(cal_idx), costs, roles)
    warns += role_warns
    if swap:
        data = data.swapped()
    cal, test = data.subset(cal_idx), data.subset(test_idx)
    p_small, p_large = test.p_small, test.p_large

    opts: dict[str, dict[str, Any]] = {k.lower(): dict(v) for k, v in (router_options or {}).items()}
    mf = dict(mf_options or {})
    if mf_checkpoint:
        mf["checkpoint"] = str(mf_checkpoint)
    opts.setdefault("mf", {}).update(mf)
    opts.setdefault("cc", {}).update({"method": method, "feature": feature})
    common = {"n_bins": n_bins, "seed": seed, "progress": progress}

    fitted: dict[str, Router] = {}
    router_warns: list[str] = []
    curves: dict[str, RoutingCurve] = {}
    meta: dict[str, Any] = {"method": method, "cal_fraction": cal_fraction, "seed": seed, "n_boot": n_boot, "routers": {}}
    for name in wanted:
        cls = get_router(name)
        if cls.needs_prompts and data.prompts is None:
            warns.append(f"{name} skipped: the records carry no prompt text")
            continue
        try:
            r = make_router(name, **{**common, **opts.get(name.lower(), {})}).fit(cal)
            curves[name] = r.curve(test)
        except ValueError as e:
            warns.append(f"{name} skipped: {e}")
            continue
        fitted[name] = r
        meta["routers"][name] = r.info()
        router_warns += list(getattr(r, "warnings_", []))  # the router logged them itself

    same = bool(np.isclose(p_small, p_large))
    if same:
        warns.append(
            f"both models score {p_small:.4f} on the test half: APGR and s_d are undefined (null); "
            "the curves still show where the pair beats each model alone"
        )
    apgrs = {k: _exact_apgr(c, p_small, p_large) for k, c in curves.items()}
    sds = {k: _exact_sd(c, p_small, p_large) for k, c in curves.items()}

    apgr_ci: dict[str, tuple[float, float]] = {}
    sd_ci: dict[str, tuple[float, float]] = {}
    scores = {
        name: None if (r.uses_test_labels or r.expected) else np.asarray(r.score(test), dtype=np.float64)
        for name, r in fitted.items()
    }
    if n_boot and not same:
        for name, r in fitted.items():
            apgr_ci[name], sd_ci[name] = _bootstrap(test, r, scores[name], n_boot, seed)
    bands = _bands(test, fitted, scores, min(int(n_boot), 200), seed) if n_boot else {}

    sens: dict[str, dict[int, float]] = {}
    for name, r in fitted.items():
        if not type(r).binned or not bins_sweep:
            continue
        params = dict(r.get_params())
        if hasattr(r, "method_"):
            params["method"] = r.method_  # the sweep keeps the calibrator chosen at n_bins
        sens[name] = {}
        for nb in bins_sweep:
            rr = type(r)(**{**params, "n_bins": int(nb)}).fit(cal)
            sens[name][int(nb)] = _exact_apgr(rr.curve(test), p_small, p_large)

    op_points = {}
    for name, r in fitted.items():
        op = _operating_point(r, cal, test)
        if op is not None:
            op_points[name] = op

    # same-size pairs: paired interval of the accuracy difference on the test half
    diff_ci = metrics.bootstrap_ci(lambda a, b: float(b.mean() - a.mean()), test.small_scores, test.large_scores, seed=seed) if n_boot else (float("nan"),) * 2
    is_same = bool(np.isfinite(diff_ci[0]) and diff_ci[0] <= 0.0 <= diff_ci[1]) or same
    peaks = {}
    best_single = max(p_small, p_large)
    for name, c in curves.items():
        if fitted[name].uses_test_labels or fitted[name].expected:
            continue
        i = int(np.argmax(c.accuracy))
        op = op_points.get(name, {})
        peaks[name] = {
            "peak_accuracy": float(c.accuracy[i]),
            "share_small_at_peak": float(c.share_small[i]),
            "gain_over_best_single": float(c.accuracy[i] - best_single),
            "cal_chosen_test_accuracy": op.get("test_accuracy"),
            "cal_chosen_share_small": op.get("test_share_small"),
            "cal_chosen_gain_over_best_single": None if not op else float(op["test_accuracy"] - best_single),
        }
    same_size = {
        "is_same_size": is_same,
        "difference": float(p_large - p_small),
        "difference_ci95": list(diff_ci),
        "accuracy_small": p_small,
        "accuracy_large": p_large,
        "peaks": peaks,
        "note": "peak_accuracy is the best point of the test curve (optimistic); cal_chosen_* picks the point on the "
        "calibration half and reports its test accuracy",
    }

    calibration: dict[str, dict[str, Any]] = {}
    bin_tables: dict[str, list[dict[str, Any]]] = {}
    for name, r in fitted.items():
        if hasattr(r, "bin_table"):
            bin_tables[name] = r.bin_table()
        if hasattr(r, "method_"):
            calibration[name] = {
                "calibrator": r.method_,
                "calibrators": r.describe(),
                "selection": r.selection_,
                "folds": r.folds,
                "collapse": r.collapse_,
            }
    if "CC" in fitted:
        meta["calibrators"] = fitted["CC"].describe()
    for w in warns:
        logger.warning("%s", w)
    return CascadeComparison(
        small_model=data.small_model,
        large_model=data.large_model,
        n_cal=len(cal),
        n_test=len(test),
        n_bins=n_bins,
        p_small=p_small,
        p_large=p_large,
        curves=curves,
        apgr=apgrs,
        s_d=sds,
        apgr_ci=apgr_ci,
        s_d_ci=sd_ci,
        bins_sensitivity=sens,
        calibration=calibration,
        roles=role_rec,
        same_size=same_size,
        operating_points=op_points,
        bin_tables=bin_tables,
        warnings=list(dict.fromkeys(warns + router_warns)),
        meta=meta,
        routers=fitted,
        bands=bands,
        p_small_ci=metrics.wilson_interval(test.small_scores.sum(), len(test)),
        p_large_ci=metrics.wilson_interval(test.large_scores.sum(), len(test)),
    )


# -- deployment ----------------------------------------------------------------------------------


def calibrator_spec(run_calibrator: Any) -> dict[str, Any]:
    """Plain-number description of a fitted small-model calibrator for :class:`DeployableRouter`.

    Reads :class:`calib_harness.calibration.RunCalibrator`'s ``to_dict()``: temperature scaling
    keeps ``T``; Platt keeps ``a, b`` (and ``logit_input``); histogram binning keeps the inner
    edges and bin values; isotonic regression keeps its interpolation table.  ``None``: the raw
    confidence (identity).
    """
    if run_calibrator is None:
        return {"kind": "identity"}
    d = run_calibrator.to_dict()
    method, feature = d["method"], d["feature"]
    cal = d["calibrator"]
    fitted, params = cal.get("fitted", {}), cal.get("params", {})
    if method == "temperature":
        return {"kind": "temperature", "temperature": float(fitted["temperature_"]), "feature": "option_scores"}
    if method == "platt":
        return {
            "kind": "platt",
            "a": float(fitted["a_"]),
            "b": float(fitted["b_"]),
            "logit_input": bool(params.get("logit_input", False)),
            "feature": feature,
        }
    if method == "histogram":
        edges = [float(e) for e in fitted["edges_"]][1:-1]  # the outer two decide nothing
        # equal-count bins are right-closed (EqualCountBinner), equal-width ones left-closed
        side = "left" if params.get("binning", "equal_count") == "equal_count" else "right"
        return {"kind": "bins", "edges": edges, "values": [float(v) for v in fitted["values_"]], "feature": feature, "side": side}
    if method == "isotonic":
        return {
            "kind": "interp",
            "x": [float(v) for v in fitted["X_thresholds_"]],
            "y": [float(v) for v in fitted["y_thresholds_"]],
            "feature": feature,
        }
    raise ValueError(f"cannot turn a {method!r} calibrator into a deployable spec")


def build_deployable(
    comparison: CascadeComparison,
    k: int | None = None,
    target_share_small: float | None = None,
) -> DeployableRouter:
    """The fitted CC router at one K (given, or the smallest K keeping ``target_share_small`` of
    the calibration half on the small model; default 0.5) as a :class:`DeployableRouter`."""
    cc = comparison.routers.get("CC")
    if cc is None:
        raise ValueError("no CC router in this comparison (run with 'CC' among the routers)")
    router = cc.router_
    if k is None:
        k = cc.k_for_share(0.5 if target_share_small is None else float(target_share_small))
    cal_meta = comparison.calibration.get("CC", {})
    return DeployableRouter(
        edges=router.edges_.tolist(),
        selected_bins=router.selected_bins(int(k)).tolist(),
        calibrator=calibrator_spec(cc.deploy_calibrator()),
        advantage=[float(a) for a in router.stats_.advantage],
        k=int(k),
        small_model=comparison.small_model,
        large_model=comparison.large_model,
        meta={
            "n_bins": router.n_bins_,
            "calibrator": cal_meta.get("calibrator"),
            "calibrators": comparison.meta.get("calibrators"),
            "roles": comparison.roles,
        },
    )
