"""``calib-harness cascade``: compare cascade routers on two models' runs over the same docs.

    calib-harness cascade --small runs/smol/arc_easy --large runs/qwen/arc_easy \\
        [--routers CC UC threshold MF random oracle] [--bins 15] [--bins-sweep 5 15 50 100] \\
        [-o DIR] [--force] [--deploy-share 0.5 | --deploy-k K]

Roles come from the data: the model less accurate on the calibration half (or the cheaper one,
with ``--costs SMALL LARGE``) is the small model, whatever the order of ``--small`` / ``--large``;
a disagreeing order is swapped with a warning (``--roles given`` keeps it).  APGR and s_d are
exact areas, normalised from the weaker to the stronger model, with 95% bootstrap intervals over
the test documents.  CC's calibrator is chosen by cross-fitting on the calibration half
(``--method auto``).  Same-size pairs get the combined peak accuracy against each model alone.

Minimum: 20 documents in common (10 per half); fewer are refused.  With fewer than 10
calibration documents per bin (``--bins``) the figures are noisy and a warning says so.  Two
identical runs (the same run twice) are refused.

Writes to ``-o/--output`` (a folder holding earlier results is refused unless ``--force``;
``--force`` keeps the embedding cache): ``comparison.json`` (curves, bands, APGR, s_d and
their intervals, bins sensitivity, CC's bin table and calibrator choice, roles, warnings),
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
    p.add_argument("--small", default=None, help="run of the small (or first) model: records.jsonl, a folder, or an lm-eval output folder (or use --models)")
    p.add_argument("--large", default=None, help="run of the large (or second) model, same docs")
    p.add_argument("--routers", nargs="+", default=list(ROUTERS), metavar="R", help=f"routers to compare (default: {' '.join(ROUTERS)})")
    add_bins_arg(p, what="equal-count confidence bins for CC/UC")
    p.add_argument("--bins-sweep", type=int, nargs="*", default=list(DEFAULT_BINS_SWEEP), metavar="N", help=f"bin counts for the sensitivity table (default: {' '.join(map(str, DEFAULT_BINS_SWEEP))})")
    from calib_harness.routing.calibrated import METHODS

    p.add_argument("--method", default="auto", choices=list(METHODS), help="calibrator for CC (auto, default: chosen by cross-fitting on the calibration half among the others; binwise = per-bin accuracy of each model with shrinkage; none = raw confidences)")
    p.add_argument("--roles", choices=["data", "given"], default="data", help="data (default): the less accurate (or, with --costs, cheaper) model is the small one, swapped with a warning; given: keep --small/--large as given, with a warning when they disagree")
    p.add_argument("--n-boot", type=int, default=1000, metavar="B", help="bootstrap resamples of the test half for the 95%% intervals (default 1000; 0: none)")
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
    from calib_harness.routing.chain import add_chain_args

    add_chain_args(p)
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
    if args.models:
        from calib_harness.routing.chain import run_chain_command

        return run_chain_command(args, lambda path: _load(path, **loader_kwargs(args)))
    if not (args.small and args.large):
        raise ValueError("give --small and --large (two models) or --models (a chain)")
    small, large = _load(args.small, **loader_kwargs(args)), _load(args.large, **loader_kwargs(args))
    if small.model == large.model:
        console.print(f"[yellow]both runs are named {small.model!r}; the table says small/large by position[/]")
    small, large = align(small, large, on_mismatch="intersect" if args.intersect else "error")
    from calib_harness.outputs import CliError
    from calib_harness.routing.compare import check_pair

    check_pair(small, large, args.bins, args.cal_fraction)  # refuses before any file is written
    from calib_harness.routing.chain import check_risk_args

    check_risk_args(len(small), args)
    costs = None
    if args.costs is not None:
        if len(args.costs) != 2:
            raise CliError(f"--costs takes one cost per model: 2 with --small/--large, got {len(args.costs)}")
        costs = tuple(args.costs)
    cache = ["embeddings/all-MiniLM-L6-v2/vectors.npy", "embeddings/all-MiniLM-L6-v2/keys.json"]
    out_dir = prepare_output_dir(args.output, args.force, "cascade", protect=[args.small, args.large], keep=cache)
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
        roles=args.roles,
        costs=costs,
        n_boot=args.n_boot,
    )
    console.print(comp.to_text(), markup=False, highlight=False, soft_wrap=True)
    console.print(f"small (weaker/cheaper): {comp.small_model}; large: {comp.large_model} (roles by {comp.roles.get('by')})")
    if comp.warnings:  # each was logged as it arose; the count points to table.md / comparison.json
        console.print(f"[yellow]{len(comp.warnings)} warning(s), listed in table.md and comparison.json[/]")
    write_json(out / "comparison.json", comp.to_dict())
    write_text(out / "table.md", comp.to_markdown() + "\n")
    written = ["comparison.json", "table.md"]
    if not args.no_plots:
        from calib_harness.routing.plots import plot_bins_sensitivity, plot_curves

        plot_curves(comp, out / "curves.png")
        written.append("curves.png")
        if comp.bins_sensitivity and plot_bins_sensitivity(comp, out / "bins.png") is not None:
            written.append("bins.png")
    if args.max_drop is not None:
        from calib_harness.routing.chain import risk_controlled_router_json

        pair = [large, small] if comp.roles.get("swapped") else [small, large]  # the comparison's roles
        written.append(risk_controlled_router_json(pair, args, out))
    elif comp.cc_router is not None:
        router = build_deployable(comp, k=args.deploy_k, target_share_small=None if args.deploy_k is not None else args.deploy_share)
        router.save(out / "router.json")
        written.append(f"router.json (K={router.k} of {router.n_bins} bins)")
    out_dir.finish()
    console.print(f"wrote {', '.join(written)} to {out}")
    return 0
