"""Restricted-token confidences for multiple-choice tasks.

lm-eval scores a multiple-choice document by one log-likelihood per option.  When every
option is a single token (MMLU's `` A``..`` D``), the softmax of those log-likelihoods *is* the
model's next-token distribution restricted to the option tokens and renormalised.  When the
options span several tokens (ARC's option texts, lm-eval's cloze format), the same softmax
renormalises the sequence probabilities over the options; the record says which
(``option_token_mode``).  Accuracy is computed exactly as lm-eval's stock ``acc``
(``argmax`` of the log-likelihoods, first index on ties) so both agree sample by sample.
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np

from calib_harness.capture.payload import ECE_STDERR_METRIC, PAYLOAD_METRIC, ece_stderr_item
from calib_harness.records import SampleRecord

SINGLE_TOKEN = "single_token"
SEQUENCE = "sequence"


def mc_results(
    results: Sequence[tuple[float, bool]],
    option_labels: Sequence[str],
    gold_index: int,
    option_token_mode: str,
    question: str | None = None,
    option_texts: Sequence[str] | None = None,
) -> dict[str, Any]:
    """Metrics of one multiple-choice sample from lm-eval's ``(loglikelihood, is_greedy)`` pairs.

    Returns ``acc`` (as stock lm-eval), ``acc_norm`` when ``option_texts`` are given (stock
    definition: log-likelihood divided by the option's character length), ``confidence``
    (probability of the predicted option), ``brier`` (top-label) and the record payload
    under :data:`PAYLOAD_METRIC` (with the ``margin`` and ``entropy`` features of the option
    distribution, inputs for the scalar calibrators).
    """
    if len(results) != len(option_labels):
        raise ValueError(f"{len(results)} log-likelihoods for {len(option_labels)} options")
    if not 0 <= gold_index < len(option_labels):
        raise ValueError(f"gold index {gold_index} outside {len(option_labels)} options")
    lls = np.array([float(r[0]) for r in results], dtype=np.float64)
    # task / doc_id / model are not known inside process_results: the loader fills them in
    rec = SampleRecord.from_option_scores(
        lls, option_labels, gold_index, task="", doc_id="", model="", option_token_mode=option_token_mode, prompt=question
    )
    correct, conf = rec.score, rec.confidence
    out: dict[str, Any] = {"acc": correct}
    if option_texts is not None:
        lengths = np.array([float(len(t)) for t in option_texts])
        out["acc_norm"] = float(int(np.argmax(lls / lengths)) == gold_index)
    out["confidence"] = conf
    out["brier"] = (conf - correct) ** 2
    payload = {k: v for k, v in rec.to_dict().items() if k not in ("task", "doc_id", "model", "extra")}
    out[PAYLOAD_METRIC] = {"kind": "multiple_choice", **payload, "option_probs": rec.option_probs.tolist()}
    out[ECE_STDERR_METRIC] = ece_stderr_item(conf, correct)  # after the payload: see payload.ECE_STDERR_METRIC
    return out
