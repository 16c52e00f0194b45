"""Sub-commands of ``calib-harness``: one module per command, each with ``add_parser(sub)``.

The grammar every sub-command follows (helpers below keep the wording identical):

* ``-o/--output DIR``  -- output folder; a folder holding earlier results is refused ...
* ``--force``          -- ... unless this is given: the earlier results are then removed first.
* ``--bins N``         -- equal-count confidence bins.
* ``--seed N``         -- seed of the calibration/test split.
* ``--no-plots``       -- skip the PNG figures.
* ``--debug``          -- global: show tracebacks (``calib-harness --debug COMMAND`` or after the command).

Every flag has help text (``tests/test_cli.py`` checks it).
"""

from __future__ import annotations

import argparse
from typing import Any

DEBUG_HELP = "show the full traceback on errors and debug-level logging (global; also accepted after COMMAND)"


def add_debug_flag(p: argparse.ArgumentParser) -> None:
    """The global ``--debug``, also accepted after the sub-command (once, on every parser)."""
    if any("--debug" in a.option_strings for a in p._actions):
        return
    p.add_argument("--debug", action="store_true", default=argparse.SUPPRESS, help=DEBUG_HELP)
    for action in p._actions:
        if isinstance(action, argparse._SubParsersAction):
            for child in action.choices.values():
                add_debug_flag(child)


def add_output_args(p: argparse.ArgumentParser, default: Any, what: str, required: bool = False) -> None:
    """``-o/--output`` and ``--force`` with the shared wording."""
    kwargs: dict[str, Any] = {"required": True} if required else {"default": default}
    dflt = "" if required or default is None else f" (default: {default})"
    p.add_argument("-o", "--output", metavar="DIR", help=f"output folder for {what}{dflt}", **kwargs)
    p.add_argument(
        "--force",
        action="store_true",
        help="replace the earlier results in the output folder (without it, a folder holding results is refused)",
    )


def add_bins_arg(p: argparse.ArgumentParser, default: int = 15, what: str = "equal-count confidence bins") -> None:
    p.add_argument("--bins", type=int, default=default, metavar="N", help=f"{what} (default {default})")


def add_seed_arg(p: argparse.ArgumentParser, what: str = "seed of the calibration/test split") -> None:
    p.add_argument("--seed", type=int, default=0, help=f"{what} (default 0)")


def add_no_plots_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument("--no-plots", action="store_true", help="skip the PNG figures")


def add_loader_args(p: argparse.ArgumentParser, model: bool = False) -> None:
    """How to pick records out of an lm-eval output folder (see :func:`calib_harness.lm_eval_io.load_run`)."""
    if model:
        p.add_argument("--model", help="model name (or its sub-folder) when the input holds several models")
    p.add_argument(
        "--filter",
        metavar="NAME",
        help="lm-eval filter whose responses to read when a task logged several (e.g. strict-match); "
        "with one filter nothing needs saying",
    )
    p.add_argument(
        "--mc-scoring",
        choices=("acc", "acc_norm"),
        default="acc",
        help="option scores of stock lm-eval multiple-choice logs: acc = restricted softmax of the summed "
        "log-likelihoods, acc_norm = length-normalised as lm-eval's acc_norm (default acc)",
    )
    p.add_argument(
        "--latest",
        action="store_true",
        help="when a folder holds several samples files of one task, read the newest (default: error listing them)",
    )


def loader_kwargs(args: argparse.Namespace) -> dict[str, Any]:
    """``--filter`` / ``--latest`` / ``--mc-scoring`` as keyword arguments of ``load_run``."""
    return {
        "filter": getattr(args, "filter", None),
        "latest": bool(getattr(args, "latest", False)),
        "scoring": getattr(args, "mc_scoring", None) or "acc",
    }
