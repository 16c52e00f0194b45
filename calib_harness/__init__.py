"""calib-harness: per-sample confidences on lm-eval, calibration, cascades and label cleaning."""

from calib_harness import _env_compat

_env_compat.install()

__version__ = "0.1.0"
