"""Cleaning methods (Alg. 2 methods 1-3, Confident Learning) on hand-made records with known answers."""

from __future__ import annotations

import csv
import dataclasses
import math

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from calib_harness.cleaning.base import (
    CleaningMethod,
    get_cleaning_method,
    list_cleaning_methods,
    register_cleaning_method,
)
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
from calib_harness.records import RecordError, Run, SampleRecord, align

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


def _reeval_case():
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
    # a model that took no part in the cleaning
    recs_c = [
        mc_record("c", 0, [0.1, 0.7, 0.1, 0.1], "A"),
        mc_record("c", 1, [0.1, 0.1, 0.7, 0.1], "A"),
        mc_record("c", 2, [0.7, 0.1, 0.1, 0.1], "A"),
        mc_record("c", 3, [0.7, 0.1, 0.1, 0.1], "A"),
    ]
    runs = [Run("a", recs_a), Run("b", recs_b)]
    # 4 docs: one bin per half is all there is (method 1 does not use bins)
    panel = build_panel(runs, calibration="none", n_bins=1)
    out = run_methods(panel, methods=["top1"], require_agreement=False)
    return out, runs, Run("c", recs_c)


def test_reevaluation_removed_and_relabeled_on_an_independent_run():
    out, runs, other = _reeval_case()
    panel = out.panel
    flags = out.result("M1 top-1").flags
    order = {k: i for i, k in enumerate(panel.keys)}
    assert [bool(flags[order[("calib_mmlu_toy", str(d))]]) for d in range(4)] == [True, True, True, False]
    sets = {s.name: s for s in label_sets(out, flags)}
    assert sets["removed"].keep.sum() == 1 and sets["relabeled"].keep.sum() == 3
    rows = {r["label_set"]: r for r in reevaluate(out, flags, [other])}
    assert rows["full"]["accuracy"] == pytest.approx(0.5) and rows["full"]["n"] == 4
    assert rows["removed"]["accuracy"] == 1.0 and rows["removed"]["n"] == 1
    # relabeled: doc0 -> B, doc1 -> C (the experts' agreed answers), doc2 dropped (experts split), doc3 keeps A
    assert rows["relabeled"]["n"] == 3 and rows["relabeled"]["accuracy"] == pytest.approx(1.0)
    assert not any(r["circular"] for r in rows.values())
    assert rows["relabeled"]["labels_from"] == "agreed answer of experts a, b"
    for r in rows.values():  # Wilson intervals around every accuracy
        assert 0.0 <= r["accuracy_lo"] <= r["accuracy"] <= r["accuracy_hi"] <= 1.0


def test_reevaluation_refuses_the_experts_unless_circular_is_allowed():
    out, runs, _ = _reeval_case()
    flags = out.result("M1 top-1").flags
    with pytest.raises(ValueError, match="took part in the cleaning.*--allow-circular"):
        reevaluate(out, flags, runs)
    rows = reevaluate(out, flags, runs, allow_circular=True)
    assert all(r["circular"] for r in rows)
    a = {r["label_set"]: r for r in rows if r["scored"] == "a"}
    # a's relabelled set takes its labels from b alone (never from a): doc0 B, doc1 C, doc2 C; doc3 keeps A
    assert a["relabeled"]["labels_from"] == "agreed answer of experts b"
    assert a["relabeled"]["n"] == 4 and a["relabeled"]["accuracy"] == pytest.approx(3 / 4)
    # one expert only: nobody else to take labels from, so the relabelled set is empty and says so
    single = build_panel([runs[0]], calibration="none", n_bins=1)
    out1 = run_methods(single, methods=["top1"])
    r1 = {r["label_set"]: r for r in reevaluate(out1, out1.result("M1 top-1").flags, [runs[0]], allow_circular=True)}
    assert r1["relabeled"]["n"] == 0 and r1["relabeled"]["labels_from"].startswith("none")
    assert math.isnan(r1["relabeled"]["accuracy"])


def test_reevaluation_cascade_chooses_k_on_the_calibration_half():
    a, b, _ = toy_runs(n=200)
    # two models outside the panel, on the same docs and labels (copies of the experts' outputs under other names)
    weak = Run("weak", [dataclasses.replace(r, model="weak") for r in b.records])
    strong = Run("strong", [dataclasses.replace(r, model="strong") for r in a.records])
    panel = build_panel([a, b], n_bins=5)
    out = run_methods(panel, methods=["top1"])
    flags = out.result("M1 top-1").flags
    rows = [r for r in reevaluate(out, flags, [weak, strong], cascade=("weak", "strong"), n_bins=5) if r["role"] == "cascade"]
    assert [r["label_set"] for r in rows] == ["full", "removed", "relabeled"]
    for r in rows:
        assert r["operating_point_from"] == "calibration half" and r["K"] is not None
        assert 0.0 <= r["accuracy_lo"] <= r["accuracy"] <= r["accuracy_hi"] <= 1.0
    # the reported point is the calibration half's best, not the test half's: reproduce it
    from calib_harness.calibration import split_runs
    from calib_harness.routing.base import RoutingData, make_router

    weak = weak.subset(sorted(range(len(weak)), key=lambda i: weak.records[i].key))  # documents by (task, doc_id)
    (s_cal, s_test), (l_cal, l_test) = split_runs(*align(weak, strong), cal_fraction=0.5, seed=0)
    router = make_router("CC", n_bins=5, seed=0).fit(RoutingData.from_runs(s_cal, l_cal))
    cal_curve = router.curve(RoutingData.from_runs(s_cal, l_cal))
    best = int(np.lexsort((-np.asarray(cal_curve.share_small), -np.asarray(cal_curve.accuracy)))[0])
    assert rows[0]["K"] == int(cal_curve.params[best])
    test_curve = router.curve(RoutingData.from_runs(s_test, l_test))
    j = list(test_curve.params).index(rows[0]["K"])
    assert rows[0]["accuracy"] == pytest.approx(float(test_curve.accuracy[j]))


def test_pseudo_label_reference_marks_disagreement():
    strong = Run("strong", [mc_record("strong", 0, [0.1, 0.7, 0.1, 0.1], "A"), mc_record("strong", 1, [0.7, 0.1, 0.1, 0.1], "A")])
    ref = pseudo_label_reference(strong)
    e0, e1 = ref.entries[("calib_mmlu_toy", "0")], ref.entries[("calib_mmlu_toy", "1")]
    assert ref.is_error(e0) and e0.label == "B"
    assert not ref.is_error(e1) and ref.is_error(e0, "strict")


# -- registry and result shape ------------------------------------------------------------------


def test_registry_lists_the_methods_and_a_new_method_is_one_class_plus_one_registration():
    from calib_harness.cleaning import base

    assert list_cleaning_methods()[:4] == ["top1", "high-confidence", "class-threshold", "confident-learning"]
    assert list_cleaning_methods(needs_option_scores=True) == ["class-threshold", "confident-learning"]
    assert get_cleaning_method("top1").needs_option_scores is False
    with pytest.raises(ValueError, match="unknown cleaning method"):
        get_cleaning_method("nope")

    @register_cleaning_method("test-lowest-quality")
    class LowestQuality(CleaningMethod):
        summary = "flags the 5 samples with the most confident disagreement"

        def find_label_issues(self, panel):
            q = panel.disagreement_quality()
            flags = np.zeros(panel.n, dtype=bool)
            flags[np.argsort(q, kind="stable")[:5]] = True
            return [self.result("lowest-5", flags, panel, {"n": 5})]

    try:
        a, b, _ = toy_runs()
        panel = build_panel([a, b], n_bins=5)
        out = run_methods(panel, methods=["top1", "test-lowest-quality"])
        r = out.result("lowest-5")
        assert r.method == "test-lowest-quality" and r.n_flagged == 5 and r.filter_by == "lowest-5"
        with pytest.raises(ValueError, match="already registered"):
            register_cleaning_method("top1")(LowestQuality)
    finally:
        base._REGISTRY.pop("test-lowest-quality", None)


def test_results_are_shaped_like_cleanlab():
    a, b, _ = toy_runs(n=200)
    panel = build_panel([a, b], n_bins=5)
    out = run_methods(panel, filter_by=["prune_by_noise_rate"])
    for r in out.results:
        ranked = r.ranked()
        assert sorted(ranked.tolist()) == np.flatnonzero(r.flags).tolist()  # the mask's indices, reordered
        q = r.label_quality[ranked]
        assert (np.diff(q) >= 0).all()  # most likely error (lowest quality) first
        frame = r.to_frame(panel)
        assert list(frame.columns[:6]) == ["task", "doc_id", "is_label_issue", "label_quality", "given_label", "predicted_label"]
        assert int(frame["is_label_issue"].sum()) == r.n_flagged and len(frame) == panel.n
    cl = out.result("CL prune_by_noise_rate")
    assert cl.filter_by == "prune_by_noise_rate" and "cl" in cl.evidence
    # CL's label quality is cleanlab's self-confidence: the ensemble probability of the given label
    assert np.allclose(cl.label_quality, cl.evidence["cl"].pred_probs[np.arange(panel.n), panel.given])
    df = out.to_frame()
    assert len(df) == int(out.union_flags().sum()) and "human_verdict" in df.columns
    assert "filter_by" in out.summary_rows()[0]


# -- ties: a third of the confidences equal 1.0 -------------------------------------------------------


def _saturated_runs(n=900, option_scores=True, seed=0):
    """One strong expert whose confidence is exactly 1.0 on a third of the docs (right there, except
    where the given label was flipped); elsewhere confidence in [0.3, 0.95] with accuracy ~ confidence.

    The flipped labels among the saturated docs sit at low doc ids: a binner that breaks ties by input
    order (the old one) puts them all into the first of the five bins that share the value 1.0, which is
    the bin new 1.0 confidences were assigned to, and it ranks last among them.
    """
    rng = np.random.default_rng(seed)
    true = rng.integers(0, 4, n)
    given = true.copy()
    flipped = np.where(np.arange(n) % 3 == 0, np.arange(n) < n // 4, rng.random(n) < 0.1) & (rng.random(n) < 0.45)
    given[flipped] = (true[flipped] + 1 + rng.integers(0, 3, flipped.sum())) % 4
    recs = []
    for i in range(n):
        if i % 3 == 0:
            pred, conf = int(true[i]), 1.0
        else:
            conf = float(rng.uniform(0.3, 0.95))
            pred = int(true[i]) if rng.random() < conf else int((true[i] + 1) % 4)
        g = LABELS[given[i]]
        if option_scores:
            logits = np.full(4, 0.0)
            logits[pred] = 200.0 if conf == 1.0 else np.log(3 * conf / (1 - conf))
            recs.append(SampleRecord.from_option_scores(
                task="calib_toy", doc_id=str(i), model="strong", option_labels=LABELS,
                option_scores=tuple(logits - logits.max()), gold=g, option_token_mode="logits"))
        else:
            recs.append(SampleRecord("calib_toy", str(i), "strong", LABELS[pred], conf, float(LABELS[pred] == g), g))
    return Run("strong", recs), {str(i) for i in np.flatnonzero(flipped)}


@pytest.mark.parametrize("option_scores,calibration", [(True, "none"), (True, "temperature"), (False, "temperature")])
def test_method2_flags_at_small_k_when_a_third_of_confidences_are_one(option_scores, calibration):
    run, flipped = _saturated_runs(option_scores=option_scores)
    assert np.mean(run.confidences() == 1.0) >= 1 / 3 - 1e-9
    panel = build_panel([run], n_bins=15, calibration=calibration)
    # the tied value fills one bin (not five), so fewer bins than asked
    assert all(t.n_bins < 15 for ft in panel.bin_tables for t in ft)
    out = run_methods(panel, methods=["high-confidence"], require_agreement=False)
    base_rate = len(flipped) / panel.n
    for k in range(1, 6):
        r = out.result(f"M2 K={k}")
        assert r.n_flagged > 0, k
        hit = {panel.keys[i][1] for i in np.flatnonzero(r.flags)}
        assert len(hit & flipped) / len(hit) > 4 * base_rate, k  # far above flagging at random
    # the saturated bin (one bin, accuracy ~0.9) is the most accurate: every flipped label among the
    # confidence-1.0 answers is found at K = 2 already (the old tie rule found them only at K >= 6)
    saturated_flipped = {d for d in flipped if int(d) % 3 == 0}
    hit2 = {panel.keys[i][1] for i in np.flatnonzero(out.result("M2 K=2").flags)}
    assert saturated_flipped and saturated_flipped <= hit2


# -- records with a confidence and no option scores ------------------------------------------------


def _generation_runs(n=120):
    """Two experts on 'generation' records: text answers, confidence, verifier score; every 6th gold is wrong."""
    rng = np.random.default_rng(5)
    runs = []
    for name, skill in (("gen_a", 0.8), ("gen_b", 0.75)):
        recs = []
        for i in range(n):
            truth, wrong_gold = str(10 * i), i % 6 == 0
            gold = str(10 * i + 1) if wrong_gold else truth
            right = rng.random() < skill
            pred = truth if right else str(-i - (1 if name == "gen_a" else 2))
            conf = float(np.clip(rng.normal(0.85 if right else 0.5, 0.08), 0.01, 0.99))
            recs.append(SampleRecord("calib_gsm", str(i), name, f" {pred} ", conf, float(pred == gold), gold))
        runs.append(Run(name, recs))
    return runs


def test_confidence_only_records_run_the_methods_that_need_no_option_scores(caplog):
    runs = _generation_runs()
    panel = build_panel(runs, n_bins=5)
    assert not panel.has_option_scores and panel.calibration == "platt"
    out = run_methods(panel, filter_by=["prune_by_noise_rate"])
    assert {r.method for r in out.results} == {"top1", "high-confidence"}
    assert set(out.skipped) == {"class-threshold", "confident-learning"}
    assert "need option scores" in caplog.text and "class-threshold, confident-learning" in caplog.text
    # the wrong golds: both experts answer the truth (text), so they agree on it
    m1a = out.result("M1 top-1 +agree")
    wrong = {str(i) for i in range(0, 120, 6)}
    hit = {panel.keys[i][1] for i in np.flatnonzero(m1a.flags)}
    assert hit and hit <= wrong
    i = next(i for i in np.flatnonzero(m1a.flags))
    assert panel.label_name(i, int(out.agreed[i])) == str(10 * int(panel.keys[i][1]))  # whitespace-normalised
    rows = flagged_rows(out)
    assert rows and not any(k.startswith("p_given[") for k in rows[0])
    # asking for a method that cannot run is an error that names it
    with pytest.raises(ValueError, match="class-threshold need option scores"):
        run_methods(panel, methods=["top1", "class-threshold"], strict=True)
    with pytest.raises(ValueError, match="need option scores"):
        run_methods(panel, methods=["confident-learning"])


# -- small and tied inputs -------------------------------------------------------------------------------


@pytest.mark.parametrize("n", [2, 3, 7])
def test_small_and_tied_inputs_do_not_crash(n, tmp_path):
    # every confidence equal, every answer wrong or right alike
    recs_a = [mc_record("a", i, [0.25, 0.25, 0.25, 0.25], "B") for i in range(n)]
    recs_b = [mc_record("b", i, [0.7, 0.1, 0.1, 0.1], "A") for i in range(n)]
    panel = build_panel([Run("a", recs_a), Run("b", recs_b)], n_bins=1, calibration="none")
    out = run_methods(panel)
    ref = Reference("truth", {k: RefEntry("ok") for k in panel.keys}, frozenset())
    rows = evaluate(out, ref)
    for r in rows:
        assert r.n_errors == 0 and math.isnan(r.detection_rate)  # undefined, and said so below
    from calib_harness.outputs import dumps_strict

    text = dumps_strict({"rows": [r.to_dict() for r in rows]})
    assert "NaN" not in text and "Infinity" not in text
    write_flagged(flagged_rows(out, ref), tmp_path)
    assert "confident-learning" in out.skipped  # one class among the given labels: skipped, said why
    bins = 2 if n < 4 else n
    with pytest.raises(ValueError, match=f"too few for {bins} bins.*pass --bins {n // 2} or fewer"):
        build_panel([Run("a", recs_a)], n_bins=bins)


# -- human edits survive reruns --------------------------------------------------------------------


_text = st.text(alphabet=st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00\r"), max_size=12)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    old_ids=st.lists(st.integers(0, 30), unique=True, max_size=15),
    new_ids=st.lists(st.integers(0, 30), unique=True, max_size=15),
    edits=st.lists(st.tuples(_text, _text, _text), min_size=15, max_size=15),
)
def test_reruns_never_destroy_human_edits(tmp_path_factory, old_ids, new_ids, edits):
    """Whatever the earlier and the new flagged sets, every non-empty human edit of the earlier
    flagged.csv is in the new one, on the row of the same (task, doc_id)."""
    out = tmp_path_factory.mktemp("rerun")

    def rows_for(ids, run_tag):
        return [{"rank": r + 1, "task": "t", "doc_id": str(i), "score": 0.5, "question": f"q{i}", "options": "A | B",
                 "given_label": "A", "methods": run_tag, "still_flagged": "yes", "human_verdict": "", "notes": ""}
                for r, i in enumerate(ids)]

    write_flagged(rows_for(old_ids, "first"), out)
    # a reviewer fills verdicts and notes, and adds a column of their own
    import csv as _csv

    path = out / "flagged.csv"
    with path.open(newline="", encoding="utf-8") as f:
        old = list(_csv.DictReader(f))
    expected = {}
    for row, (verdict, note, extra) in zip(old, edits):
        row["human_verdict"], row["notes"], row["reviewer"] = verdict, note, extra
        expected[row["doc_id"]] = {c: v for c, v in (("human_verdict", verdict), ("notes", note), ("reviewer", extra)) if v.strip()}
    with path.open("w", newline="", encoding="utf-8") as f:
        w = _csv.DictWriter(f, fieldnames=list(old[0]) if old else ["task", "doc_id", "human_verdict", "notes", "reviewer"])
        w.writeheader()
        w.writerows(old)
    write_flagged(rows_for(new_ids, "second"), out)  # the rerun
    with path.open(newline="", encoding="utf-8") as f:
        new = {r["doc_id"]: r for r in _csv.DictReader(f)}
    for doc, cols in expected.items():
        for c, v in cols.items():
            assert new[doc][c] == v, (doc, c)
        if cols:
            assert new[doc]["still_flagged"] == ("yes" if int(doc) in new_ids else "no")
    assert {d for d, r in new.items() if r["still_flagged"] == "yes"} == {str(i) for i in new_ids}


# -- risk control ---------------------------------------------------------------------------------------


def _risk_case(n=1200, seed=0):
    a, b, _ = toy_runs(n=n, seed=seed, flip_every=5)
    panel = build_panel([a, b], n_bins=10)
    out = run_methods(panel, methods=["high-confidence"], require_agreement=False)
    flipped = {a.records[i].key for i in range(n) if i % 5 == 0}
    ref = Reference("truth", {k: RefEntry("wrong" if k in flipped else "ok") for k in a.keys}, frozenset({"wrong"}))
    return out, ref


def test_risk_control_picks_the_largest_certified_k_and_flags_nothing_when_none_passes():
    from calib_harness.cleaning.risk_control import risk_controlled_flags

    out, ref = _risk_case()
    rows = {r.method: r for r in evaluate(out, ref) if r.positives == "any"}
    rc = risk_controlled_flags(out, ref, min_precision=0.6, delta=0.1)
    assert rc.chosen is not None and rc.record["satisfied"] and "probability >= 0.9" in rc.guarantee
    k = int(rc.chosen.split("=")[1])
    assert rc.n_flagged == rows[rc.chosen].n_flagged > 0
    # every point LTT certified has an empirical calibration precision >= 0.6; the chosen one is the largest certified K
    tested = rc.record["operating_points_tested"]
    cert = [tested[i] for i, c in enumerate(rc.record["certified"]) if c]
    assert cert and cert[-1] == rc.chosen
    # fixed-sequence testing along K: every tested point up to the chosen one is certified
    assert cert == tested[: tested.index(rc.chosen) + 1]
    assert all(1 - rc.record["empirical_risks"][i] >= 0.6 for i in range(len(cert)))
    # Bonferroni over every K: also valid, never more permissive here
    bonf = risk_controlled_flags(out, ref, min_precision=0.6, delta=0.1, procedure="bonferroni")
    assert bonf.chosen is not None and bonf.n_flagged <= rc.n_flagged
    # the held-out half agrees (this data is far above the bar)
    assert rc.holdout["precision"] >= 0.6
    d = rc.to_dict()
    assert d["chosen_point"]["K"] == k and d["references"]
    # a reference under which the flags are mostly wrong: no K reaches the bar, nothing is flagged, and it says so
    liar = Reference("liar", {k: RefEntry("ok" if ref.is_error(e) else "wrong") for k, e in ref.entries.items()},
                     frozenset({"wrong"}))
    none = risk_controlled_flags(out, liar, min_precision=0.5, delta=0.1)
    assert none.chosen is None and none.n_flagged == 0 and not none.record["satisfied"]
    assert none.record["fallback"] == "flag nothing" and "nothing is flagged" in none.summary_line()


def test_risk_control_errors_clearly_with_too_few_labelled_samples():
    from calib_harness.cleaning.risk_control import risk_controlled_flags

    out, ref = _risk_case(n=120)
    with pytest.raises(ValueError, match=r"too few calibration samples.*needs at least \d+ flagged labelled"):
        risk_controlled_flags(out, ref, min_precision=0.99, delta=0.01)
    with pytest.raises(ValueError, match="strictly between 0 and 1"):
        risk_controlled_flags(out, ref, min_precision=1.0, delta=0.1)


def test_risk_control_guarantee_holds_across_splits():
    """Over 60 random labelled/held-out splits, the held-out precision of the chosen point falls below
    the bar rarely (<= delta plus sampling slack); LTT's guarantee, checked on data."""
    from calib_harness.cleaning.risk_control import risk_controlled_flags

    out, ref = _risk_case(n=1500, seed=3)
    covered, err = ref.labels_for(out.panel.keys)
    bad = found = 0
    for s in range(60):
        rc = risk_controlled_flags(out, ref, min_precision=0.75, delta=0.1, seed=s)
        if rc.chosen is None:
            continue
        found += 1
        # the guarantee is about the flagged population: measure precision on all flagged docs of the held-out half
        bad += rc.holdout["precision"] < 0.75 - 0.05
    assert found >= 30
    assert bad / found <= 0.1 + 0.1


def test_records_without_a_confidence_are_refused_with_the_reason():
    # stock generate_until logs carry no confidence: cleaning ranks by confidence, so it says so
    recs = [SampleRecord("gsm8k", str(i), "stock", "1", None, 1.0, "1") for i in range(40)]
    with pytest.raises(RecordError, match="carry no confidence"):
        build_panel([Run("stock", recs)], n_bins=2)
