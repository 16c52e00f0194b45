"""GATEKEEPER (Rabanser et al. 2025): confidence tuning of the small model of a cascade.

* :mod:`.loss`        the loss (classifier and token-wise), plain torch functions
* :mod:`.torch_loop`  plain torch training loop (timm / any classifier)
* :mod:`.trainer`     ``GatekeeperTrainer``, a transformers ``Trainer`` for causal LMs
* :mod:`.arc`         ARC-Easy through lm-eval's ``calib_arc_easy`` task: docs, prompt, records, g_NENT's entropy
* :mod:`.mnist`       the MNIST pair's data and CNNs
* :mod:`.evaluation`  s_o, s_d, AUROC, deferral curves, the post-hoc TS + CC baseline
* :mod:`.store`       the saved variants of a sweep (read by the table and the plots)
* :mod:`.sweep`       resumable alpha sweeps on the MNIST and ARC-Easy pairs
* :mod:`.plots`       the paper's Figures 4, 5 and 11 as PNGs
"""

from calib_harness.gatekeeper.loss import (
    GatekeeperLossParts,
    gatekeeper_loss,
    gatekeeper_loss_parts,
    gatekeeper_token_loss,
    gatekeeper_token_loss_parts,
    kl_to_uniform,
    shift_for_causal_lm,
)

__all__ = [
    "GatekeeperLossParts",
    "gatekeeper_loss",
    "gatekeeper_loss_parts",
    "gatekeeper_token_loss",
    "gatekeeper_token_loss_parts",
    "kl_to_uniform",
    "shift_for_causal_lm",
]
