"""GATEKEEPER: hand-computed loss values, cascade metrics, and short real fine-tuning runs."""

from __future__ import annotations

import copy
import dataclasses
import json
import math

import numpy as np
import pytest
import torch

from calib_harness import metrics
from calib_harness.gatekeeper.evaluation import (
    auroc,
    deferral_curves,
    evaluate_confidences,
    fit_cc_router,
    fit_temperature,
    max_prob,
    overlap_so,
)
from calib_harness.gatekeeper.loss import (
    gatekeeper_loss,
    gatekeeper_loss_parts,
    gatekeeper_token_loss,
    gatekeeper_token_loss_parts,
    kl_to_uniform,
    shift_for_causal_lm,
)


# -- loss values, by hand -------------------------------------------------------------------
def _ce(logits, y):
    return math.log(sum(math.exp(v) for v in logits)) - logits[y]


def _kl_uniform(logits):
    z = sum(math.exp(v) for v in logits)
    p = [math.exp(v) / z for v in logits]
    return sum(q * math.log(q) for q in p) + math.log(len(p))


def test_classifier_loss_hand_computed():
    logits = torch.tensor([[2.0, 0.0, 0.0], [0.0, 1.0, 0.0]])
    labels = torch.tensor([0, 2])  # sample 0 right (argmax 0), sample 1 wrong (argmax 1)
    # CE of sample 0: log(e^2 + 2) - 2; KL(p || U) of sample 1 with p = (1, e, 1) / (e + 2)
    ce0 = math.log(math.exp(2) + 2) - 2
    e = math.e
    kl1 = 2 * (1 / (e + 2)) * math.log(1 / (e + 2)) + (e / (e + 2)) * math.log(e / (e + 2)) + math.log(3)
    assert ce0 == pytest.approx(_ce([2, 0, 0], 0))
    assert kl1 == pytest.approx(_kl_uniform([0, 1, 0]))
    for alpha in (0.0, 0.3, 1.0):
        expected = alpha * ce0 / 2 + (1 - alpha) * kl1 / 2  # both terms divided by the batch size N = 2
        assert float(gatekeeper_loss(logits, labels, alpha)) == pytest.approx(expected, rel=1e-6)
    parts = gatekeeper_loss_parts(logits, labels, 0.3)
    assert (parts.n_correct, parts.n_incorrect) == (1, 1)
    assert float(parts.corr) == pytest.approx(ce0 / 2, rel=1e-6)
    assert float(parts.incorr) == pytest.approx(kl1 / 2, rel=1e-6)


def test_classifier_loss_correct_override_and_limits():
    logits = torch.tensor([[2.0, 0.0, 0.0], [0.0, 1.0, 0.0]])
    labels = torch.tensor([0, 2])
    # predictions frozen elsewhere say both are wrong: only the KL term remains
    both_wrong = gatekeeper_loss(logits, labels, 0.5, correct=torch.tensor([False, False]))
    assert float(both_wrong) == pytest.approx(0.5 * (_kl_uniform([2, 0, 0]) + _kl_uniform([0, 1, 0])) / 2, rel=1e-6)
    # all correct and alpha = 1: plain mean cross-entropy
    lg = torch.tensor([[3.0, 1.0], [0.5, 2.0], [1.0, -1.0]])
    y = lg.argmax(1)
    assert float(gatekeeper_loss(lg, y, 1.0)) == pytest.approx(float(torch.nn.functional.cross_entropy(lg, y)), rel=1e-6)
    # a uniform prediction is at zero KL, and the KL term's gradient vanishes there
    z = torch.zeros(1, 4, requires_grad=True)
    assert float(kl_to_uniform(z.detach())) == pytest.approx(0.0, abs=1e-7)
    gatekeeper_loss(z, torch.tensor([0]), 0.0, correct=torch.tensor([False])).backward()
    assert torch.allclose(z.grad, torch.zeros_like(z.grad), atol=1e-7)
    with pytest.raises(ValueError):
        gatekeeper_loss(lg, y, 1.5)


def test_kl_gradient_flattens_wrong_prediction():
    z = torch.tensor([[0.0, 3.0, 0.0]], requires_grad=True)
    gatekeeper_loss(z, torch.tensor([0]), 0.2).backward()  # wrong: only KL, weight 0.8
    with torch.no_grad():
        z2 = z - 0.5 * z.grad
    assert float(kl_to_uniform(z2)) < float(kl_to_uniform(z.detach()))
    assert int(z2.argmax()) == 1 and float(z2.softmax(-1).max()) < float(z.detach().softmax(-1).max())


def test_token_loss_hand_computed_with_masks():
    # V = 3; sequence 0: position 0 is prompt (masked), 1 right, 2 wrong; sequence 1: 1 wrong token + padding
    logits = torch.tensor(
        [
            [[5.0, 0.0, 0.0], [1.0, 0.0, 0.0], [0.0, 2.0, 0.0]],
            [[0.0, 0.0, 1.0], [9.0, 9.0, 9.0], [9.0, 0.0, 0.0]],
        ]
    )
    labels = torch.tensor([[-100, 0, 2], [1, -100, -100]])
    ce_right = _ce([1, 0, 0], 0)
    kl_a, kl_b = _kl_uniform([0, 2, 0]), _kl_uniform([0, 0, 1])
    alpha = 0.4
    per_seq = (alpha * ce_right + (1 - alpha) * (kl_a + kl_b)) / 2  # eqs. 4-5: sum over tokens, / N sequences
    per_tok = (alpha * ce_right + (1 - alpha) * (kl_a + kl_b)) / 3  # 3 unmasked tokens
    assert float(gatekeeper_token_loss(logits, labels, alpha)) == pytest.approx(per_seq, rel=1e-6)
    assert float(gatekeeper_token_loss(logits, labels, alpha, normalize="tokens")) == pytest.approx(per_tok, rel=1e-6)
    parts = gatekeeper_token_loss_parts(logits, labels, alpha)
    assert (parts.n_correct, parts.n_incorrect) == (1, 2)
    # masked positions carry no gradient
    lg = logits.clone().requires_grad_(True)
    gatekeeper_token_loss(lg, labels, alpha).backward()
    assert torch.all(lg.grad[0, 0] == 0) and torch.all(lg.grad[1, 1:] == 0)
    assert torch.any(lg.grad[0, 2] != 0)


def test_shift_for_causal_lm():
    logits = torch.arange(2 * 4 * 3, dtype=torch.float32).view(2, 4, 3)
    labels = torch.tensor([[-100, -100, 5, 6], [-100, 7, 8, -100]])
    lg, lb = shift_for_causal_lm(logits, labels)
    assert lg.shape == (2, 3, 3) and lb.tolist() == [[-100, 5, 6], [7, 8, -100]]
    assert torch.equal(lg[0, 1], logits[0, 1])  # position 1 predicts token 2


# -- metrics ------------------------------------------------------------------------------
def test_ideal_deferral_and_sd_extremes():
    r = np.array([0.0, 0.1, 0.2, 0.5, 1.0])
    # p_s = 0.8, p_l = 0.9: slope 0.5 up to r = 0.2
    from calib_harness.routing.curves import ideal_deferral_accuracy

    assert ideal_deferral_accuracy(r, 0.8, 0.9).tolist() == pytest.approx([0.8, 0.85, 0.9, 0.9, 0.9])
    rng = np.random.default_rng(0)
    small = (rng.random(2000) < 0.7).astype(float)
    large = np.ones(2000)
    perfect = deferral_curves(small, small, large)  # wrong ones (key 0) deferred first
    assert perfect.s_d == pytest.approx(1.0, abs=2e-3)
    worst = deferral_curves(small, -small, large)
    assert worst.s_d < -0.9
    rand = deferral_curves(small, rng.random(2000), large)
    assert abs(rand.s_d) < 0.1
    # realized curve endpoints: p_s at r = 0 and p_l at r = 1
    assert perfect.realized[0] == pytest.approx(small.mean()) and perfect.realized[-1] == pytest.approx(1.0)


def test_overlap_and_auroc():
    rng = np.random.default_rng(1)
    same = rng.uniform(0.3, 0.9, 4000)
    y = (np.arange(4000) % 2).astype(float)
    assert overlap_so(same, y) > 0.9
    apart = np.where(y == 1, rng.uniform(0.9, 1.0, 4000), rng.uniform(0.0, 0.2, 4000))
    assert overlap_so(apart, y) < 0.1
    # AUROC by hand: correct {0.9, 0.4}, incorrect {0.5, 0.1}: pairs won 3 of 4
    assert auroc([0.9, 0.4, 0.5, 0.1], [1, 1, 0, 0]) == pytest.approx(0.75)
    assert auroc([0.5, 0.5], [1, 0]) == pytest.approx(0.5)
    # thin adapters: the shared metrics, plus this module's conventions for empty / degenerate groups
    assert overlap_so(same, y) == metrics.overlap_so(same, y == 1)
    assert auroc(same, y) == metrics.auroc(same, y == 1)
    # one policy for degenerate inputs (as metrics.py): undefined is NaN here, null + reason in JSON
    assert math.isnan(overlap_so([0.2, 0.9], [1, 1])) and math.isnan(auroc([0.2, 0.9], [1, 1]))
    ev = evaluate_confidences("untuned", None, [0.2, 0.9], [1.0, 1.0])
    from calib_harness.outputs import dumps_strict

    d = json.loads(dumps_strict(ev.to_dict()))
    assert d["s_o"] is None and d["auroc"] is None
    assert "every prediction is correct" in d["null_reasons"]["auroc"]
    assert math.isnan(overlap_so([0.2, 0.9, 0.5], [1, 1, 0]))  # one incorrect sample: no KDE


def test_temperature_and_cc_router():
    rng = np.random.default_rng(2)
    y = rng.integers(0, 5, 3000)
    z = rng.normal(size=(3000, 5))
    z[np.arange(3000), y] += 1.0
    t = fit_temperature(z * 4.0, y)  # logits 4x too sharp: T close to 4
    assert 3.2 < t < 4.8
    cs = np.linspace(0.2, 1.0, 100)
    cl = np.where(cs < 0.6, 0.95, cs)  # M_L far better only where M_S is unsure
    router = fit_cc_router(cs, cl, n_bins=4)
    assert router.name == "CC" and router.n_bins_ == 4
    # low-confidence, high-advantage bins go to M_L first: with K = 2 bins kept, those are the top two
    keep = router.keep_small(cs, 2)
    assert not keep[cs < 0.4].any() and keep[cs > 0.8].all()
    # posthoc_cc rows use the router's K-curve (K = 0..4 operating points)
    ok = (cs > 0.5).astype(float)
    ev = evaluate_confidences("posthoc_cc", None, cs, ok, np.ones_like(cs), router=router)
    ev_conf = evaluate_confidences("untuned", None, cs, ok, np.ones_like(cs))
    assert 0 < ev.s_d <= ev_conf.s_d + 1e-9 and ev.s_o == ev_conf.s_o


# -- short real fine-tuning runs ----------------------------------------------------------------
def test_mnist_gatekeeper_finetune_lowers_overlap():
    """Stage 1 on 3000 real MNIST images, then GATEKEEPER (alpha=0.3) on 4000 disjoint images:
    on 5000 held-out test images s_o goes down and AUROC up, and on the fine-tuning images the
    confidence gap between right and wrong predictions widens."""
    from calib_harness.gatekeeper.mnist import SmallCNN, load_mnist
    from calib_harness.gatekeeper.torch_loop import predict_logits, train_classifier

    torch.set_num_threads(1)
    d = load_mnist()
    torch.manual_seed(0)
    base = SmallCNN(width=4, hidden=16)
    train_classifier(base, d.x_train[:3000], d.y_train[:3000], epochs=3, lr=1e-3, progress=False)
    x_ft, y_ft = d.x_train[3000:7000], d.y_train[3000:7000]

    def stats(model, x, y):
        z = predict_logits(model, x).numpy()
        conf, ok = max_prob(z), (z.argmax(1) == y.numpy()).astype(float)
        return overlap_so(conf, ok), auroc(conf, ok), conf[ok == 1].mean() - conf[ok == 0].mean(), ok.mean()

    so0, au0, _, acc0 = stats(base, d.x_test[:5000], d.y_test[:5000])
    _, _, gap0, ft_acc0 = stats(base, x_ft, y_ft)
    assert 0.6 < acc0 < 0.99 and ft_acc0 < 0.99  # an imperfect small model: there are errors to learn from
    tuned = copy.deepcopy(base)
    log = train_classifier(tuned, x_ft, y_ft, loss="gatekeeper", alpha=0.3, epochs=2, lr=5e-4, progress=False)
    so1, au1, _, acc1 = stats(tuned, d.x_test[:5000], d.y_test[:5000])
    _, _, gap1, _ = stats(tuned, x_ft, y_ft)
    print(f"untuned: s_o={so0:.3f} AUROC={au0:.3f} acc={acc0:.3f} train gap={gap0:.3f}; "
          f"alpha=0.3: s_o={so1:.3f} AUROC={au1:.3f} acc={acc1:.3f} train gap={gap1:.3f}")
    assert log.loss[-1] < log.loss[0]
    assert so1 < so0 - 0.03
    assert au1 > au0
    assert gap1 > gap0 + 0.02
    # the frozen-prediction variant of the indicator also runs and trains
    tuned2 = copy.deepcopy(base)
    log2 = train_classifier(tuned2, d.x_train[3000:4000], d.y_train[3000:4000], loss="gatekeeper", alpha=0.3,
                            epochs=1, correct_from="epoch_start", progress=False)
    assert np.isfinite(log2.loss[0]) and 0 < log2.frac_correct[0] < 1


def test_evaluate_confidences_row():
    conf = np.array([0.9, 0.8, 0.3, 0.2])
    ok = np.array([1.0, 1.0, 0.0, 0.0])
    ev = evaluate_confidences("gatekeeper", 0.5, conf, ok, np.array([1.0, 1.0, 1.0, 0.0]))
    assert ev.acc_small == 0.5 and ev.acc_large == 0.75 and ev.auroc == 1.0
    json.dumps(ev.to_dict())  # rows serialise


@pytest.fixture(scope="module")
def smollm():
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from calib_harness.models import resolve_model

    path = resolve_model("smollm2-135m")
    return AutoTokenizer.from_pretrained(path), path


@pytest.mark.slow
def test_lm_trainer_gatekeeper_alpha0_flattens_wrong_answer_tokens(smollm, shared_data, tmp_path):
    """GatekeeperTrainer on 4 real ARC-Easy train questions: 3 steps with alpha = 0 (KL only) lower the
    loss and bring the answer tokens the model gets wrong closer to uniform; prompt tokens stay masked."""
    from transformers import AutoModelForCausalLM

    from calib_harness.gatekeeper.arc import collate, load_arc_docs, train_examples
    from calib_harness.gatekeeper.trainer import finetune_lm

    tok, path = smollm
    torch.set_num_threads(1)
    docs = load_arc_docs("train", limit=4, data_dir=str(shared_data))
    assert docs[0].context.startswith("Question: ") and docs[0].context.endswith("\nAnswer:")  # lm-eval's prompt
    batch = collate(train_examples(tok, docs), tok.pad_token_id)
    # prompt tokens are masked: the first label is -100 and every unmasked label is an answer token
    assert (batch["labels"][:, 0] == -100).all()
    n_answer = [len(tok(" " + d.options[d.gold], add_special_tokens=False).input_ids) for d in docs]
    assert abs(int((batch["labels"] != -100).sum()) - sum(n_answer)) <= len(docs)

    model = AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32)

    @torch.no_grad()
    def wrong_token_kl(m):
        m.eval()
        lg, lb = shift_for_causal_lm(m(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits, batch["labels"])
        wrong = (lb != -100) & (lg.argmax(-1) != lb)
        return float(kl_to_uniform(lg)[wrong].mean()), wrong

    kl0, wrong0 = wrong_token_kl(model)
    assert wrong0.sum() > 0
    hist = finetune_lm(model, tok, docs, alpha=0.0, output_dir=tmp_path / "tr", max_steps=3, batch_size=4, lr=1.5e-4,
                       progress=False)
    assert len(hist) == 3 and hist[-1]["loss"] < hist[0]["loss"]
    assert hist[0]["corr"] >= 0 and 0 < hist[0]["frac_correct_tokens"] < 1
    kl1, _ = wrong_token_kl(model)
    assert kl1 < kl0 * 0.8


@pytest.mark.slow
def test_arc_sweep_stage1_protocol_and_resume(smollm, shared_data, tmp_path):
    """The paper's two-stage protocol on real ARC-Easy docs (tiny budget): Stage 1 (CE) is trained once and
    saved, the variants start from it on the next, disjoint train docs, and a rerun reuses every record."""
    from calib_harness.gatekeeper.sweep import ArcSweepConfig, run_arc_sweep

    torch.set_num_threads(1)
    cfg = ArcSweepConfig(alphas=(0.5,), n_train=4, n_eval=8, n_cal=0, max_steps=1, batch_size=4, lr=1e-4, control=False,
                         stage1_steps=1, data_dir=str(shared_data), oracle_large=True, device="cpu")
    md = run_arc_sweep(tmp_path, cfg, progress=False)
    folder = tmp_path / "arc_easy"
    stage1 = json.loads((folder / "stage1_model" / "stage1.json").read_text())
    assert stage1 == {**stage1, "steps": 1, "docs": "ARC-Easy train[:4]"}
    untuned = json.loads((folder / "records" / "untuned" / "meta.json").read_text())["note"]
    tuned = json.loads((folder / "records" / "alpha_0.5" / "meta.json").read_text())["note"]
    assert "after Stage 1" in untuned and "train[4:8]" in tuned and "after Stage 1" in tuned
    assert "| gatekeeper | 0.500 |" in md and "| untuned |" in md and "g_NENT" in md and "oracle M_L" in md
    # resumable: nothing is retrained or rescored on a rerun
    mtimes = {p: p.stat().st_mtime for p in folder.glob("records/*/records.jsonl")}
    stage1_mtime = (folder / "stage1_model" / "config.json").stat().st_mtime
    run_arc_sweep(tmp_path, cfg, progress=False)
    assert {p: p.stat().st_mtime for p in folder.glob("records/*/records.jsonl")} == mtimes
    assert (folder / "stage1_model" / "config.json").stat().st_mtime == stage1_mtime
    # a Stage-1 model trained with other settings is never reused silently
    with pytest.raises(ValueError, match="stage1_model was trained with"):
        run_arc_sweep(tmp_path, dataclasses.replace(cfg, stage1_steps=2), progress=False)


@pytest.mark.slow
def test_arc_records_come_from_lm_eval(smollm, shared_data, fixtures_dir):
    """The GATEKEEPER ARC path scores through lm-eval's own task: on the same docs its records equal those of a
    stock lm-eval run of calib_arc_easy (the committed fixture), plus g_NENT's entropy feature."""
    from transformers import AutoModelForCausalLM

    from calib_harness.gatekeeper.arc import evaluate_lm_eval, load_arc_docs, nent_confidence
    from calib_harness.lm_eval_io import load_run

    tok, path = smollm
    torch.set_num_threads(1)
    stock = load_run(fixtures_dir / "records" / "lm_eval_arc_easy_smollm2")
    docs = load_arc_docs("test", limit=6, offset=3, data_dir=str(shared_data))
    model = AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32)
    run = evaluate_lm_eval(model, tok, docs, "smollm2-135m", batch_size=4, data_dir=str(shared_data))
    assert [r.doc_id for r in run.records] == [str(i) for i in range(3, 9)]
    by = {r.doc_id: r for r in stock.records}
    for r in run.records:
        s = by[r.doc_id]
        assert (r.prediction, r.gold, r.score) == (s.prediction, s.gold, s.score)
        assert np.allclose(r.option_scores, s.option_scores, atol=1e-3)
        assert r.features["mean_entropy"] > 0
    g = nent_confidence(run, len(tok))
    assert ((0 < g) & (g < 1)).all()


def test_large_model_must_be_given():
    from calib_harness.gatekeeper.sweep import check_large

    with pytest.raises(ValueError, match="--large-records RUN .* or --oracle-large"):
        check_large(None, False)
    with pytest.raises(ValueError, match="not both"):
        check_large("x", True)
    with pytest.raises(FileNotFoundError, match="no such file"):
        check_large("/nonexistent/records.jsonl", False)
    check_large(None, True)
