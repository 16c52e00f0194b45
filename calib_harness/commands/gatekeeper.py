"""``calib-harness gatekeeper``: run the GATEKEEPER alpha sweep and write the tables and plots.

    calib-harness gatekeeper sweep --pair mnist -o runs/gatekeeper
    calib-harness gatekeeper sweep --pair arc --alphas 0.9 0.5 0.1 --arc-eval 300
    calib-harness gatekeeper table -o runs/gatekeeper         # rebuild tables + plots from saved variants

The sweep is resumable: each finished variant is saved under ``<out>/<pair>/variants/`` and skipped
on a rerun (``--force`` recomputes them).
"""

from __future__ import annotations

import argparse
from pathlib import Path


def add_parser(subparsers) -> argparse.ArgumentParser:
    p = subparsers.add_parser("gatekeeper", help="GATEKEEPER confidence tuning: alpha sweep, table, plots",
                              description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="gk_command", metavar="ACTION")

    s = sub.add_parser("sweep", help="run (or resume) the alpha sweep on a cascade pair",
                       description="Fine-tune the small model with the GATEKEEPER loss for each alpha (and a plain-CE "
                       "control), then score deferral; resumable, each finished variant is saved.")
    s.add_argument("--pair", choices=["mnist", "arc", "both"], default="both", help="cascade pair to tune (default both)")
    s.add_argument("-o", "--output", dest="out", metavar="DIR", default="runs/gatekeeper", help="output folder (resumable; default: runs/gatekeeper)")
    s.add_argument("--alphas", type=float, nargs="+", default=None, help="alpha values (default per pair)")
    s.add_argument("--no-control", action="store_true", help="skip the plain-CE fine-tuning control")
    s.add_argument("--force", action="store_true", help="recompute (replace) the variants already saved in the output folder")
    s.add_argument("--seed", type=int, default=0, help="seed of training and of the calibration split (default 0)")
    s.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    s.add_argument("--no-progress", action="store_true", help="no progress bars")
    g = s.add_argument_group("MNIST pair")
    g.add_argument("--mnist-stage1", type=int, default=3000, help="images for Stage 1 training of M_S")
    g.add_argument("--mnist-finetune", type=int, default=5000, help="disjoint train images for fine-tuning")
    g.add_argument("--mnist-finetune-offset", type=int, default=None,
                   help="first fine-tuning image (default: right after the Stage 1 images; 0 = reuse them)")
    g.add_argument("--mnist-epochs", type=int, default=3, help="fine-tuning epochs")
    g.add_argument("--correct-from", choices=["batch", "epoch_start"], default="batch",
                   help="which prediction defines 'correct' in the loss")
    g = s.add_argument_group("ARC-Easy pair")
    g.add_argument("--arc-model", default="smollm2-135m", help="shipped short name (or local folder) of M_S (default smollm2-135m)")
    g.add_argument("--arc-train", type=int, default=320, help="ARC-Easy train questions for fine-tuning")
    g.add_argument("--arc-eval", type=int, default=200, help="ARC-Easy test docs evaluated")
    g.add_argument("--arc-cal", type=int, default=100, help="further test docs for post-hoc calibration + CC")
    g.add_argument("--arc-steps", type=int, default=24, help="fine-tuning optimiser steps (default 24)")
    g.add_argument("--arc-batch", type=int, default=8, help="fine-tuning batch size (default 8)")
    g.add_argument("--arc-lr", type=float, default=3e-5, help="fine-tuning learning rate (default 3e-5)")
    g.add_argument("--arc-stage1", type=int, default=0,
                   help="Stage 1 (paper 4.2): CE steps on train[:arc-train] first; variants then tune on the next arc-train docs")
    g.add_argument("--large-records", default=None, help="M_L run: records.jsonl, a folder, or an lm-eval output folder of calib_arc_easy (required unless --oracle-large)")
    g.add_argument("--oracle-large", action="store_true", help="no M_L run: use an oracle large model (p_l = 1); the table says so")
    g.add_argument("--device", default="auto", help="torch device for the ARC pair (auto: cuda when available, else cpu)")
    s.set_defaults(func=run_sweep)

    t = sub.add_parser("table", help="rebuild table.md and plots from saved variants",
                       description="Rebuild table.md and the plots of a sweep from its saved variants (no training).")
    t.add_argument("-o", "--output", dest="out", metavar="DIR", default="runs/gatekeeper", help="folder of a sweep (default: runs/gatekeeper)")
    t.add_argument("--large-records", default=None, help="ARC M_L run: records.jsonl, a folder, or an lm-eval output folder (required for ARC unless --oracle-large)")
    t.add_argument("--oracle-large", action="store_true", help="ARC: score against an oracle large model (p_l = 1)")
    t.set_defaults(func=run_table)

    p.set_defaults(func=lambda args: (p.print_help(), 2)[1])
    return p


def run_sweep(args) -> int:
    import torch

    from calib_harness.gatekeeper.sweep import ArcSweepConfig, MnistSweepConfig, run_arc_sweep, run_mnist_sweep

    if args.threads:
        torch.set_num_threads(args.threads)
    progress = not args.no_progress
    if args.pair in ("mnist", "both"):
        cfg = MnistSweepConfig(n_stage1=args.mnist_stage1, n_finetune=args.mnist_finetune, finetune_epochs=args.mnist_epochs,
                               finetune_offset=args.mnist_finetune_offset,
                               correct_from=args.correct_from, seed=args.seed, control=not args.no_control)
        if args.alphas:
            cfg.alphas = tuple(args.alphas)
        print(run_mnist_sweep(args.out, cfg, progress=progress, force=args.force))
    if args.pair in ("arc", "both"):
        cfg = ArcSweepConfig(model=args.arc_model, n_train=args.arc_train, n_eval=args.arc_eval, n_cal=args.arc_cal,
                             max_steps=args.arc_steps, batch_size=args.arc_batch, lr=args.arc_lr, seed=args.seed,
                             control=not args.no_control, large_records=args.large_records, stage1_steps=args.arc_stage1,
                             oracle_large=args.oracle_large, device=args.device)
        if args.alphas:
            cfg.alphas = tuple(args.alphas)
        print(run_arc_sweep(args.out, cfg, progress=progress, force=args.force))
    print(f"tables and plots under {Path(args.out).resolve()}")
    return 0


def run_table(args) -> int:
    from calib_harness.gatekeeper.plots import plot_pair
    from calib_harness.gatekeeper.sweep import score_arc_folder, write_table

    out = Path(args.out)
    found = False
    if (out / "mnist" / "variants").exists():
        found = True
        print(write_table(out / "mnist", "MNIST"))
        for path in plot_pair(out / "mnist", "MNIST"):
            print(f"wrote {path}")
    if (out / "arc_easy" / "records" / "untuned").exists():
        found = True  # metrics are recomputed from the saved records (M_L records may have appeared since)
        print(score_arc_folder(out / "arc_easy", args.large_records, oracle_large=args.oracle_large))
    if not found:
        raise FileNotFoundError(f"no saved variants under {out}/mnist or {out}/arc_easy")
    return 0
