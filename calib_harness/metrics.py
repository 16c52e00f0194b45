"""Calibration metrics as plain numpy functions (confidence in [0, 1], score in [0, 1]).

Binning follows section 2.1 of Hao et al. (2026): ``"equal_count"`` sorts the samples by
confidence and splits them evenly into ``n_bins`` bins (histogram equalisation, the
paper's choice and our default) with :class:`calib_harness.binning.EqualCountBinner`
(tie-aware: equal confidences never straddle a bin edge, so fewer bins may result);
``"equal_width"`` cuts [0, 1] into ``n_bins`` equal intervals (right-open, the last one
closed, as ``np.histogram``).

* :func:`ece` -- sum_i |B_i|/n |mean conf_i - mean score_i|
* :func:`brier`, :func:`nll` (binary, soft scores allowed), :func:`nll_multiclass`
* :func:`auroc` -- confidence as a detector of correct answers (GATEKEEPER appendix C.3)
* :func:`overlap_so` -- GATEKEEPER's distributional overlap s_o (section 4.1, eq. 9)
* :func:`bin_table` -- the per-bin rows behind ECE and the reliability diagram
* :func:`summary` -- all of the above as one dict, with 95% intervals of accuracy and ECE

Intervals (shared by calibration, routing and cleaning):

* :func:`wilson_interval` -- Wilson score interval of a proportion ``k / n``
* :func:`bootstrap_ci` / :func:`bootstrap_replicates` -- seeded percentile bootstrap of any
  statistic of paired arrays
* :func:`ece_interval`, :func:`ece_stderr` -- bootstrap interval / standard error of the ECE

:func:`collapse_warning` says when a calibrator has collapsed a model's confidences (too few
distinct values left to rank samples by).
"""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass

import numpy as np

from calib_harness.binning import EqualCountBinner

logger = logging.getLogger(__name__)

BINNINGS = ("equal_count", "equal_width")
_EPS = float(np.finfo(np.float64).eps)  # what sklearn.metrics.log_loss clips at


def _check(confidence, score) -> tuple[np.ndarray, np.ndarray]:
    c = np.asarray(confidence, dtype=np.float64).ravel()
    s = np.asarray(score, dtype=np.float64).ravel()
    if c.shape != s.shape:
        raise ValueError(f"confidence and score differ in length: {c.shape[0]} vs {s.shape[0]}")
    if c.size == 0:
        raise ValueError("no samples")
    if np.isnan(c).any() or np.isnan(s).any():
        raise ValueError("confidence or score contains NaN")
    if c.min() < 0 or c.max() > 1 + 1e-9:
        raise ValueError(f"confidence must lie in [0, 1], got range [{c.min()}, {c.max()}]")
    if s.min() < 0 or s.max() > 1:
        raise ValueError(f"score must lie in [0, 1], got range [{s.min()}, {s.max()}]")
    return c, s


def _check_binary(correct, n: int) -> np.ndarray:
    y = np.asarray(correct).ravel()
    if y.shape[0] != n:
        raise ValueError(f"confidence and correct differ in length: {n} vs {y.shape[0]}")
    if y.dtype != bool:
        yf = y.astype(np.float64)
        if np.isnan(yf).any() or not np.isin(yf, (0.0, 1.0)).all():
            raise ValueError(
                "correct must be binary (bool or 0/1); binarise continuous verifier scores first, "
                "e.g. correct = score >= 0.5"
            )
        y = yf == 1.0
    return y


def equal_count_bins(confidence, n_bins: int = 15) -> np.ndarray:
    """Bin index per sample under :class:`calib_harness.binning.EqualCountBinner` fitted on the same values.

    Tie-aware: equal confidences share a bin, so fewer than ``n_bins`` bins may come back.
    """
    return EqualCountBinner(n_bins).fit_transform(confidence)


def equal_width_bins(confidence, n_bins: int = 15) -> np.ndarray:
    """Bin index per sample for ``n_bins`` equal intervals of [0, 1] (``np.histogram`` edges)."""
    c = np.asarray(confidence, dtype=np.float64).ravel()
    if int(n_bins) < 1:
        raise ValueError(f"n_bins must be >= 1, got {n_bins}")
    edges = np.linspace(0.0, 1.0, int(n_bins) + 1)
    return np.clip(np.searchsorted(edges, c, side="right") - 1, 0, int(n_bins) - 1)


def assign_bins(confidence, n_bins: int = 15, binning: str = "equal_count") -> np.ndarray:
    """Bin index per sample under ``binning`` (``"equal_count"`` or ``"equal_width"``)."""
    if binning == "equal_count":
        return equal_count_bins(confidence, n_bins)
    if binning == "equal_width":
        return equal_width_bins(confidence, n_bins)
    raise ValueError(f"binning must be one of {BINNINGS}, got {binning!r}")


def _bin_sums(c, s, n_bins, binning):
    bins = assign_bins(c, n_bins, binning)
    k = int(n_bins) if binning == "equal_width" else int(bins.max()) + 1
    counts = np.bincount(bins, minlength=k)
    conf_sum = np.bincount(bins, weights=c, minlength=k)
    score_sum = np.bincount(bins, weights=s, minlength=k)
    return bins, counts, conf_sum, score_sum


def ece(confidence, score, n_bins: int = 15, binning: str = "equal_count") -> float:
    """Expected calibration error: sum_i |B_i|/n * |mean conf_i - mean score_i|.

    ``binning="equal_count"`` (the paper's histogram equalisation, default) or ``"equal_width"``.
    """
    c, s = _check(confidence, score)
    _, counts, conf_sum, score_sum = _bin_sums(c, s, n_bins, binning)
    nz = counts > 0
    return float(np.sum(np.abs(conf_sum[nz] - score_sum[nz])) / c.size)


def brier(confidence, score) -> float:
    """Top-label Brier score: mean (confidence - score)^2."""
    c, s = _check(confidence, score)
    return float(np.mean((c - s) ** 2))


def nll(confidence, score, eps: float = _EPS) -> float:
    """Binary negative log-likelihood of the scores under the confidences (natural log).

    ``-mean(s log c + (1 - s) log(1 - c))`` with ``c`` clipped to ``[eps, 1 - eps]``;
    continuous scores act as soft labels.
    """
    c, s = _check(confidence, score)
    c = np.clip(c, eps, 1.0 - eps)
    return float(-np.mean(s * np.log(c) + (1.0 - s) * np.log1p(-c)))


def nll_multiclass(probs, labels, eps: float = _EPS) -> float:
    """Multiclass NLL: ``-mean log probs[i, labels[i]]`` (probabilities clipped at ``eps``)."""
    p = np.asarray(probs, dtype=np.float64)
    y = np.asarray(labels).ravel()
    if p.ndim != 2:
        raise ValueError(f"probs must be a (n, k) matrix, got shape {p.shape}")
    if p.shape[0] != y.shape[0]:
        raise ValueError(f"probs and labels differ in length: {p.shape[0]} vs {y.shape[0]}")
    if p.shape[0] == 0:
        raise ValueError("no samples")
    if not np.issubdtype(y.dtype, np.integer):
        raise ValueError(f"labels must be integer class indices, got dtype {y.dtype}")
    if y.min() < 0 or y.max() >= p.shape[1]:
        raise ValueError(f"labels must lie in [0, {p.shape[1] - 1}], got range [{y.min()}, {y.max()}]")
    if np.isnan(p).any() or p.min() < 0 or p.max() > 1 + 1e-9:
        raise ValueError("probs must be probabilities in [0, 1] without NaN")
    picked = p[np.arange(p.shape[0]), y]
    return float(-np.mean(np.log(np.clip(picked, eps, 1.0))))


def auroc(confidence, correct) -> float:
    """AUROC of confidence for telling correct (positive) from incorrect answers.

    The Mann-Whitney form of GATEKEEPER's eq. 12 with ties counted as one half, which is
    what ``sklearn.metrics.roc_auc_score(correct, confidence)`` returns.
    """
    from scipy.stats import rankdata

    c = np.asarray(confidence, dtype=np.float64).ravel()
    if c.size == 0:
        raise ValueError("no samples")
    if np.isnan(c).any():
        raise ValueError("confidence contains NaN")
    y = _check_binary(correct, c.size)
    n_pos = int(y.sum())
    n_neg = y.size - n_pos
    if n_pos == 0 or n_neg == 0:
        raise ValueError(
            f"AUROC needs both correct and incorrect samples, got {n_pos} correct and {n_neg} incorrect"
        )
    ranks = rankdata(c)  # average ranks for ties
    return float((ranks[y].sum() - n_pos * (n_pos + 1) / 2.0) / (n_pos * n_neg))


# -- GATEKEEPER distributional overlap ------------------------------------------------------


def _scott_bandwidth(x: np.ndarray) -> float:
    """scipy.stats.gaussian_kde's default bandwidth: Scott's factor n^(-1/5) times the sample std."""
    std = float(np.std(x, ddof=1)) if x.size > 1 else 0.0
    return std * x.size ** (-1.0 / 5.0)


def _kde_on_grid(x: np.ndarray, h: float, grid: np.ndarray, exact_limit: int) -> np.ndarray:
    """Gaussian KDE of ``x`` with bandwidth ``h`` evaluated on the uniform ``grid``.

    Exact sum of kernels for small inputs; for large ones the samples are first spread
    linearly onto a fine uniform mesh (linear binning, error O((mesh/h)^2)) and the mesh
    weights convolved with the kernel, so 1M samples cost milliseconds.
    """
    norm = 1.0 / (x.size * h * np.sqrt(2.0 * np.pi))
    if x.size * grid.size <= exact_limit:
        out = np.zeros(grid.size)
        step = max(1, exact_limit // max(grid.size, 1))
        for i in range(0, x.size, step):
            z = (grid[:, None] - x[None, i : i + step]) / h
            out += np.exp(-0.5 * z * z).sum(axis=1)
        return out * norm
    from scipy.signal import fftconvolve

    lo, hi = grid[0], grid[-1]
    # mesh fine enough relative to h, covering the samples and the grid
    m = int(min(1 << 18, max(grid.size, np.ceil(20.0 * (hi - lo) / h) + 1)))
    mesh = np.linspace(lo, hi, m)
    d = mesh[1] - mesh[0]
    pos = (np.clip(x, lo, hi) - lo) / d
    left = np.clip(np.floor(pos).astype(np.int64), 0, m - 2)
    frac = pos - left
    w = np.bincount(left, weights=1.0 - frac, minlength=m) + np.bincount(left + 1, weights=frac, minlength=m)
    half = int(np.ceil(6.0 * h / d))
    half = min(half, 2 * m)
    t = np.arange(-half, half + 1) * d / h
    dens_mesh = fftconvolve(w, np.exp(-0.5 * t * t), mode="full")[half : half + m]
    return np.interp(grid, mesh, np.clip(dens_mesh, 0.0, None)) * norm


def overlap_so(
    confidence,
    correct,
    bandwidth: float | str = "scott",
    grid_size: int = 2001,
    exact_limit: int = 500_000,
) -> float:
    """GATEKEEPER's distributional overlap s_o (Rabanser et al. 2025, section 4.1, eq. 9).

    Gaussian KDEs are fitted to the confidences of correctly (p_corr) and incorrectly
    (p_incorr) answered samples and::

        s_o = integral_0^1 min(p_corr(c), p_incorr(c)) dc

    0 means perfectly separated, 1 complete overlap (lower is better).  The integral runs
    over [0, 1] exactly as in the paper, so kernel mass a KDE puts outside [0, 1] does not
    count: two identical distributions piled up near 1.0 give less than 1.

    Args:
        confidence: (n,) confidences.
        correct: (n,) bool / 0-1 correctness.
        bandwidth: ``"scott"`` (scipy ``gaussian_kde``'s default, per group), ``"silverman"``,
            or a positive float used for both groups (in confidence units).
        grid_size: points of the trapezoid rule on [0, 1].
        exact_limit: above ``n * grid_size`` kernel evaluations the KDE is computed by linear
            binning + convolution (agrees with the exact sum to ~1e-6).
    """
    c = np.asarray(confidence, dtype=np.float64).ravel()
    if c.size == 0:
        raise ValueError("no samples")
    if np.isnan(c).any():
        raise ValueError("confidence contains NaN")
    if c.min() < 0 or c.max() > 1 + 1e-9:
        raise ValueError(f"confidence must lie in [0, 1] (s_o integrates over [0, 1]), got range [{c.min()}, {c.max()}]")
    y = _check_binary(correct, c.size)
    groups = {"correct": c[y], "incorrect": c[~y]}
    for name, g in groups.items():
        if g.size < 2:
            raise ValueError(
                f"overlap_so needs at least 2 {name} samples for a KDE, got {g.size} "
                f"({int(y.sum())} correct, {int((~y).sum())} incorrect)"
            )
    if grid_size < 3:
        raise ValueError(f"grid_size must be >= 3, got {grid_size}")
    grid = np.linspace(0.0, 1.0, int(grid_size))
    dens = []
    for name, g in groups.items():
        if isinstance(bandwidth, str):
            if bandwidth == "scott":
                h = _scott_bandwidth(g)
            elif bandwidth == "silverman":
                h = _scott_bandwidth(g) * (3.0 / 4.0) ** (-1.0 / 5.0)
            else:
                raise ValueError(f"bandwidth must be 'scott', 'silverman' or a positive float, got {bandwidth!r}")
        else:
            h = float(bandwidth)
            if not h > 0:
                raise ValueError(f"bandwidth must be positive, got {bandwidth!r}")
        if h <= 0:
            raise ValueError(
                f"the {name} confidences are all equal ({g[0]!r}): a KDE needs spread; pass a float bandwidth"
            )
        dens.append(_kde_on_grid(g, h, grid, exact_limit))
    return float(np.trapezoid(np.minimum(dens[0], dens[1]), grid))


# -- per-bin tables -------------------------------------------------------------------------


@dataclass(frozen=True)
class BinRow:
    """One bin of a reliability table.

    ``lo`` / ``hi``: the bin's edges for equal-width bins, its smallest and largest
    confidence for equal-count bins.  ``mean_conf`` / ``mean_score`` are NaN (and ``gap``
    0) for empty equal-width bins.  ``gap = mean_conf - mean_score`` (> 0: overconfident).
    ``score_lo`` / ``score_hi``: the 95% Wilson interval of the bin's accuracy (NaN when empty).
    """

    index: int
    lo: float
    hi: float
    count: int
    mean_conf: float
    mean_score: float
    gap: float
    score_lo: float = float("nan")
    score_hi: float = float("nan")

    def to_dict(self) -> dict:
        return asdict(self)


def bin_table(confidence, score, n_bins: int = 15, binning: str = "equal_count") -> list[BinRow]:
    """Per-bin counts, mean confidence, mean score (accuracy) and gap, in confidence order.

    ``ece(...) == sum(r.count * abs(r.gap) for r in rows) / n``.
    """
    c, s = _check(confidence, score)
    bins, counts, conf_sum, score_sum = _bin_sums(c, s, n_bins, binning)
    k = counts.size
    if binning == "equal_width":
        edges = np.linspace(0.0, 1.0, k + 1)
        lo, hi = edges[:-1], edges[1:]
    else:
        lo = np.full(k, np.inf)
        hi = np.full(k, -np.inf)
        np.minimum.at(lo, bins, c)
        np.maximum.at(hi, bins, c)
    rows = []
    for i in range(k):
        n_i = int(counts[i])
        mc = conf_sum[i] / n_i if n_i else float("nan")
        ms = score_sum[i] / n_i if n_i else float("nan")
        w_lo, w_hi = wilson_interval(score_sum[i], n_i) if n_i else (float("nan"), float("nan"))
        rows.append(
            BinRow(i, float(lo[i]), float(hi[i]), n_i, float(mc), float(ms), float(mc - ms) if n_i else 0.0, w_lo, w_hi)
        )
    return rows


def summary(
    confidence, score, n_bins: int = 15, intervals: bool = True, n_boot: int = 200, seed: int = 0
) -> dict[str, float]:
    """The usual figures for one (confidence, score) set, as a flat dict.

    ``auroc`` and ``s_o`` use ``correct = score >= 0.5`` and are NaN when one side is
    (nearly) empty.  With ``intervals`` the dict also holds 95% intervals:
    ``accuracy_lo`` / ``accuracy_hi`` (Wilson) and ``ece_lo`` / ``ece_hi``
    (:func:`ece_interval`: ECE +- 1.96 bootstrap standard errors, ``n_boot`` seeded
    resamples with the bins refitted on each).
    """
    c, s = _check(confidence, score)
    out = {
        "n": float(c.size),
        "accuracy": float(s.mean()),
        "mean_confidence": float(c.mean()),
        "ece": ece(c, s, n_bins, "equal_count"),
        "ece_equal_width": ece(c, s, n_bins, "equal_width"),
        "brier": brier(c, s),
        "nll": nll(c, s),
    }
    correct = s >= 0.5
    try:
        out["auroc"] = auroc(c, correct)
    except ValueError:
        out["auroc"] = float("nan")
    try:
        out["s_o"] = overlap_so(c, correct)
    except ValueError:
        out["s_o"] = float("nan")
    if intervals:
        out["accuracy_lo"], out["accuracy_hi"] = wilson_interval(float(s.sum()), c.size)
        out["ece_lo"], out["ece_hi"] = ece_interval(c, s, n_bins, n_boot=n_boot, seed=seed)
    return out


# -- intervals ------------------------------------------------------------------------------


def wilson_interval(k, n, alpha: float = 0.05) -> tuple[float, float]:
    """Wilson score interval of the proportion ``k / n`` at level ``1 - alpha``.

    ``k`` may be fractional (a sum of soft scores).  Well behaved at ``k = 0`` and ``k = n``
    (unlike the normal approximation); ``(nan, nan)`` when ``n == 0``.
    """
    from scipy.stats import norm

    n = float(n)
    k = float(k)
    if n <= 0:
        return float("nan"), float("nan")
    if not 0.0 <= k <= n:
        raise ValueError(f"k must lie in [0, n], got k={k}, n={n}")
    z = float(norm.ppf(1.0 - alpha / 2.0))
    p = k / n
    denom = 1.0 + z * z / n
    centre = (p + z * z / (2.0 * n)) / denom
    half = z * np.sqrt(p * (1.0 - p) / n + z * z / (4.0 * n * n)) / denom
    lo = 0.0 if k == 0 else max(0.0, centre - half)  # exact ends: rounding would leave 1 - 1e-16
    hi = 1.0 if k == n else min(1.0, centre + half)
    return float(lo), float(hi)


def _draw(rng: np.random.Generator, n: int) -> np.ndarray:
    """``n`` row indices drawn with replacement (int32 when it fits: half the memory traffic)."""
    return rng.integers(0, n, n, dtype=np.int32 if n < 2**31 - 1 else np.int64)


def bootstrap_replicates(stat_fn, *arrays, n_boot: int = 1000, seed: int = 0) -> np.ndarray:
    """``stat_fn`` on ``n_boot`` seeded resamples (with replacement) of the paired ``arrays``.

    Each resample takes the same rows of every array.  Its row indices come out sorted, so
    arrays pre-sorted by confidence stay sorted (binning a sorted array is cheap).  Resamples
    on which ``stat_fn`` raises ``ValueError`` (e.g. AUROC with one class) or returns a
    non-finite value are dropped, so fewer than ``n_boot`` values may come back.
    """
    if not arrays:
        raise ValueError("bootstrap needs at least one array")
    arrs = [np.asarray(a) for a in arrays]
    n = arrs[0].shape[0]
    if any(a.shape[0] != n for a in arrs):
        raise ValueError(f"arrays differ in length: {[a.shape[0] for a in arrs]}")
    if n == 0:
        raise ValueError("no samples")
    rng = np.random.default_rng(seed)
    base = np.arange(n)
    out = []
    for _ in range(int(n_boot)):
        idx = np.repeat(base, np.bincount(_draw(rng, n), minlength=n))
        try:
            v = float(stat_fn(*(a[idx] for a in arrs)))
        except ValueError:
            continue
        if np.isfinite(v):
            out.append(v)
    return np.asarray(out, dtype=np.float64)


def bootstrap_ci(
    stat_fn,
    *arrays,
    n_boot: int = 1000,
    seed: int = 0,
    alpha: float = 0.05,
    method: str = "percentile",
    bounds: tuple[float, float] | None = None,
) -> tuple[float, float]:
    """Seeded bootstrap ``1 - alpha`` interval of ``stat_fn(*arrays)``.

    ``stat_fn`` takes the arrays (resampled together, row-wise) and returns a float; see
    :func:`bootstrap_replicates`.  ``method="percentile"`` gives the replicates' quantiles;
    ``"normal"`` gives ``stat +- z * se`` with the replicates' standard deviation as ``se``,
    centred on the estimate (use it for biased statistics such as the ECE, whose percentile
    interval can miss the estimate).  ``bounds`` clips the interval (e.g. ``(0, 1)``).
    ``(nan, nan)`` when there are fewer than 2 rows or fewer than half of the resamples give
    a finite value.  Reusable for any figure (APGR, cleaning precision, ...)::

        lo, hi = bootstrap_ci(lambda c, s: ece(c, s), conf, score, seed=0)
    """
    if method not in ("percentile", "normal"):
        raise ValueError(f"method must be 'percentile' or 'normal', got {method!r}")
    n = np.asarray(arrays[0]).shape[0] if arrays else 0
    if n < 2:
        return float("nan"), float("nan")
    reps = bootstrap_replicates(stat_fn, *arrays, n_boot=n_boot, seed=seed)
    if reps.size < max(2, int(n_boot) // 2):
        return float("nan"), float("nan")
    if method == "percentile":
        lo, hi = np.quantile(reps, [alpha / 2.0, 1.0 - alpha / 2.0])
    else:
        from scipy.stats import norm

        est = float(stat_fn(*(np.asarray(a) for a in arrays)))
        half = float(norm.ppf(1.0 - alpha / 2.0)) * float(np.std(reps, ddof=1))
        lo, hi = est - half, est + half
    if bounds is not None:
        lo, hi = max(bounds[0], lo), min(bounds[1], hi)
    return float(lo), float(hi)


def _sorted_pairs(confidence, score) -> tuple[np.ndarray, np.ndarray]:
    c, s = _check(confidence, score)
    order = np.argsort(c, kind="stable")
    return c[order], s[order]


def _ece_replicates(c: np.ndarray, s: np.ndarray, n_bins: int, n_boot: int, seed: int) -> np.ndarray:
    """Equal-count ECE of ``n_boot`` seeded resamples of the confidence-sorted pairs, bins refitted on each.

    The same resamples as :func:`bootstrap_replicates` (same draws), computed from the
    multiplicity of each distinct confidence instead of materialising the resample: the
    tie-aware bins of a resample depend only on those counts.  O(n) per resample, with a
    small constant (about 50x faster than refitting on 1M materialised samples).
    """
    from calib_harness.binning import snap_cuts

    n = c.size
    uniq_start = np.r_[0, np.flatnonzero(np.diff(c) > 0) + 1]  # first index of each distinct value
    group = np.repeat(np.arange(uniq_start.size), np.diff(np.r_[uniq_start, n]))
    c_u = c[uniq_start]
    rng = np.random.default_rng(seed)
    out = np.empty(int(n_boot))
    distinct = c_u.size == n
    for b in range(int(n_boot)):
        w = np.bincount(_draw(rng, n), minlength=n).astype(np.float64)
        if distinct:  # every value its own group
            g, gs = w, w * s
        else:
            g = np.bincount(group, weights=w, minlength=c_u.size)  # resample count of each distinct value
            gs = np.bincount(group, weights=w * s, minlength=c_u.size)  # and its score sum
        keep = g > 0
        g, gs, cu = g[keep], gs[keep], c_u[keep]
        ends = np.cumsum(g).astype(np.int64)  # resample rank after each present value
        cuts = snap_cuts(n, n_bins, ends[:-1])  # a cut may fall only between distinct values
        bins = np.searchsorted(cuts, ends - g.astype(np.int64), side="right")
        conf_sum = np.bincount(bins, weights=g * cu)
        score_sum = np.bincount(bins, weights=gs)
        out[b] = np.abs(conf_sum - score_sum).sum() / n
    return out


def ece_interval(
    confidence,
    score,
    n_bins: int = 15,
    binning: str = "equal_count",
    n_boot: int = 200,
    seed: int = 0,
    alpha: float = 0.05,
) -> tuple[float, float]:
    """``1 - alpha`` interval of :func:`ece`: ``ece +- z * se``, clipped to [0, 1].

    ``se`` is the bootstrap standard error (:func:`ece_stderr`: ``n_boot`` seeded resamples,
    bins refitted on each).  The interval is centred on the estimate because the ECE is
    biased upward and its resamples more so: a percentile interval can lie wholly above
    the estimate.  ``(nan, nan)`` below 2 samples.
    """
    from scipy.stats import norm

    c, s = _sorted_pairs(confidence, score)
    se = ece_stderr(c, s, n_bins, binning, n_boot, seed)
    if not np.isfinite(se):
        return float("nan"), float("nan")
    est = ece(c, s, n_bins, binning)
    half = float(norm.ppf(1.0 - alpha / 2.0)) * se
    return float(max(0.0, est - half)), float(min(1.0, est + half))


def ece_stderr(
    confidence, score, n_bins: int = 15, binning: str = "equal_count", n_boot: int = 200, seed: int = 0
) -> float:
    """Bootstrap standard error of :func:`ece` (sample std of the resampled ECEs; NaN below 2 samples)."""
    c, s = _sorted_pairs(confidence, score)
    if c.size < 2:
        return float("nan")
    if binning == "equal_count":
        reps = _ece_replicates(c, s, n_bins, n_boot, seed)
    else:
        reps = bootstrap_replicates(lambda a, b: ece(a, b, n_bins, binning), c, s, n_boot=n_boot, seed=seed)
    return float(np.std(reps, ddof=1)) if reps.size > 1 else float("nan")


# -- degenerate calibrations ---------------------------------------------------------------


def collapse_warning(before, after, min_distinct: int = 3, min_spread_ratio: float = 0.05, log: bool = True) -> str | None:
    """A one-line warning when a calibrator collapsed the confidences, else ``None``.

    Collapsed means the calibrated confidences (``after``) keep fewer than ``min_distinct``
    distinct values, or a spread (standard deviation) below
    ``min_spread_ratio`` times that of the raw ones (``before``), while the raw ones did
    not.  Such confidences can no longer rank samples: routing, cleaning and AUROC built on
    them degrade to chance or to ties.  The warning is also logged (unless ``log=False``: a caller
    that reports it elsewhere, e.g. CC's cross-fitted candidates in their selection table).
    """
    b = np.asarray(before, dtype=np.float64).ravel()
    a = np.asarray(after, dtype=np.float64).ravel()
    if a.size == 0 or b.size == 0:
        return None
    nb, na = int(np.unique(b).size), int(np.unique(a).size)
    sb, sa = float(np.std(b)), float(np.std(a))
    few = na < min_distinct <= nb
    flat = sb > 0 and sa < min_spread_ratio * sb
    if not (few or flat):
        return None
    msg = (
        f"the calibrator collapsed the confidences: {na} distinct value(s) left (from {nb}), "
        f"spread {sa:.3g} (from {sb:.3g}); they can no longer rank samples "
        "(fit on more calibration data with both correct and wrong answers, or use a smoother method)"
    )
    if log:
        logger.warning(msg)
    return msg
