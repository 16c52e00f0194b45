"""vLLM CPU build: the engine's default OpenMP binding against binding the worker to every core.

On x86 the CPU build reserves one core per worker for the scheduler process
(``vllm/utils/ompmultiprocessing.py``: "at least reserve 1/local_world_size core for scheduler proc").
On a 2-core machine that leaves the model one core (its log: ``core ids=[0]``, ``reserved_cpus=[1]``).
``VLLM_CPU_OMP_THREADS_BIND=<every core this process may use>`` gives the worker all of them and reserves none.

Arms, each a fresh process running ``bench_vllm_compile``'s eager workload (engine start, then
``--mc-docs`` calib_mmlu_astronomy questions and ``--gen-docs`` calib_gsm8k answers, timed after one
warm-up request), alternating ``auto, all, all, auto, ...`` for ``--rounds`` rounds:

* ``auto`` -- vLLM's default binding (``VLLM_CPU_OMP_THREADS_BIND`` unset);
* ``all``  -- ``VLLM_CPU_OMP_THREADS_BIND`` = this process's CPU affinity (``0,1`` on a 2-core machine).

Figure: median ``auto`` / median ``all`` time per workload part (> 1: binding every core is faster).
The cores each arm's worker was bound to are read back from vLLM's log.

Writes ``bench/results/vllm_threads.json`` and prints a table.

    python bench/bench_vllm_threads.py --model qwen2.5-coder-1.5b --mc-docs 16 --gen-docs 2   (bench/results/vllm_threads.json)
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from bench_vllm import every_core  # noqa: E402
from bench_vllm_compile import _run_arm, add_workload_args  # noqa: E402


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_workload_args(ap)
    ap.add_argument("--rounds", type=int, default=2, help="alternating rounds (each runs both arms once)")
    ap.add_argument("--out", default=str(Path(__file__).parent / "results" / "vllm_threads.json"))
    a = ap.parse_args(argv)
    os.environ.setdefault("VLLM_CPU_KVCACHE_SPACE", "1")
    from calib_harness.outputs import write_json

    n = len(os.sched_getaffinity(0))
    binds = {"auto": {}, "all": {"VLLM_CPU_OMP_THREADS_BIND": every_core()}}
    order = []
    for r in range(a.rounds):
        order += ["auto", "all"] if r % 2 == 0 else ["all", "auto"]
    runs: dict[str, list[dict]] = {"auto": [], "all": []}
    os.environ.pop("VLLM_CPU_OMP_THREADS_BIND", None)  # the auto arm must not inherit a binding from this shell
    with tempfile.TemporaryDirectory(prefix="vllm_cache_") as cache_root:
        for i, arm in enumerate(order):
            r = _run_arm("eager", a, cache_root, **binds[arm])
            del r["log"]  # compile-cache lines: not what this bench is about
            runs[arm].append(r)
            print(f"  [{i + 1}/{len(order)}] {arm}: start {r['start_s']:.1f} s, MMLU {r['mc_s']:.1f} s, "
                  f"GSM8K {r['gen_s']:.1f} s, bound {r['cores_bound']}, reserved {r['cores_reserved']}", flush=True)
    med = {arm: {k: statistics.median(x[k] for x in rs) for k in ("start_s", "mc_s", "gen_s")} for arm, rs in runs.items()}
    res = {
        "what": "vLLM CPU build: default OpenMP binding (auto, one core reserved per worker) vs every core bound",
        "model": a.model, "machine": platform.processor() or platform.machine(), "cores": n,
        "load_avg_1m": os.getloadavg()[0], "mc_docs": a.mc_docs, "gen_docs": a.gen_docs, "rounds": a.rounds,
        "order": order, "bind_env": binds, "runs": runs, "median": med,
        "auto_over_all": {k: med["auto"][k] / med["all"][k] for k in ("start_s", "mc_s", "gen_s")},
    }
    write_json(a.out, res)
    print(f"bench_vllm_threads ({a.model}, {n} cores, load {res['load_avg_1m']:.1f}; workload = {a.mc_docs} MMLU "
          f"questions + {a.gen_docs} GSM8K answers; medians of {a.rounds})")
    print(f"  {'arm':<6}{'cores bound':>14}{'start s':>9}{'MMLU s':>9}{'GSM8K s':>9}")
    for arm in ("auto", "all"):
        m = med[arm]
        print(f"  {arm:<6}{str(runs[arm][0]['cores_bound']):>14}{m['start_s']:>9.1f}{m['mc_s']:>9.1f}{m['gen_s']:>9.1f}")
    q = res["auto_over_all"]
    print(f"  auto / all: MMLU {q['mc_s']:.2f}x, GSM8K {q['gen_s']:.2f}x (> 1: binding every core is faster)")
    print(f"wrote {a.out}")
    return res


if __name__ == "__main__":
    main()
