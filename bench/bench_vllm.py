"""``calib-vllm`` vs lm-eval's stock ``vllm`` on ``calib_gsm8k`` (capture overhead), hf vs vLLM throughput,
engine start time.

* Overhead: both engines start with the same settings; the arms alternate for ``--rounds`` rounds
  (stock, calib, calib, stock, ...) over the same requests (the real calib_gsm8k prompts, 8-shot),
  timing ``generate_until``.  Figure: median calib / median stock wall time; target <= 1.05x.  The
  generated texts of both arms must be identical.
* Throughput: generated tokens/s of ``calib-vllm`` and of ``calib-hf`` on the first ``--hf-docs`` of
  those requests, and log-likelihood requests/s on ``calib_arc_easy`` (``--mc-docs`` docs).
* MMLU letters (``--mmlu-docs`` calib_mmlu_astronomy questions, 0-shot): stock ``vllm`` (one
  ``prompt_logprobs`` request per option) against ``calib-vllm`` (one request per question,
  ``logprob_token_ids``), alternating; their scores must agree within 1e-4 and their greedy flags exactly.
* Cores: on the CPU build vLLM's worker is bound to every core of this process (``VLLM_CPU_OMP_THREADS_BIND``,
  unless set), as ``calib-hf``'s torch threads are; vLLM's own default would keep one for its scheduler
  (``bench_vllm_threads.py``).
* Engine start: seconds to construct each engine (``enforce_eager`` by default: on the CPU build the
  torch.compile warm-up costs minutes on a small, loaded machine; ``--compile`` measures that arm).

Writes ``bench/results/vllm.json`` and prints a table.

    python bench/bench_vllm.py --limit 8 --rounds 2 --hf-docs 1 --mc-docs 10
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import platform
import statistics
import time
from pathlib import Path


def build_requests(task: str, limit: int):
    from lm_eval.tasks import TaskManager, get_task_dict

    from calib_harness.lm_eval_cli import add_task_folder

    add_task_folder()
    t = get_task_dict([task], TaskManager())[task]
    t.build_all_requests(limit=limit, rank=0, world_size=1)
    return sorted(t.instances, key=lambda i: (i.doc_id, i.idx))


def every_core() -> str:
    """``VLLM_CPU_OMP_THREADS_BIND`` for one worker bound to every core this process may use (e.g. ``0,1``)."""
    return ",".join(map(str, sorted(os.sched_getaffinity(0))))


def _timed(fn):
    t0, c0 = time.perf_counter(), time.process_time()
    out = fn()
    return out, time.perf_counter() - t0, time.process_time() - c0


def _n_tokens(lm, texts) -> int:
    return sum(len(lm.tok_encode(str(t))) for t in texts)


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="smollm2-135m")
    ap.add_argument("--data-dir", default=os.environ.get("CALIB_HARNESS_SHARED_DATA", "/work/shared/data"))
    ap.add_argument("--limit", type=int, default=8, help="calib_gsm8k docs for the overhead arms")
    ap.add_argument("--rounds", type=int, default=2, help="alternating rounds per arm")
    ap.add_argument("--hf-docs", type=int, default=1, help="docs for the calib-hf generation throughput (slow on CPU)")
    ap.add_argument("--mc-docs", type=int, default=10, help="calib_arc_easy docs for log-likelihood throughput")
    ap.add_argument("--mmlu-docs", type=int, default=40, help="calib_mmlu_astronomy questions for the letters arm")
    ap.add_argument("--mmlu-rounds", type=int, default=1, help="alternating rounds of the letters arm (stock is slow)")
    ap.add_argument("--capture-topk", type=int, default=20, help="calib-vllm capture_topk (-1: whole vocabulary)")
    ap.add_argument("--compile", action="store_true", help="let vLLM torch.compile (default: enforce_eager)")
    ap.add_argument("--device", default="cpu", help="label for the results (cpu / gpu)")
    ap.add_argument("--out", default=str(Path(__file__).parent / "results" / "vllm.json"))
    a = ap.parse_args(argv)
    os.environ.setdefault("VLLM_CPU_KVCACHE_SPACE", "2")
    if a.device == "cpu":  # vLLM's default keeps a core per worker for its scheduler: hf would get 2 cores, vLLM 1
        os.environ.setdefault("VLLM_CPU_OMP_THREADS_BIND", every_core())

    import calib_harness.lm_models  # noqa: F401
    from calib_harness.data_sources import set_data_dir
    from calib_harness.lm_models import CalibHFLM
    from calib_harness.lm_models.vllm_entry import CalibVLLM
    from calib_harness.models import resolve_model
    from calib_harness.outputs import write_json
    from lm_eval.models.vllm_causallms import VLLM

    set_data_dir(a.data_dir)
    path = resolve_model(a.model)
    engine = dict(pretrained=path, dtype="float32", max_model_len=2048, seed=1234, enforce_eager=not a.compile)
    gen = build_requests("calib_gsm8k", a.limit)
    mc = build_requests("calib_arc_easy", a.mc_docs)
    mmlu = build_requests("calib_mmlu_astronomy", a.mmlu_docs)

    stock, t_stock_start, _ = _timed(lambda: VLLM(**engine))
    calib, t_calib_start, _ = _timed(lambda: CalibVLLM(capture_topk=a.capture_topk, **engine))

    # warm-up (first batch pays one-off costs), then alternating rounds
    stock.generate_until(gen[:1], disable_tqdm=True)
    calib.generate_until(gen[:1], disable_tqdm=True)
    walls: dict[str, list[float]] = {"stock": [], "calib": []}
    cpus: dict[str, list[float]] = {"stock": [], "calib": []}  # this process: lm-eval + vLLM's output processing + capture
    texts: dict[str, list[str]] = {}
    order = []
    for r in range(a.rounds):
        order += ["stock", "calib"] if r % 2 == 0 else ["calib", "stock"]
    for arm in order:
        lm = stock if arm == "stock" else calib
        out, wall, cpu = _timed(lambda: lm.generate_until(gen, disable_tqdm=True))
        walls[arm].append(wall)
        cpus[arm].append(cpu)
        texts[arm] = [str(t) for t in out]
    if texts["stock"] != texts["calib"]:
        raise SystemExit("bench_vllm: calib-vllm and stock vllm generated different texts")
    gen_tokens = _n_tokens(calib, texts["calib"])
    ratio = statistics.median(walls["calib"]) / statistics.median(walls["stock"])

    letters: dict[str, list[float]] = {"stock": [], "calib": []}
    scores = {}
    for arm in order[: 2 * a.mmlu_rounds]:
        lm = stock if arm == "stock" else calib
        scores[arm], wall, _ = _timed(lambda: lm.loglikelihood(mmlu, disable_tqdm=True))
        letters[arm].append(wall)
    diff = max(abs(x[0] - y[0]) for x, y in zip(scores["stock"], scores["calib"]))
    if diff > 1e-4 or [x[1] for x in scores["stock"]] != [y[1] for y in scores["calib"]]:
        raise SystemExit(f"bench_vllm: MMLU letter scores differ between stock and calib-vllm (max {diff:.2e})")
    letters_speedup = statistics.median(letters["stock"]) / statistics.median(letters["calib"])

    _, t_mc_vllm, _ = _timed(lambda: calib.loglikelihood(mc, disable_tqdm=True))
    hf_gen = gen[: a.hf_docs]
    _, t_gen_vllm_small, _ = _timed(lambda: calib.generate_until(hf_gen, disable_tqdm=True))
    for lm in (stock, calib):
        core = getattr(lm.model.llm_engine, "engine_core", None)
        if core is not None and hasattr(core, "shutdown"):
            core.shutdown()
    del stock, calib
    gc.collect()

    hf, t_hf_start, _ = _timed(lambda: CalibHFLM(pretrained=path, dtype="float32", batch_size=8, device="cuda" if a.device == "gpu" else "cpu"))
    _, t_mc_hf, _ = _timed(lambda: hf.loglikelihood(mc, disable_tqdm=True))
    hf_out, t_gen_hf, _ = _timed(lambda: hf.generate_until(hf_gen, disable_tqdm=True))
    hf_tokens = _n_tokens(hf, hf_out)

    res = {
        "what": "calib-vllm vs stock vllm on calib_gsm8k (alternating arms); hf vs vLLM throughput; engine start",
        "model": a.model, "device": a.device, "machine": platform.processor() or platform.machine(),
        "cores": os.cpu_count(), "load_avg_1m": os.getloadavg()[0], "engine": {k: v for k, v in engine.items() if k != "pretrained"},
        "vllm_cpu_threads_bind": os.environ.get("VLLM_CPU_OMP_THREADS_BIND"), "capture_topk": a.capture_topk, "gsm8k_docs": a.limit, "rounds": a.rounds,
        "overhead": {"stock_wall_s": walls["stock"], "calib_wall_s": walls["calib"], "ratio_median_wall": ratio,
                     "ratio_min_wall": min(walls["calib"]) / min(walls["stock"]),
                     "frontend_cpu_s": cpus, "frontend_cpu_extra_ms_per_token":
                         1000 * (statistics.median(cpus["calib"]) - statistics.median(cpus["stock"])) / max(gen_tokens, 1),
                     "target": 1.05, "ok": ratio <= 1.05, "generated_tokens": gen_tokens,
                     "texts_identical": True},
        "throughput": {
            "vllm_gen_tokens_per_s": gen_tokens / statistics.median(walls["calib"]),
            "hf_docs": a.hf_docs, "hf_gen_tokens": hf_tokens, "hf_gen_s": t_gen_hf,
            "hf_gen_tokens_per_s": hf_tokens / t_gen_hf if t_gen_hf else None,
            "vllm_gen_s_same_docs": t_gen_vllm_small,
            "mc_requests": len(mc), "vllm_mc_s": t_mc_vllm, "hf_mc_s": t_mc_hf,
            "vllm_mc_requests_per_s": len(mc) / t_mc_vllm, "hf_mc_requests_per_s": len(mc) / t_mc_hf,
        },
        "mmlu_letters": {"questions": a.mmlu_docs, "requests": len(mmlu), "stock_wall_s": letters["stock"],
                         "calib_wall_s": letters["calib"], "speedup_median": letters_speedup,
                         "max_abs_score_diff": diff, "greedy_identical": True},
        "start_s": {"vllm_stock": t_stock_start, "vllm_calib": t_calib_start, "hf": t_hf_start,
                    "mode": "torch.compile" if a.compile else "enforce_eager"},
    }
    write_json(a.out, res)
    th = res["throughput"]
    rows = [
        ("capture overhead (calib / stock wall, median)", f"{ratio:.3f}x (target <= 1.05; min-wall ratio "
         f"{res['overhead']['ratio_min_wall']:.3f}x; walls {[round(w, 1) for w in walls['calib']]} vs {[round(w, 1) for w in walls['stock']]} s)"),
        ("capture CPU in this process", f"{res['overhead']['frontend_cpu_extra_ms_per_token']:+.2f} ms per generated token"),
        ("vLLM generation", f"{th['vllm_gen_tokens_per_s']:.1f} tokens/s ({gen_tokens} tokens, {a.limit} docs)"),
        ("hf generation", f"{th['hf_gen_tokens_per_s']:.1f} tokens/s ({hf_tokens} tokens, {a.hf_docs} docs; vLLM same docs {t_gen_vllm_small:.1f} s vs {t_gen_hf:.1f} s)"),
        ("MMLU letters, one request per question", f"{letters_speedup:.2f}x faster than stock vllm "
         f"({len(mmlu)} requests; {statistics.median(letters['calib']):.1f} s vs {statistics.median(letters['stock']):.1f} s; "
         f"scores within {diff:.1e})"),
        ("log-likelihood requests/s", f"vLLM {th['vllm_mc_requests_per_s']:.2f}, hf {th['hf_mc_requests_per_s']:.2f} ({len(mc)} requests)"),
        ("engine start", f"stock {t_stock_start:.1f} s, calib {t_calib_start:.1f} s ({res['start_s']['mode']}); hf {t_hf_start:.1f} s"),
    ]
    w = max(len(r[0]) for r in rows)
    print(f"bench_vllm ({a.model}, {a.device}, load {res['load_avg_1m']:.1f})")
    for k, v in rows:
        print(f"  {k:<{w}}  {v}")
    print(f"wrote {a.out}")
    return res


if __name__ == "__main__":
    main()
