"""``calib-harness clean``: find mislabeled samples with calibrated experts (Hao et al. 2026, Alg. 2).

    calib-harness clean RUN [RUN ...] [--method top1 high-confidence class-threshold confident-learning]
        [--k 1 3 5] [--bins 15] [--require-agreement both|yes|no] [--combine all|any|mean]
        [--filter-by prune_by_noise_rate both ...] [--calibration temperature|none]
        [--reference mmlu-redux | mturk-cifar10 | pseudo:STRONG_RUN] [--data-dir DIR]
        [--reeval RUN ...] [--reeval-with "M2 K=5"] [--cascade] [--output DIR]

RUN is a records.jsonl, a folder holding one, an lm-eval --output_path folder, or
``cleanlab:cifar10`` (cleanlab's cross-validated CIFAR-10 test probabilities as one expert).
Each RUN is one expert; all must cover the same documents (``--intersect`` keeps the common ones).

Writes to ``--output`` (default ./clean_output):
  flagged.csv / flagged.jsonl  samples flagged by any method, ranked, with a blank human_verdict column
  verdict_guide.txt            the verdict categories (paper appendix B.1)
  summary.csv                  number flagged per method
  bins.csv                     each expert's calibration-half bins (accuracy, rank) per fold
  evaluation.csv               precision / detection rate per method and K (with --reference)
  overlap.csv                  overlap between methods (Table 3 style)
  precision_detection.png      precision vs detection rate (Figure 6 style, with --reference)
  reevaluation.csv             accuracy on full / flagged-removed / relabeled sets (with --reeval)
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from calib_harness.paths import shared_data_dir

CLEANLAB_CIFAR10 = "cleanlab:cifar10"


def add_parser(subparsers) -> argparse.ArgumentParser:
    from calib_harness.cleaning.confident_learning import FILTER_BY
    from calib_harness.cleaning.pipeline import METHODS

    p = subparsers.add_parser(
        "clean",
        help="flag label errors with calibrated experts (Alg. 2 methods 1-3, Confident Learning), evaluate against a reference",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("runs", nargs="+", metavar="RUN", help="one run per expert model (same documents)")
    p.add_argument("--method", nargs="+", default=list(METHODS), choices=METHODS, help="methods to run (default: all)")
    p.add_argument("--k", nargs="+", type=int, default=None, help="K values of method 2 (default: 1..bins)")
    p.add_argument("--bins", type=int, default=15, help="equal-count confidence bins per expert (default 15)")
    p.add_argument("--require-agreement", choices=["both", "yes", "no"], default="both", help="methods 1/2: experts must predict the same wrong label (default: report both)")
    p.add_argument("--combine", choices=["all", "any", "mean"], default="all", help="method 3 across experts (default: all experts flag)")
    p.add_argument("--filter-by", nargs="+", default=["prune_by_noise_rate"], choices=FILTER_BY, help="cleanlab find_label_issues filter_by variants")
    p.add_argument("--calibration", choices=["temperature", "none"], default="temperature", help="calibrator fitted per expert on the calibration half")
    p.add_argument("--cal-fraction", type=float, default=0.5)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--no-cross-fit", action="store_true", help="evaluate the test half only (default: swap halves so every document is evaluated)")
    p.add_argument("--intersect", action="store_true", help="keep only documents every run has")
    p.add_argument("--reference", default=None, help="mmlu-redux | mturk-cifar10 | pseudo:STRONG_RUN")
    p.add_argument("--data-dir", default=None, help="shared data folder (default: $CALIB_HARNESS_SHARED_DATA, $CALIB_HARNESS_DATA_DIR or ../shared/data)")
    p.add_argument("--reeval", nargs="*", default=None, metavar="RUN", help="runs to re-score on the cleaned set (default with --cascade: the experts)")
    p.add_argument("--reeval-with", default=None, help="method result whose flags clean the set (e.g. 'M2 +agree K=5'; default: method 2 at the smallest --k, else 'M1 top-1')")
    p.add_argument("--cascade", action="store_true", help="also score the CC cascade of the first two re-evaluated runs (small, large)")
    p.add_argument("--plot-x", choices=["detection_rate", "flag_rate"], default="detection_rate")
    p.add_argument("--output", "-o", default="clean_output")
    p.add_argument("--debug", action="store_true", help="show tracebacks")
    p.set_defaults(func=run)
    return p


def load_expert(spec: str, data_dir: Path):
    if spec == CLEANLAB_CIFAR10:
        from calib_harness.cleaning.reference import cleanlab_cifar10_run

        return cleanlab_cifar10_run(data_dir)
    if not Path(spec).exists():
        raise FileNotFoundError(f"run {spec} does not exist")
    try:
        from calib_harness.lm_eval_io import load_run
    except ImportError:  # loader not there yet: records.jsonl (or a folder holding one)
        from calib_harness.records import RECORDS_FILENAME, load_records_jsonl

        def load_run(p, model=None):
            p = Path(p)
            return load_records_jsonl(p / RECORDS_FILENAME if p.is_dir() else p, model)

    return load_run(spec)


def load_reference(spec: str, data_dir: Path, panel_keys):
    from calib_harness.cleaning import reference as ref

    if spec == "mmlu-redux":
        return ref.mmlu_redux_reference(data_dir)
    if spec.startswith("mturk-"):
        dataset = spec[len("mturk-"):]
        task = panel_keys[0][0] if panel_keys else None
        return ref.mturk_reference(data_dir, dataset, task=task)
    if spec.startswith("pseudo:"):
        return ref.pseudo_label_reference(load_expert(spec[len("pseudo:"):], data_dir))
    raise ValueError(f"--reference must be mmlu-redux, mturk-<dataset> or pseudo:RUN, got {spec!r}")


def run(args: argparse.Namespace) -> int:
    from calib_harness.cleaning import evaluate as ev
    from calib_harness.cleaning import report
    from calib_harness.cleaning.experts import build_panel
    from calib_harness.cleaning.pipeline import run_methods

    data_dir = shared_data_dir(args.data_dir)
    experts = [load_expert(s, data_dir) for s in args.runs]
    panel = build_panel(
        experts,
        calibration=args.calibration,
        n_bins=args.bins,
        cal_fraction=args.cal_fraction,
        seed=args.seed,
        cross_fit=not args.no_cross_fit,
        on_mismatch="intersect" if args.intersect else "error",
    )
    agree = {"both": None, "yes": True, "no": False}[args.require_agreement]
    outcome = run_methods(
        panel, methods=args.method, ks=args.k, require_agreement=agree, combine=args.combine, filter_by=args.filter_by
    )
    out = Path(args.output)
    out.mkdir(parents=True, exist_ok=True)
    print(
        f"{panel.n} documents evaluated ({'cross-fitted halves' if not args.no_cross_fit else 'test half'}), "
        f"experts {panel.models}, calibration={panel.calibration}, {panel.n_bins} bins"
    )
    reference = load_reference(args.reference, data_dir, panel.keys) if args.reference else None

    summary = outcome.summary_rows()
    report.write_table(summary, out / "summary.csv")
    bins = [
        {"fold": f, "model": panel.models[j], **row}
        for f, tables in enumerate(panel.bin_tables)
        for j, t in enumerate(tables)
        for row in t.rows()
    ]
    report.write_table(bins, out / "bins.csv")
    rows = report.flagged_rows(outcome, reference)
    report.write_flagged(rows, out)
    print(f"{len(rows)} documents flagged by at least one method -> {out / 'flagged.csv'}")

    main_names = [r.name for r in outcome.results if r.method != "high-confidence"]
    m2 = [r.name for r in outcome.results if r.method == "high-confidence"]
    if m2:
        main_names.append(m2[len(m2) // 2 if args.k is None else 0])
    written = ["summary.csv", "bins.csv", "flagged.csv", "flagged.jsonl"]
    if len(main_names) > 1:
        report.write_table(report.overlap_rows(outcome, main_names, reference), out / "overlap.csv")
        written.append("overlap.csv")

    if reference is not None:
        eval_rows = ev.evaluate(outcome, reference)
        report.write_table([r.to_dict() for r in eval_rows], out / "evaluation.csv")
        cols = ["positives", "method", "n_eval", "n_errors", "n_flagged", "tp", "precision", "detection_rate"]
        print(f"reference {reference.name}: {reference.description}")
        print(ev.format_table([r.to_dict() for r in eval_rows], cols))
        from calib_harness.cleaning.plots import plot_precision_detection

        plot_precision_detection(eval_rows, out / "precision_detection.png", x=args.plot_x, title=f"experts: {', '.join(panel.models)}")
        written += ["evaluation.csv", "precision_detection.png"]
    else:
        print(ev.format_table(summary, ["method", "n_flagged", "flag_rate"]))

    if args.reeval is not None or args.cascade or args.reeval_with:
        from calib_harness.cleaning.reevaluate import reevaluate

        runs = [load_expert(s, data_dir) for s in args.reeval] if args.reeval else experts
        have = [r.name for r in outcome.results]
        if args.reeval_with:
            name = args.reeval_with
            if name not in have:
                raise ValueError(f"--reeval-with {name!r} is not among the results: {have}")
        else:
            k = min(args.k) if args.k else None
            prefer = [f"M2 K={k}", f"M2 +agree K={k}"] if k else []
            name = next((x for x in [*prefer, "M1 top-1", "M1 top-1 +agree"] if x in have), have[0])
        flags = outcome.result(name).flags
        cascade = (runs[0].model, runs[1].model) if args.cascade and len(runs) >= 2 else None
        if args.cascade and cascade is None:
            raise ValueError("--cascade needs two runs to re-evaluate")
        rr = reevaluate(outcome, flags, runs, cascade=cascade, n_bins=args.bins, seed=args.seed)
        report.write_table(rr, out / "reevaluation.csv")
        print(f"re-evaluation, cleaned with {name!r}:")
        print(ev.format_table(rr))
        written.append("reevaluation.csv")
    (out / "run.json").write_text(
        json.dumps(
            {"runs": args.runs, "models": panel.models, "n_evaluated": panel.n, "meta": panel.meta, "reference": args.reference},
            indent=1,
        )
    )
    print(f"wrote {', '.join(written)} to {out}")
    return 0
