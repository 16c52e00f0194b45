"""The thin CLI: every sub-command registers, one grammar, bad input is one clear line, info prints real paths."""

import argparse
import json
import subprocess
import sys

import pytest

from calib_harness.cli import COMMANDS, build_parser, main
from calib_harness.outputs import CliError
from calib_harness.tasks import TASKS_DIR


def _parsers(parser: argparse.ArgumentParser, path=()):
    yield path, parser
    for a in parser._actions:
        if isinstance(a, argparse._SubParsersAction):
            for name, child in a.choices.items():
                yield from _parsers(child, (*path, name))


def _flags(parser):
    return {s for a in parser._actions for s in a.option_strings}


def test_every_subcommand_registers():
    parser = build_parser()
    sub = next(a for a in parser._actions if a.dest == "command")
    assert set(COMMANDS) <= set(sub.choices)


def test_every_flag_has_help_and_every_command_a_description():
    missing, no_description = [], []
    for path, p in _parsers(build_parser()):
        if path and not p.description:
            no_description.append(" ".join(path))
        for a in p._actions:
            if isinstance(a, (argparse._HelpAction, argparse._SubParsersAction)):
                continue
            if not a.help:
                missing.append(f"{' '.join(path)} {a.option_strings or a.dest}")
    assert not missing, f"flags without help text: {missing}"
    assert not no_description, f"sub-commands without a description: {no_description}"


def test_one_grammar_across_subcommands():
    """Same flag, same meaning: -o/--output, --force, --bins, --seed, --no-plots; the old spellings are gone."""
    parsers = dict(_parsers(build_parser()))
    old = {"--out", "--n-bins", "--no-plot", "--overwrite"}
    for path, p in parsers.items():
        assert not (_flags(p) & old), f"{' '.join(path)} still has {_flags(p) & old}"
        if "--output" in _flags(p) or "-o" in _flags(p):
            assert {"-o", "--output"} <= _flags(p), path
    for cmd in ("calibrate", "cascade", "clean", "report", "demo"):
        flags = _flags(parsers[(cmd,)])
        assert {"-o", "--output", "--force", "--debug"} <= flags, cmd
    for cmd in ("calibrate", "cascade", "clean"):
        assert {"--bins", "--seed", "--no-plots"} <= _flags(parsers[(cmd,)]), cmd
    assert {"--seed", "--no-plots"} <= _flags(parsers[("report",)])
    # one --debug: global, also accepted after the command
    assert build_parser().parse_args(["--debug", "info"]).debug is True
    assert build_parser().parse_args(["info", "--debug"]).debug is True
    assert build_parser().parse_args(["info"]).debug is False


def test_info_prints_task_folder(capsys):
    assert main(["info", "--tasks-path"]) == 0
    path = capsys.readouterr().out.strip()
    assert path == str(TASKS_DIR) and (TASKS_DIR / "calib_arc" / "calib_arc_easy.yaml").exists()


def test_missing_run_is_one_clear_error(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "calib_harness.cli", "calibrate", str(tmp_path / "nope")],
                          capture_output=True, text=True)
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr and "nope" in proc.stderr
    lines = [line for line in proc.stderr.splitlines() if "error:" in line]
    assert len(lines) == 1 and lines[0].startswith("calib-harness calibrate: error: ")
    # --debug (before or after the command) shows the traceback instead
    for argv in (["--debug", "calibrate", str(tmp_path / "nope")], ["calibrate", str(tmp_path / "nope"), "--debug"]):
        proc = subprocess.run([sys.executable, "-m", "calib_harness.cli", *argv], capture_output=True, text=True)
        assert proc.returncode != 0 and "Traceback" in proc.stderr


def test_cli_error_is_one_line_exit_2(capsys):
    assert main(["info", "--resolve", "smollm3-135m"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "smollm2-135m" in err  # names the known models
    assert issubclass(CliError, ValueError) and "\n" not in str(CliError("two\nlines"))


def test_stock_sample_without_responses_is_a_clear_error(tmp_path):
    """A samples file with neither our record payload nor stock responses names what is missing."""
    from calib_harness.lm_eval_io import load_run

    folder = tmp_path / "model"
    folder.mkdir()
    (folder / "results_2026-01-01T00-00-00.000001.json").write_text(json.dumps({"config": {"model_args": "pretrained=x"}}))
    (folder / "samples_arc_easy_2026-01-01T00-00-00.000001.jsonl").write_text(json.dumps({"doc_id": 0, "acc": 1.0}) + "\n")
    with pytest.raises(ValueError, match="sample 1"):
        load_run(tmp_path)
