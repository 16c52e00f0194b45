"""The offline demo: capture two shipped models on a shipped ARC-Easy slice, then report.

Stages (each resumable; rerun the same command after an interruption):

1. capture: ``calib-lm-eval`` runs ``calib_arc_easy`` for the small and the large model on the
   first ``docs`` questions of the shipped slice (``--use_cache`` keeps every finished request,
   so an interrupted capture restarts where it stopped; a finished one is skipped);
2. report: calibration, cascade (CC, UC, threshold, MF, random, oracle) and cleaning over
   the two runs, written as ``report/report.md`` and ``report/report.html``.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Sequence

from rich.console import Console

from calib_harness.lm_eval_io import load_run
from calib_harness.paths import DEMO_DATA_DIR
from calib_harness.records import RECORDS_FILENAME, Run
from calib_harness.report.tables import Interval, Table, cell_value

SMALL, LARGE = "smollm2-135m", "qwen2.5-coder-0.5b"
console = Console()


def capture(model: str, out: Path, task: str, docs: int, batch_size: int) -> Run:
    """One model's lm-eval run (skipped when its records are complete); returns its records."""
    folder = out / "capture" / model
    records = folder / RECORDS_FILENAME
    if records.exists():
        run = load_run(records)
        if len(run) == docs:
            console.print(f"[green]capture {model}: done earlier[/] ({records})")
            return run
    cache = out / "cache" / f"{task}_{model}"
    cache.parent.mkdir(parents=True, exist_ok=True)
    cmd = [sys.executable, "-m", "calib_harness.lm_eval_cli", "--model", "hf",
           "--model_args", f"pretrained={model},dtype=float32", "--tasks", task, "--data_dir", str(DEMO_DATA_DIR),
           "--limit", str(docs), "--batch_size", str(batch_size), "--device", "cpu",
           "--use_cache", str(cache), "--output_path", str(folder), "--log_samples"]
    console.print(f"[bold]capture {model}[/]: {task}, {docs} docs")
    env = dict(os.environ, HF_HUB_OFFLINE="1", HF_DATASETS_OFFLINE="1", TOKENIZERS_PARALLELISM="false")
    proc = subprocess.run(cmd, env=env)
    if proc.returncode != 0:
        raise RuntimeError(f"capture of {model} failed (exit {proc.returncode}); rerun the demo to resume")
    run = load_run(folder)
    run.save(folder)
    return run


def run_demo(out: str | Path = "outputs/demo", docs: int = 200, models: Sequence[str] = (SMALL, LARGE),
             task: str = "calib_arc_easy", batch_size: int = 8, report: bool = True) -> dict:
    out = Path(out).resolve()
    t0 = time.perf_counter()
    timings = {}
    runs = []
    for m in models:
        t = time.perf_counter()
        runs.append(capture(m, out, task, docs, batch_size))
        timings[f"capture {m}"] = time.perf_counter() - t
    from calib_harness import metrics

    table = Table(f"{task}: {docs} docs of the shipped ARC-Easy slice",
                  ["model", "accuracy", "mean confidence", "ECE (15 equal-count bins)"],
                  [[r.model, r.scores().mean(), r.confidences().mean(), metrics.ece(r.confidences(), r.scores())]
                   for r in runs])
    _show(table)
    result = {"runs": [str(out / "capture" / m) for m in models], "timings": timings}
    done = out / "report" / "report.md"
    if report and done.exists() and (out / "report" / "numbers.json").exists():
        # A finished report is never rebuilt over (it may have been edited); --force starts over.
        console.print(f"[green]report: done earlier[/] ({done}; pass --force to start over)")
        _print_summary(json.loads((out / "report" / "numbers.json").read_text()))
        result.update(report_md=str(done), report_html=str(done.with_suffix(".html")))
    elif report:
        from calib_harness.report.build import build_report

        t = time.perf_counter()
        console.print("[bold]report[/]: calibration, cascade, cleaning")
        # The cascade goes from the less to the more accurate run on this task: on ARC-Easy's cloze format the
        # 0.5B code model is not better than SmolLM2, and the report says which way it routes.
        rep = build_report(runs, out / "report", title="calib-harness demo report",
                           intro=f"Two shipped models ({', '.join(models)}) on the first {docs} questions of the ARC-Easy "
                                 "test set shipped with the package (CC BY-SA 4.0, AI2), captured offline with lm-eval. "
                                 "The cascade routes from the less accurate to the more accurate of the two on this task.")
        timings["report"] = time.perf_counter() - t
        _print_summary(rep.numbers)
        console.print(f"report: {rep.markdown}\n        {rep.html}")
        result.update(report_md=str(rep.markdown), report_html=str(rep.html), numbers=rep.numbers)
    timings["total"] = time.perf_counter() - t0
    console.print("timings: " + ", ".join(f"{k} {v:.0f}s" for k, v in timings.items()))
    return result


def _show(table: Table) -> None:
    console.print(table.render("text"), markup=False, highlight=False, soft_wrap=True)


def _print_summary(numbers: dict) -> None:
    _show(Table("Calibration (test half)", ["model", "ECE before", "ECE after"],
                [[model, cell_value(rep["metrics"]["test"]["before"], "ece"), cell_value(rep["metrics"]["test"]["after"], "ece")]
                 for model, rep in numbers.get("calibration", {}).items()]))
    if "cascade" in numbers:
        c = numbers["cascade"]
        _show(Table(f"Cascade APGR ({c['small_model']} -> {c['large_model']}, test half)", ["router", "APGR"],
                    [[k, Interval(v, *(c.get("apgr_ci95", {}).get(k) or (None, None)))] for k, v in c["apgr"].items()]))
