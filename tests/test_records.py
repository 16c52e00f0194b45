"""Records: validation, JSON round trip, alignment of two runs (never silent misalignment)."""

import numpy as np
import pytest

from calib_harness.records import RecordError, Run, SampleRecord, align, load_records_jsonl


def rec(doc_id, model="m", task="t", conf=0.7, score=1.0, prompt=None, scores=(0.0, -1.0)):
    return SampleRecord(task=task, doc_id=str(doc_id), model=model, prediction="A", confidence=conf, score=score,
                        gold="A", option_labels=("A", "B")[: len(scores)], option_scores=scores, prompt=prompt)


def test_round_trip(tmp_path):
    run = Run("m", [rec(i, conf=0.5 + i / 10) for i in range(3)])
    path = run.save(tmp_path)
    back = load_records_jsonl(path)
    assert back.records == run.records
    assert np.allclose(back.records[0].option_probs, [1 / (1 + np.exp(-1)), 1 - 1 / (1 + np.exp(-1))])


@pytest.mark.parametrize("bad", [dict(score=1.5), dict(conf=-0.1), dict(conf=float("nan"))])
def test_invalid_values_are_rejected(bad):
    with pytest.raises(RecordError, match="must be in"):
        rec(0, **bad)


def test_duplicate_ids_are_an_error():
    with pytest.raises(RecordError, match="duplicated"):
        Run("m", [rec(1), rec(1)])


def test_align_orders_by_first_run():
    a = Run("a", [rec(i, model="a") for i in (3, 1, 2)])
    b = Run("b", [rec(i, model="b") for i in (1, 2, 3)])
    a2, b2 = align(a, b)
    assert [r.doc_id for r in b2] == ["3", "1", "2"] == [r.doc_id for r in a2]


def test_align_mismatch_is_an_error_with_details():
    a = Run("a", [rec(i, model="a") for i in (1, 2, 3)])
    b = Run("b", [rec(i, model="b") for i in (1, 2, 4)])
    with pytest.raises(RecordError, match="different documents"):
        align(a, b)
    a2, b2 = align(a, b, on_mismatch="intersect")
    assert [r.doc_id for r in a2] == ["1", "2"] and b2.meta["dropped_on_align"] == 1


def test_align_different_tasks_is_named():
    a = Run("a", [rec(1, model="a", task="calib_arc_easy")])
    b = Run("b", [rec(1, model="b", task="calib_arc_challenge")])
    with pytest.raises(RecordError, match="Tasks differ"):
        align(a, b)


def test_align_names_only_the_tasks_that_differ():
    subjects = [f"calib_mmlu_s{i:02d}" for i in range(57)]
    a = Run("a", [rec(1, model="a", task=t) for t in subjects])
    b = Run("b", [rec(1, model="b", task=t) for t in subjects[:-1]])
    with pytest.raises(RecordError) as e:
        align(a, b)
    msg = str(e.value)
    assert "Tasks differ: 'a' also has calib_mmlu_s56 (56 tasks in every run)." in msg
    assert "calib_mmlu_s00" not in msg  # not every task of both runs


def test_align_refuses_same_id_different_prompt():
    a = Run("a", [rec(1, model="a", prompt="What is 2+2?")])
    b = Run("b", [rec(1, model="b", prompt="Name a colour.")])
    with pytest.raises(RecordError, match="different prompts"):
        align(a, b)


def test_option_matrix_pads_ragged_options():
    run = Run("m", [rec(0, scores=(0.0, -1.0)), SampleRecord("t", "1", "m", "C", 0.5, 0.0, "A", ("A", "B", "C"), (-2.0, -1.0, 0.0))])
    m, gold, pred = run.option_matrix()
    assert m.shape == (2, 3) and np.isneginf(m[0, 2]) and gold.tolist() == [0, 0] and pred.tolist() == [0, 2]
