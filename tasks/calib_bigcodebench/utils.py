"""Helpers of the calib_bigcodebench tasks (loaded by lm-eval through ``!function``)."""

from calib_harness.capture.generation import make_process_results
from calib_harness.capture.payload import ece_aggregation, ece_stderr_aggregation  # noqa: F401  (used by the YAML)
from calib_harness.data_sources_gen import load_bigcodebench  # noqa: F401  (used by the YAML)

# complete: the output continues `complete_prompt`; the verifier prepends `code_prompt` when the
# output does not define `entry_point`.  instruct: the output is the body of the ```python block.
process_results = make_process_results(verifier="code_exec", suite="bigcodebench", span="code_block",
                                       prompt="instruct_prompt", metric="pass_at_1")
