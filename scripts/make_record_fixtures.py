"""Make the small real record fixtures under ``tests/fixtures/records/``.

Scores the answer options of ARC questions with a shipped model, the way lm-eval's
``arc_easy`` task does: context ``"Question: {q}\\nAnswer:"``, continuation ``" " + option``,
option score = summed log-likelihood of the continuation tokens.  Each question becomes
one :class:`calib_harness.records.SampleRecord` with ``option_scores`` = the option
log-likelihoods (``option_token_mode="sequence"``), ``confidence = max softmax``,
``score = 1`` when the argmax is the gold option, and the predicted option's token-level
features (``mean_logit``, ``mean_logprob``, ``sum_logprob``, ``n_tokens``) plus the option
distribution's ``margin`` and ``entropy``.

    python scripts/make_record_fixtures.py                       # both default fixtures
    python scripts/make_record_fixtures.py --split ARC-Easy/ARC-Easy-Dev --n 200 --out x.jsonl

Data: AI2 Reasoning Challenge (ARC), Allen Institute for AI, CC BY-SA 4.0, read from
``/work/shared/data/arc`` (or ``$CALIB_HARNESS_SHARED_DATA/arc``).
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

logger = logging.getLogger("make_record_fixtures")

DEFAULTS = [
    # (split file stem, task name, n questions, output file)
    ("ARC-Easy/ARC-Easy-Dev", "arc_easy_dev", 200, "arc_easy_dev_smollm2.jsonl"),
    ("ARC-Challenge/ARC-Challenge-Dev", "arc_challenge_dev", 150, "arc_challenge_dev_smollm2.jsonl"),
]


def _data_root() -> Path:
    from calib_harness.paths import shared_data_dir

    return shared_data_dir() / "arc"


def score_split(model, tok, split: str, task: str, n: int, model_name: str):
    import numpy as np
    import torch

    from calib_harness.records import SampleRecord

    rows = [json.loads(line) for line in (_data_root() / f"{split}.jsonl").open()][:n]
    records = []
    for i, row in enumerate(rows):
        q = row["question"]["stem"]
        labels = [c["label"] for c in row["question"]["choices"]]
        texts = [c["text"] for c in row["question"]["choices"]]
        context = f"Question: {q}\nAnswer:"
        ctx_ids = tok(context, add_special_tokens=False)["input_ids"]
        scores, feats = [], []
        for t in texts:
            whole = tok(context + " " + t, add_special_tokens=False)["input_ids"]
            # lm-eval splits the continuation off the encoded whole string
            cont = whole[len(ctx_ids) :]
            ids = torch.tensor([ctx_ids + cont])
            with torch.no_grad():
                logits = model(ids).logits[0, :-1].double()
            logp = torch.log_softmax(logits, dim=-1)
            pos = torch.arange(len(ctx_ids) - 1, len(ctx_ids) - 1 + len(cont))
            tgt = torch.tensor(cont)
            tok_lp = logp[pos, tgt]
            tok_logit = logits[pos, tgt]
            scores.append(float(tok_lp.sum()))
            feats.append(
                {
                    "mean_logit": float(tok_logit.mean()),
                    "mean_logprob": float(tok_lp.mean()),
                    "sum_logprob": float(tok_lp.sum()),
                    "n_tokens": float(len(cont)),
                }
            )
        # rounded as stored, so that confidence and score follow from the stored option scores
        scores = [round(v, 6) for v in scores]
        k = int(np.argmax(scores))
        records.append(
            SampleRecord.from_option_scores(
                scores, labels, row["answerKey"], task=task, doc_id=i, model=model_name,
                option_token_mode="sequence", features={key: round(v, 6) for key, v in feats[k].items()},
                prompt=q, extra={"arc_id": row["id"]},
            )
        )
        if (i + 1) % 50 == 0:
            logger.info("%s: %d/%d", task, i + 1, len(rows))
    return records


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", default="smollm2-135m")
    ap.add_argument("--split", help="e.g. ARC-Easy/ARC-Easy-Dev (default: the committed fixtures)")
    ap.add_argument("--task")
    ap.add_argument("--n", type=int, default=200)
    ap.add_argument("--out", type=Path)
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")

    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from calib_harness.models import resolve_model
    from calib_harness.records import Run

    torch.set_num_threads(args.threads)
    folder = resolve_model(args.model)
    tok = AutoTokenizer.from_pretrained(folder)
    model = AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32).eval()

    out_dir = REPO / "tests" / "fixtures" / "records"
    jobs = (
        [(args.split, args.task or Path(args.split).name.lower(), args.n, args.out)]
        if args.split
        else [(s, t, n, out_dir / f) for s, t, n, f in DEFAULTS]
    )
    for split, task, n, out in jobs:
        recs = score_split(model, tok, split, task, n, args.model)
        path = Run(args.model, recs).save(Path(out))
        acc = sum(r.score for r in recs) / len(recs)
        print(f"{path}: {len(recs)} records, accuracy {acc:.3f}, {path.stat().st_size / 1024:.0f} KB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
