"""``SampleRecord.from_option_scores``: the one constructor every option-score producer uses (multiple
choice capture, vision adapter, GATEKEEPER, references, fixtures), checked on the real fixtures and as
invariants."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from calib_harness.capture.multiple_choice import SEQUENCE, mc_results
from calib_harness.capture.payload import PAYLOAD_METRIC
from calib_harness.cleaning.reference import records_from_probs
from calib_harness.records import RecordError, SampleRecord, load_records_jsonl
from calib_harness.vision.adapter import make_record


@pytest.mark.parametrize("name", ["arc_easy_dev_smollm2.jsonl", "arc_challenge_dev_smollm2.jsonl"])
def test_fixture_records_follow_from_their_option_scores(fixtures_dir, name):
    """The committed real fixtures: prediction, confidence and score re-derived from the stored option scores."""
    run = load_records_jsonl(fixtures_dir / "records" / name)
    for r in run.records:
        again = SampleRecord.from_option_scores(
            r.option_scores, r.option_labels, r.gold, task=r.task, doc_id=r.doc_id, model=r.model,
            option_token_mode=r.option_token_mode,
        )
        assert (again.prediction, again.score) == (r.prediction, r.score)
        assert again.confidence == pytest.approx(r.confidence, abs=1e-5)
        assert again.features["entropy"] == pytest.approx(r.features["entropy"], abs=1e-5)


def test_producers_agree(fixtures_dir):
    """MC capture, the vision adapter and the reference builder give the same record fields for one input."""
    r = load_records_jsonl(fixtures_dir / "records" / "arc_easy_dev_smollm2.jsonl").records[7]
    gi = r.gold_index
    payload = mc_results([(s, False) for s in r.option_scores], r.option_labels, gi, SEQUENCE)[PAYLOAD_METRIC]
    vis = make_record(r.task, r.doc_id, r.model, np.array(r.option_scores), list(r.option_labels), gi)
    ref = records_from_probs(np.array([r.option_probs]), np.array([gi]), r.task, r.model, list(r.option_labels)).records[0]
    for rec in (vis, ref):
        assert (rec.prediction, rec.score, rec.gold) == (payload["prediction"], payload["score"], payload["gold"])
        assert rec.confidence == pytest.approx(payload["confidence"], abs=1e-9)
        assert rec.features["margin"] == pytest.approx(payload["features"]["margin"], abs=1e-9)
        assert rec.features["entropy"] == pytest.approx(payload["features"]["entropy"], abs=1e-9)


scores_st = st.lists(st.floats(-50, 50, allow_nan=False), min_size=1, max_size=12)


@settings(max_examples=200, deadline=None)
@given(scores=scores_st, data=st.data())
def test_invariants(scores, data):
    labels = [f"o{i}" for i in range(len(scores))]
    gold = data.draw(st.integers(0, len(scores) - 1))
    r = SampleRecord.from_option_scores(scores, labels, gold, task="t", doc_id=1, model="m", option_token_mode="logits")
    assert r.prediction == labels[int(np.argmax(scores))]  # first index on ties, as lm-eval's acc
    assert r.confidence == pytest.approx(float(r.option_probs.max()), abs=1e-12)
    assert r.score == float(r.prediction == labels[gold])
    assert 0.0 <= r.features["margin"] <= 1.0 and r.features["entropy"] >= -1e-12
    shifted = SampleRecord.from_option_scores(np.array(scores) + 7.0, labels, labels[gold], task="t", doc_id=1,
                                              model="m", option_token_mode="logits")
    assert shifted.confidence == pytest.approx(r.confidence, abs=1e-9)
    top = np.sort(scores)[-2:]
    if len(scores) == 1 or top[1] - top[0] > 1e-6:  # + 7.0 can round a sub-ulp lead into a tie
        assert shifted.prediction == r.prediction


def test_bad_inputs_and_passed_features():
    with pytest.raises(RecordError, match="2 option scores for 3"):
        SampleRecord.from_option_scores([0.0, 1.0], "ABC", 0, task="t", doc_id=0, model="m", option_token_mode="logits")
    with pytest.raises(RecordError, match="gold index 5"):
        SampleRecord.from_option_scores([0.0, 1.0], "AB", 5, task="t", doc_id=0, model="m", option_token_mode="logits")
    r = SampleRecord.from_option_scores([0.0, 1.0], "AB", None, task="t", doc_id=0, model="m",
                                        option_token_mode="sequence", features={"mean_entropy": 2.5})
    assert r.gold is None and r.score == 0.0 and r.features["mean_entropy"] == 2.5
