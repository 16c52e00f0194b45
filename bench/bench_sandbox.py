"""Verified samples per second on the MBPP reference solutions, in one run, for:

* ``fresh``      a fresh Docker container per sample (create, start, run, remove),
* ``pool``       the warm Docker pool (``pool_size`` long-lived containers, a fresh process + dir per sample),
* ``local_code_eval``  unsandboxed local execution the way lm-eval's ``code_eval`` metric runs code (HF
  ``evaluate`` code_eval ``check_correctness``: a ThreadPoolExecutor of ``workers`` threads, each sample a
  ``multiprocessing.Manager`` + ``multiprocessing.Process`` that ``exec``s the program in a temp dir with a
  timeout).  The metric script itself is fetched from the Hub at ``evaluate.load`` time, which is not
  reachable here, so its execution path is reproduced below (same calls, same order),
* ``local_runner``  our own runner as a plain host process (``LocalSandbox(use_bwrap=False)``): the same
  fork-per-sample path as the pool without the container, to show the container's own cost.

Every mode uses the same samples, the same programs (test_setup_code + code + test_list) and the same
number of workers.  Throughput = samples / wall seconds (pool start-up excluded and reported apart).
Writes bench/results/bench_sandbox.json and prints a table.

    python bench/bench_sandbox.py [--n 300] [--n-fresh 60] [--workers 2]

With ``--bigcodebench`` it instead measures the share of the 1,140 BigCodeBench v0.1.0 reference solutions
that pass in the BigCodeBench image (code_prompt + canonical_solution against each task's unittest
TestCases), lists the failures by cause and writes bench/results/bigcodebench_reference.json.
"""

from __future__ import annotations

import argparse
import contextlib
import faulthandler
import io
import json
import multiprocessing
import os
import platform
import signal
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from calib_harness.sandbox import DEFAULT_IMAGE, DockerSandbox, Job, Limits, LocalSandbox
from calib_harness.verifiers import get_verifier

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "bench" / "results"


# ---------------------------------------------------------------- lm-eval / HF evaluate code_eval path
class TimeoutException(Exception):
    pass


@contextlib.contextmanager
def time_limit(seconds: float):
    def handler(signum, frame):
        raise TimeoutException("Timed out!")

    signal.setitimer(signal.ITIMER_REAL, seconds)
    signal.signal(signal.SIGALRM, handler)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)


def unsafe_execute(program: str, result, timeout: float) -> None:
    with tempfile.TemporaryDirectory() as d:
        cwd = os.getcwd()
        os.chdir(d)
        try:
            exec_globals: dict = {}
            with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
                with time_limit(timeout):
                    exec(program, exec_globals)
            result.append("passed")
        except TimeoutException:
            result.append("timed out")
        except BaseException as e:
            result.append(f"failed: {e}")
        finally:
            os.chdir(cwd)


def check_correctness(program: str, timeout: float) -> bool:
    manager = multiprocessing.Manager()
    result = manager.list()
    p = multiprocessing.Process(target=unsafe_execute, args=(program, result, timeout))
    p.start()
    p.join(timeout=timeout + 1)
    if p.is_alive():
        p.kill()
    ok = bool(result) and result[0] == "passed"
    manager.shutdown()
    return ok


def run_local_code_eval(programs: list[str], workers: int, timeout: float) -> list[bool]:
    with ThreadPoolExecutor(max_workers=workers) as ex:
        return list(ex.map(lambda p: check_correctness(p, timeout), programs))


# ---------------------------------------------------------------- BigCodeBench reference pass rate
def failure_cause(details: dict) -> str:
    tail = details.get("stderr_tail") or ""
    et = details.get("error_type") or ""
    if details["verdict"] == "timeout":
        return "timeout"
    if details["verdict"] in ("memory", "output_limit", "file_size", "disk_full", "sandbox_error"):
        return details["verdict"]
    if et == "ModuleNotFoundError" or "No module named" in tail:
        import re

        m = re.findall(r"No module named '([^']+)'", tail)
        return f"missing module: {m[-1] if m else '?'}"
    net = ("Temporary failure in name resolution", "Network is unreachable", "NewConnectionError", "gaierror", "URLError", "ConnectionError", "Max retries exceeded")
    if any(x in tail for x in net):
        return "network (sandbox has none)"
    if "Resource " in tail and "not found" in tail and "nltk" in tail:
        return "missing nltk data"
    if "TesseractNotFound" in tail or "tesseract is not installed" in tail:
        return "missing binary: tesseract"
    return f"test failure: {et or 'unknown'}"


def bigcodebench(args) -> None:
    import collections
    import gzip

    from calib_harness.sandbox import BIGCODEBENCH_IMAGE

    path = Path(args.bcb_data)
    with gzip.open(path, "rt") as f:
        docs = [json.loads(x) for x in f]
    if args.bcb_tasks:
        if args.bcb_tasks == ["failed"]:  # the failures of the last full run
            args.bcb_tasks = [f["task_id"] for f in json.loads((RESULTS / "bigcodebench_reference.json").read_text())["failures"]]
        wanted = set(args.bcb_tasks)
        docs = [d for d in docs if d["task_id"] in wanted]
        if len(docs) != len(wanted):
            raise SystemExit(f"unknown task ids: {sorted(wanted - {d['task_id'] for d in docs})}")
    if args.bcb_limit:
        docs = docs[: args.bcb_limit]
    t = time.perf_counter()
    with get_verifier("code_exec", suite="bigcodebench", pool_size=args.workers, timeout=args.bcb_timeout) as v:
        res = v.verify_many(docs, [d["canonical_solution"] for d in docs], progress=True)
    wall = time.perf_counter() - t
    failures = []
    for d, r in zip(docs, res):
        if r.score != 1.0:
            failures.append({"task_id": d["task_id"], "cause": failure_cause(r.details), "verdict": r.details["verdict"], "error_type": r.details["error_type"], "libs": d["libs"], "stderr_tail": r.details["stderr_tail"][-600:]})
    causes = collections.Counter(f["cause"] for f in failures)
    n_pass = len(docs) - len(failures)
    out = {
        "benchmark": "bigcodebench_reference",
        "data": str(path.name),
        "image": BIGCODEBENCH_IMAGE,
        "tasks": len(docs),
        "passed": n_pass,
        "pass_rate": round(n_pass / len(docs), 4),
        "target": 0.98,
        "wall_s": round(wall, 1),
        "workers": args.workers,
        "timeout_s": args.bcb_timeout,
        "failures_by_cause": dict(causes.most_common()),
        "failures": failures,
    }
    RESULTS.mkdir(parents=True, exist_ok=True)
    # a subset run (--bcb-tasks / --bcb-limit) never overwrites the full run's file
    name = "bigcodebench_reference_subset.json" if args.bcb_tasks or args.bcb_limit else "bigcodebench_reference.json"
    (RESULTS / name).write_text(json.dumps(out, indent=2))
    print(f"\nBigCodeBench reference solutions: {n_pass}/{len(docs)} pass = {n_pass / len(docs):.1%} (target 98%), {wall:.0f} s")
    print("| cause | tasks |\n|---|---:|")
    for c, n in causes.most_common():
        print(f"| {c} | {n} |")


# ---------------------------------------------------------------- main
def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", default=str(REPO.parent / "shared" / "data" / "mbpp" / "mbpp.jsonl"))
    ap.add_argument("--n", type=int, default=300, help="samples for pool / local modes (MBPP test split order)")
    ap.add_argument("--n-fresh", type=int, default=60, help="samples for the fresh-container mode (the first n)")
    ap.add_argument("--workers", type=int, default=os.cpu_count() or 2)
    ap.add_argument("--timeout", type=float, default=30.0)
    ap.add_argument("--bigcodebench", action="store_true", help="measure the BigCodeBench reference pass rate instead")
    ap.add_argument("--bcb-data", default=str(REPO.parent / "shared" / "data" / "bigcodebench" / "BigCodeBench-v0.1.0_hf.jsonl.gz"))
    ap.add_argument("--bcb-limit", type=int, default=0)
    ap.add_argument("--bcb-tasks", nargs="+", default=None,
                    help="only these task ids ('failed': the failures of the last full run); writes *_subset.json")
    ap.add_argument("--bcb-timeout", type=float, default=120.0)
    args = ap.parse_args()
    faulthandler.enable()
    if args.bigcodebench:
        return bigcodebench(args)

    docs = [json.loads(x) for x in Path(args.data).read_text().splitlines()]
    # skip task 123: its reference alone takes seconds (amicable numbers), it would dominate every mode
    docs = [d for d in docs if d["task_id"] != 123]
    docs = (docs[10:] + docs[:10])[: args.n]  # test split first (ids 11..)
    v = get_verifier("code_exec", suite="mbpp", sandbox="local")  # only used to build the programs
    programs = [v.build_program(d, d["code"]) for d in docs]
    v.close()
    limits = Limits(timeout=args.timeout)
    rows = []

    def record(mode: str, n: int, wall: float, passed: int, extra: dict | None = None):
        rows.append({"mode": mode, "samples": n, "wall_s": round(wall, 3), "samples_per_s": round(n / wall, 2), "passed": passed, **(extra or {})})
        print(f"  {mode:16s} {n:5d} samples {wall:8.2f} s  {n / wall:8.2f}/s  passed {passed}/{n}", flush=True)

    # local, lm-eval code_eval style
    t = time.perf_counter()
    ok = run_local_code_eval(programs, args.workers, args.timeout)
    record("local_code_eval", len(programs), time.perf_counter() - t, sum(ok))

    # warm pool
    t = time.perf_counter()
    pool = DockerSandbox(DEFAULT_IMAGE, limits=limits, pool_size=args.workers)
    start = time.perf_counter() - t
    t = time.perf_counter()
    res = pool.run_many([Job(code=p) for p in programs])
    record("pool", len(programs), time.perf_counter() - t, sum(r.ok for r in res), {"pool_start_s": round(start, 3), "pool_size": args.workers})
    pool.close()

    # our runner on the host, no container
    with LocalSandbox(limits=limits, use_bwrap=False) as loc:
        t = time.perf_counter()
        res = [loc.run_job(Job(code=p)) for p in programs]
        record("local_runner", len(programs), time.perf_counter() - t, sum(r.ok for r in res), {"note": "1 worker (LocalSandbox is serial)"})

    # fresh container per sample (same workers, via threads)
    fresh = DockerSandbox(DEFAULT_IMAGE, limits=limits, pool_size=0)
    sub = programs[: args.n_fresh]
    t = time.perf_counter()
    with ThreadPoolExecutor(max_workers=args.workers) as ex:
        res = list(ex.map(lambda p: fresh.run_job(Job(code=p)), sub))
    record("fresh", len(sub), time.perf_counter() - t, sum(r.ok for r in res))
    fresh.close()

    by = {r["mode"]: r for r in rows}
    ratio_pool_local = by["pool"]["samples_per_s"] / by["local_code_eval"]["samples_per_s"]
    ratio_fresh_local = by["fresh"]["samples_per_s"] / by["local_code_eval"]["samples_per_s"]
    out = {
        "benchmark": "bench_sandbox",
        "data": "MBPP reference solutions (mbpp.jsonl, task 123 excluded), test split order",
        "workers": args.workers,
        "host": {"cpus": os.cpu_count(), "platform": platform.platform(), "loadavg_at_end": os.getloadavg()},
        "image": DEFAULT_IMAGE,
        "rows": rows,
        "ratio_pool_over_local_code_eval": round(ratio_pool_local, 3),
        "ratio_fresh_over_local_code_eval": round(ratio_fresh_local, 3),
        "target_pool_over_local": 0.8,
        "target_met": ratio_pool_local >= 0.8,
    }
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "bench_sandbox.json").write_text(json.dumps(out, indent=2))
    print()
    print(f"| mode | samples | wall s | samples/s | passed |")
    print(f"|---|---:|---:|---:|---:|")
    for r in rows:
        print(f"| {r['mode']} | {r['samples']} | {r['wall_s']} | {r['samples_per_s']} | {r['passed']} |")
    print(f"\nwarm pool / local code_eval = {ratio_pool_local:.2f}x (target >= 0.8); fresh / local = {ratio_fresh_local:.2f}x")


if __name__ == "__main__":
    main()
