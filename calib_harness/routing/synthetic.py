"""Synthetic model pairs with a known failure mode, for tests, benches and worked examples.

:func:`weak_strong_runs` is issue #17's pair: a weak small model (4 options, accuracy about 0.30)
whose accuracy rises with its confidence (about 0.1 to 0.8 across its confidence bins) but whose
wrong answers put almost no probability on the gold option, and a strong large model (about
0.72).  Temperature scaling fits one temperature to the weak model's option scores; the
near-zero gold probabilities of its wrong answers drive that temperature up until every
confidence is about 0.25, so CC with temperature scaling loses its signal and falls below random
routing.  Records are built with :meth:`calib_harness.records.SampleRecord.from_option_scores`.
"""

from __future__ import annotations

import math

import numpy as np

from calib_harness.records import Run, SampleRecord

__all__ = ["weak_strong_runs"]


def weak_strong_runs(n: int = 3000, seed: int = 0):
    """Issue #17's synthetic pair ``(weak, strong)`` over ``n`` questions (module docstring)."""
    rng = np.random.default_rng(seed)
    small, large = [], []
    opts = tuple("ABCD")
    for i in range(n):
        c = float(rng.beta(1.0, 2.5) * 0.7 + 0.27)
        right = rng.random() < 0.08 + 0.8 * (c - 0.27) / 0.7
        pred = int(rng.integers(4))
        gold = pred if right else int((pred + 1 + rng.integers(3)) % 4)
        scores = [math.log((1 - c) / 3)] * 4
        scores[pred] = math.log(c)
        if not right:
            scores[gold] = math.log(1e-9)
        small.append(SampleRecord.from_option_scores(scores, opts, gold, task="synth", doc_id=i, model="weak",
                                                     option_token_mode="single_token", prompt=f"q{i}"))
        cl = float(rng.uniform(0.45, 1.0))
        right_l = rng.random() < min(0.72 + 0.9 * (cl - 0.725), 1.0)
        pl = int(rng.integers(4))
        gl = pl if right_l else int((pl + 1 + rng.integers(3)) % 4)
        ls = [math.log((1 - cl) / 3)] * 4
        ls[pl] = math.log(cl)
        large.append(SampleRecord.from_option_scores(ls, opts, gl, task="synth", doc_id=i, model="strong",
                                                     option_token_mode="single_token", prompt=f"q{i}"))
    return Run("weak", small), Run("strong", large)
