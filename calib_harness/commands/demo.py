"""``calib-harness demo``: the whole pipeline offline on the shipped models and data.

    calib-harness demo                      # 200 ARC-Easy questions, SmolLM2-135M and Qwen2.5-Coder-0.5B
    calib-harness demo --docs 40 -o outputs/demo40

Captures both shipped models on the shipped ARC-Easy slice with ``calib-lm-eval`` (per-sample
confidences), then writes the report (calibration, cascade, cleaning) into ``OUTPUT/report``.
The capture is resumable: rerun the same command after an interruption and finished steps are
kept.  ``--force`` starts over (the earlier captures and report are removed).
"""

from __future__ import annotations

import argparse

from calib_harness.commands import add_output_args


def add_parser(sub: argparse._SubParsersAction) -> argparse.ArgumentParser:
    p = sub.add_parser(
        "demo",
        help="capture two shipped models on the shipped ARC-Easy slice, calibrate, route, clean, report",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_output_args(p, "outputs/demo", "the captures and the report (resumable)")
    p.add_argument("--docs", type=int, default=200, help="questions of the slice (1-400, default 200)")
    p.add_argument("--models", nargs=2, default=None, metavar=("SMALL", "LARGE"),
                   help="shipped short names (default smollm2-135m qwen2.5-coder-0.5b)")
    p.add_argument("--batch-size", type=int, default=8, help="lm-eval batch size of the captures (default 8)")
    p.add_argument("--no-report", action="store_true", help="capture only")
    p.set_defaults(func=run)
    return p


def run(args: argparse.Namespace) -> int:
    from pathlib import Path

    from calib_harness.demo import LARGE, SMALL, run_demo
    from calib_harness.outputs import prepare_output_dir

    if not 1 <= args.docs <= 400:
        raise ValueError(f"--docs must be between 1 and 400 (the shipped slice), got {args.docs}")
    out = Path(args.output)
    if args.force and out.exists():
        prepare_output_dir(out, True, "demo")
    run_demo(out, docs=args.docs, models=args.models or (SMALL, LARGE), batch_size=args.batch_size,
             report=not args.no_report)
    return 0
