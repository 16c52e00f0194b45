"""References on the real data: MMLU-Redux, cleanlab's CIFAR-10 MTurk verdicts, and an end-to-end
check of the methods and of Confident Learning against the human re-annotation."""

from __future__ import annotations

import json
from collections import Counter

import numpy as np
import pytest

from calib_harness.cleaning.confident_learning import confident_learning
from calib_harness.cleaning.evaluate import evaluate
from calib_harness.cleaning.experts import build_panel
from calib_harness.cleaning.methods import class_threshold_single
from calib_harness.cleaning.pipeline import run_methods
from calib_harness.cleaning.reference import (
    LETTERS,
    cleanlab_cifar10_run,
    mmlu_question,
    mmlu_redux_reference,
    mturk_reference,
)
from calib_harness.records import Run, SampleRecord


@pytest.fixture(scope="module")
def redux(shared_data):
    return mmlu_redux_reference(shared_data)


def test_mmlu_redux_reference_maps_test_rows(redux, shared_data):
    # 5,700 annotated questions, 37 without a unique MMLU test row (SOURCES.md)
    assert len(redux) == 5663 and redux.meta["skipped_unmapped"] == 37
    counts = redux.counts()
    assert counts["wrong_groundtruth"] <= 107 and counts["ok"] <= 5330 and sum(counts.values()) == 5663
    # first Redux row: abstract_algebra, MMLU test row 34, bad question clarity
    e = redux.entries[("calib_mmlu_abstract_algebra", "34")]
    assert e.error_type == "bad_question_clarity"
    q, opts, ans = mmlu_question(shared_data, "abstract_algebra", 34)
    assert q == e.question and list(opts) == list(e.choices) and ans == e.label
    assert redux.is_error(e, "any") and not redux.is_error(e, "strict")
    # every wrong_groundtruth entry with a stated answer has a letter that differs from MMLU's
    path = shared_data / "mmlu_redux" / "mmlu_redux_normalized.jsonl"
    rows = [json.loads(line) for line in path.open()]
    differs = same = 0
    for r in rows:
        if r["error_type"] != "wrong_groundtruth" or r["mmlu_test_index"] is None:
            continue
        e = redux.entries[("calib_mmlu_" + r["subject"], str(r["mmlu_test_index"]))]
        if e.label is not None:
            assert e.label in LETTERS
            differs += e.label != LETTERS[r["answer"]]
            same += e.label == LETTERS[r["answer"]]
    # the annotators' corrected answer differs from MMLU's in all but one (global_facts) case
    assert differs >= 100 and same <= 1


def test_mmlu_redux_end_to_end_with_hand_made_experts(redux, shared_data):
    """Experts built on real MMLU rows: they answer Redux's corrected label on wrong_groundtruth
    questions and MMLU's label elsewhere (with some mistakes): methods 1/2 must flag exactly the
    wrong-groundtruth questions they were built to contradict."""
    subjects = ["virology", "college_chemistry", "high_school_mathematics", "professional_law"]
    keys = [k for k in redux.entries if k[0][len("calib_mmlu_"):] in subjects]
    wrong = {k for k in keys if redux.entries[k].error_type == "wrong_groundtruth" and redux.entries[k].label}
    assert len(wrong) >= 5
    rng = np.random.default_rng(0)
    runs = []
    for model, noise in (("expert_a", 0.15), ("expert_b", 0.2)):
        recs = []
        for task, doc in keys:
            subject = task[len("calib_mmlu_"):]
            q, opts, given = mmlu_question(shared_data, subject, int(doc))
            target = redux.entries[(task, doc)].label if (task, doc) in wrong else given
            t = LETTERS.index(target)
            if (task, doc) not in wrong and rng.random() < noise:  # an honest mistake
                t = (t + 1 + rng.integers(0, 3)) % 4
            logits = rng.normal(0, 0.3, 4)
            logits[t] += 3.0 if (task, doc) in wrong else rng.uniform(0.2, 3.0)
            p = np.exp(logits) / np.exp(logits).sum()
            pred = int(p.argmax())
            recs.append(
                SampleRecord(task, doc, model, LETTERS[pred], float(p[pred]), float(LETTERS[pred] == given), given,
                             LETTERS, tuple(np.log(p)), "single_token", {}, q)
            )
        runs.append(Run(model, recs))
    panel = build_panel(runs, n_bins=10)
    out = run_methods(panel, filter_by=["prune_by_noise_rate"])
    rows = {(r.positives, r.method): r for r in evaluate(out, redux)}
    strict_m1 = rows[("strict", "M1 top-1 +agree")]
    assert strict_m1.n_errors == sum(redux.entries[k].error_type == "wrong_groundtruth" for k in keys)
    flagged = {panel.keys[i] for i in np.flatnonzero(out.result("M1 top-1 +agree").flags)}
    assert wrong <= flagged  # every contradicted question is found
    # the contradicting answers are confident, so the top bins hold them: high precision at small K
    best = max((r for (pos, name), r in rows.items() if pos == "strict" and name.startswith("M2 +agree")), key=lambda r: r.precision if r.n_flagged else -1)
    assert best.precision > strict_m1.precision


@pytest.fixture(scope="module")
def cifar(shared_data):
    return cleanlab_cifar10_run(shared_data), mturk_reference(shared_data)


def test_mturk_reference_counts(cifar):
    run, ref = cifar
    assert len(run) == 10000 and len(ref) == 275
    n_any = sum(ref.is_error(e, "any") for e in ref.entries.values())
    n_strict = sum(ref.is_error(e, "strict") for e in ref.entries.values())
    assert n_any == 54  # the 54 CIFAR-10 test label errors published on labelerrors.com
    assert 0 < n_strict < n_any
    # guessed labels are class names like the records'
    labels = {e.label for e in ref.entries.values() if e.label}
    assert labels <= set(run.records[0].option_labels)


def test_cifar10_methods_against_mturk(cifar):
    run, ref = cifar
    panel = build_panel([run], n_bins=15)
    out = run_methods(panel, require_agreement=False, filter_by=["prune_by_noise_rate", "confident_learning"])
    rows = {(r.positives, r.method): r for r in evaluate(out, ref)}
    m1 = rows[("any", "M1 top-1")]
    # cleanlab reviewed only examples whose prediction differs from the label: M1 flags all 275
    assert m1.n_eval == 275 and m1.n_flagged == 275 and m1.tp == 54
    # the paper's claim: restricting to the most accurate confidence bins raises precision
    mid = rows[("any", "M2 K=10")]
    assert mid.n_flagged >= 10 and mid.precision > m1.precision
    # precision is measured, detection rate falls with smaller K
    drs = [rows[("any", f"M2 K={k}")].detection_rate for k in range(1, 16)]
    assert all(a <= b for a, b in zip(drs, drs[1:]))
    cl = rows[("any", "CL prune_by_noise_rate")]
    assert 0 < cl.n_flagged < 275 and 0 < cl.precision < 1


def test_method3_single_expert_equals_cleanlab_confident_learning(cifar):
    """Method 3 is the per-class-threshold rule; with one expert it coincides with cleanlab's
    filter_by='confident_learning' on real data."""
    run, _ = cifar
    scores, given, _ = run.option_matrix()
    probs = np.exp(scores) / np.exp(scores).sum(axis=1, keepdims=True)
    f3, _ = class_threshold_single(probs, given)
    cl = confident_learning(probs, given, "confident_learning")
    assert f3.sum() > 50
    assert (f3 == cl.flags).mean() > 0.999
    assert Counter(f3 & ~cl.flags)[True] + Counter(cl.flags & ~f3)[True] <= 5


def test_cifar10_plain_table_with_a_third_of_confidences_at_one(cifar):
    """The real CIFAR-10 probabilities as a plain per-sample table would log them (prediction, a
    confidence rounded to 3 decimals, correctness; no option scores): 45% of the confidences are
    exactly 1.0.  The tie-aware bins put them in one bin, so method 2 flags at every K <= 5 (the old
    tie rule spread them over seven bins and flagged nothing for K <= 4), and only the methods that
    need no option scores run."""
    run, ref = cifar
    recs = [SampleRecord(r.task, r.doc_id, r.model, r.prediction, round(r.confidence, 3), r.score, r.gold)
            for r in run.records]
    plain = Run("cifar10-cv-3dp", recs)
    assert np.mean(plain.confidences() == 1.0) > 1 / 3
    panel = build_panel([plain], n_bins=15)
    assert not panel.has_option_scores
    assert all(t.n_bins < 15 for ft in panel.bin_tables for t in ft)
    out = run_methods(panel, require_agreement=False)
    assert set(out.skipped) == {"class-threshold", "confident-learning"}
    rows = {(r.positives, r.method): r for r in evaluate(out, ref)}
    m1 = rows[("any", "M1 top-1")]
    assert m1.n_flagged == 275 and m1.tp == 54  # the same disagreements as with option scores
    for k in range(1, 6):
        r = rows[("any", f"M2 K={k}")]
        assert r.n_flagged > 0, k
        # the most accurate bins hold the most precise flags (intervals are wide at small K)
        assert r.precision > m1.precision and r.precision_lo <= r.precision <= r.precision_hi, k


def test_precision_detection_plot_labels_do_not_overprint(cifar):
    """Real CIFAR-10 against MTurk: many K points crowd near the origin; no two K labels overlap,
    every label lies inside its axes, and every point carries its interval."""
    import matplotlib.pyplot as plt
    import matplotlib.text

    from calib_harness.cleaning.plots import precision_detection_figure

    run, ref = cifar
    panel = build_panel([run], n_bins=15)
    rows = evaluate(run_methods(panel, filter_by=["prune_by_noise_rate"]), ref)
    fig = precision_detection_figure(rows, title="cifar10")
    try:
        renderer = fig.canvas.get_renderer()
        for ax in fig.axes:
            labels = [t for t in ax.texts if t.get_text().startswith("K=")]
            assert len(labels) >= 8
            boxes = []
            for t in labels:
                t.update_positions(renderer)
                boxes.append(matplotlib.text.Text.get_window_extent(t, renderer))
            frame = ax.get_window_extent(renderer)
            for i, a in enumerate(boxes):
                assert frame.x0 <= a.x0 and a.x1 <= frame.x1 and frame.y0 <= a.y0 and a.y1 <= frame.y1
                for b in boxes[i + 1:]:
                    assert not a.overlaps(b), (a, b)
            assert len(ax.collections) >= 5  # error bars (LineCollections) of the points
    finally:
        plt.close(fig)
