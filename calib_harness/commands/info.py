"""``calib-harness info``: where things are (task folder, shipped models, demo data)."""

from __future__ import annotations

import argparse

from calib_harness.data_sources import DATA_DIR_ENV, data_dir
from calib_harness.models import SHIPPED_MODELS, cache_dir, resolve_model
from calib_harness.paths import DEMO_DATA_DIR
from calib_harness.tasks import TASKS_DIR


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("info", help="print the task folder (for lm_eval --include_path), models and data folders",
                       description="Where things are: the task folder (for lm_eval --include_path), the shipped models "
                       "and their local folders, the data folders.")
    p.add_argument("--tasks-path", action="store_true", help="print only the task folder")
    p.add_argument("--demo-data", action="store_true", help="print only the shipped demo data folder")
    p.add_argument("--resolve", metavar="MODEL", help="print the local folder of a shipped model (materialised on first use)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    if args.tasks_path:
        print(TASKS_DIR)
        return 0
    if args.demo_data:
        print(DEMO_DATA_DIR)
        return 0
    if args.resolve:
        if args.resolve not in SHIPPED_MODELS:
            raise ValueError(f"unknown model {args.resolve!r}; known: {', '.join(SHIPPED_MODELS)}")
        print(resolve_model(args.resolve))
        return 0
    print(f"tasks folder (lm_eval --include_path): {TASKS_DIR}")
    print(f"demo data (--data_dir):              {DEMO_DATA_DIR}")
    print(f"{DATA_DIR_ENV}:              {data_dir() or '(not set: tasks load from the Hugging Face hub)'}")
    print(f"model cache:                         {cache_dir()}")
    print("shipped models (use as pretrained=NAME):")
    for m in SHIPPED_MODELS.values():
        print(f"  {m.name:22s} {m.description}  [{m.pip}]")
    return 0
