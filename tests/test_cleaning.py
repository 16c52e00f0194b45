"""Cleaning methods (Alg. 2 methods 1-3, Confident Learning) on hand-made records with known answers."""

from __future__ import annotations

import csv
import math

import numpy as np
import pytest

from calib_harness.cleaning.confident_learning import confident_learning
from calib_harness.cleaning.evaluate import evaluate, precision_detection
from calib_harness.cleaning.experts import build_panel
from calib_harness.cleaning.methods import (
    BinTable,
    agreed_label,
    class_threshold,
    class_threshold_single,
    class_thresholds,
    high_confidence_disagreement,
    min_k,
    top1_disagreement,
)
from calib_harness.cleaning.pipeline import run_methods
from calib_harness.cleaning.reevaluate import label_sets, reevaluate
from calib_harness.cleaning.reference import RefEntry, Reference, pseudo_label_reference
from calib_harness.cleaning.report import flagged_rows, overlap_rows, write_flagged
from calib_harness.records import RecordError, Run, SampleRecord

LABELS = ("A", "B", "C", "D")


def mc_record(model, doc, probs, gold, task="calib_mmlu_toy"):
    p = np.asarray(probs, dtype=float)
    p = p / p.sum()
    pred = int(p.argmax())
    return SampleRecord(
        task=task,
        doc_id=str(doc),
        model=model,
        prediction=LABELS[pred],
        confidence=float(p[pred]),
        score=float(LABELS[pred] == gold),
        gold=gold,
        option_labels=LABELS,
        option_scores=tuple(np.log(p)),
        option_token_mode="single_token",
        prompt=f"question {doc}",
    )


# -- method 1 -----------------------------------------------------------------------------


def test_top1_disagreement_needs_every_expert_to_disagree():
    given = np.array([0, 0, 1, 2])
    pred = np.array([[1, 0, 2, 3], [1, 2, 0, 3]])  # doc0: both say 1; doc1: one agrees; doc2: 2 vs 0
    assert top1_disagreement(pred, given).tolist() == [True, False, True, True]
    # agreement: doc2's experts disagree with each other -> dropped
    assert top1_disagreement(pred, given, require_agreement=True).tolist() == [True, False, False, True]
    assert agreed_label(pred).tolist() == [1, -1, -1, 3]
    # one expert = predicted != given
    assert top1_disagreement(pred[0], given).tolist() == [True, False, True, True]


# -- method 2 -----------------------------------------------------------------------------


def test_bin_table_ranks_bins_by_accuracy_and_assigns_new_confidences():
    # 4 equal-count bins of 5; accuracies by bin (low -> high confidence): 0.2, 0.8, 0.4, 1.0
    conf = np.concatenate([np.full(5, 0.3), np.full(5, 0.5), np.full(5, 0.7), np.full(5, 0.9)])
    conf = conf + np.tile(np.linspace(0, 0.04, 5), 4)
    correct = np.array([1, 0, 0, 0, 0] + [1, 1, 1, 1, 0] + [1, 1, 0, 0, 0] + [1] * 5)
    t = BinTable.fit(conf, correct, n_bins=4)
    assert t.count.tolist() == [5, 5, 5, 5]
    assert np.allclose(t.accuracy, [0.2, 0.8, 0.4, 1.0])
    assert t.rank.tolist() == [3, 1, 2, 0]  # bin 3 most accurate, then bin 1, bin 2, bin 0
    # new confidences: below everything -> bin 0, inside bin 1, above everything -> last bin
    assert t.assign([0.0, 0.52, 0.95, 0.71]).tolist() == [0, 1, 3, 2]
    assert t.ranks_of([0.0, 0.52, 0.95]).tolist() == [3, 1, 0]


def test_high_confidence_disagreement_sweeps_k():
    given = np.array([0, 0, 0, 0])
    pred = np.array([[1, 1, 0, 2], [1, 1, 1, 3]])
    ranks = np.array([[0, 2, 0, 1], [1, 0, 0, 1]])  # doc0 needs K=2, doc1 K=3, doc2 never, doc3 K=2
    mk = min_k(pred, given, ranks)
    assert mk[0] == 2 and mk[1] == 3 and math.isinf(mk[2]) and mk[3] == 2
    assert high_confidence_disagreement(pred, given, ranks, 1).tolist() == [False] * 4
    assert high_confidence_disagreement(pred, given, ranks, 2).tolist() == [True, False, False, True]
    assert high_confidence_disagreement(pred, given, ranks, 3).tolist() == [True, True, False, True]
    # +agree: doc3's experts predict 2 and 3 -> never flagged
    assert high_confidence_disagreement(pred, given, ranks, 3, require_agreement=True).tolist() == [True, True, False, False]
    with pytest.raises(ValueError):
        high_confidence_disagreement(pred, given, ranks, 0)


# -- method 3 -----------------------------------------------------------------------------


def test_class_threshold_method_by_hand():
    probs = np.array(
        [
            [0.9, 0.1, 0.0],  # label 0
            [0.5, 0.5, 0.0],  # label 0
            [0.2, 0.8, 0.0],  # label 1
            [0.7, 0.3, 0.0],  # label 1   <- class 0 only equals its threshold 0.7: no candidate, kept
            [0.1, 0.1, 0.8],  # label 2
            [0.3, 0.4, 0.3],  # label 2   <- no class passes: kept (Y* = -1)
        ]
    )
    given = np.array([0, 0, 1, 1, 2, 2])
    t = class_thresholds(probs, given)
    assert np.allclose(t, [0.7, 0.55, 0.55])
    flags, y = class_threshold_single(probs, given)
    # doc1: 0.5 < 0.7 (class 0 no), 0.5 < 0.55 (class 1 no) -> no candidate
    assert y.tolist() == [0, -1, 1, -1, 2, -1]
    assert flags.tolist() == [False, False, False, False, False, False]
    probs2 = probs.copy()
    probs2[3] = [0.75, 0.25, 0.0]  # class 0 now above its threshold 0.7, class 1 below 0.525: Y*=0, flagged
    t2 = class_thresholds(probs2, given)
    assert t2[0] == pytest.approx(0.7) and t2[1] == pytest.approx(0.525)
    f2, y2 = class_threshold_single(probs2, given)
    assert y2[3] == 0 and f2.tolist() == [False, False, False, True, False, False]
    # unseen class: threshold inf, never a candidate
    assert math.isinf(class_thresholds(probs[:4], given[:4])[2])


def test_class_threshold_combines_experts():
    given = np.array([0, 0, 1, 1, 2, 2])
    a = np.array([[0.9, 0.1, 0], [0.5, 0.5, 0], [0.2, 0.8, 0], [0.75, 0.25, 0], [0.1, 0.1, 0.8], [0.3, 0.4, 0.3]])
    b = np.array([[0.9, 0.1, 0], [0.1, 0.9, 0], [0.2, 0.8, 0], [0.2, 0.8, 0], [0.1, 0.1, 0.8], [0.1, 0.1, 0.8]])
    fa, _ = class_threshold_single(a, given)
    fb, _ = class_threshold_single(b, given)
    assert fa.tolist() == [False, False, False, True, False, False]
    assert fb.tolist() == [False, True, False, False, False, False]
    all_, ys = class_threshold(np.stack([a, b]), given, "all")
    any_, _ = class_threshold(np.stack([a, b]), given, "any")
    assert ys.shape == (2, 6)
    assert all_.tolist() == [False] * 6
    assert any_.tolist() == [False, True, False, True, False, False]
    mean_, _ = class_threshold(np.stack([a, b]), given, "mean")
    assert mean_.tolist() == class_threshold_single((a + b) / 2, given)[0].tolist()
    with pytest.raises(ValueError):
        class_threshold(a, given, "vote")


# -- Confident Learning ----------------------------------------------------------------------


def test_confident_learning_finds_flipped_labels():
    rng = np.random.default_rng(0)
    n, k = 400, 4
    true = rng.integers(0, k, n)
    probs = np.full((n, k), 0.02)
    probs[np.arange(n), true] = 0.94
    given = true.copy()
    flipped = rng.choice(n, 20, replace=False)
    given[flipped] = (true[flipped] + 1) % k
    res = confident_learning(probs, given, "prune_by_noise_rate")
    assert res.filter_by == "prune_by_noise_rate"
    assert set(np.flatnonzero(res.flags)) == set(flipped)
    assert set(res.ranked) == set(flipped)
    # two experts: averaged probabilities
    res2 = confident_learning(np.stack([probs, probs]), given, "confident_learning")
    assert set(np.flatnonzero(res2.flags)) == set(flipped)
    with pytest.raises(ValueError):
        confident_learning(probs, given, "nonsense")


# -- panel over records -------------------------------------------------------------------------


def toy_runs(n=120, seed=1, flip_every=10):
    """Two experts; true answer t; every ``flip_every``-th given label is wrong."""
    rng = np.random.default_rng(seed)
    true = rng.integers(0, 4, n)
    runs = {}
    for name, strength in (("expert_a", 3.0), ("expert_b", 2.5)):
        recs = []
        for i in range(n):
            logits = rng.normal(0, 0.5, 4)
            logits[true[i]] += strength if i % 7 else 0.0  # some hard docs
            p = np.exp(logits) / np.exp(logits).sum()
            gold = LABELS[(true[i] + 1) % 4] if i % flip_every == 0 else LABELS[true[i]]
            recs.append(mc_record(name, i, p, gold))
        runs[name] = Run(name, recs)
    return runs["expert_a"], runs["expert_b"], true


def test_panel_cross_fit_covers_every_doc_and_matches_softmax_without_calibration():
    a, b, _ = toy_runs()
    panel = build_panel([a, b], calibration="none", n_bins=5)
    assert panel.n == len(a) and sorted(panel.keys) == sorted(a.keys)
    assert set(panel.fold.tolist()) == {0, 1}
    i = panel.keys.index(a.records[3].key)
    assert np.allclose(panel.probs[0, i], a.records[3].option_probs)
    assert panel.given[i] == a.records[3].gold_index
    assert (panel.ranks >= 0).all() and (panel.ranks < 5).all()
    half = build_panel([a, b], calibration="none", n_bins=5, cross_fit=False)
    assert half.n == len(a) // 2 and set(half.fold.tolist()) == {0}


def test_panel_temperature_keeps_argmax_and_rejects_bad_input():
    a, b, _ = toy_runs()
    panel = build_panel([a, b], calibration="temperature", n_bins=5)
    raw = np.array([[r.prediction_index for r in a.records], [r.prediction_index for r in b.records]])
    order = [a.keys.index(k) for k in panel.keys]
    assert (panel.pred == raw[:, order]).all()
    assert np.allclose(panel.probs.sum(axis=2), 1.0)
    with pytest.raises(RecordError):
        build_panel([a, Run("expert_b", b.records[:-1])])
    with pytest.raises(ValueError):
        build_panel([a, a])
    # records with a confidence and no option scores build a panel without class probabilities
    gen = Run("gen", [SampleRecord("t", str(i), "gen", "x", 0.5, 1.0, gold="x") for i in range(40)])
    gen_panel = build_panel([gen], n_bins=2)
    assert gen_panel.probs is None and not gen_panel.has_option_scores
    with pytest.raises(ValueError, match="too few for 25 bins.*--bins 20 or fewer"):
        build_panel([gen], n_bins=25)


def test_run_methods_on_records_flags_the_flipped_labels_first():
    a, b, true = toy_runs(n=200)
    panel = build_panel([a, b], calibration="temperature", n_bins=5)
    out = run_methods(panel, filter_by=["prune_by_noise_rate", "both"])
    names = [r.name for r in out.results]
    assert names[:2] == ["M1 top-1", "M1 top-1 +agree"]
    assert "M2 K=5" in names and "M2 +agree K=1" in names
    assert "M3 class-threshold (all)" in names and "CL prune_by_noise_rate" in names and "CL both" in names
    # nested K sweep
    prev = np.zeros(panel.n, dtype=bool)
    for k in range(1, 6):
        f = out.result(f"M2 K={k}").flags
        assert not (prev & ~f).any()  # whatever K flags, K+1 flags too
        prev = f
    assert (out.result("M2 K=5").flags == out.result("M1 top-1").flags).all()
    # against the truth (known here): the flipped docs
    flipped = {a.records[i].key for i in range(200) if i % 10 == 0}
    ref = Reference("truth", {k: RefEntry("wrong" if k in flipped else "ok") for k in a.keys}, frozenset({"wrong"}))
    rows = {(r.positives, r.method): r for r in evaluate(out, ref)}
    m1 = rows[("any", "M1 top-1")]
    assert m1.n_eval == 200 and m1.n_errors == 20
    assert m1.precision > 0.5 and m1.detection_rate > 0.5
    # higher-confidence bins are at least as precise as the full disagreement set here
    k2 = rows[("any", "M2 K=2")]
    assert k2.n_flagged > 0 and k2.precision >= m1.precision
    # exact TP/precision bookkeeping
    f = out.result("M1 top-1").flags
    is_err = np.array([k in flipped for k in panel.keys])
    assert m1.tp == int((f & is_err).sum()) and m1.precision == pytest.approx(m1.tp / f.sum())


def test_precision_detection_arithmetic():
    nf, tp, ne, p, d = precision_detection([1, 1, 0, 0, 1], [1, 0, 0, 1, 1])
    assert (nf, tp, ne) == (3, 2, 3) and p == pytest.approx(2 / 3) and d == pytest.approx(2 / 3)
    nf, tp, ne, p, d = precision_detection([0, 0], [0, 0])
    assert math.isnan(p) and math.isnan(d)


def test_report_ranks_and_writes_verdict_column(tmp_path):
    a, b, _ = toy_runs(n=200)
    panel = build_panel([a, b], calibration="temperature", n_bins=5)
    out = run_methods(panel)
    rows = flagged_rows(out)
    assert len(rows) == int(out.union_flags().sum()) > 0
    scores = [r["score"] for r in rows]
    assert scores == sorted(scores, reverse=True)
    top = rows[0]
    assert top["given_label"] != top["pred[expert_a]"] and top["human_verdict"] == ""
    assert top["question"].startswith("question ")
    csv_path, jsonl_path = write_flagged(rows, tmp_path)
    with csv_path.open() as f:
        read = list(csv.DictReader(f))
    assert len(read) == len(rows) and "human_verdict" in read[0] and "conf[expert_b]" in read[0]
    assert (tmp_path / "verdict_guide.txt").read_text().count("\n") >= 5
    ov = overlap_rows(out, ["M1 top-1", "M3 class-threshold (all)", "CL prune_by_noise_rate"])
    for r in ov:
        fa, fb = out.result(r["method_a"]).flags, out.result(r["method_b"]).flags
        assert r["overlap"] == int((fa & fb).sum()) and r["only_a"] == int((fa & ~fb).sum())


def test_reevaluation_removed_and_relabeled():
    # 4 docs; experts agree on doc0 (answer B, given A) and doc1 (C, given A); doc2 experts split
    recs_a = [
        mc_record("a", 0, [0.1, 0.7, 0.1, 0.1], "A"),
        mc_record("a", 1, [0.1, 0.1, 0.7, 0.1], "A"),
        mc_record("a", 2, [0.1, 0.7, 0.1, 0.1], "A"),
        mc_record("a", 3, [0.7, 0.1, 0.1, 0.1], "A"),
    ]
    recs_b = [
        mc_record("b", 0, [0.1, 0.7, 0.1, 0.1], "A"),
        mc_record("b", 1, [0.1, 0.1, 0.7, 0.1], "A"),
        mc_record("b", 2, [0.1, 0.1, 0.7, 0.1], "A"),
        mc_record("b", 3, [0.1, 0.1, 0.1, 0.7], "A"),
    ]
    runs = [Run("a", recs_a), Run("b", recs_b)]
    # 4 docs: one bin per half is all there is (method 1 does not use bins)
    panel = build_panel(runs, calibration="none", n_bins=1)
    out = run_methods(panel, methods=["top1"], require_agreement=False)
    flags = out.result("M1 top-1").flags
    order = {k: i for i, k in enumerate(panel.keys)}
    assert [bool(flags[order[("calib_mmlu_toy", str(d))]]) for d in range(4)] == [True, True, True, False]
    sets = {s.name: s for s in label_sets(out, flags)}
    assert sets["removed"].keep.sum() == 1 and sets["relabeled"].keep.sum() == 3
    rows = {r["label_set"]: r for r in reevaluate(out, flags, runs)}
    assert rows["full"]["acc[a]"] == pytest.approx(0.25) and rows["full"]["acc[b]"] == 0.0
    assert rows["removed"]["acc[a]"] == 1.0 and rows["removed"]["acc[b]"] == 0.0
    # relabeled: doc0 -> B, doc1 -> C (both right for a and b), doc3 keeps A
    assert rows["relabeled"]["n"] == 3
    assert rows["relabeled"]["acc[a]"] == pytest.approx(1.0) and rows["relabeled"]["acc[b]"] == pytest.approx(2 / 3)


def test_pseudo_label_reference_marks_disagreement():
    strong = Run("strong", [mc_record("strong", 0, [0.1, 0.7, 0.1, 0.1], "A"), mc_record("strong", 1, [0.7, 0.1, 0.1, 0.1], "A")])
    ref = pseudo_label_reference(strong)
    e0, e1 = ref.entries[("calib_mmlu_toy", "0")], ref.entries[("calib_mmlu_toy", "1")]
    assert ref.is_error(e0) and e0.label == "B"
    assert not ref.is_error(e1) and ref.is_error(e0, "strict")
