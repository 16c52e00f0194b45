"""Helpers of the calib_mmlu tasks (loaded by lm-eval through ``!function``)."""

from calib_harness.capture.multiple_choice import SINGLE_TOKEN, mc_results
from calib_harness.capture.payload import ece_aggregation, ece_stderr_aggregation  # noqa: F401  (used by the YAML)
from calib_harness.data_sources import load_mmlu  # noqa: F401  (used by the YAML)

LETTERS = ["A", "B", "C", "D"]


def process_results(doc, results):
    # The options are the letters " A".." D": one token each in the shipped tokenizers
    # (tests/test_mc_capture.py checks it), so the softmax over their log-likelihoods is the
    # next-token softmax restricted to the option tokens.
    return mc_results(
        results,
        option_labels=LETTERS,
        gold_index=int(doc["answer"]),
        option_token_mode=SINGLE_TOKEN,
        question=doc["question"].strip(),
    )
