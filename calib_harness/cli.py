"""``calib-harness``: a thin command line over the library.

Each sub-command lives in ``calib_harness/commands/<name>.py`` and exposes
``add_parser(subparsers)`` (which sets ``func``) and nothing else the CLI needs.

One grammar across sub-commands (see :mod:`calib_harness.commands`): ``-o/--output``,
``--force``, ``--bins``, ``--seed``, ``--no-plots``, and one global ``--debug``.
Bad input ends in one line, ``calib-harness COMMAND: error: ...``, and exit status 2;
``--debug`` shows the traceback instead.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys

from calib_harness.commands import DEBUG_HELP, add_debug_flag
from calib_harness.outputs import CliError

COMMANDS = [
    "info",  # models, tasks folder, data folder
    "calibrate",
    "cascade",
    "clean",
    "vision",
    "gatekeeper",
    "demo",
    "report",
    "serve",  # OpenAI-compatible serving cascade (issue #18)
]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="calib-harness",
        description="Confidence capture, calibration, cascades and label cleaning over lm-eval runs. "
        "To run benchmarks use `calib-lm-eval` (a drop-in for `lm_eval`).",
    )
    parser.add_argument("--debug", action="store_true", help=DEBUG_HELP)
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMANDS:
        p = importlib.import_module(f"calib_harness.commands.{name}").add_parser(sub)
        if p is None:
            p = sub.choices[name]
        add_debug_flag(p)
    return parser


def setup_logging(debug: bool) -> None:
    """Progress and warnings of the library go to stderr (``logging``; DEBUG with ``--debug``)."""
    root = logging.getLogger()
    if any(getattr(h, "_calib_harness", False) for h in root.handlers):
        root.setLevel(logging.DEBUG if debug else logging.INFO)
        return
    try:
        from rich.logging import RichHandler

        handler: logging.Handler = RichHandler(show_path=debug, show_time=debug, markup=False, rich_tracebacks=False)
        handler.setFormatter(logging.Formatter("%(message)s"))
    except ImportError:  # pragma: no cover - rich comes with the package
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
    handler._calib_harness = True  # type: ignore[attr-defined]
    root.addHandler(handler)
    root.setLevel(logging.DEBUG if debug else logging.INFO)
    for noisy in ("matplotlib", "PIL", "urllib3", "httpx", "filelock", "fsspec", "h5py", "numexpr"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    debug = bool(getattr(args, "debug", False))
    setup_logging(debug)
    try:
        return int(args.func(args) or 0)
    except (CliError, ValueError, FileNotFoundError, NotADirectoryError, IsADirectoryError) as e:
        # bad input: one clear line, no traceback (RecordError is a ValueError)
        if debug:
            raise
        msg = " ".join(str(e).split()) or type(e).__name__
        print(f"calib-harness {args.command}: error: {msg}", file=sys.stderr)
        return CliError.exit_code
    except KeyboardInterrupt:
        if debug:
            raise
        print(f"calib-harness {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
