"""Does ``clean --min-precision P --delta D`` keep its promise?  Learn-then-Test against the naive choice.

    python bench/bench_clean_risk.py                       # 200 splits, P = 0.9 0.95 0.98, delta = 0.1
    python bench/bench_clean_risk.py --splits 500 --min-precision 0.95 --noise 0.05

Data: the shipped MNIST pair (timm resnet10t, width 4 and 32; their real logits on the 10k validation +
10k test images, pooled: 20,000 images) as the two experts.  ``--noise`` (default 3%) of the given labels
are flipped at random to another class; the reference knows which, so precision is exact.  The panel
(temperature scaling, 15 tie-aware bins, cross-fitted halves on the *given* labels) and method 2's flag
sets over K are computed once; for each random split the reference-labelled documents are divided into
a labelled calibration half and a held-out half (:func:`calib_harness.cleaning.risk_control.risk_controlled_flags`):

* **LTT**: the largest K certified to have precision >= P with probability >= 1 - delta (exact binomial
  p-values, Bonferroni over the K grid); none certified: nothing flagged;
* **naive**: the largest K whose *empirical* precision on the same labelled half is >= P (no guarantee).

On the held-out half: the realised precision of each choice (violation = below P), and the flags.
The held-out half is finite, so a point whose true precision is exactly P "violates" on about half of
the splits; a violation rate <= delta needs the true precision above P, which is what LTT promises.

Writes ``bench/results/clean_risk.json`` and prints a table.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from calib_harness.cleaning import build_panel, run_methods  # noqa: E402
from calib_harness.cleaning.reference import RefEntry, Reference, records_from_probs  # noqa: E402
from calib_harness.cleaning.risk_control import risk_controlled_flags  # noqa: E402
from calib_harness.metrics import wilson_interval  # noqa: E402
from calib_harness.outputs import write_json  # noqa: E402
from calib_harness.records import softmax  # noqa: E402
from calib_harness.report.tables import Table  # noqa: E402
from calib_harness.risk import naive_select, precision_losses  # noqa: E402


def noisy_mnist_panel(noise: float, seed: int, n_bins: int):
    from calib_harness.vision.mnist_pair import load_pair_logits

    z = load_pair_logits()
    logits = {r: np.concatenate([z[f"{r}_val"], z[f"{r}_test"]]) for r in ("small", "large")}
    y = np.concatenate([z["val_labels"], z["test_labels"]])
    rng = np.random.default_rng(seed)
    flip = rng.random(y.size) < noise
    given = y.copy()
    given[flip] = (y[flip] + rng.integers(1, 10, int(flip.sum()))) % 10
    runs = [records_from_probs(softmax(logits[r]), given, "mnist", f"mnist-resnet10t-{r}") for r in ("small", "large")]
    panel = build_panel(runs, n_bins=n_bins)
    out = run_methods(panel, methods=["high-confidence"], require_agreement=False)
    ref = Reference("injected-flips", {k: RefEntry("flipped" if f else "ok") for k, f in zip(runs[0].keys, flip)},
                    frozenset({"flipped"}))
    return out, ref, int(flip.sum())


def one_split(out, ref, p: float, delta: float, seed: int) -> dict:
    rc = risk_controlled_flags(out, ref, p, delta, seed=seed)
    covered, err = ref.labels_for(out.panel.keys)
    idx = np.flatnonzero(covered)
    perm = np.random.default_rng(seed).permutation(idx)  # the same split risk_controlled_flags made
    n_cal = int(round(idx.size * 0.5))
    cal, hold = np.sort(perm[:n_cal]), np.sort(perm[n_cal:])
    grid = sorted((r for r in out.results if r.method == "high-confidence"), key=lambda r: r.params["K"])
    j = naive_select(precision_losses([r.flags[cal] for r in grid], err[cal]), 1.0 - p)
    naive_flags = grid[j].flags if j is not None else np.zeros(out.panel.n, dtype=bool)

    def held(flags):
        f = flags[hold]
        nf = int(f.sum())
        prec = float((f & err[hold]).sum() / nf) if nf else float("nan")
        return {"n_flagged_all": int(flags.sum()), "holdout_flagged": nf, "holdout_precision": prec,
                "violated": bool(nf and prec < p)}

    return {"LTT": {"K": None if rc.chosen is None else int(rc.chosen.split("=")[1]), **held(rc.flags)},
            "naive": {"K": None if j is None else int(grid[j].params["K"]), **held(naive_flags)}}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--splits", type=int, default=200, help="random labelled/held-out splits (default 200)")
    ap.add_argument("--min-precision", type=float, nargs="+", default=[0.9, 0.95, 0.98], help="precision bars P")
    ap.add_argument("--delta", type=float, default=0.1, help="allowed failure probability (default 0.1)")
    ap.add_argument("--noise", type=float, default=0.03, help="share of given labels flipped (default 0.03)")
    ap.add_argument("--bins", type=int, default=15, help="equal-count bins per expert (default 15)")
    ap.add_argument("--seed", type=int, default=0, help="seed of the label noise (default 0)")
    ap.add_argument("-o", "--output", default=str(ROOT / "bench" / "results" / "clean_risk.json"),
                    help="results JSON (default bench/results/clean_risk.json)")
    args = ap.parse_args(argv)
    t0 = time.time()
    out, ref, n_flipped = noisy_mnist_panel(args.noise, args.seed, args.bins)
    t_panel = time.time() - t0
    results, rows = {}, []
    for p in args.min_precision:
        per = [one_split(out, ref, p, args.delta, s) for s in range(args.splits)]
        results[str(p)] = {}
        for m in ("LTT", "naive"):
            v = [x[m] for x in per]
            chose = [x for x in v if x["K"] is not None]
            nv = sum(x["violated"] for x in v)
            lo, hi = wilson_interval(nv, len(v))
            results[str(p)][m] = {
                "violation_rate": nv / len(v), "violation_lo": lo, "violation_hi": hi,
                "chose_a_point": len(chose) / len(v),
                "mean_flags": float(np.mean([x["n_flagged_all"] for x in v])),
                "mean_holdout_precision": float(np.nanmean([x["holdout_precision"] for x in chose])) if chose else float("nan"),
                "K_counts": {str(k): sum(x["K"] == k for x in v) for k in sorted({x["K"] for x in chose})},
            }
            r = results[str(p)][m]
            rows.append({"P": p, "method": m, "violation_rate": r["violation_rate"], "violation_rate_lo": lo,
                         "violation_rate_hi": hi, "chose a point": r["chose_a_point"], "mean flags": r["mean_flags"],
                         "held-out precision": r["mean_holdout_precision"]})
    info = {"data": "MNIST resnet10t w4 + w32 experts, 20,000 images (val + test pooled)", "noise": args.noise,
            "n_flipped": n_flipped, "delta": args.delta, "splits": args.splits, "bins": args.bins,
            "panel_seconds": round(t_panel, 1), "total_seconds": round(time.time() - t0, 1), "results": results}
    write_json(args.output, info)
    print(Table.from_dicts(f"clean --min-precision: violation rate over {args.splits} splits (delta = {args.delta}; "
                           f"{n_flipped} flipped labels of 20,000)", rows).render("text"))
    print(f"wrote {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
