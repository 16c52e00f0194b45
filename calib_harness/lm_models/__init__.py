"""lm-eval model types of calib-harness; importing this package registers them.

* ``calib-hf`` (:class:`calib_harness.lm_models.hf.CalibHFLM`): lm-eval's ``hf`` + token figures.
* ``calib-vllm`` (:mod:`calib_harness.lm_models.vllm_model`): lm-eval's ``vllm`` + token figures;
  registered lazily, so this package imports without vLLM installed (``make vllm`` installs it;
  without it ``--model calib-vllm`` says so in one line).

Both return each generated answer as a ``str`` subclass carrying its figures; see
:mod:`calib_harness.capture.generation` for how they reach ``process_results``.
"""

from lm_eval.api.registry import model_registry

import calib_harness.capture.generation  # noqa: F401  (registers the `calib` filter)

from .hf import CalibHFLM

if "calib-vllm" not in model_registry:
    model_registry.register("calib-vllm", target="calib_harness.lm_models.vllm_entry:CalibVLLM")

__all__ = ["CalibHFLM"]
