"""``calib-harness vision``: run a timm classifier over images, or use the shipped MNIST pair.

    calib-harness vision run --model tf_efficientnet_lite0 --checkpoint lite0.pth --remap \\
        --data imgs/ --layout imagenet --label-pattern '_(\\d+)\\.\\w+$' -o runs/lite0
    calib-harness vision mnist-pair -o runs/mnist_pair [--report --shared-data ../shared/data]

``run`` writes ``records.jsonl`` (resumable: rerun the same command after an interruption);
``mnist-pair`` writes the shipped small/large pair's MNIST test records (from the shipped
logits, no torch needed) and optionally the calibration / cascade / cleaning report.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

LAYOUTS = ("class-folders", "flat", "imagenet")


def add_parser(subparsers) -> argparse.ArgumentParser:
    p = subparsers.add_parser("vision", help="timm classifiers over image datasets -> records", description=__doc__,
                              formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="vision_command", metavar="ACTION")

    r = sub.add_parser("run", help="run a timm model (local checkpoint) over an image folder",
                       description="Run a timm classifier (local checkpoint, never downloaded) over an image folder "
                       "and write its records (class logits as option scores); resumable.")
    r.add_argument("--model", required=True, help="timm model name, e.g. tf_efficientnet_lite0")
    r.add_argument("--checkpoint", required=True, type=Path, help="local .pth / .safetensors (never downloaded)")
    r.add_argument("--remap", action="store_true", help="map checkpoint tensors by position (other key names)")
    r.add_argument("--model-kwargs", default="{}", help='JSON for timm.create_model, e.g. \'{"num_classes": 10}\'')
    r.add_argument("--run-name", help="the records' model name (default: --model)")
    r.add_argument("--data", required=True, type=Path, help="image folder")
    r.add_argument("--layout", choices=LAYOUTS, default="class-folders", help="how the folder gives labels (default class-folders)")
    r.add_argument("--name", help="task name in the records (default: folder name; 'imagenet' for that layout)")
    r.add_argument("--labels-csv", type=Path, help="flat/imagenet layout: CSV with file names and labels")
    r.add_argument("--filename-column", default="filename", help="column of --labels-csv holding file names (default filename)")
    r.add_argument("--label-column", default="label", help="column of --labels-csv holding labels (default label)")
    r.add_argument("--label-pattern", help=r"flat/imagenet layout: regex whose group 1 is the label, e.g. '_(\d+)\.\w+$'")
    r.add_argument("--glob", default="*", help="flat/imagenet layout: which files, e.g. 'imagenet_*'")
    r.add_argument("--classes", help="comma-separated class names (option labels) in index order")
    r.add_argument("--input-size", type=int, nargs="+", help="S (square) or C H W")
    r.add_argument("--mean", type=float, nargs="+", help="normalisation mean per channel (default: the model's)")
    r.add_argument("--std", type=float, nargs="+", help="normalisation std per channel (default: the model's)")
    r.add_argument("--crop-pct", type=float, help="centre-crop fraction (default: the model's)")
    r.add_argument("--crop-mode", choices=("center", "squash", "border"), help="timm crop mode (default: the model's)")
    r.add_argument("--interpolation", choices=("bilinear", "bicubic", "nearest"), help="resize interpolation (default: the model's)")
    r.add_argument("--batch-size", type=int, default=32, help="images per batch (default 32)")
    r.add_argument("--limit", type=int, help="only the first N images")
    r.add_argument("--device", default="cpu", help="torch device (default cpu)")
    r.add_argument("-o", "--output", required=True, type=Path, metavar="DIR", help="folder for records.jsonl (+ checkpoint while running; resumable)")
    r.add_argument("--force", dest="overwrite", action="store_true", help="discard a different run found in the output folder")
    r.add_argument("--no-progress", action="store_true", help="no progress bars")
    r.set_defaults(func=cmd_run)

    m = sub.add_parser("mnist-pair", help="records of the shipped MNIST small/large pair (+ report)",
                       description="Write the shipped MNIST small/large pair's records (from the shipped logits, no "
                       "torch needed) and, with --report, the calibration / cascade / cleaning report.")
    m.add_argument("-o", "--output", required=True, type=Path, metavar="DIR", help="writes small/records.jsonl and large/records.jsonl")
    m.add_argument("--force", action="store_true", help="replace earlier results in the output folder")
    m.add_argument("--split", choices=("val", "test"), default="test", help="MNIST split (default test)")
    m.add_argument("--report", action="store_true", help="also calibration / cascade / cleaning figures and plots")
    m.add_argument("--shared-data", type=Path, default=Path("../shared/data"),
                   help="folder holding label_errors/cleanlab (for the cleaning reference)")
    m.add_argument("--seed", type=int, default=0, help="seed of the calibration/test split (default 0)")
    m.add_argument("--no-plots", action="store_true", help="skip the PNG figures of the report")
    m.set_defaults(func=cmd_mnist_pair)
    p.set_defaults(func=lambda args: (p.print_help(), 2)[1])
    return p


def _dataset(args):
    from calib_harness.vision import datasets as D

    classes = [c.strip() for c in args.classes.split(",")] if args.classes else None
    if args.layout == "class-folders":
        return D.class_folder_dataset(args.data, name=args.name, classes=classes)
    if args.layout == "flat":
        return D.flat_folder_dataset(args.data, name=args.name, labels_csv=args.labels_csv,
                                     filename_column=args.filename_column, label_column=args.label_column,
                                     label_pattern=args.label_pattern, glob=args.glob, classes=classes)
    return D.imagenet_dataset(args.data, name=args.name or "imagenet", labels_csv=args.labels_csv,
                              label_pattern=args.label_pattern, glob=args.glob,
                              **({"filename_column": args.filename_column, "label_column": args.label_column}
                                 if args.labels_csv else {}))


def _overrides(args) -> dict:
    size = args.input_size
    if size is not None and len(size) not in (1, 3):
        raise ValueError("--input-size takes S or C H W")
    return {
        "input_size": None if size is None else (size[0] if len(size) == 1 else tuple(size)),
        "mean": args.mean,
        "std": args.std,
        "crop_pct": args.crop_pct,
        "crop_mode": args.crop_mode,
        "interpolation": args.interpolation,
    }


def cmd_run(args) -> int:
    from calib_harness.vision._deps import MissingVisionExtra, require_vision

    try:
        require_vision()
    except MissingVisionExtra as e:
        print(f"calib-harness vision: error: {e}", file=sys.stderr)
        return 2
    from calib_harness.vision.adapter import AdapterConfig, run_adapter

    try:
        kwargs = json.loads(args.model_kwargs)
    except json.JSONDecodeError as e:
        raise ValueError(f"--model-kwargs is not JSON: {e}") from e
    ds = _dataset(args)
    if args.limit:
        ds = ds.subset(args.limit)
    cfg = AdapterConfig(args.model, args.checkpoint, kwargs, args.run_name, args.remap, args.batch_size,
                        {k: v for k, v in _overrides(args).items() if v is not None}, args.device)
    run = run_adapter(cfg, ds, args.output, overwrite=args.overwrite, progress=not args.no_progress)
    n_labelled = sum(r.gold is not None for r in run.records)
    acc = f", accuracy {run.scores().mean():.4f}" if n_labelled else ""
    print(f"{len(run)} records of {run.model} on {ds.name} -> {run.source}{acc} "
          f"(resumed {run.meta['images_resumed']}, preprocessing {run.meta['data_config']})")
    return 0


def cmd_mnist_pair(args) -> int:
    from calib_harness.vision import mnist_pair as mp

    from calib_harness.outputs import prepare_output_dir

    out_dir = prepare_output_dir(args.output, args.force, "vision mnist-pair")
    small, large = mp.load_pair_runs(args.split)
    for role, run in (("small", small), ("large", large)):
        path = run.save(args.output / role)
        print(f"{role}: {run.model} accuracy {run.scores().mean():.4f} -> {path}")
    if args.report:  # the same report as LM runs (calib_harness.report.build)
        from calib_harness.report.build import build_report

        rep = build_report([small, large], args.output / "report", title="MNIST pair", small=small.model,
                           large=large.model, data_dir=args.shared_data, seed=args.seed, mf=False,
                           plots=not args.no_plots)
        print(f"report -> {rep.markdown}, {rep.html}")
    out_dir.finish()
    return 0
