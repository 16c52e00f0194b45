"""Does the --max-drop guarantee hold on real runs?  Learn-then-Test against the naive choice.

    python bench/bench_risk.py                                   # shipped MNIST pair, 200 splits
    python bench/bench_risk.py --pair runs/a runs/b               # plus a pair of LM runs
    python bench/bench_risk.py --splits 500 --eps 0.005 0.01 0.02 --delta 0.1

For each random split of the pooled data into a calibration half and a test half:

1. the calibration half is split again: **fit** part (calibrators of both models, the 15 bins
   and the advantage order of Algorithm 1) and **LTT** part (``--ltt-fraction``, default 0.5);
2. the operating points are K = 0 (everything to the large model) .. N (everything kept);
3. **LTT**: :func:`calib_harness.risk.ltt_select` on the LTT part (loss = 1 where the large
   model is right and the answer kept is wrong, exact binomial p-values, fixed-sequence testing)
   picks the largest K certified to lose <= eps against the large model with probability
   >= 1 - delta (none certified: K = 0);
4. **naive** (same router, same LTT part): the largest K whose *empirical* accuracy drop there
   is <= eps (the point estimate, no guarantee);
5. **naive, in-sample** (what a user does by looking at curves): router fitted on the whole
   calibration half, the largest K whose empirical drop on that same half is <= eps;
6. on the test half: the realised accuracy drop against the large model at each chosen K
   (violation = drop > eps) and the share kept on the small model.

Reported per eps and method: violation rate over splits (95% Wilson interval), mean share kept,
how often LTT certified a point.  The test half is finite, so even a point whose true drop is
exactly eps "violates" on about half of the splits; a violation rate <= delta therefore needs the
true risk below eps, which is what LTT's guarantee says.

Data: the shipped MNIST pair (``calib_harness/data/mnist_pair``: timm resnet10t, width 4 vs 32,
trained here on MNIST train; their real logits on the 10k validation + 10k test images, pooled:
20,000 images), calibrated with temperature scaling (the paper's vision default).  ``--pair``
adds two aligned runs (records.jsonl / lm-eval folders), calibrated with the paper's default
for their records (temperature on option scores, Platt on mean_logit for generation).

Writes ``bench/results/risk.json`` and the figure ``docs/figures/risk_validation.png``.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from calib_harness.metrics import wilson_interval  # noqa: E402
from calib_harness.risk import InsufficientSamplesError, ltt_select, naive_select, two_model_losses  # noqa: E402
from calib_harness.routing.advantage import AdvantageRouter  # noqa: E402

METHODS = ("LTT", "naive", "naive in-sample")


class MnistPair:
    """The shipped pair's logits (val + test pooled), temperature-scaled per fit."""

    def __init__(self):
        from calib_harness.vision.mnist_pair import load_pair_logits

        z = load_pair_logits()
        self.logits = {r: np.concatenate([z[f"{r}_val"], z[f"{r}_test"]]) for r in ("small", "large")}
        self.labels = np.concatenate([z["val_labels"], z["test_labels"]])
        self.scores = {r: (self.logits[r].argmax(1) == self.labels).astype(np.float64) for r in ("small", "large")}
        self.n = self.labels.size
        self.name = "MNIST resnet10t w4 -> w32 (20,000 images)"

    def confidences(self, fit: np.ndarray, apply: list[np.ndarray]) -> list[tuple[np.ndarray, np.ndarray]]:
        from calib_harness.calibration import TemperatureScaling

        ts = {r: TemperatureScaling().fit(self.logits[r][fit], self.labels[fit]) for r in ("small", "large")}
        return [tuple(ts[r].predict_proba(self.logits[r][idx]).max(1) for r in ("small", "large")) for idx in apply]


class RunPair:
    """Two aligned runs, calibrated with the paper's default for their records."""

    def __init__(self, small: str, large: str, name: str | None = None):
        from calib_harness.lm_eval_io import load_run
        from calib_harness.records import align

        self.runs = align(load_run(small), load_run(large), on_mismatch="intersect")
        self.scores = {"small": self.runs[0].scores(), "large": self.runs[1].scores()}
        self.n = len(self.runs[0])
        self.name = name or f"{self.runs[0].model} -> {self.runs[1].model} ({self.n} docs)"

    def confidences(self, fit, apply):
        from calib_harness.calibration import default_method_and_feature, fit_run_calibrator

        cals = []
        for r in self.runs:
            sub = r.subset(fit)
            m, f = default_method_and_feature(sub)
            cals.append(fit_run_calibrator(sub, method=m, feature=f))
        return [tuple(c.confidence(r.subset(idx)) for c, r in zip(cals, self.runs)) for idx in apply]


def one_split(pair, seed: int, eps_list, delta: float, n_bins: int, ltt_fraction: float) -> dict:
    rng = np.random.default_rng(seed)
    perm = rng.permutation(pair.n)
    half = pair.n // 2
    cal, test = perm[:half], perm[half:]
    k_ltt = int(round(cal.size * ltt_fraction))
    ltt, fit = cal[:k_ltt], cal[k_ltt:]
    ys, yl = pair.scores["small"], pair.scores["large"]
    (cs_fit, cl_fit), (cs_ltt, _), (cs_test, _) = pair.confidences(fit, [fit, ltt, test])
    router = AdvantageRouter(n_bins).fit(cs_fit, cl_fit)
    ks = range(router.n_bins_ + 1)
    loss_ltt = two_model_losses([router.keep_small(cs_ltt, k) for k in ks], ys[ltt], yl[ltt])
    drop_ltt = [yl[ltt] - np.where(router.keep_small(cs_ltt, k), ys[ltt], yl[ltt]) for k in ks]
    keep_test = [router.keep_small(cs_test, k) for k in ks]
    # naive in-sample: router and choice on the whole calibration half
    (cs_cal, cl_cal), (cs_test2, _) = pair.confidences(cal, [cal, test])
    r_all = AdvantageRouter(n_bins).fit(cs_cal, cl_cal)
    ks_all = range(r_all.n_bins_ + 1)
    drop_cal = [float(np.mean(yl[cal] - np.where(r_all.keep_small(cs_cal, k), ys[cal], yl[cal]))) for k in ks_all]
    keep_test2 = [r_all.keep_small(cs_test2, k) for k in ks_all]

    def test_figs(keep):
        routed = np.where(keep, ys[test], yl[test])
        return float(np.mean(yl[test] - routed)), float(np.mean(keep))

    out = {}
    for eps in eps_list:
        try:
            sel = ltt_select(loss_ltt, eps, delta)
            k_l = sel.index if sel.index is not None else 0
            found = sel.index is not None
        except InsufficientSamplesError:
            k_l, found = 0, False
        # naive: same router, same LTT part, the largest K whose empirical accuracy drop is <= eps
        k_n = naive_select(drop_ltt, eps) or 0
        ok = [k for k, d in zip(ks_all, drop_cal) if d <= eps]
        k_i = ok[-1] if ok else 0
        row = {}
        for name, keep in (("LTT", keep_test[k_l]), ("naive", keep_test[k_n]), ("naive in-sample", keep_test2[k_i])):
            drop, share = test_figs(keep)
            row[name] = {"drop": drop, "share_small": share, "violated": drop > eps}
        row["LTT"]["found"] = found and k_l > 0  # certified a point that keeps something on the small model
        row["LTT"]["k"], row["naive"]["k"], row["naive in-sample"]["k"] = int(k_l), int(k_n), int(k_i)
        out[str(eps)] = row
    return out


def summarise(rows: list[dict], eps_list, delta: float) -> dict:
    summ = {}
    for eps in eps_list:
        e = str(eps)
        summ[e] = {}
        for m in METHODS:
            v = np.array([r[e][m]["violated"] for r in rows])
            lo, hi = wilson_interval(int(v.sum()), v.size)
            sh = np.array([r[e][m]["share_small"] for r in rows])
            dr = np.array([r[e][m]["drop"] for r in rows])
            summ[e][m] = {
                "violation_rate": float(v.mean()),
                "violation_ci95": [lo, hi],
                "mean_share_small": float(sh.mean()),
                "sd_share_small": float(sh.std(ddof=1)) if sh.size > 1 else 0.0,
                "mean_test_drop": float(dr.mean()),
            }
        summ[e]["LTT"]["certified_rate"] = float(np.mean([r[e]["LTT"]["found"] for r in rows]))
    return summ


def plot(results: dict, delta: float, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    pairs = list(results)
    fig, axes = plt.subplots(2, len(pairs), figsize=(5.2 * len(pairs), 7.2), squeeze=False)
    colors = {"LTT": "tab:red", "naive": "tab:blue", "naive in-sample": "tab:grey"}
    for j, name in enumerate(pairs):
        summ = results[name]["summary"]
        eps = [float(e) for e in summ]
        x = np.arange(len(eps))
        for i, m in enumerate(METHODS):
            off = (i - 1) * 0.22
            rate = np.array([summ[str(e)][m]["violation_rate"] for e in eps])
            ci = np.array([summ[str(e)][m]["violation_ci95"] for e in eps])
            axes[0, j].errorbar(x + off, rate, yerr=[rate - ci[:, 0], ci[:, 1] - rate], fmt="o", c=colors[m], capsize=3, label=m)
            sh = [summ[str(e)][m]["mean_share_small"] for e in eps]
            sd = [summ[str(e)][m]["sd_share_small"] for e in eps]
            axes[1, j].errorbar(x + off, sh, yerr=sd, fmt="s", c=colors[m], capsize=3, label=m)
        axes[0, j].axhline(delta, c="k", ls="--", lw=1, label=f"delta = {delta:g}")
        axes[0, j].set_ylabel("share of splits with test drop > eps")
        axes[0, j].set_title(f"{name}\n{results[name]['splits']} random splits", fontsize=9)
        axes[1, j].set_ylabel("share kept on the small model (test; +- sd)")
        for ax in axes[:, j]:
            ax.set_xticks(x, [f"eps={e:g}" for e in eps])
            ax.legend(fontsize=7)
        axes[0, j].set_ylim(-0.02, 1.02)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--splits", type=int, default=200, help="random calibration/test splits (default 200)")
    ap.add_argument("--eps", type=float, nargs="+", default=[0.005, 0.01, 0.02], help="allowed accuracy drops")
    ap.add_argument("--delta", type=float, default=0.1, help="allowed failure probability (default 0.1)")
    ap.add_argument("--bins", type=int, default=15, help="equal-count bins of Algorithm 1 (default 15)")
    ap.add_argument("--ltt-fraction", type=float, default=0.5, help="share of the calibration half used for testing")
    ap.add_argument("--pair", nargs=2, action="append", default=[], metavar=("SMALL", "LARGE"), help="add a pair of runs")
    ap.add_argument("--pair-eps", type=float, nargs="+", default=None, help="eps values for --pair runs (default: --eps)")
    ap.add_argument("--no-mnist", action="store_true", help="skip the shipped MNIST pair")
    ap.add_argument("--json", default=str(ROOT / "bench" / "results" / "risk.json"), help="results file")
    ap.add_argument("--plot", default=str(ROOT / "docs" / "figures" / "risk_validation.png"), help="figure")
    args = ap.parse_args(argv)

    pairs = [] if args.no_mnist else [(MnistPair(), args.eps)]
    pairs += [(RunPair(s, l), args.pair_eps or args.eps) for s, l in args.pair]
    results = {}
    for pair, eps_list in pairs:
        t = time.perf_counter()
        rows = [one_split(pair, seed, eps_list, args.delta, args.bins, args.ltt_fraction) for seed in range(args.splits)]
        summ = summarise(rows, eps_list, args.delta)
        results[pair.name] = {
            "splits": args.splits, "n": pair.n, "delta": args.delta, "bins": args.bins, "ltt_fraction": args.ltt_fraction,
            "acc_small": float(pair.scores["small"].mean()), "acc_large": float(pair.scores["large"].mean()),
            "summary": summ, "seconds": time.perf_counter() - t,
        }
        print(f"\n{pair.name}: small {results[pair.name]['acc_small']:.4f}, large {results[pair.name]['acc_large']:.4f}, "
              f"{args.splits} splits, delta {args.delta:g} ({results[pair.name]['seconds']:.0f} s)")
        print(f"{'eps':>7} {'method':>16} {'violations':>22} {'share kept':>12} {'test drop':>10} {'certified':>10}")
        for e, d in summ.items():
            for m in METHODS:
                s = d[m]
                ci = s["violation_ci95"]
                cert = f"{s['certified_rate']:.2f}" if m == "LTT" else ""
                print(f"{e:>7} {m:>16} {s['violation_rate']:>8.3f} [{ci[0]:.3f}, {ci[1]:.3f}] {s['mean_share_small']:>12.3f} "
                      f"{s['mean_test_drop']:>10.4f} {cert:>10}")
    Path(args.json).parent.mkdir(parents=True, exist_ok=True)
    Path(args.json).write_text(json.dumps(results, indent=1))
    plot(results, args.delta, Path(args.plot))
    print(f"\nwrote {args.json} and {args.plot}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
