"""ARC-Easy in lm-eval's cloze format for GATEKEEPER on a causal LM.

Prompt ``"Question: {q}\\nAnswer:"``, continuation ``" " + option text`` (lm-eval's ``arc_easy``).
Confidence = softmax over the options' summed continuation log-likelihoods (the harness's
``option_token_mode="sequence"`` records).  Training examples are prompt + gold continuation with
the prompt and padding labels set to -100, so the token-wise loss sees only answer tokens.
Continuation tokens are split from the prompt as lm-eval does: encode(prompt + continuation)
minus the encoded prompt's length.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from calib_harness.records import Run, SampleRecord

TASK = "calib_arc_easy"
IGNORE = -100


@dataclass(frozen=True)
class ArcDoc:
    doc_id: str  # index in the file (lm-eval's doc_id for the test split)
    arc_id: str
    question: str
    options: tuple[str, ...]
    labels: tuple[str, ...]
    gold: int

    @property
    def context(self) -> str:
        return f"Question: {self.question}\nAnswer:"


def load_arc_jsonl(path: str | Path, limit: int | None = None, offset: int = 0) -> list[ArcDoc]:
    """Docs of an ARC jsonl file in file order; ``doc_id`` is the line index."""
    docs = []
    with open(path) as f:
        for i, line in enumerate(f):
            if i < offset:
                continue
            if limit is not None and len(docs) >= limit:
                break
            d = json.loads(line)
            ch = d["question"]["choices"]
            labels = tuple(c["label"] for c in ch)
            docs.append(
                ArcDoc(str(i), d["id"], d["question"]["stem"], tuple(c["text"] for c in ch), labels, labels.index(d["answerKey"]))
            )
    return docs


def split_continuation(tokenizer, context: str, continuation: str) -> tuple[list[int], list[int]]:
    whole = tokenizer(context + continuation, add_special_tokens=False).input_ids
    ctx = tokenizer(context, add_special_tokens=False).input_ids
    # lm-eval: the context keeps its own encoding, the continuation is whatever follows it
    return ctx, whole[len(ctx) :]


def train_examples(tokenizer, docs: list[ArcDoc]) -> list[dict[str, list[int]]]:
    """Prompt + gold continuation, prompt labels masked with -100."""
    out = []
    for d in docs:
        ctx, cont = split_continuation(tokenizer, d.context, " " + d.options[d.gold])
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


@torch.no_grad()
def score_options(model, tokenizer, docs: list[ArcDoc], batch_size: int = 16, progress: bool = True) -> list[dict]:
    """Per doc: summed log-likelihood of each option and mean next-token entropy over its tokens."""
    model.eval()
    items = []
    for di, d in enumerate(docs):
        for oi, opt in enumerate(d.options):
            ctx, cont = split_continuation(tokenizer, d.context, " " + opt)
            items.append((di, oi, ctx + cont, len(ctx)))
    order = sorted(range(len(items)), key=lambda i: len(items[i][2]))
    ll = [[0.0] * len(d.options) for d in docs]
    ent = [[0.0] * len(d.options) for d in docs]
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    for s in tqdm(range(0, len(order), batch_size), desc="score options", disable=not progress, leave=False):
        chunk = [items[i] for i in order[s : s + batch_size]]
        n = max(len(c[2]) for c in chunk)
        ids = torch.full((len(chunk), n), pad, dtype=torch.long)
        att = torch.zeros((len(chunk), n), dtype=torch.long)
        for j, c in enumerate(chunk):
            ids[j, : len(c[2])] = torch.tensor(c[2])
            att[j, : len(c[2])] = 1
        logits = model(input_ids=ids, attention_mask=att).logits.float()
        logp = F.log_softmax(logits[:, :-1], dim=-1)
        for j, (di, oi, seq, n_ctx) in enumerate(chunk):
            pos = torch.arange(n_ctx - 1, len(seq) - 1)
            tgt = torch.tensor(seq[n_ctx:])
            lp = logp[j, pos]
            ll[di][oi] = float(lp.gather(1, tgt[:, None]).sum())
            ent[di][oi] = float(-(lp.exp() * lp).sum(-1).mean())
    return [{"loglik": ll[i], "entropy": ent[i]} for i in range(len(docs))]


def records_from_scores(model_name: str, docs: list[ArcDoc], scores: list[dict]) -> Run:
    """Harness records (multiple choice, sequence mode; margin and entropy of the option distribution) plus
    ``mean_entropy``: the mean next-token entropy over the predicted option's tokens (g_NENT's input)."""
    recs = []
    for d, s in zip(docs, scores):
        k = int(np.argmax(np.asarray(s["loglik"], dtype=np.float64)))
        recs.append(
            SampleRecord.from_option_scores(
                s["loglik"], d.labels, d.gold, task=TASK, doc_id=d.doc_id, model=model_name,
                option_token_mode="sequence", features={"mean_entropy": float(s["entropy"][k])}, prompt=d.context,
            )
        )
    return Run(model_name, recs)


def nent_confidence(run: Run, vocab_size: int) -> np.ndarray:
    """The paper's g_NENT (eq. 8) mapped to [0, 1]: 1 - mean entropy / log V over the predicted option's tokens."""
    h = np.array([r.features["mean_entropy"] for r in run.records])
    return np.clip(1.0 - h / math.log(vocab_size), 0.0, 1.0)
