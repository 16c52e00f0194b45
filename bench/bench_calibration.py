"""Time calibration + metrics on synthetic samples and show how the time grows with n.

    python bench/bench_calibration.py                    # n = 10k, 100k, 1M
    python bench/bench_calibration.py --sizes 100000 --repeat 3 --records 100000 --json out.json

Synthetic data: 4-option questions, true logits z ~ N(0, 1.5^2), the gold option drawn from
softmax(z), and the "model" reports 2.5 z (overconfident), so every method has work to do.
For each n the calibration half (n/2) is fitted and the whole set transformed; "metrics" is
``metrics.summary`` (ECE both binnings, Brier, NLL, AUROC, s_o) before and after on both
halves; "+ 95% intervals" adds the Wilson accuracy interval and the ECE's bootstrap interval
(200 resamples), i.e. what ``evaluate_split`` computes.  ``--records`` also times the record-level
``evaluate_split`` (SampleRecord objects, Python overhead included) at those sizes.

Target (issue 5): calibrate + metrics on 100k samples under 2 s on this machine.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from calib_harness import metrics  # noqa: E402
from calib_harness.calibration import (  # noqa: E402
    HistogramBinning,
    IsotonicCalibration,
    PlattScaling,
    TemperatureScaling,
    evaluate_split,
    split_indices,
)
from calib_harness.records import Run, SampleRecord, softmax  # noqa: E402


def synthetic(n: int, k: int = 4, seed: int = 0):
    rng = np.random.default_rng(seed)
    z = rng.normal(scale=1.5, size=(n, k))
    p = softmax(z)
    gold = (rng.random(n)[:, None] > np.cumsum(p, axis=1)).sum(axis=1)
    logits = 2.5 * z
    probs = softmax(logits)
    pred = probs.argmax(axis=1)
    conf = probs.max(axis=1)
    score = (pred == gold).astype(np.float64)
    return logits, gold, conf, score


def timed(fn, repeat: int):
    best, out = float("inf"), None
    for _ in range(repeat):
        t = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - t)
    return best, out


def bench_size(n: int, repeat: int) -> dict:
    logits, gold, conf, score = synthetic(n)
    cal, test = split_indices(n, 0.5, seed=0)
    row: dict = {"n": n}

    def fit_predict(method):
        if method == "temperature":
            c = TemperatureScaling().fit(logits[cal], gold[cal])
            return c.predict_proba(logits).max(axis=1)
        cls = {"platt": lambda: PlattScaling(logit_input=True), "histogram": HistogramBinning, "isotonic": IsotonicCalibration}[method]
        return cls().fit(conf[cal], score[cal]).predict(conf)

    def all_metrics(after, intervals=False):
        return [metrics.summary(c[idx], score[idx], intervals=intervals) for idx in (cal, test) for c in (conf, after)]

    total_fit = 0.0
    after_t = None
    for method in ("temperature", "platt", "histogram", "isotonic"):
        t, after = timed(lambda: fit_predict(method), repeat)
        row[f"fit+apply {method}"] = t
        total_fit += t
        if method == "temperature":
            after_t = after
    t, _ = timed(lambda: all_metrics(after_t), repeat)
    row["metrics (4x summary)"] = t
    t_ci, _ = timed(lambda: all_metrics(after_t, intervals=True), repeat)
    row["metrics + 95% intervals (4x)"] = t_ci
    # the single-method pipeline the CLI runs: temperature fit/apply + 4 summaries with intervals
    row["calibrate+metrics (temperature)"] = row["fit+apply temperature"] + t
    row["calibrate+metrics+intervals"] = row["fit+apply temperature"] + t_ci
    # one summary broken down
    c, s = conf[test], score[test]
    for name, fn in [
        ("  ece equal_count", lambda: metrics.ece(c, s)),
        ("  ece equal_width", lambda: metrics.ece(c, s, binning="equal_width")),
        ("  brier+nll", lambda: (metrics.brier(c, s), metrics.nll(c, s))),
        ("  auroc", lambda: metrics.auroc(c, s == 1)),
        ("  s_o", lambda: metrics.overlap_so(c, s == 1)),
        ("  bin_table", lambda: metrics.bin_table(c, s)),
        ("  ece interval (200 boot)", lambda: metrics.ece_interval(c, s)),
    ]:
        row[name + f" (n/2)"] = timed(fn, repeat)[0]
    return row


def bench_records(n: int) -> dict:
    logits, gold, conf, score = synthetic(n, seed=1)
    labels = ("A", "B", "C", "D")
    t = time.perf_counter()
    recs = [
        SampleRecord("synthetic", str(i), "synthetic", labels[int(np.argmax(logits[i]))], float(conf[i]), float(score[i]),
                     labels[int(gold[i])], labels, tuple(logits[i].tolist()), "logits")
        for i in range(n)
    ]
    run = Run("synthetic", recs)
    build = time.perf_counter() - t
    t = time.perf_counter()
    evaluate_split(run, "temperature")
    ev_t = time.perf_counter() - t
    t = time.perf_counter()
    evaluate_split(run, "platt", "confidence")
    ev_p = time.perf_counter() - t
    return {"n": n, "build records": build, "evaluate_split temperature": ev_t, "evaluate_split platt": ev_p}


def print_table(rows: list[dict], title: str) -> None:
    keys = [k for k in rows[0] if k != "n"]
    width = max(len(k) for k in keys) + 2
    print(f"\n{title}")
    print("".ljust(width) + "".join(f"{r['n']:>12,d}" for r in rows) + ("   growth/10x" if len(rows) > 1 else ""))
    for k in keys:
        vals = [r[k] for r in rows]
        growth = ""
        if len(rows) > 1:
            ratios = [b / a for a, b in zip(vals, vals[1:]) if a > 0]
            growth = "   " + " ".join(f"x{r:5.1f}" for r in ratios)
        print(k.ljust(width) + "".join(f"{v:11.3f}s" for v in vals) + growth)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000, 1_000_000])
    ap.add_argument("--records", type=int, nargs="*", default=[10_000, 100_000], help="record-level sizes ('' to skip)")
    ap.add_argument("--repeat", type=int, default=2, help="best of N")
    ap.add_argument("--json", type=Path, default=Path(__file__).resolve().parent / "results" / "calibration.json")
    args = ap.parse_args(argv)

    rows = [bench_size(n, args.repeat) for n in args.sizes]
    print_table(rows, "array level (seconds, best of %d)" % args.repeat)
    rec_rows = [bench_records(n) for n in args.records]
    if rec_rows:
        print_table(rec_rows, "record level (seconds, one run)")
    target = next((r for r in rows if r["n"] == 100_000), None)
    if target:
        t = target["calibrate+metrics (temperature)"]
        print(f"\n100k calibrate+metrics (temperature): {t:.3f}s -> target < 2 s: {'met' if t < 2 else 'MISSED'}")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps({"array": rows, "records": rec_rows}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
