"""Where lm-eval's registry finds ``calib-vllm``: a clear error when vLLM is not installed.

``calib_harness.lm_models`` registers ``calib-vllm`` lazily with this module as its target, so the
package imports without vLLM and ``--model calib-vllm`` without it says what to run instead of
showing an ImportError from deep inside lm-eval.
"""

from __future__ import annotations

from calib_harness.outputs import CliError

INSTALL_HINT = "run `make vllm` (the CPU build without a GPU, the CUDA build with one; see README, vLLM)"

try:
    import vllm  # noqa: F401
except ImportError as e:
    raise CliError(f"--model calib-vllm needs vLLM, which is not installed: {INSTALL_HINT}") from e
except OSError as e:  # e.g. a torchaudio built for another torch: its library fails to load
    raise CliError(f"vLLM is installed but does not import ({e}); {INSTALL_HINT}") from e

from .vllm_model import CalibVLLM  # noqa: E402

__all__ = ["CalibVLLM"]
