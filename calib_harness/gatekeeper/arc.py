"""ARC-Easy through lm-eval for GATEKEEPER on a causal LM.

The documents, the prompt and the options come from lm-eval's own ``calib_arc_easy`` task (our YAML over
lm-eval's ``arc_easy`` cloze format: ``doc_to_text``, ``doc_to_choice``, ``doc_to_target``,
``target_delimiter``; :func:`arc_task`), and a model is scored by running that task through lm-eval
(:func:`evaluate_lm_eval`, lm-eval's HFLM around the in-memory model) and reading its per-sample records
(:func:`calib_harness.lm_eval_io.record_from_sample`) -- nothing of lm-eval's scoring is re-implemented here.
The one figure lm-eval does not log, the mean next-token entropy over the predicted option's tokens (the
input of the paper's g_NENT, eq. 8), is added by :func:`predicted_option_entropy`.

Training examples are prompt + gold continuation with the prompt and padding labels set to -100, so the
token-wise loss sees only answer tokens.  Continuation tokens are split from the prompt as lm-eval does:
encode(prompt + continuation) minus the encoded prompt's length.
"""

from __future__ import annotations

import dataclasses
import functools
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from calib_harness.records import Run

TASK = "calib_arc_easy"
IGNORE = -100


@dataclass(frozen=True)
class ArcDoc:
    doc_id: str  # index in lm-eval's split (lm-eval's doc_id for the test split)
    arc_id: str
    question: str
    options: tuple[str, ...]
    labels: tuple[str, ...]
    gold: int
    context: str  # lm-eval's doc_to_text
    delimiter: str = " "  # lm-eval's target_delimiter


@functools.lru_cache(maxsize=4)
def arc_task(data_dir: str | None = None):
    """lm-eval's ``calib_arc_easy`` task object, reading the ARC files of ``data_dir`` (default
    :func:`calib_harness.paths.shared_data_dir`)."""
    from lm_eval.tasks import TaskManager

    from calib_harness import data_sources
    from calib_harness.paths import shared_data_dir
    from calib_harness.tasks import TASKS_DIR

    data_sources.set_data_dir(Path(data_dir) if data_dir else shared_data_dir())
    return TaskManager(include_path=str(TASKS_DIR)).load([TASK])["tasks"][TASK]


def load_arc_docs(split: str, limit: int | None = None, offset: int = 0, data_dir: str | None = None) -> list[ArcDoc]:
    """Docs ``[offset, offset + limit)`` of lm-eval's ``train`` or ``test`` split, with lm-eval's prompt."""
    task = arc_task(str(data_dir) if data_dir else None)
    if split not in ("train", "test"):
        raise ValueError(f"split must be 'train' or 'test', got {split!r}")
    docs = task.training_docs() if split == "train" else task.test_docs()
    end = len(docs) if limit is None else min(len(docs), offset + limit)
    out = []
    for i in range(offset, end):
        d = docs[i]
        out.append(ArcDoc(str(i), d["id"], d["question"], tuple(task.doc_to_choice(d)), tuple(d["choices"]["label"]),
                          int(task.doc_to_target(d)), task.doc_to_text(d), task.config.target_delimiter))
    return out


def split_continuation(tokenizer, context: str, continuation: str) -> tuple[list[int], list[int]]:
    whole = tokenizer(context + continuation, add_special_tokens=False).input_ids
    ctx = tokenizer(context, add_special_tokens=False).input_ids
    # lm-eval: the context keeps its own encoding, the continuation is whatever follows it
    return ctx, whole[len(ctx) :]


def train_examples(tokenizer, docs: list[ArcDoc]) -> list[dict[str, list[int]]]:
    """Prompt + gold continuation, prompt labels masked with -100."""
    out = []
    for d in docs:
        ctx, cont = split_continuation(tokenizer, d.context, d.delimiter + d.options[d.gold])
        out.append({"input_ids": ctx + cont, "labels": [IGNORE] * len(ctx) + cont})
    return out


def collate(batch: list[dict[str, list[int]]], pad_id: int) -> dict[str, torch.Tensor]:
    """Right-pad ``input_ids`` (pad id) and ``labels`` (-100); attention mask marks real tokens."""
    n = max(len(b["input_ids"]) for b in batch)
    ids = torch.full((len(batch), n), pad_id, dtype=torch.long)
    lab = torch.full((len(batch), n), IGNORE, dtype=torch.long)
    att = torch.zeros((len(batch), n), dtype=torch.long)
    for i, b in enumerate(batch):
        k = len(b["input_ids"])
        ids[i, :k] = torch.tensor(b["input_ids"])
        lab[i, :k] = torch.tensor(b["labels"])
        att[i, :k] = 1
    return {"input_ids": ids, "labels": lab, "attention_mask": att}


def evaluate_lm_eval(model, tokenizer, docs: list[ArcDoc], model_name: str, *, batch_size: int = 8,
                     device: str = "cpu", data_dir: str | None = None) -> Run:
    """Score ``model`` on ``docs`` (test split) by running lm-eval's task and reading its sample records; adds
    ``mean_entropy`` of the predicted option (:func:`predicted_option_entropy`)."""
    from lm_eval import simple_evaluate
    from lm_eval.models.huggingface import HFLM

    from calib_harness.lm_eval_io import record_from_sample

    ids = sorted(int(d.doc_id) for d in docs)
    lm = HFLM(pretrained=model, tokenizer=tokenizer, batch_size=batch_size, device=device)
    res = simple_evaluate(model=lm, tasks=[arc_task(str(data_dir) if data_dir else None)], samples={TASK: ids},
                          log_samples=True, bootstrap_iters=0, verbosity="WARNING")
    samples = sorted(res["samples"][TASK], key=lambda s: s["doc_id"])
    if len(samples) != len(ids):
        raise RuntimeError(f"lm-eval returned {len(samples)} samples for {len(ids)} docs")
    by_id = {d.doc_id: d for d in docs}
    records = []
    for s, i in zip(samples, ids):  # lm-eval numbers the selected docs 0..k-1 in dataset order
        s = dict(s, doc_id=i)
        records.append(record_from_sample(s, TASK, model_name))
    ent = predicted_option_entropy(model, tokenizer, [by_id[r.doc_id] for r in records],
                                   [r.prediction_index for r in records], device=device, batch_size=batch_size)
    records = [dataclasses.replace(r, features={**r.features, "mean_entropy": h}) for r, h in zip(records, ent)]
    return Run(model_name, records)


@torch.no_grad()
def predicted_option_entropy(model, tokenizer, docs: list[ArcDoc], option_index: list[int], *, device: str = "cpu",
                             batch_size: int = 8) -> list[float]:
    """Mean next-token entropy (nats) over the tokens of each doc's given option: g_NENT's input (eq. 8)."""
    model.eval()
    seqs = []
    for d, k in zip(docs, option_index):
        ctx, cont = split_continuation(tokenizer, d.context, d.delimiter + d.options[k])
        seqs.append((ctx + cont, len(ctx)))
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    out = [0.0] * len(seqs)
    for s in range(0, len(seqs), batch_size):
        chunk = seqs[s : s + batch_size]
        n = max(len(c[0]) for c in chunk)
        ids = torch.full((len(chunk), n), pad, dtype=torch.long)
        att = torch.zeros((len(chunk), n), dtype=torch.long)
        for j, (seq, _) in enumerate(chunk):
            ids[j, : len(seq)] = torch.tensor(seq)
            att[j, : len(seq)] = 1
        logp = F.log_softmax(model(input_ids=ids.to(device), attention_mask=att.to(device)).logits.float(), dim=-1)
        for j, (seq, n_ctx) in enumerate(chunk):
            lp = logp[j, n_ctx - 1 : len(seq) - 1]
            out[s + j] = float(-(lp.exp() * lp).sum(-1).mean())
    return out


def nent_confidence(run: Run, vocab_size: int) -> np.ndarray:
    """The paper's g_NENT (eq. 8) mapped to [0, 1]: 1 - mean entropy / log V over the predicted option's tokens."""
    h = np.array([r.features["mean_entropy"] for r in run.records])
    return np.clip(1.0 - h / math.log(vocab_size), 0.0, 1.0)
