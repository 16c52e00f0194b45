"""``build_report``: the whole post-processing of a set of runs, as one Markdown + HTML report.

For any runs (lm-eval output folders of our tasks, records files, vision records):

1. per run: accuracy, mean confidence, ECE, Brier;
2. calibration (the paper's split protocol, section 2.1): ECE before/after on the
   calibration and test halves, with Figure 1 style reliability diagrams;
3. with two runs over the same documents: the cascade (Algorithm 1) against UC,
   threshold, RouteLLM MF, random and oracle: APGR, s_d, curves, bin sensitivity;
4. cleaning (Algorithm 2 and Confident Learning) with every run as an expert; precision and
   detection rate when a reference exists (MMLU-Redux for ``calib_mmlu_*`` tasks), else the
   number of flagged samples per method.

Every stage writes its figures beside the report and the report says which stages were
skipped and why (one run only, no prompts for MF, no reference ...).
"""

from __future__ import annotations

import json
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from calib_harness import metrics
from calib_harness.paths import shared_data_dir
from calib_harness.records import RecordError, Run, align
from calib_harness.report.document import Document, Figure, Section, Table, write


@dataclass
class ReportResult:
    markdown: Path
    html: Path
    figures: dict[str, Path] = field(default_factory=dict)
    numbers: dict[str, Any] = field(default_factory=dict)


def _slug(name: str) -> str:
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in name)


def runs_section(runs: Sequence[Run], numbers: dict) -> Section:
    rows = []
    for r in runs:
        c, s = r.confidences(), r.scores()
        row = {"model": r.model, "tasks": len(r.tasks), "n": len(r), "accuracy": float(s.mean()),
               "mean confidence": float(c.mean()), "ECE": metrics.ece(c, s), "Brier": metrics.brier(c, s)}
        rows.append(row)
        numbers.setdefault("runs", {})[r.model] = row
    cols = ["model", "tasks", "n", "accuracy", "mean confidence", "ECE", "Brier"]
    return Section(
        "Runs",
        "Uncalibrated figures over all samples of each run. ECE uses 15 equal-count bins (the paper's histogram "
        "equalisation); the Brier score is the top-label one.",
        tables=[Table("Accuracy and confidence", cols, [[row[c] for c in cols] for row in rows])],
    )


def calibration_section(runs: Sequence[Run], out: Path, numbers: dict, seed: int) -> Section:
    from calib_harness.calibration import default_method_and_feature, evaluate_split
    from calib_harness.plots import split_reliability_diagram

    rows, figs = [], []
    for r in runs:
        method, feature = default_method_and_feature(r)
        rep = evaluate_split(r, method, feature, seed=seed)
        m = rep.metrics
        row = [r.model, f"{method} ({feature})", m["cal"]["before"]["ece"], m["cal"]["after"]["ece"],
               m["test"]["before"]["ece"], m["test"]["after"]["ece"], m["test"]["before"]["nll"], m["test"]["after"]["nll"],
               m["test"]["after"]["auroc"]]
        rows.append(row)
        numbers.setdefault("calibration", {})[r.model] = rep.to_dict()
        path = out / f"reliability_{_slug(r.model)}.png"
        split_reliability_diagram(rep, path, title=f"{r.model}: {method} scaling, 15 equal-count bins")
        figs.append(Figure(path, f"Reliability diagram of {r.model}: calibration half (left) and test half (right); "
                                 "light = uncalibrated, dark = calibrated."))
        (out / f"calibrator_{_slug(r.model)}.json").write_text(rep.calibrator.to_json())
    cols = ["model", "method", "ECE cal before", "ECE cal after", "ECE test before", "ECE test after",
            "NLL test before", "NLL test after", "AUROC test"]
    return Section(
        "Calibration",
        "Each run is split (seeded) into a calibration half and a test half; the calibrator is fitted on the "
        "calibration half only and reported on both (paper section 2.1). Temperature scaling for option scores "
        "(multiple choice, images), Platt scaling of the mean logit for generations.",
        tables=[Table("ECE before and after calibration", cols, rows)],
        figures=figs,
    )


def cascade_section(small: Run, large: Run, out: Path, numbers: dict, seed: int, mf: bool, progress: bool) -> Section:
    from calib_harness.routing.compare import ROUTERS, compare_routers
    from calib_harness.routing.plots import plot_bins_sensitivity, plot_curves

    routers = [r for r in ROUTERS if mf or r != "MF"]
    notes = []
    if mf and any(not r.prompt for r in small.records):
        routers = [r for r in routers if r != "MF"]
        notes.append("RouteLLM MF skipped: the records carry no prompt text to embed.")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        comp = compare_routers(small, large, routers=routers, seed=seed, embedding_cache=out / "embeddings",
                               progress=progress)
    numbers["cascade"] = comp.to_dict()
    numbers["cascade"].pop("curves", None)
    (out / "cascade.json").write_text(json.dumps(comp.to_dict(), indent=1, default=float))
    curves, bins = out / "cascade_curves.png", out / "cascade_bins.png"
    plot_curves(comp, curves)
    figs = [Figure(curves, "Accuracy on the test half against the share of inputs kept on the small model, per router.")]
    if comp.bins_sensitivity:
        plot_bins_sensitivity(comp, bins)
        figs.append(Figure(bins, "APGR of CC and UC against the number of equal-count bins."))
    rows = [[r["router"], r["APGR"], r["s_d"], r["best_acc"]] for r in comp.rows()]
    tables = [Table(f"Routers: {comp.small_model} (small, test acc {comp.p_small:.3f}) -> {comp.large_model} "
                    f"(large, test acc {comp.p_large:.3f}); {comp.n_cal} calibration / {comp.n_test} test docs",
                    ["router", "APGR", "s_d", "best accuracy"], rows,
                    note="APGR: area under the normalised accuracy-cost curve (appendix A.1); random = 0.5. "
                         "s_d: GATEKEEPER's deferral score (1 = ideal deferral).")]
    if comp.bins_sensitivity:
        ns = sorted({n for d in comp.bins_sensitivity.values() for n in d})
        tables.append(Table("APGR by number of bins", ["router", *map(str, ns)],
                            [[k, *[d.get(n, float("nan")) for n in ns]] for k, d in comp.bins_sensitivity.items()]))
    return Section("Cascade", " ".join(["Algorithm 1 (CC) and its baselines; all routers are fitted on the calibration "
                                        "half and evaluated on the test half.", *notes]), tables=tables, figures=figs)


def cleaning_section(runs: Sequence[Run], out: Path, numbers: dict, seed: int, data_dir: Path | None) -> Section:
    from calib_harness.cleaning.evaluate import evaluate
    from calib_harness.cleaning.experts import build_panel
    from calib_harness.cleaning.pipeline import run_methods
    from calib_harness.cleaning.plots import plot_precision_detection
    from calib_harness.cleaning.report import flagged_rows, write_flagged

    n_bins = 15 if len(runs[0]) >= 60 else 5
    panel = build_panel(list(runs), n_bins=n_bins, seed=seed, on_mismatch="intersect")
    outcome = run_methods(panel, filter_by=("prune_by_noise_rate", "confident_learning"))
    reference, why = None, ""
    tasks = {k[0] for k in panel.keys}
    if tasks and all(t.startswith("calib_mmlu_") for t in tasks):
        redux = (data_dir / "mmlu_redux" / "mmlu_redux_normalized.jsonl") if data_dir else None
        if redux is not None and redux.exists():
            from calib_harness.cleaning.reference import mmlu_redux_reference

            reference = mmlu_redux_reference(data_dir)
        else:
            why = "MMLU-Redux not found (set CALIB_HARNESS_SHARED_DATA to the shared data folder)."
    else:
        why = "no human reference exists for these tasks; flagged counts only."
    write_flagged(flagged_rows(outcome, reference), out, stem="cleaning_flagged")
    keep = ["M1 top-1", "M1 top-1 +agree", *[f"M2 K={k}" for k in (1, 3, 5, 8, 10, 12)],
            *[r.name for r in outcome.results if r.name.startswith(("M3", "CL"))]]
    names = [r.name for r in outcome.results if r.name in keep]
    figs, tables = [], []
    if reference is not None:
        rows = [r for r in evaluate(outcome, reference) if r.positives == "any"]
        numbers["cleaning"] = [r.to_dict() for r in rows]
        path = out / "cleaning_precision.png"
        plot_precision_detection(rows, path, title=f"experts: {', '.join(panel.models)}")
        figs.append(Figure(path, "Cleaning precision against detection rate (share of reference errors found), per K."))
        by = {r.method: r for r in rows}
        tables.append(Table(f"Cleaning against {reference.name} ({rows[0].n_eval} questions, {rows[0].n_errors} errors)",
                            ["method", "flagged", "true errors", "precision", "detection rate"],
                            [[n, by[n].n_flagged, by[n].tp, by[n].precision, by[n].detection_rate] for n in names if n in by]))
    else:
        numbers["cleaning"] = outcome.summary_rows()
        tables.append(Table(f"Flagged samples ({panel.n} docs, experts: {', '.join(panel.models)})",
                            ["method", "flagged", "flag rate"],
                            [[r["method"], r["n_flagged"], r["flag_rate"]] for r in outcome.summary_rows() if r["method"] in keep]))
    text = ("Every run is an expert (Algorithm 2): M1 = all experts disagree with the label; M2 = and each expert's "
            "calibrated confidence is in its top-K bins by accuracy; M3 = the class-threshold method; CL = Confident "
            "Learning (cleanlab, filter_by named). The ranked list for human review is cleaning_flagged.csv. " + why)
    return Section("Label cleaning", text, tables=tables, figures=figs)


def pick_pair(runs: Sequence[Run], small: str | None, large: str | None) -> tuple[Run, Run]:
    by = {r.model: r for r in runs}
    if small or large:
        missing = [m for m in (small, large) if m and m not in by]
        if missing:
            raise ValueError(f"models {missing} not among the runs {sorted(by)}")
    if small and large:
        return by[small], by[large]
    ordered = sorted(runs[:2], key=lambda r: r.scores().mean())  # the less accurate one is "small"
    return ordered[0], ordered[1]


def build_report(
    runs: Sequence[Run],
    out: str | Path,
    *,
    title: str = "calib-harness report",
    small: str | None = None,
    large: str | None = None,
    data_dir: str | Path | None = None,
    seed: int = 0,
    mf: bool = True,
    progress: bool = True,
    intro: str = "",
) -> ReportResult:
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    if not runs:
        raise ValueError("no runs to report on")
    numbers: dict[str, Any] = {}
    doc = Document(title, intro or "What the models know, and when they know it: confidences captured per sample, "
                   "calibrated, used to route between models and to find label errors.")
    doc.sections.append(runs_section(runs, numbers))
    doc.sections.append(calibration_section(runs, out, numbers, seed))
    skipped = []
    if len(runs) >= 2:
        a, b = pick_pair(runs, small, large)
        try:
            a, b = align(a, b)
        except RecordError as e:
            skipped.append(f"Cascade and cleaning skipped: {e}")
        else:
            doc.sections.append(cascade_section(a, b, out, numbers, seed, mf, progress))
            doc.sections.append(cleaning_section(runs, out, numbers, seed, shared_data_dir(data_dir, fallback=False)))
    else:
        skipped.append("Cascade and cleaning need two runs over the same documents; one was given.")
    if skipped:
        doc.sections.append(Section("Skipped", "\n\n".join(skipped)))
    (out / "numbers.json").write_text(json.dumps(numbers, indent=1, default=_jsonable))
    md, page = write(doc, out)
    figs = {f.path.stem: f.path for s in doc.sections for f in s.figures}
    return ReportResult(md, page, figs, numbers)


def _jsonable(o: Any) -> Any:
    if isinstance(o, (np.floating, np.integer)):
        return o.item()
    if isinstance(o, np.ndarray):
        return o.tolist()
    return str(o)
