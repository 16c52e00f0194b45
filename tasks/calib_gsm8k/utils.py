"""Helpers of calib_gsm8k (loaded by lm-eval through ``!function``)."""

from calib_harness.capture.generation import make_process_results
from calib_harness.capture.payload import ece_aggregation, ece_stderr_aggregation  # noqa: F401  (used by the YAML)
from calib_harness.data_sources_gen import load_gsm8k  # noqa: F401  (used by the YAML)

process_results = make_process_results(verifier="numeric", span="final_answer", prompt="question", metric="exact_match")
