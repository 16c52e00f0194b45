"""``calib-harness calibrate``: fit calibrators on one half of a run, report on both halves.

    calib-harness calibrate runs/arc_easy_smollm2                 # lm-eval output folder or records
    calib-harness calibrate runs/x/records.jsonl --method all --bins 15 --seed 0
    calib-harness calibrate runs/a --method temperature --apply-to runs/b   # fit on A, apply to B
    calib-harness calibrate runs/b --calibrator runs/a/calibration/calibrator_temperature.json

Writes into ``-o/--output`` (default: a ``calibration/`` folder beside the input, never over
lm-eval's files; a folder holding earlier results is refused unless ``--force``):

* ``metrics.json``                -- every figure of the table, per method / part / stage
* ``calibrator_<method>.json``    -- the fitted RunCalibrator (load with ``--calibrator``)
* ``reliability_<method>.png``    -- accuracy vs confidence per bin, before / after, per half
* ``calibrated/records.jsonl``    -- all records calibrated by the first method (raw
  confidence kept in ``features["raw_confidence"]``, the half in ``extra["calibration_split"]``);
  ``calibrated_<method>/records.jsonl`` for further methods, ``shifted/records.jsonl``
  for ``--apply-to``.

Every accuracy and ECE carries a 95% interval (Wilson for accuracy; ECE +- 1.96 bootstrap
standard errors, 200 resamples seeded by ``--seed``) in the table, metrics.json and the diagrams.
"""

from __future__ import annotations

import argparse
import math
from pathlib import Path
from typing import Any

from calib_harness import metrics
from calib_harness.commands import (
    add_bins_arg,
    add_loader_args,
    add_no_plots_arg,
    add_output_args,
    add_seed_arg,
    loader_kwargs,
)
from calib_harness.outputs import CliError, prepare_output_dir, write_json, write_text
from calib_harness.calibration import (
    METHODS,
    MIN_FIT_SAMPLES,
    MIN_PER_BIN,
    RunCalibrator,
    SplitReport,
    TooFewSamplesError,
    check_split_size,
    evaluate_shift,
    evaluate_split,
    split_indices,
)
from calib_harness.records import RECORDS_FILENAME, Run, name_tasks

TABLE_METRICS = [
    ("ece", "ECE"),
    ("ece_equal_width", "ECE(width)"),
    ("brier", "Brier"),
    ("nll", "NLL"),
    ("auroc", "AUROC"),
    ("s_o", "s_o"),
]
PART_NAMES = {"cal": "calibration half", "test": "test half", "shift": "shifted run", "all": "all records"}

MINIMUMS = f"""
minimums (below them calibrate refuses or warns; the warnings are also in metrics.json):
  * each half needs at least {MIN_FIT_SAMPLES} records ({2 * MIN_FIT_SAMPLES} at --cal-fraction 0.5); fewer is
    refused before anything is written (fix: evaluate more documents, or apply a calibrator
    fitted on a larger run with --calibrator)
  * histogram binning fits at most one bin per {MIN_PER_BIN} calibration samples (fewer bins than asked, warned)
  * an ECE over fewer than {MIN_PER_BIN} samples per bin is biased upward: warned, with a --bins that fits
  * a calibration half of one class only, and a calibrator that collapses the confidences to
    (nearly) one value, are warned about
"""


def add_parser(subparsers) -> argparse.ArgumentParser:
    p = subparsers.add_parser(
        "calibrate",
        help="fit calibrators (temperature, Platt, histogram, isotonic) and report ECE before/after",
        description=__doc__ + MINIMUMS,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("path", help="lm-eval --output_path folder, a folder with records.jsonl, or a records.jsonl")
    p.add_argument("--model", help="model name when the input holds several models (records or lm-eval sub-folders)")
    p.add_argument("--tasks", nargs="+", help="only these tasks of the run (default: all)")
    p.add_argument(
        "--method",
        nargs="+",
        default=["auto"],
        choices=["auto", "all", *METHODS],
        help="calibration method(s); auto = temperature when records have option scores, else platt; "
        "all = every method the records allow",
    )
    p.add_argument(
        "--feature",
        default="auto",
        help="record feature for platt/histogram/isotonic (confidence, mean_logit, ...); auto = confidence "
        "for multiple choice, mean_logit for generation",
    )
    add_bins_arg(p, what="equal-count bins for ECE and the diagrams")
    p.add_argument("--cal-fraction", type=float, default=0.5, help="share of samples in the calibration half (default 0.5)")
    add_seed_arg(p)
    p.add_argument("--apply-to", metavar="PATH", help="also apply the calibrators to this run (distribution shift)")
    p.add_argument(
        "--calibrator",
        metavar="JSON",
        help="apply this saved calibrator to the whole input instead of fitting (no split)",
    )
    add_output_args(p, None, "metrics, calibrators, records and diagrams (default: calibration/ beside the input)")
    add_no_plots_arg(p)
    add_loader_args(p)
    p.set_defaults(func=run)
    return p


# -- loading ------------------------------------------------------------------------------


def load_run(path: str | Path, model: str | None = None, tasks: list[str] | None = None, **kwargs: Any) -> Run:
    """Records of one model: ``calib_harness.lm_eval_io.load_run`` (records.jsonl, a folder
    holding one, or an lm-eval ``--output_path`` folder)."""
    from calib_harness.lm_eval_io import load_run as _load

    return _load(path, model=model, tasks=tasks, **kwargs)


def _input_files(path: Path) -> set[Path]:
    path = path.resolve()
    if path.is_dir():
        return {f.resolve() for f in path.rglob("*") if f.is_file()}
    return {path}


def default_out(path: Path) -> Path:
    path = Path(path)
    return (path if path.is_dir() else path.parent) / "calibration"


# -- choosing methods ---------------------------------------------------------------------


def _has_options(run: Run) -> bool:
    return bool(run.records) and all(r.option_scores is not None for r in run.records)


def resolve_methods(run: Run, methods: list[str], feature: str) -> list[tuple[str, str]]:
    """(method, feature) pairs to fit, in order."""
    if feature == "auto":
        if _has_options(run):
            feature = "confidence"
        elif all("mean_logit" in r.features for r in run.records):
            feature = "mean_logit"
        else:
            feature = "confidence"
    out: list[str] = []
    for m in methods:
        if m == "auto":
            out.append("temperature" if _has_options(run) else "platt")
        elif m == "all":
            out.extend(([] if not _has_options(run) else ["temperature"]) + ["platt", "histogram", "isotonic"])
        else:
            out.append(m)
    seen: list[str] = []
    for m in out:
        if m not in seen:
            seen.append(m)
    if "temperature" in seen and not _has_options(run):
        raise ValueError("temperature scaling needs option scores (multiple-choice / vision records); use platt")
    return [(m, "option_scores" if m == "temperature" else feature) for m in seen]


# -- output -------------------------------------------------------------------------------


def render_table(rows: list[dict[str, Any]], title: str) -> None:
    """Print one row per (method, part): before -> after for each metric, accuracy and ECE with their
    95% intervals (``v [lo, hi]``), through the project's one table renderer."""
    from calib_harness.report.tables import Table, cell_value, format_cell

    def cell(d: dict[str, Any], key: str) -> str:
        return format_cell(cell_value(d, key))  # 3 decimals, as the report

    table = Table(
        title,
        ["method", "feature", "part", "n", "acc", *[f"{name} before → after" for _, name in TABLE_METRICS]],
        [[row["method"], row["feature"], PART_NAMES.get(row["part"], row["part"]), int(row["before"]["n"]),
          cell(row["before"], "accuracy"), *[f"{cell(row['before'], k)} → {cell(row['after'], k)}" for k, _ in TABLE_METRICS]]
         for row in rows],
        "[..]: 95% interval (Wilson for accuracy, bootstrap for ECE); n/a: undefined here "
        "(AUROC and s_o need both correct and wrong answers, s_o two of each with spread)",
    )
    print(table.render("text"))


NULL_REASONS = {
    "auroc": "undefined: AUROC needs both correct and wrong answers",
    "s_o": "undefined: s_o needs at least two correct and two wrong answers whose confidences vary",
    "ece_lo": "undefined: an interval needs at least 2 samples",
    "ece_hi": "undefined: an interval needs at least 2 samples",
}


def _explain_nulls(obj: Any) -> Any:
    """A copy of ``obj`` whose undefined figures (NaN) say why they are undefined in metrics.json."""
    from calib_harness.outputs import Null

    if isinstance(obj, dict):
        return {
            k: Null(NULL_REASONS[k]) if k in NULL_REASONS and isinstance(v, float) and math.isnan(v) else _explain_nulls(v)
            for k, v in obj.items()
        }
    if isinstance(obj, list):
        return [_explain_nulls(v) for v in obj]
    return obj


def print_warnings(warnings: list[str]) -> None:
    """Sample-size and collapse warnings, one line each, on stderr (they are in metrics.json too)."""
    import sys

    for w in warnings:
        print(f"warning: {w}", file=sys.stderr)


def _check_not_input(targets: list[Path], inputs: set[Path]) -> None:
    for t in targets:
        if t.resolve() in inputs:
            raise CliError(f"refusing to overwrite the input file {t}; pass a different -o/--output")


def run(args: argparse.Namespace) -> int:
    from calib_harness import plots

    src = Path(args.path)
    run_a = load_run(src, model=args.model, tasks=args.tasks, **loader_kwargs(args))
    if not run_a.has_confidence:
        from calib_harness.readers.stock import NO_CONFIDENCE

        raise CliError(f"{src}: nothing to calibrate: {NO_CONFIDENCE}")
    out: Path = Path(args.output) if args.output else default_out(src)
    # the input's files, less an earlier run's results in an output folder inside it (a rerun is not an overwrite)
    inputs = _input_files(src)
    if src.is_dir() and out.resolve() != src.resolve() and out.resolve().is_relative_to(src.resolve()):
        inputs = {f for f in inputs if not f.is_relative_to(out.resolve())}
    if args.apply_to:
        inputs |= _input_files(Path(args.apply_to))
    n_bins = int(args.bins)
    if n_bins < 1:
        raise CliError(f"--bins must be >= 1, got {n_bins}")
    if not args.calibrator:
        try:  # refuse before the output folder is touched
            check_split_size(len(run_a), args.cal_fraction)
        except TooFewSamplesError as e:
            raise CliError(str(e)) from e
    out_dir = prepare_output_dir(out, args.force, "calibrate", protect=inputs)

    rows: list[dict[str, Any]] = []
    summary: dict[str, Any] = {
        "input": str(src),
        "model": run_a.model,
        "n": len(run_a),
        "tasks": run_a.tasks,
        "n_bins": n_bins,
        "seed": args.seed,
        "cal_fraction": args.cal_fraction,
        "intervals": "95%: Wilson for accuracy; ECE +- 1.96 bootstrap standard errors (200 resamples, seeded)",
        "methods": {},
        "warnings": [],
    }
    warnings: list[str] = summary["warnings"]

    if args.calibrator:
        cal = RunCalibrator.from_json(Path(args.calibrator).read_text())
        m = evaluate_shift(cal, run_a, part="all", n_bins=n_bins, warnings=warnings)
        rows.append({"method": cal.method, "feature": cal.feature, "part": "all", **m})
        summary["methods"][cal.method] = {"calibrator": cal.to_dict(), "metrics": {"all": m}}
        target = out / "calibrated" / "records.jsonl"
        _check_not_input([target, out / "metrics.json"], inputs)
        cal.apply(run_a).save(target)
        written = [target]
    else:
        pairs = resolve_methods(run_a, args.method, args.feature)
        cal_idx, _ = split_indices(len(run_a), args.cal_fraction, args.seed)
        cal_keys = {run_a.records[i].key for i in cal_idx}
        parts = {r.key: ("cal" if r.key in cal_keys else "test") for r in run_a.records}
        run_b = load_run(args.apply_to) if args.apply_to else None
        written = []
        for i, (method, feature) in enumerate(pairs):
            rep: SplitReport = evaluate_split(
                run_a, method, feature, cal_fraction=args.cal_fraction, seed=args.seed, n_bins=n_bins
            )
            if run_b is not None:
                evaluate_shift(rep.calibrator, run_b, report=rep, n_bins=n_bins)
            for part in rep.metrics:
                rows.append({"method": method, "feature": rep.feature, "part": part, **rep.metrics[part]})
            summary["methods"][method] = rep.to_dict()
            for w in rep.warnings:  # sample-size warnings once, method-specific ones named
                w = w if w.startswith(("ECE", method)) else f"{method}: {w}"
                if w not in warnings:
                    warnings.append(w)

            cal_path = out / f"calibrator_{method}.json"
            rec_path = out / ("calibrated" if i == 0 else f"calibrated_{method}") / RECORDS_FILENAME
            fig_path = out / f"reliability_{method}.png"
            targets = [cal_path, rec_path, out / "metrics.json"] + ([] if args.no_plots else [fig_path])
            _check_not_input(targets, inputs)
            out.mkdir(parents=True, exist_ok=True)
            write_text(cal_path, rep.calibrator.to_json())
            rep.calibrator.apply(run_a, parts=parts).save(rec_path)
            written += [cal_path, rec_path]
            if not args.no_plots:
                plots.split_reliability_diagram(
                    rep, fig_path, n_bins=n_bins, title=f"{run_a.model}: {plots.METHOD_TITLES[method]}"
                    + ("" if rep.feature == "option_scores" else f" on {rep.feature}")
                )
                written.append(fig_path)
            if run_b is not None and i == 0:
                shift_path = out / "shifted" / RECORDS_FILENAME
                _check_not_input([shift_path], inputs)
                rep.calibrator.apply(run_b).save(shift_path)
                written.append(shift_path)

    out.mkdir(parents=True, exist_ok=True)
    write_json(out / "metrics.json", _explain_nulls(summary), indent=2)
    out_dir.finish()
    written.append(out / "metrics.json")
    render_table(rows, f"{run_a.model} on {name_tasks(run_a.tasks)}: {len(run_a)} samples, {n_bins} equal-count bins")
    print_warnings(warnings)
    for w in written:
        print(f"wrote {w}")
    return 0
