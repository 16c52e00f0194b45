"""Hybrid router (confidence + prompt) against CC, UC, threshold and MF, over random splits.

    python bench/bench_hybrid.py --synthetic                       # the three synthetic cases
    python bench/bench_hybrid.py --pair runs/a runs/b [--pair ...] # real pairs (prompts needed)
    python bench/bench_hybrid.py --pair A B --splits 10 --routers CC UC threshold MF hybrid

For every pair and every split (``split_indices(n, 0.5, seed)``, seeds 0..splits-1) each router
is fitted on the calibration half through the registry (``make_router(name).fit(cal)``) and its
APGR taken on the test half.  Reported: mean APGR with a 95% t-interval over splits, and the
paired difference of ``hybrid`` against each other router (mean and 95% t-interval), which is
what "beats" / "loses nothing measurable" is judged on.

``--synthetic`` runs the three cases of ``tests/test_hybrid.py`` (both signals informative; the
prompt empty; the confidence empty), 1,200 inputs each, one fresh draw per split.  They are
synthetic: they show the mechanism, not a real-data result.

Writes ``bench/results/hybrid.json``.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
from scipy import stats

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))

from calib_harness.routing.base import RoutingData, make_router  # noqa: E402
from calib_harness.routing.curves import apgr  # noqa: E402

SYNTH_ROUTERS = ("UC", "CC", "threshold", "MF", "hybrid")


def t_interval(x: np.ndarray) -> tuple[float, float, float]:
    x = np.asarray(x, dtype=np.float64)
    m = float(x.mean())
    if x.size < 2:
        return m, float("nan"), float("nan")
    h = float(stats.t.ppf(0.975, x.size - 1) * x.std(ddof=1) / np.sqrt(x.size))
    return m, m - h, m + h


def run_split(cal: RoutingData, test: RoutingData, routers, seed: int) -> dict[str, float]:
    out = {}
    for name in routers:
        r = make_router(name, n_bins=15, seed=seed, progress=False).fit(cal)
        out[name] = apgr(r.curve(test), test.p_small, test.p_large)
    return out


def summarise(rows: list[dict[str, float]], routers) -> dict:
    res = {}
    for name in routers:
        m, lo, hi = t_interval([r[name] for r in rows])
        res[name] = {"apgr": m, "ci95": [lo, hi]}
        if name != "hybrid" and "hybrid" in routers:
            dm, dlo, dhi = t_interval([r["hybrid"] - r[name] for r in rows])
            res[name]["hybrid_minus"] = {"mean": dm, "ci95": [dlo, dhi]}
    return res


def print_table(title: str, summ: dict) -> None:
    print(f"\n{title}")
    print(f"{'router':>10} {'APGR':>8} {'95% CI':>18} {'hybrid - router':>18} {'95% CI':>18}")
    for name, s in summ.items():
        d = s.get("hybrid_minus")
        dd = f"{d['mean']:>+18.4f} [{d['ci95'][0]:+.4f}, {d['ci95'][1]:+.4f}]" if d else ""
        print(f"{name:>10} {s['apgr']:>8.4f} [{s['ci95'][0]:.4f}, {s['ci95'][1]:.4f}] {dd}")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--pair", nargs=2, action="append", default=[], metavar=("SMALL", "LARGE"), help="a pair of runs with prompts")
    ap.add_argument("--synthetic", action="store_true", help="the three synthetic cases of tests/test_hybrid.py")
    ap.add_argument("--splits", type=int, default=10, help="random splits per pair (default 10)")
    ap.add_argument("--routers", nargs="+", default=list(SYNTH_ROUTERS), help="routers to compare")
    ap.add_argument("--embedding-cache", default=str(ROOT / "runs" / "embeddings"), help="MiniLM embedding cache")
    ap.add_argument("--json", default=str(ROOT / "bench" / "results" / "hybrid.json"), help="results file")
    args = ap.parse_args(argv)
    results = {}
    if args.synthetic:
        from test_hybrid import synth

        routers = [r for r in args.routers if r != "CC"]  # CC needs records (option scores) for its calibrators
        for case, (ci, pi) in {"both": (True, True), "prompt empty": (True, False), "confidence empty": (False, True)}.items():
            rows = []
            for seed in range(args.splits):
                d = synth(1200, 1000 + seed, ci, pi)
                rows.append(run_split(d.subset(np.arange(600)), d.subset(np.arange(600, 1200)), routers, seed))
            results[f"synthetic: {case}"] = {"splits": args.splits, "n": 1200, "summary": summarise(rows, routers)}
            print_table(f"synthetic, {case} ({args.splits} draws of 1,200)", results[f"synthetic: {case}"]["summary"])
    for small_path, large_path in args.pair:
        from calib_harness.calibration import split_indices
        from calib_harness.lm_eval_io import load_run
        from calib_harness.records import align

        small, large = align(load_run(small_path), load_run(large_path), on_mismatch="intersect")
        data = RoutingData.from_runs(small, large, embedding_cache=args.embedding_cache)
        data.embeddings()  # once, for every split
        t = time.perf_counter()
        rows = []
        for seed in range(args.splits):
            cal_idx, test_idx = split_indices(len(data), 0.5, seed)
            rows.append(run_split(data.subset(cal_idx), data.subset(test_idx), args.routers, seed))
        name = f"{small.model} -> {large.model} ({len(data)} docs)"
        results[name] = {
            "splits": args.splits, "n": len(data), "acc_small": data.p_small, "acc_large": data.p_large,
            "summary": summarise(rows, args.routers), "per_split": rows, "seconds": time.perf_counter() - t,
        }
        print_table(f"{name}: small {data.p_small:.3f}, large {data.p_large:.3f}, {args.splits} splits", results[name]["summary"])
    if not results:
        ap.error("give --synthetic and/or --pair SMALL LARGE")
    Path(args.json).parent.mkdir(parents=True, exist_ok=True)
    Path(args.json).write_text(json.dumps(results, indent=1))
    print(f"\nwrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
