"""Helpers of the calib_arc tasks (loaded by lm-eval through ``!function``)."""

from calib_harness.capture.multiple_choice import SEQUENCE, mc_results
from calib_harness.capture.payload import ece_aggregation, ece_stderr_aggregation  # noqa: F401  (used by the YAML)
from calib_harness.data_sources import load_arc  # noqa: F401  (used by the YAML)


def process_results(doc, results):
    labels = doc["choices"]["label"]
    # ARC's options are answer texts of several tokens (lm-eval's cloze format): the confidence
    # renormalises the sequence probabilities over the options.
    return mc_results(
        results,
        option_labels=labels,
        gold_index=labels.index(doc["answerKey"]),
        option_token_mode=SEQUENCE,
        question=doc["question"],
        option_texts=doc["choices"]["text"],
    )
