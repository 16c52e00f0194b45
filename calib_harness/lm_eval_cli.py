"""``calib-lm-eval``: lm-eval's own CLI with calib-harness's tasks and model types added.

lm-eval 0.4.13 discovers neither external tasks nor model types by itself, so this wrapper
(1) imports our model types (``calib-hf``, ``calib-vllm``) so they register, (2) makes every
``TaskManager`` also index our task folder (whatever ``--include_path`` the user gives; see
:func:`calib_harness._env_compat.add_task_folder`), (3)
resolves shipped model short names in ``--model_args pretrained=...`` and (4) takes one extra
flag, ``--data_dir DIR``, for local benchmark files.  Every other flag is lm-eval's, unchanged.

``calib-lm-eval --help`` prints what it adds above lm-eval's help.  Names that can only fail
later fail at once, before any model loads: an unknown short name (listing the known ones), and,
with ``HF_HUB_OFFLINE=1`` and no data folder, a calib_* task whose hub dataset is not cached.
"""

from __future__ import annotations

import sys

from calib_harness._env_compat import add_task_folder  # noqa: F401  (re-exported: benches and tests use it)
from calib_harness.data_sources import set_data_dir
from calib_harness.models import resolve_model_args
from calib_harness.outputs import CliError


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


def help_text() -> str:
    """What ``calib-lm-eval`` adds to lm-eval's CLI (printed above lm-eval's own ``--help``)."""
    from calib_harness.data_sources import DATA_DIR_ENV
    from calib_harness.models import SHIPPED_MODELS
    from calib_harness.tasks import TASKS_DIR

    names = "\n".join(f"      {m.name:20s} {m.description}" for m in SHIPPED_MODELS.values())
    return f"""calib-lm-eval: lm-eval's own CLI, every flag unchanged, with calib-harness added:

  --data_dir DIR    local benchmark files for the calib_* tasks, in the layout of shared/data
                    (mmlu/, arc/, gsm8k/, mbpp/, bigcodebench/); same as {DATA_DIR_ENV}=DIR.
                    Without it the tasks load the stock tasks' Hugging Face datasets; with
                    HF_HUB_OFFLINE=1 and no cached copy that is a clear error before any model loads.
  --model calib-hf | calib-vllm
                    model types that capture per-sample confidences (option probabilities for
                    multiple choice; token log-probabilities, logits and entropies for generation).
                    Stock types (hf, vllm, ...) work too; stock logs are read by calib-harness as well.
  --model_args pretrained=SHORT_NAME
                    shipped offline models, resolved to a local folder (an unknown short name fails
                    at once, listing these):
{names}
  tasks             calib_mmlu, calib_arc_easy, calib_arc_challenge, calib_gsm8k, calib_mbpp,
                    calib_bigcodebench (task folder {TASKS_DIR}, added to every --include_path).

Then: calib-harness calibrate | cascade | clean | report on the --output_path folder
(`calib-harness --help`).  lm-eval's own help follows.
{"-" * 78}
"""


def _task_names(argv: list[str]) -> list[str]:
    value = _flag_value(argv, "--tasks")
    return [t.strip() for t in (value or "").split(",") if t.strip()]


def _flag_value(argv: list[str], flag: str) -> str | None:
    for i, a in enumerate(argv):
        if a == flag and i + 1 < len(argv):
            return argv[i + 1]
        if a.startswith(flag + "="):
            return a.split("=", 1)[1]
    return None


def check_task_data(tasks: list[str]) -> None:
    """Offline with no data folder: the clear data error now, before the model loads."""
    from calib_harness import data_sources as ds
    from calib_harness import data_sources_gen as dg

    if ds.data_dir() is not None or not ds.hub_offline():
        return
    hubs = {
        "mmlu": (ds.MMLU_HUB, ds.MMLU_LAYOUT),
        "arc": (ds.ARC_HUB, ds.ARC_LAYOUT),
        "gsm8k": (dg.GSM8K_HUB, dg.GSM8K_LAYOUT),
        "mbpp": (dg.MBPP_HUB, dg.MBPP_LAYOUT),
        "bigcodebench": (dg.BIGCODEBENCH_HUB, dg.BIGCODEBENCH_LAYOUT),
    }
    for task in tasks:
        if not task.startswith("calib_"):
            continue
        for key, (hub_id, layout) in hubs.items():
            if task[len("calib_"):].startswith(key):
                ds.check_hub_reachable(task, hub_id, layout)


def main(argv: list[str] | None = None) -> None:
    raw = list(sys.argv[1:] if argv is None else argv)
    if not raw or "-h" in raw or "--help" in raw:
        print(help_text())
        if not raw:
            raw = ["--help"]
    from calib_harness.data_sources import DataNotFoundError
    from calib_harness.models import UnknownModelError

    try:
        args = prepare_argv(raw)
        check_task_data(_task_names(args))
    except (UnknownModelError, DataNotFoundError) as e:
        print(f"calib-lm-eval: error: {' '.join(str(e).split())}", file=sys.stderr)
        raise SystemExit(2) from None

    import calib_harness.lm_models  # noqa: F401  (registers calib-hf / calib-vllm)
    from lm_eval.__main__ import cli_evaluate

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
