"""``scripts/compare_backends.py``: the doc-by-doc comparison behind the GPU check (docs/RESULTS.md, "On a GPU"),
on a real lm-eval log and a copy of it with known changes."""

from __future__ import annotations

import dataclasses
import importlib.util
import json
from pathlib import Path

import pytest

from calib_harness.lm_eval_io import load_run
from calib_harness.records import Run, SampleRecord

ROOT = Path(__file__).resolve().parents[1]
LOG = ROOT / "tests" / "fixtures" / "records" / "lm_eval_arc_easy_smollm2"


@pytest.fixture(scope="module")
def compare_backends():
    spec = importlib.util.spec_from_file_location("compare_backends", ROOT / "scripts" / "compare_backends.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def _rescored(r: SampleRecord, scores: list[float]) -> SampleRecord:
    """The record the same model would give with these option scores (the one record constructor)."""
    gold = r.option_labels.index(r.gold) if r.gold in r.option_labels else None
    return SampleRecord.from_option_scores(scores, r.option_labels, gold, task=r.task, doc_id=r.doc_id, model="other",
                                           option_token_mode=r.option_token_mode, prompt=r.prompt)


def test_a_run_against_itself_agrees_everywhere(compare_backends):
    res = compare_backends.compare(str(LOG), str(LOG))
    n = len(load_run(LOG))
    assert res["docs"] == n > 0 and res["same_prediction"] == n
    assert res["option_score_abs_diff"] == {"max": 0.0, "median": 0.0}


def test_changed_scores_and_a_flipped_prediction_are_counted(compare_backends, tmp_path):
    ref = load_run(LOG)
    recs = list(ref.records)
    s0 = list(recs[0].option_scores)
    recs[0] = _rescored(recs[0], [x + 0.5 for x in s0])  # a shift: same softmax, same prediction
    s1 = list(recs[1].option_scores)
    order = sorted(range(len(s1)), key=lambda i: s1[i])
    gap = s1[order[-1]] - s1[order[0]]
    s1[order[0]], s1[order[-1]] = s1[order[-1]], s1[order[0]]  # best and worst option swap places
    recs[1] = _rescored(recs[1], s1)
    Run("other", [dataclasses.replace(r, model="other") for r in recs]).save(tmp_path)
    out = tmp_path / "cmp.json"
    res = compare_backends.main([str(LOG), str(tmp_path / "records.jsonl"), "-o", str(out)])
    assert res["same_prediction"] == len(recs) - 1
    assert res["option_score_abs_diff"]["max"] == pytest.approx(max(0.5, gap))
    assert res["confidence_abs_diff"]["max"] < 1e-9  # neither a shift nor a swap changes the top probability
    assert json.loads(out.read_text()) == json.loads(json.dumps(res))
