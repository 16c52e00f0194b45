"""``calib-lm-eval``: lm-eval's own CLI with calib-harness's tasks and model types added.

lm-eval 0.4.13 discovers neither external tasks nor model types by itself, so this wrapper
(1) imports our model types (``calib-hf``, ``calib-vllm``) so they register, (2) makes every
``TaskManager`` also index our task folder (whatever ``--include_path`` the user gives), (3)
resolves shipped model short names in ``--model_args pretrained=...`` and (4) takes one extra
flag, ``--data_dir DIR``, for local benchmark files.  Every other flag is lm-eval's, unchanged.
"""

from __future__ import annotations

import sys

from calib_harness.data_sources import set_data_dir
from calib_harness.models import resolve_model_args
from calib_harness.outputs import CliError
from calib_harness.tasks import TASKS_DIR


def _pop_flag(argv: list[str], flag: str) -> str | None:
    for i, a in enumerate(argv):
        if a == flag:
            if i + 1 >= len(argv):
                raise SystemExit(f"calib-lm-eval: {flag} needs a value")
            value = argv[i + 1]
            del argv[i : i + 2]
            return value
        if a.startswith(flag + "="):
            del argv[i]
            return a.split("=", 1)[1]
    return None


def add_task_folder() -> None:
    """Make every lm-eval TaskManager index our tasks as well as the user's include_path."""
    from lm_eval.tasks import manager

    cls = manager.TaskManager
    if getattr(cls, "_calib_harness_patched", False):
        return
    original = cls.__init__

    def __init__(self, *args, include_path=None, **kwargs):
        paths = [] if include_path is None else list(include_path) if isinstance(include_path, (list, tuple)) else [include_path]
        if str(TASKS_DIR) not in map(str, paths):
            paths.insert(0, str(TASKS_DIR))
        original(self, *args, include_path=paths, **kwargs)

    cls.__init__ = __init__
    cls._calib_harness_patched = True


def prepare_argv(argv: list[str]) -> list[str]:
    argv = list(argv)
    data_dir = _pop_flag(argv, "--data_dir")
    if data_dir is not None:
        set_data_dir(data_dir)
    for flag in ("--model_args",):
        for i, a in enumerate(argv):
            if a == flag and i + 1 < len(argv):
                argv[i + 1] = resolve_model_args(argv[i + 1])
            elif a.startswith(flag + "="):
                argv[i] = flag + "=" + resolve_model_args(a.split("=", 1)[1])
    return argv


def main(argv: list[str] | None = None) -> None:
    import calib_harness.lm_models  # noqa: F401  (registers calib-hf / calib-vllm)
    from lm_eval.__main__ import cli_evaluate

    args = prepare_argv(sys.argv[1:] if argv is None else argv)
    add_task_folder()
    sys.argv = ["lm-eval", *args]
    try:
        cli_evaluate()
    except CliError as e:  # bad input (e.g. --model calib-vllm without vLLM): one line, no traceback
        if "--debug" in args:
            raise
        print(f"calib-lm-eval: error: {e}", file=sys.stderr)
        raise SystemExit(CliError.exit_code) from None


if __name__ == "__main__":
    main()
