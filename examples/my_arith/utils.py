"""The verifier name (and the span it reads) of my_arith: the only code a new benchmark needs."""

from calib_harness.capture.generation import make_process_results
from calib_harness.capture.payload import ece_aggregation, ece_stderr_aggregation  # noqa: F401  (used by the YAML)

process_results = make_process_results(verifier="numeric", span="final_answer", prompt="question", metric="exact_match")
