"""``calib-harness clean``: find mislabeled samples with calibrated experts (Hao et al. 2026, Alg. 2).

    calib-harness clean RUN [RUN ...] [--method top1 high-confidence class-threshold confident-learning]
        [--k 1 3 5] [--bins 15] [--require-agreement both|yes|no] [--combine all|any|mean]
        [--filter-by prune_by_noise_rate both ...] [--calibration temperature|none]
        [--reference mmlu-redux | mturk-cifar10 | pseudo:STRONG_RUN] [--data-dir DIR]
        [--min-precision P [--delta D]] [--reeval RUN ...] [--reeval-with "M2 K=5"] [--cascade]
        [--allow-circular] [-o DIR] [--force]

RUN is a records.jsonl, a folder holding one, an lm-eval --output_path folder, or
``cleanlab:cifar10`` (cleanlab's cross-validated CIFAR-10 test probabilities as one expert).
Each RUN is one expert (an lm-eval folder holding several models gives one expert per model); all
must cover the same documents (``--intersect`` keeps the common ones).
Records with option scores (multiple choice, vision) run every method; records with a
confidence only (generation logs, plain tables) run top1 and high-confidence, and the output
names the methods that need option scores.

Minimums: 2 x --bins documents with a given label (each calibration half needs one document
per bin; 10 or more per bin give steady bin ranks, and the output warns below that).
--min-precision P --delta D needs --reference and, at the largest K, at least log(D) / log(P)
flagged reference-labelled documents in the labelled calibration half (e.g. 22 for P = 0.9,
D = 0.1); fewer give an error that says how many.  Re-evaluation (--reeval) scores runs of models that took no part in the cleaning;
re-scoring the experts needs --allow-circular and is labelled circular.

Writes to ``-o/--output`` (default ./clean_output; a folder holding earlier results is refused
unless ``--force``, and a rerun with ``--force`` keeps the human edits of flagged.csv):
  flagged.csv / flagged.jsonl  samples flagged by any method, ranked, with blank human_verdict and
                               notes columns (human edits and added columns survive reruns)
  verdict_guide.txt            the verdict categories (paper appendix B.1)
  summary.csv                  number flagged per method (filter_by recorded)
  bins.csv                     each expert's calibration-half bins (accuracy, rank) per fold
  evaluation.csv / .json       precision / detection rate per method and K, 95% Wilson intervals (with --reference)
  overlap.csv                  overlap between methods (Table 3 style)
  precision_detection.png      precision vs detection rate with intervals (Figure 6 style, with --reference)
  risk_control.json            the chosen K and its guarantee (with --min-precision)
  reevaluation.csv / .json     accuracy on full / flagged-removed / relabeled sets (with --reeval)
  run.json                     inputs, settings, warnings, skipped methods
"""

from __future__ import annotations

import argparse
from pathlib import Path

from calib_harness.commands import (
    add_bins_arg,
    add_loader_args,
    add_no_plots_arg,
    add_output_args,
    add_seed_arg,
    loader_kwargs,
)
from calib_harness.outputs import CliError, prepare_output_dir, write_json
from calib_harness.paths import shared_data_dir

CLEANLAB_CIFAR10 = "cleanlab:cifar10"


def add_parser(subparsers) -> argparse.ArgumentParser:
    from calib_harness.cleaning.base import get_cleaning_method, list_cleaning_methods
    from calib_harness.cleaning.confident_learning import FILTER_BY

    methods = list_cleaning_methods()
    needs = [m for m in methods if get_cleaning_method(m).needs_option_scores]

    p = subparsers.add_parser(
        "clean",
        help="flag label errors with calibrated experts (Alg. 2 methods 1-3, Confident Learning), evaluate against a reference",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("runs", nargs="+", metavar="RUN", help="one run per expert model (same documents)")
    p.add_argument("--method", nargs="+", default=None, choices=methods, metavar="METHOD",
                   help=f"cleaning methods to run, from {', '.join(methods)} (default: all that the records allow; "
                        f"{', '.join(needs)} need option scores)")
    p.add_argument("--k", nargs="+", type=int, default=None, help="K values of method 2 (default: 1..bins)")
    add_bins_arg(p, what="equal-count confidence bins per expert; needs 2 x N documents, 10+ per bin recommended")
    p.add_argument("--require-agreement", choices=["both", "yes", "no"], default="both", help="methods 1/2: experts must predict the same wrong label (default: report both)")
    p.add_argument("--combine", choices=["all", "any", "mean"], default="all", help="method 3 across experts (default: all experts flag)")
    p.add_argument("--filter-by", nargs="+", default=["prune_by_noise_rate"], choices=FILTER_BY, help="cleanlab find_label_issues filter_by variants (default prune_by_noise_rate)")
    p.add_argument("--calibration", choices=["temperature", "none"], default="temperature", help="calibrator fitted per expert on the calibration half")
    p.add_argument("--cal-fraction", type=float, default=0.5, help="share of documents in the calibration half (default 0.5)")
    add_seed_arg(p)
    p.add_argument("--no-cross-fit", action="store_true", help="evaluate the test half only (default: swap halves so every document is evaluated)")
    p.add_argument("--intersect", action="store_true", help="keep only documents every run has")
    p.add_argument("--reference", default=None, help="mmlu-redux | mturk-cifar10 | pseudo:STRONG_RUN")
    p.add_argument("--data-dir", default=None, help="shared data folder (default: $CALIB_HARNESS_SHARED_DATA, $CALIB_HARNESS_DATA_DIR or ../shared/data)")
    p.add_argument("--reeval", nargs="*", default=None, metavar="RUN",
                   help="runs of models that took no part in the cleaning, to re-score on the cleaned set")
    p.add_argument("--reeval-with", default=None, help="method result whose flags clean the set (e.g. 'M2 +agree K=5'; "
                   "default: the --min-precision choice, else method 2 at the smallest --k, else 'M1 top-1')")
    p.add_argument("--cascade", action="store_true", help="also score the CC cascade of the first two re-evaluated runs "
                   "(small, large); its K is chosen on the calibration half")
    p.add_argument("--allow-circular", action="store_true",
                   help="allow re-evaluating runs that took part in the cleaning (without --reeval: the experts); "
                        "the output is labelled circular")
    p.add_argument("--min-precision", type=float, default=None, metavar="P",
                   help="flag as many samples as possible while precision >= P with probability >= 1 - --delta "
                        "(Learn then Test over method 2's K, on a labelled calibration half of --reference)")
    p.add_argument("--delta", type=float, default=0.1, metavar="D",
                   help="allowed probability that the --min-precision guarantee fails (default 0.1)")
    p.add_argument("--risk-cal-fraction", type=float, default=0.5, metavar="F",
                   help="share of the reference-labelled documents used to certify --min-precision; the rest check it "
                        "(default 0.5)")
    p.add_argument("--risk-positives", choices=["any", "strict"], default="any",
                   help="which reference verdicts count as label errors for --min-precision (default any)")
    p.add_argument("--plot-x", choices=["detection_rate", "flag_rate"], default="detection_rate", help="x axis of precision_detection.png (default detection_rate)")
    add_no_plots_arg(p)
    add_output_args(p, "clean_output", "flagged.csv and the tables")
    add_loader_args(p)
    p.set_defaults(func=run)
    return p


def load_expert(spec: str, data_dir: Path, **kwargs):
    if spec == CLEANLAB_CIFAR10:
        from calib_harness.cleaning.reference import cleanlab_cifar10_run

        return cleanlab_cifar10_run(data_dir)
    if not Path(spec).exists():
        raise FileNotFoundError(f"run {spec} does not exist")
    from calib_harness.lm_eval_io import load_run

    return load_run(spec, **kwargs)


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
    raise CliError(f"--reference must be mmlu-redux, mturk-<dataset> or pseudo:RUN, got {spec!r}")


def _reeval_runs(args, experts, data_dir):
    if args.reeval:
        return [load_expert(s, data_dir, **loader_kwargs(args)) for s in args.reeval]
    if args.allow_circular:
        return list(experts)
    raise CliError(
        "re-evaluation needs runs of models that took no part in the cleaning: pass them with --reeval RUN ... "
        "(or --allow-circular to re-score the experts themselves; the output is then labelled circular)"
    )


def run(args: argparse.Namespace) -> int:
    from calib_harness.cleaning import evaluate as ev
    from calib_harness.cleaning import report
    from calib_harness.cleaning.experts import build_panel
    from calib_harness.cleaning.pipeline import METHODS, option_score_note, run_methods

    if args.min_precision is not None and not args.reference:
        raise CliError("--min-precision needs --reference (its labels on a labelled calibration half certify the precision)")
    data_dir = shared_data_dir(args.data_dir)
    from calib_harness.lm_eval_io import load_runs, model_folders

    experts = []
    for s in args.runs:  # a multi-model lm-eval folder gives one expert per model
        if len(model_folders(s)) > 1:
            experts += load_runs(s, **loader_kwargs(args))
        else:
            experts.append(load_expert(s, data_dir, **loader_kwargs(args)))
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
        panel, methods=args.method or list(METHODS), ks=args.k, require_agreement=agree, combine=args.combine,
        filter_by=args.filter_by, strict=args.method is not None,
    )
    reference = load_reference(args.reference, data_dir, panel.keys) if args.reference else None
    rc = None
    if args.min_precision is not None:
        from calib_harness.cleaning.risk_control import risk_controlled_flags

        rc = risk_controlled_flags(
            outcome, reference, args.min_precision, args.delta, require_agreement=agree is True,
            positives=args.risk_positives, cal_fraction=args.risk_cal_fraction, seed=args.seed,
        )
    # re-evaluation inputs are checked before anything is written
    runs = None
    if args.reeval or args.cascade or args.reeval_with or args.allow_circular:
        from calib_harness.cleaning.reevaluate import check_independent

        runs = _reeval_runs(args, experts, data_dir)
        if args.cascade and len(runs) < 2:
            raise CliError("--cascade needs two runs to re-evaluate (small, large): pass both with --reeval")
        if args.reeval_with and args.reeval_with not in [r.name for r in outcome.results]:
            raise CliError(f"--reeval-with {args.reeval_with!r} is not among the results: {[r.name for r in outcome.results]}")
        check_independent(outcome, runs, args.allow_circular, quiet=True)
    # flagged.* stay until rewritten: their human-edited columns are carried over
    out_dir = prepare_output_dir(
        args.output, args.force, "clean", protect=[r for r in args.runs if Path(r).exists()],
        keep=("flagged.csv", "flagged.jsonl"),
    )
    out = out_dir.path
    print(
        f"{panel.n} documents evaluated ({'cross-fitted halves' if not args.no_cross_fit else 'test half'}), "
        f"experts {panel.models}, calibration={panel.calibration}, {panel.n_bins} bins"
    )
    for w in panel.meta.get("warnings", []):
        print(f"warning: {w}")
    note = option_score_note(outcome.skipped)
    if note:
        print(f"note: {note}")
    if rc is not None:
        write_json(out / "risk_control.json", rc.to_dict())
        print(rc.summary_line())

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
    if rc is not None:
        for r in rows:
            i = outcome.panel.keys.index((r["task"], r["doc_id"]))
            r["risk_controlled"] = "yes" if rc.flags[i] else "no"
    report.write_flagged(rows, out)
    print(f"{len(rows)} documents flagged by at least one method -> {out / 'flagged.csv'}")

    main_names = [r.name for r in outcome.results if r.method != "high-confidence"]
    m2 = [r.name for r in outcome.results if r.method == "high-confidence"]
    if m2:
        main_names.append(m2[len(m2) // 2 if args.k is None else 0])
    written = ["summary.csv", "bins.csv", "flagged.csv", "flagged.jsonl"]
    if rc is not None:
        written.append("risk_control.json")
    if len(main_names) > 1:
        report.write_table(report.overlap_rows(outcome, main_names, reference), out / "overlap.csv")
        written.append("overlap.csv")

    if reference is not None:
        eval_rows = ev.evaluate(outcome, reference)
        report.write_table([r.to_dict() for r in eval_rows], out / "evaluation.csv")
        write_json(out / "evaluation.json", {"reference": reference.name, "description": reference.description,
                                             "interval": "95% Wilson score", "rows": [r.to_dict() for r in eval_rows]})
        print(f"reference {reference.name}: {reference.description}")
        print(ev.format_table([r.to_dict() for r in eval_rows],
                              ["positives", "method", "n_eval", "n_errors", "n_flagged", "tp", "precision", "detection_rate"]))
        print("precision and detection_rate: 95% Wilson intervals in brackets")
        written += ["evaluation.csv", "evaluation.json"]
        if not args.no_plots:
            from calib_harness.cleaning.plots import plot_precision_detection

            plot_precision_detection(eval_rows, out / "precision_detection.png", x=args.plot_x, title=f"experts: {', '.join(panel.models)}")
            written.append("precision_detection.png")
    else:
        print(ev.format_table(summary, ["method", "n_flagged", "flag_rate"]))

    reeval_info = None
    if runs is not None:
        from calib_harness.cleaning.reevaluate import reevaluate

        have = [r.name for r in outcome.results]
        if args.reeval_with:
            name = args.reeval_with
            if name not in have:
                raise CliError(f"--reeval-with {name!r} is not among the results: {have}")
            flags = outcome.result(name).flags
        elif rc is not None:
            name = f"risk-controlled ({rc.chosen or 'nothing flagged'})"
            flags = rc.flags
        else:
            k = min(args.k) if args.k else None
            prefer = [f"M2 K={k}", f"M2 +agree K={k}"] if k else []
            name = next((x for x in [*prefer, "M1 top-1", "M1 top-1 +agree"] if x in have), have[0])
            flags = outcome.result(name).flags
        cascade = (runs[0].model, runs[1].model) if args.cascade else None
        rr = reevaluate(outcome, flags, runs, cascade=cascade, n_bins=args.bins, seed=args.seed,
                        cal_fraction=args.cal_fraction, allow_circular=args.allow_circular)
        circular = any(r["circular"] for r in rr)
        report.write_table(rr, out / "reevaluation.csv")
        reeval_info = {"cleaned_with": name, "circular": circular, "rows": rr,
                       "interval": "95% Wilson score",
                       "cascade_operating_point": "K with the best calibration-half accuracy" if cascade else None}
        write_json(out / "reevaluation.json", reeval_info)
        label = " [CIRCULAR: scored runs took part in the cleaning]" if circular else ""
        print(f"re-evaluation, cleaned with {name!r}{label}:")
        print(ev.format_table(rr, ["label_set", "scored", "role", "n", "accuracy", "circular", "K"]))
        written += ["reevaluation.csv", "reevaluation.json"]
    write_json(
        out / "run.json",
        {"runs": args.runs, "models": panel.models, "n_evaluated": panel.n, "meta": panel.meta,
         "reference": args.reference, "methods_run": sorted({r.method for r in outcome.results}),
         "methods_skipped": {"methods": outcome.skipped, "note": note} if note else {},
         "risk_control": rc.to_dict() if rc is not None else None,
         "reevaluation": None if reeval_info is None else {k: v for k, v in reeval_info.items() if k != "rows"}},
    )
    written.append("run.json")
    out_dir.finish()
    print(f"wrote {', '.join(written)} to {out}")
    return 0
