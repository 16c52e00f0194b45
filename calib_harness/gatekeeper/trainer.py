"""A transformers ``Trainer`` whose loss is the token-wise GATEKEEPER loss.

Labels follow the transformers convention (-100 = masked; prompt and padding); the trainer
shifts logits and labels itself (position t predicts token t + 1), so the model is called
without ``labels`` and its own CE is never computed.
"""

from __future__ import annotations

from pathlib import Path

import torch
from transformers import Trainer, TrainingArguments

from calib_harness.gatekeeper.arc import IGNORE, ArcDoc, collate, train_examples
from calib_harness.gatekeeper.loss import gatekeeper_token_loss_parts, shift_for_causal_lm


class GatekeeperTrainer(Trainer):
    """``Trainer`` with ``loss = alpha * CE(correct tokens) + (1 - alpha) * KL(p || U)(incorrect tokens)``.

    ``alpha=None`` trains with plain token cross-entropy on the same tokens (the CE control).
    """

    def __init__(self, *args, alpha: float | None = 0.5, normalize: str = "sequences", **kwargs):
        super().__init__(*args, **kwargs)
        self.gk_alpha = alpha
        self.gk_normalize = normalize
        self.gk_history: list[dict[str, float]] = []

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        labels = inputs["labels"]
        outputs = model(input_ids=inputs["input_ids"], attention_mask=inputs.get("attention_mask"))
        logits, targets = shift_for_causal_lm(outputs.logits, labels)
        if self.gk_alpha is None:
            mask = targets != IGNORE
            ce = torch.nn.functional.cross_entropy(
                logits.reshape(-1, logits.shape[-1]).float(), targets.reshape(-1), ignore_index=IGNORE, reduction="sum"
            )
            denom = float(logits.shape[0]) if self.gk_normalize == "sequences" else float(max(int(mask.sum()), 1))
            loss = ce / denom
            self.gk_history.append({"loss": float(loss.detach())})
        else:
            parts = gatekeeper_token_loss_parts(logits, targets, self.gk_alpha, IGNORE, self.gk_normalize)
            loss = parts.loss
            self.gk_history.append(
                {
                    "loss": float(loss.detach()),
                    "corr": float(parts.corr),
                    "incorr": float(parts.incorr),
                    "frac_correct_tokens": parts.n_correct / max(parts.n_correct + parts.n_incorrect, 1),
                }
            )
        return (loss, outputs) if return_outputs else loss


class _ListDataset(torch.utils.data.Dataset):
    def __init__(self, items):
        self.items = items

    def __len__(self):
        return len(self.items)

    def __getitem__(self, i):
        return self.items[i]


def finetune_lm(
    model,
    tokenizer,
    train_docs: list[ArcDoc],
    *,
    alpha: float | None,
    output_dir: str | Path,
    max_steps: int = 40,
    batch_size: int = 8,
    lr: float = 2e-5,
    normalize: str = "sequences",
    seed: int = 0,
    progress: bool = True,
    device: str = "cpu",
) -> list[dict[str, float]]:
    """Fine-tune ``model`` in place on ARC train docs; returns the per-step loss history.

    ``device``: ``cpu`` or an accelerator (``cuda``); comes from the sweep's config, never hard-coded."""
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    args = TrainingArguments(
        output_dir=str(output_dir),
        per_device_train_batch_size=batch_size,
        max_steps=max_steps,
        learning_rate=lr,
        lr_scheduler_type="constant",
        warmup_steps=0,
        weight_decay=0.0,
        logging_steps=max(1, max_steps // 4),
        save_strategy="no",
        report_to="none",
        use_cpu=device == "cpu",
        seed=seed,
        data_seed=seed,
        disable_tqdm=not progress,
        dataloader_num_workers=0,
        remove_unused_columns=False,
    )
    trainer = GatekeeperTrainer(
        model=model,
        args=args,
        train_dataset=_ListDataset(train_examples(tokenizer, train_docs)),
        data_collator=lambda b: collate(b, pad),
        alpha=alpha,
        normalize=normalize,
    )
    trainer.train()
    model.eval()
    return trainer.gk_history
