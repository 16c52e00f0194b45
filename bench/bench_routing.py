"""Cascade routers over several calibration/test splits: APGR (with 95% intervals), CC's calibrator
choice against fixed calibrators, and the time each step takes.

    python bench/bench_routing.py [--small RUN --large RUN] [--seeds 0 1 2 3 4] [--mf]

Pairs: the two runs given; else every pair of runs over the same task under
``runs/*/*/records.jsonl`` (the roles come from the data); and always issue #17's synthetic pair
(:func:`calib_harness.routing.synthetic.weak_strong_runs`: a weak 0.30 model whose confidences
temperature scaling collapses, and a strong 0.72 one).  MF needs prompt embeddings and is only run
with ``--mf``.  Writes ``bench/results/routing.json`` and prints a table per pair.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

ROUTERS = ["CC", "UC", "threshold", "random", "oracle"]
FIXED = ["temperature", "binwise", "none"]


def _pairs(args):
    from calib_harness.lm_eval_io import load_run
    from calib_harness.records import align
    from calib_harness.routing.synthetic import weak_strong_runs

    out = []
    if args.small and args.large:
        a, b = align(load_run(args.small), load_run(args.large), on_mismatch="intersect")
        out.append((f"{a.model} / {b.model}", a, b))
    else:
        runs = [load_run(p) for p in sorted(REPO.glob("runs/*/*/records.jsonl"))]
        for i, a in enumerate(runs):
            for b in runs[i + 1 :]:
                if set(a.tasks) == set(b.tasks) and a.model != b.model:
                    a2, b2 = align(a, b, on_mismatch="intersect")
                    out.append((f"{a2.model} / {b2.model} ({', '.join(a2.tasks)[:40]})", a2, b2))
    s, l = weak_strong_runs(3000, seed=0)
    out.append(("synthetic #17: weak 0.30 / strong 0.72 (3,000 docs)", s, l))
    return out


def main() -> int:
    from calib_harness.outputs import write_json
    from calib_harness.routing.compare import compare_routers

    ap = argparse.ArgumentParser()
    ap.add_argument("--small")
    ap.add_argument("--large")
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4])
    ap.add_argument("--bins", type=int, default=15)
    ap.add_argument("--n-boot", type=int, default=1000)
    ap.add_argument("--mf", action="store_true", help="include RouteLLM MF (embeds the prompts)")
    ap.add_argument("--output", default=str(REPO / "bench" / "results" / "routing.json"))
    args = ap.parse_args()
    routers = ROUTERS + (["MF"] if args.mf else [])
    results = []
    for label, a, b in _pairs(args):
        per_seed = []
        for seed in args.seeds:
            t = time.perf_counter()
            comp = compare_routers(a, b, routers=routers, n_bins=args.bins, bins_sweep=(), seed=seed, progress=False,
                                   n_boot=args.n_boot, embedding_cache=REPO / "bench" / "out" / "embeddings")
            total = time.perf_counter() - t
            fixed = {}
            for m in FIXED:
                c = compare_routers(a, b, routers=["CC"], n_bins=args.bins, bins_sweep=(), seed=seed, method=m,
                                    progress=False, n_boot=0)
                fixed[m] = c.apgr["CC"]
            per_seed.append({
                "seed": seed,
                "small": comp.small_model,
                "large": comp.large_model,
                "p_small": comp.p_small,
                "p_large": comp.p_large,
                "apgr": comp.apgr,
                "apgr_ci95": comp.apgr_ci,
                "cc_calibrator": comp.calibration["CC"]["calibrator"],
                "cc_fixed_calibrator_apgr": fixed,
                "seconds_compare": total,
                "n_cal": comp.n_cal,
                "n_test": comp.n_test,
            })
        names = list(per_seed[0]["apgr"]) + [f"CC[{m}]" for m in FIXED]

        def vals(n):
            if n.startswith("CC["):
                return np.array([d["cc_fixed_calibrator_apgr"][n[3:-1]] for d in per_seed])
            return np.array([d["apgr"][n] for d in per_seed])

        first = per_seed[0]
        print(f"\n## {label}: small {first['small']} ({first['p_small']:.3f}), large {first['large']} ({first['p_large']:.3f}); "
              f"{first['n_cal']} cal / {first['n_test']} test docs, {len(args.seeds)} splits")
        print("| router | APGR mean | sd over splits | 95% CI (split 0) |\n|---|---|---|---|")
        summary = {}
        for n in names:
            v = vals(n)
            ci = first["apgr_ci95"].get(n)
            ci_s = f"[{ci[0]:.3f}, {ci[1]:.3f}]" if ci else "-"
            sd = float(v.std(ddof=1)) if v.size > 1 else 0.0
            print(f"| {n} | {v.mean():.4f} | {sd:.4f} | {ci_s} |")
            summary[n] = {"mean": float(v.mean()), "sd": sd}
        chosen = [d["cc_calibrator"] for d in per_seed]
        secs = np.array([d["seconds_compare"] for d in per_seed])
        print(f"CC calibrator chosen per split: {', '.join(chosen)}; compare_routers: {secs.mean():.1f} s per split "
              f"({args.n_boot} bootstrap resamples)")
        results.append({"pair": label, "summary": summary, "per_seed": per_seed, "seconds_mean": float(secs.mean())})
    path = write_json(args.output, {"bins": args.bins, "seeds": args.seeds, "n_boot": args.n_boot, "pairs": results})
    print(f"\nwrote {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
