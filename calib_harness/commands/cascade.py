"""``calib-harness cascade``: compare cascade routers on two models' runs over the same docs.

    calib-harness cascade --small runs/smol/arc_easy --large runs/qwen/arc_easy \\
        [--routers CC UC threshold MF random oracle] [--bins 15] [--bins-sweep 5 15 50 100] \\
        [-o DIR] [--force] [--deploy-share 0.5 | --deploy-k K]

Writes to ``-o/--output`` (a folder holding earlier results is refused unless ``--force``): ``comparison.json`` (curves, APGR, s_d, bins sensitivity),
``table.md``, ``curves.png``, ``bins.png``, ``router.json`` (the deployable CC router, see
:mod:`calib_harness.routing.deploy`) and ``embeddings/`` (the cached MF prompt embeddings).
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
from calib_harness.outputs import prepare_output_dir, write_json, write_text


def add_parser(subparsers) -> argparse.ArgumentParser:
    from calib_harness.routing.compare import DEFAULT_BINS_SWEEP, default_routers

    ROUTERS = default_routers()

    p = subparsers.add_parser(
        "cascade",
        help="route between a small and a large model (CC/UC/threshold/MF/random/oracle), APGR table and plots",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--small", required=True, help="run of the small (or first) model: records.jsonl, a folder, or an lm-eval output folder")
    p.add_argument("--large", required=True, help="run of the large (or second) model, same docs")
    p.add_argument("--routers", nargs="+", default=list(ROUTERS), metavar="R", help=f"routers to compare (default: {' '.join(ROUTERS)})")
    add_bins_arg(p, what="equal-count confidence bins for CC/UC")
    p.add_argument("--bins-sweep", type=int, nargs="*", default=list(DEFAULT_BINS_SWEEP), metavar="N", help=f"bin counts for the sensitivity table (default: {' '.join(map(str, DEFAULT_BINS_SWEEP))})")
    p.add_argument("--method", default="auto", choices=["auto", "temperature", "platt", "histogram", "isotonic"], help="calibrator for CC (auto: temperature for option scores, platt on mean_logit for generation)")
    p.add_argument("--feature", default=None, help="record feature for scalar calibrators (default per method)")
    p.add_argument("--cal-fraction", type=float, default=0.5, help="share of docs in the calibration half (default 0.5)")
    add_seed_arg(p)
    p.add_argument("--intersect", action="store_true", help="keep only the docs both runs have (default: error on mismatch)")
    add_output_args(p, "cascade_output", "comparison.json, table.md, plots and router.json")
    add_loader_args(p)
    p.add_argument("--mf-epochs", type=int, default=100, help="MF router training epochs on the calibration half (default 100)")
    p.add_argument("--mf-dim", type=int, default=128, help="MF router embedding dimension without a checkpoint (default 128)")
    p.add_argument("--mf-checkpoint", default=None, help="RouteLLM MF checkpoint (state dict .pt/.bin or a folder with model.safetensors)")
    p.add_argument("--mf-strong-id", type=int, default=None, help="strong-model id in the checkpoint (RouteLLM: 24)")
    p.add_argument("--mf-weak-id", type=int, default=None, help="weak-model id in the checkpoint (RouteLLM: 36)")
    p.add_argument("--mf-no-finetune", action="store_true", help="use the checkpoint as is (no fine-tuning on the calibration half)")
    g = p.add_mutually_exclusive_group()
    g.add_argument("--deploy-k", type=int, default=None, help="K (number of selected bins) of the saved router")
    g.add_argument("--deploy-share", type=float, default=0.5, help="share of the calibration half kept on the small model by the saved router (default 0.5)")
    add_no_plots_arg(p)
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    p.set_defaults(func=run)
    return p


def _load(path: str, **kwargs):
    from calib_harness.lm_eval_io import load_run

    if not Path(path).exists():
        raise FileNotFoundError(f"run {path} does not exist")
    return load_run(path, **kwargs)


def run(args: argparse.Namespace) -> int:
    from rich.console import Console

    from calib_harness.records import align
    from calib_harness.routing.compare import build_deployable, compare_routers

    console = Console()
    small, large = _load(args.small, **loader_kwargs(args)), _load(args.large, **loader_kwargs(args))
    if small.model == large.model:
        console.print(f"[yellow]both runs are named {small.model!r}; the table says small/large by position[/]")
    small, large = align(small, large, on_mismatch="intersect" if args.intersect else "error")
    out_dir = prepare_output_dir(args.output, args.force, "cascade", protect=[args.small, args.large])
    out = out_dir.path
    mf_options = {"epochs": args.mf_epochs}
    if args.mf_checkpoint:
        if args.mf_strong_id is not None:
            mf_options["strong_id"] = args.mf_strong_id
        if args.mf_weak_id is not None:
            mf_options["weak_id"] = args.mf_weak_id
        mf_options["finetune"] = not args.mf_no_finetune
    else:
        mf_options["dim"] = args.mf_dim
    comp = compare_routers(
        small,
        large,
        routers=args.routers,
        n_bins=args.bins,
        bins_sweep=args.bins_sweep,
        method=args.method,
        feature=args.feature,
        cal_fraction=args.cal_fraction,
        seed=args.seed,
        mf_options=mf_options,
        mf_checkpoint=args.mf_checkpoint,
        embedding_cache=out / "embeddings",
        progress=not args.no_progress,
    )
    for t in comp.rich_tables():
        console.print(t)
    write_json(out / "comparison.json", comp.to_dict())
    write_text(out / "table.md", comp.to_markdown() + "\n")
    written = ["comparison.json", "table.md"]
    if not args.no_plots:
        from calib_harness.routing.plots import plot_bins_sensitivity, plot_curves

        plot_curves(comp, out / "curves.png")
        written.append("curves.png")
        if comp.bins_sensitivity:
            plot_bins_sensitivity(comp, out / "bins.png")
            written.append("bins.png")
    if comp.cc_router is not None:
        router = build_deployable(comp, k=args.deploy_k, target_share_small=None if args.deploy_k is not None else args.deploy_share)
        router.save(out / "router.json")
        written.append(f"router.json (K={router.k} of {router.n_bins} bins)")
    out_dir.finish()
    console.print(f"wrote {', '.join(written)} to {out}")
    return 0
