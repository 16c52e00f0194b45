"""``calib-harness report RUN [RUN ...]``: one Markdown + one HTML report over any runs.

    calib-harness report runs/smol runs/qwen -o report
    calib-harness report runs/stock/smollm2 runs/stock/qwen --small smollm2-135m --no-mf --force
    calib-harness report runs/stock                 # an lm-eval folder of several models: one run each

Each RUN is an lm-eval ``--output_path`` folder (calib-harness tasks or stock lm-eval logs), a
records file (``records.jsonl``, or a plain table: see docs/PLAIN_TABLE.md) or a folder holding
one.  With two or more runs the report compares cascades of the least and most accurate; the
cleaning section uses the runs as experts.

Writes to ``-o/--output`` (default ./report; a folder holding earlier results is refused unless
``--force``): ``report.md``, ``report.html`` (self-contained), ``numbers.json`` and the figures.
Progress goes to stderr; a 200-document pair takes about half a minute.
"""

from __future__ import annotations

import argparse

from calib_harness.commands import add_loader_args, add_no_plots_arg, add_output_args, add_seed_arg, loader_kwargs
from calib_harness.outputs import prepare_output_dir


def add_parser(sub: argparse._SubParsersAction) -> argparse.ArgumentParser:
    p = sub.add_parser(
        "report",
        help="calibration, cascade and cleaning report (Markdown + self-contained HTML)",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("runs", nargs="+", metavar="RUN", help="lm-eval output folders (a folder of several models gives one run per model), records.jsonl / plain tables, or folders holding one")
    add_output_args(p, "report", "report.md, report.html, numbers.json and figures")
    p.add_argument("--small", help="model name of the small (first) model of the cascade (default: the less accurate run)")
    p.add_argument("--large", help="model name of the large (second) model (default: the more accurate run)")
    p.add_argument("--data-dir", help="shared data folder holding mmlu_redux/ (for the cleaning reference)")
    p.add_argument("--no-mf", action="store_true", help="skip the RouteLLM MF router (it embeds every prompt)")
    add_seed_arg(p)
    add_no_plots_arg(p)
    p.add_argument("--title", default="calib-harness report", help="title of the report (default: 'calib-harness report')")
    add_loader_args(p)
    p.set_defaults(func=run)
    return p


def run(args: argparse.Namespace) -> int:
    import logging

    from calib_harness.lm_eval_io import load_runs
    from calib_harness.report.build import build_report

    log = logging.getLogger(__name__)
    runs = []
    for p in args.runs:  # a multi-model lm-eval folder gives one run per model
        for run in load_runs(p, **loader_kwargs(args)):
            runs.append(run)
            log.info("loaded %s: %s, %d records", p, run.model, len(run))
    names = [r.model for r in runs]
    if len(set(names)) != len(names):
        raise ValueError(f"two runs have the same model name {names}; reports compare different models")
    out_dir = prepare_output_dir(args.output, args.force, "report", protect=args.runs)
    rep = build_report(runs, out_dir.path, title=args.title, small=args.small, large=args.large, data_dir=args.data_dir,
                       seed=args.seed, mf=not args.no_mf, plots=not args.no_plots)
    out_dir.finish()
    print(f"wrote {rep.markdown} and {rep.html}")
    return 0
