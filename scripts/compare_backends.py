"""Compare two runs of the same documents made on different backends or devices (CPU vs GPU, hf vs vLLM).

Per document: the same prediction? For multiple choice, how far apart are the option scores; for
generation, is the output text the same, and how far apart are the token figures (mean / summed
log-prob, mean raw logit, mean entropy, n tokens) on the documents whose text is the same.  Prints one
JSON object and writes it with ``-o/--output``.

    python scripts/compare_backends.py runs/mmlu_redux_v2/smollm2-135m gpu_check/mmlu_redux/smollm2-135m -o cmp.json
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from calib_harness.lm_eval_io import load_run  # noqa: E402
from calib_harness.outputs import write_json  # noqa: E402
from calib_harness.records import align  # noqa: E402

FIGURES = ("mean_logprob", "sum_logprob", "mean_logit", "mean_entropy", "n_tokens")


def _spread(d: np.ndarray) -> dict[str, float] | None:
    d = d[np.isfinite(d)]
    return None if d.size == 0 else {"max": float(d.max()), "median": float(np.median(d))}


def compare(ref_path: str, new_path: str, *, latest: bool = False) -> dict:
    ref, new = align(load_run(ref_path, latest=latest), load_run(new_path, latest=latest), on_mismatch="intersect")
    n = len(ref)
    out: dict = {
        "reference": ref_path, "new": new_path, "docs": n,
        "dropped": {"reference": ref.meta["dropped_on_align"], "new": new.meta["dropped_on_align"]},
        "same_prediction": sum(a.prediction == b.prediction for a, b in zip(ref, new)),
        "accuracy": {"reference": float(ref.scores().mean()), "new": float(new.scores().mean())},
        "confidence_abs_diff": _spread(np.abs(ref.confidences() - new.confidences())),
    }
    mc = [(a, b) for a, b in zip(ref, new) if a.option_scores is not None and b.option_scores is not None]
    if mc:
        d = np.concatenate([np.abs(np.subtract(a.option_scores, b.option_scores)) for a, b in mc])
        out["option_score_abs_diff"] = _spread(d)
    gen = [(a, b) for a, b in zip(ref, new) if a.option_scores is None and "output" in a.extra]
    if gen:
        same = [(a, b) for a, b in gen if a.extra.get("output") == b.extra.get("output")]
        out["same_output_text"] = len(same)
        out["generation_docs"] = len(gen)
        out["figure_abs_diff_same_text"] = {
            f: _spread(np.array([abs(a.features[f] - b.features[f]) for a, b in same
                                 if f in a.features and f in b.features], dtype=float))
            for f in FIGURES
        }
    return out


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("reference", help="run folder / records file (the reference, e.g. the CPU run)")
    ap.add_argument("new", help="run folder / records file to compare with it")
    ap.add_argument("--latest", action="store_true", help="newest samples file where a folder holds several")
    ap.add_argument("-o", "--output", help="write the JSON here too")
    a = ap.parse_args(argv)
    res = compare(a.reference, a.new, latest=a.latest)
    print(json.dumps(res, indent=1))
    if a.output:
        write_json(Path(a.output), res)
    return res


if __name__ == "__main__":
    main()
