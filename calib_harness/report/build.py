"""``build_report``: the whole post-processing of a set of runs -- LM or vision -- as one Markdown + HTML
report.  This is THE report pipeline: ``calib-harness report``, ``calib-harness vision mnist-pair --report``
and the demo all go through it.

For any runs (lm-eval output folders of our tasks, records files, vision records):

1. per run: accuracy, mean confidence, ECE, Brier;
2. calibration (the paper's split protocol, section 2.1): ECE before/after on the
   calibration and test halves, with Figure 1 style reliability diagrams;
3. with two runs over the same documents: the cascade (Algorithm 1) against UC,
   threshold, RouteLLM MF, random and oracle: APGR, s_d, curves, bin sensitivity;
4. cleaning (Algorithm 2 and Confident Learning) with every run as an expert; precision and
   detection rate when a reference exists (:func:`default_reference`: MMLU-Redux for ``calib_mmlu_*``
   tasks, cleanlab's MTurk verdicts for ``mnist_test``), else the number of flagged samples per method.

The tables are built from the JSON-ready dicts each stage returns (:meth:`Table.from_dicts`), so what a
stage adds there -- intervals (``X_lo``/``X_hi``, ``X_ci``), nulls with reasons, role notes -- shows in the
report without a change here.  Every stage writes its figures beside the report and the report says which
stages were skipped and why (one run only, no prompts for MF, no reference ...).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping, Sequence

from calib_harness import metrics
from calib_harness.outputs import write_json, write_text
from calib_harness.paths import shared_data_dir
from calib_harness.records import RecordError, Run, align
from calib_harness.report.document import Document, Figure, Section, write
from calib_harness.report.tables import Table, cell_value

logger = logging.getLogger(__name__)

#: Cleaning methods shown in the report tables (all are in numbers.json and cleaning_flagged.csv).
CLEANING_SHOWN = ("M1 top-1", "M1 top-1 +agree", *[f"M2 K={k}" for k in (1, 3, 5, 8, 10, 12)])


@dataclass
class ReportResult:
    markdown: Path
    html: Path
    figures: dict[str, Path] = field(default_factory=dict)
    numbers: dict[str, Any] = field(default_factory=dict)


def _slug(name: str) -> str:
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in name)


def _plain(v: Any) -> str:
    """A value of a stage's dict as short text (floats 3 decimals, nested dicts as ``k v``)."""
    from calib_harness.report.tables import format_cell

    if isinstance(v, Mapping):
        return ", ".join(f"{k} {_plain(x)}" for k, x in v.items())
    if isinstance(v, (list, tuple)):
        return ", ".join(_plain(x) for x in v)
    return format_cell(v)


def _notes(d: Mapping[str, Any]) -> list[str]:
    """Free-text notes a stage put in its dict (``roles``, ``warnings``, ``notes``), as sentences."""
    out: list[str] = []
    roles = d.get("roles")
    if isinstance(roles, Mapping):
        out.append("Roles: " + "; ".join(f"{str(k).replace('_', ' ')}: {_plain(v)}" for k, v in roles.items()) + ".")
    elif isinstance(roles, str):
        out.append(roles)
    for key in ("warnings", "notes"):
        v = d.get(key)
        if isinstance(v, str):
            out.append(v)
        elif isinstance(v, (list, tuple)):
            out.extend(s if s.endswith(".") else s + "." for s in map(str, v))
    return out


def runs_section(runs: Sequence[Run], numbers: dict) -> Section:
    rows = []
    for r in runs:
        c, s = r.confidences(), r.scores()
        summ = metrics.summary(c, s)
        row = {"model": r.model, "tasks": len(r.tasks), **summ, "n": len(r)}
        rows.append(row)
        numbers.setdefault("runs", {})[r.model] = row
    cols = {"model": "model", "tasks": "tasks", "n": "n", "accuracy": "accuracy",
            "mean_confidence": "mean confidence", "ece": "ECE", "brier": "Brier"}
    return Section(
        "Runs",
        "Uncalibrated figures over all samples of each run, with 95% intervals where the metrics give them. ECE "
        "uses 15 equal-count bins (the paper's histogram equalisation); the Brier score is the top-label one.",
        tables=[Table.from_dicts("Accuracy and confidence", rows, cols)],
    )


def calibration_section(runs: Sequence[Run], out: Path, numbers: dict, seed: int, plots: bool,
                        skipped: list[str]) -> Section | None:
    """The calibration section; a run below the split protocol's minimum is named in ``skipped`` (with the
    reason) instead, and ``None`` comes back when no run is large enough."""
    from calib_harness.calibration import TooFewSamplesError, default_method_and_feature, evaluate_split

    rows, figs = [], []
    for r in runs:
        method, feature = default_method_and_feature(r)
        logger.info("calibration: %s (%s on %s)", r.model, method, feature)
        try:
            rep = evaluate_split(r, method, feature, seed=seed)
        except TooFewSamplesError as e:
            skipped.append(f"Calibration of {r.model} skipped: {e} (the flags named are `calib-harness calibrate`'s).")
            continue
        m = rep.metrics
        rows.append({
            "model": r.model, "method": f"{method} ({feature})",
            "acc test": cell_value(m["test"]["before"], "accuracy"),
            "ECE cal before": cell_value(m["cal"]["before"], "ece"), "ECE cal after": cell_value(m["cal"]["after"], "ece"),
            "ECE test before": cell_value(m["test"]["before"], "ece"), "ECE test after": cell_value(m["test"]["after"], "ece"),
            "NLL test before": cell_value(m["test"]["before"], "nll"), "NLL test after": cell_value(m["test"]["after"], "nll"),
            "AUROC test": cell_value(m["test"]["after"], "auroc"),
        })
        numbers.setdefault("calibration", {})[r.model] = rep.to_dict()
        if plots:
            from calib_harness.plots import split_reliability_diagram

            path = out / f"reliability_{_slug(r.model)}.png"
            split_reliability_diagram(rep, path, title=f"{r.model}: {method} scaling, 15 equal-count bins")
            figs.append(Figure(path, f"Reliability diagram of {r.model}: calibration half (left) and test half "
                                     "(right); top row uncalibrated, bottom row calibrated; bars are the accuracy "
                                     "per equal-count bin with 95% Wilson intervals, below each a count histogram."))
        write_text(out / f"calibrator_{_slug(r.model)}.json", rep.calibrator.to_json())
    if not rows:
        return None
    return Section(
        "Calibration",
        "Each run is split (seeded) into a calibration half and a test half; the calibrator is fitted on the "
        "calibration half only and reported on both (paper section 2.1). Temperature scaling for option scores "
        "(multiple choice, images), Platt scaling of the mean logit for generations. [..]: 95% intervals (Wilson "
        "for accuracy, bootstrap for ECE).",
        tables=[Table.from_dicts("ECE before and after calibration", rows)],
        figures=figs,
    )


def cascade_section(small: Run, large: Run, out: Path, numbers: dict, seed: int, mf: bool, progress: bool,
                    plots: bool) -> Section:
    from calib_harness.routing.compare import compare_routers, default_routers

    routers = [r for r in default_routers() if mf or r != "MF"]
    notes = []
    if "MF" in routers and any(not r.prompt for r in small.records):
        routers = [r for r in routers if r != "MF"]
        notes.append("RouteLLM MF skipped: the records carry no prompt text to embed.")
    logger.info("cascade: %s -> %s, routers %s", small.model, large.model, ", ".join(routers))
    comp = compare_routers(small, large, routers=routers, seed=seed, embedding_cache=out / "embeddings",
                           progress=progress)
    d = comp.to_dict()
    write_json(out / "cascade.json", d)
    numbers["cascade"] = {k: v for k, v in d.items() if k != "curves"}
    notes += _notes(d)
    figs = []
    if plots:
        from calib_harness.routing.plots import plot_bins_sensitivity, plot_curves

        curves, bins = out / "cascade_curves.png", out / "cascade_bins.png"
        plot_curves(comp, curves)
        figs.append(Figure(curves, "Accuracy on the test half against the share of inputs kept on the small model, "
                                   "per router."))
        if comp.bins_sensitivity:
            plot_bins_sensitivity(comp, bins)
            figs.append(Figure(bins, "APGR of CC and UC against the number of equal-count bins."))
    tables = comp.summary_tables()
    text = " ".join(["Algorithm 1 (CC) and its baselines; all routers are fitted on the calibration half and "
                     "evaluated on the test half.", comp.header().replace("`", ""), *notes])
    return Section("Cascade", text, tables=tables, figures=figs)


def default_reference(tasks: set[str], data_dir: Path | None):
    """``(reference or None, why not)``: the human reference for these tasks, if the data has one."""
    from calib_harness.cleaning import reference as refs

    if not tasks:
        return None, "no documents."
    if all(t.startswith("calib_mmlu_") for t in tasks):
        if data_dir is not None and (data_dir / "mmlu_redux" / "mmlu_redux_normalized.jsonl").exists():
            return refs.mmlu_redux_reference(data_dir), ""
        return None, "MMLU-Redux not found (set CALIB_HARNESS_SHARED_DATA to the shared data folder)."
    if tasks == {"mnist_test"}:
        if data_dir is not None and (data_dir / "label_errors" / "cleanlab").exists():
            return refs.mturk_reference(data_dir, "mnist", task="mnist_test", class_names=[str(i) for i in range(10)]), ""
        return None, "cleanlab's MNIST verdicts not found (set CALIB_HARNESS_SHARED_DATA to the shared data folder)."
    return None, "no human reference exists for these tasks; flagged counts only."


def cleaning_section(runs: Sequence[Run], out: Path, numbers: dict, seed: int, data_dir: Path | None,
                     reference=None, plots: bool = True) -> Section:
    from calib_harness.cleaning.evaluate import evaluate
    from calib_harness.cleaning.experts import build_panel
    from calib_harness.cleaning.pipeline import run_methods
    from calib_harness.cleaning.report import flagged_rows, write_flagged

    n_bins = 15 if len(runs[0]) >= 60 else 5
    logger.info("cleaning: %d experts, %d bins", len(runs), n_bins)
    panel = build_panel(list(runs), n_bins=n_bins, seed=seed, on_mismatch="intersect")  # TooFewSamplesError: caller
    outcome = run_methods(panel, filter_by=("prune_by_noise_rate", "confident_learning"))
    why = ""
    if reference is None:
        reference, why = default_reference({k[0] for k in panel.keys}, data_dir)
    write_flagged(flagged_rows(outcome, reference), out, stem="cleaning_flagged")
    shown = [r.name for r in outcome.results if r.name in CLEANING_SHOWN or r.name.startswith(("M3", "CL"))]
    figs, tables = [], []
    experts = ", ".join(panel.models)
    numbers["cleaning_flagged"] = outcome.summary_rows()  # flags over all documents, reference or not
    if reference is not None:
        evaluated = [r for r in evaluate(outcome, reference) if r.positives == "any"]
        rows = [r.to_dict() for r in evaluated]
        numbers["cleaning"] = rows
        if plots:
            from calib_harness.cleaning.plots import plot_precision_detection

            path = out / "cleaning_precision.png"
            plot_precision_detection(evaluated, path, title=f"experts: {experts}")
            figs.append(Figure(path, "Cleaning precision against detection rate (share of reference errors found), "
                                     "per K."))
        tables.append(Table.from_dicts(
            f"Cleaning against {reference.name} ({rows[0]['n_eval']} reviewed, {rows[0]['n_errors']} errors; "
            f"experts: {experts})",
            [r for r in rows if r["method"] in shown],
            {"method": "method", "n_flagged": "flagged (reviewed)", "tp": "true errors", "precision": "precision",
             "detection_rate": "detection rate"}))
    else:
        summary = outcome.summary_rows()
        numbers["cleaning"] = summary
        tables.append(Table.from_dicts(f"Flagged samples ({panel.n} docs, experts: {experts})",
                                       [r for r in summary if r["method"] in shown],
                                       {"method": "method", "n_flagged": "flagged", "flag_rate": "flag rate"}))
    text = ("Every run is an expert (Algorithm 2): M1 = all experts disagree with the label; M2 = and each expert's "
            "calibrated confidence is in its top-K bins by accuracy; M3 = the class-threshold method; CL = Confident "
            "Learning (cleanlab, filter_by named). The ranked list for human review is cleaning_flagged.csv. " + why)
    return Section("Label cleaning", text.strip(), tables=tables, figures=figs)


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
    reference=None,
    seed: int = 0,
    mf: bool = True,
    plots: bool = True,
    progress: bool = True,
    intro: str = "",
) -> ReportResult:
    """Write ``report.md``, ``report.html``, ``numbers.json`` and the figures into ``out``.

    ``reference``: a cleaning reference (:mod:`calib_harness.cleaning.reference`); default
    :func:`default_reference` for the runs' tasks, read from ``data_dir`` (or ``paths.shared_data_dir``).
    """
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    if not runs:
        raise ValueError("no runs to report on")
    numbers: dict[str, Any] = {}
    doc = Document(title, intro or "What the models know, and when they know it: confidences captured per sample, "
                   "calibrated, used to route between models and to find label errors.")
    logger.info("report: %d run(s) -> %s", len(runs), out)
    doc.sections.append(runs_section(runs, numbers))
    skipped: list[str] = []
    calibration = calibration_section(runs, out, numbers, seed, plots, skipped)
    if calibration is not None:
        doc.sections.append(calibration)
    if len(runs) >= 2:
        a, b = pick_pair(runs, small, large)
        try:
            a, b = align(a, b)
        except RecordError as e:
            skipped.append(f"Cascade and cleaning skipped: {e}")
        else:
            from calib_harness.outputs import CliError

            try:
                doc.sections.append(cascade_section(a, b, out, numbers, seed, mf, progress, plots))
            except CliError as e:  # too few documents, or the same run twice: say so, keep the rest
                skipped.append(f"Cascade skipped: {e}")
            from calib_harness.calibration import TooFewSamplesError

            try:
                doc.sections.append(cleaning_section(runs, out, numbers, seed,
                                                     shared_data_dir(data_dir, fallback=False), reference, plots))
            except TooFewSamplesError as e:  # below cleaning's size guard: say so, keep the rest
                skipped.append(f"Label cleaning skipped: {e} (`--bins` is `calib-harness clean`'s flag; the report "
                               "uses 5 bins below 60 documents, else 15).")
    else:
        skipped.append("Cascade and cleaning need two runs over the same documents; one was given.")
    if skipped:
        doc.sections.append(Section("Skipped", "\n\n".join(skipped)))
    write_json(out / "numbers.json", numbers)
    md, page = write(doc, out)
    logger.info("report: wrote %s and %s", md, page)
    figs = {f.path.stem: f.path for s in doc.sections for f in s.figures}
    return ReportResult(md, page, figs, numbers)
