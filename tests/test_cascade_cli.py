"""``calib-harness cascade`` end to end on hand-made records written as records.jsonl."""

from __future__ import annotations

import argparse
import json
import math

import numpy as np
import pytest

from calib_harness.commands import cascade
from calib_harness.outputs import CliError
from calib_harness.records import Run, SampleRecord, load_records_jsonl
from calib_harness.routing.deploy import DeployableRouter


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="calib-harness")
    sub = p.add_subparsers(dest="command")
    cascade.add_parser(sub)
    return p


def _write_runs(tmp_path, n=160, seed=0):
    """Small model: 4 options, right iff its confidence is high; the large model is right on 90%.
    Prompts are distinct sentences so MF gets real embeddings."""
    rng = np.random.default_rng(seed)
    topics = ["plants", "magnets", "weather", "rocks", "the moon", "electricity", "animals", "water"]
    small, large = [], []
    for i in range(n):
        c = float(rng.uniform(0.3, 0.95))
        right_s = c > 0.6
        right_l = rng.random() < 0.9
        logp = math.log(c)
        rest = math.log((1 - c) / 3)
        scores = (logp, rest, rest, rest)
        prompt = f"Question {i}: what do we know about {topics[i % len(topics)]} number {i}?"
        small.append(SampleRecord.from_option_scores(scores, tuple("ABCD"), "A" if right_s else "B", task="arc_hand",
                                                     doc_id=i, model="smol", option_token_mode="sequence", prompt=prompt))
        gl = "A" if right_l else "C"
        lscores = (-0.1, -4.0, -3.0, -5.0)
        large.append(SampleRecord.from_option_scores(lscores, tuple("ABCD"), gl, task="arc_hand", doc_id=i, model="qwen",
                                                     option_token_mode="sequence", prompt=prompt))
    s = Run("smol", small).save(tmp_path / "smol")
    l = Run("qwen", large).save(tmp_path / "qwen" / "records.jsonl")
    return s, l


def _strict(path):
    def no_constants(x):
        raise AssertionError(f"bare {x} in {path}")

    return json.loads(path.read_text(), parse_constant=no_constants)


def test_cascade_cli_writes_table_plots_and_router(tmp_path, capsys):
    from calib_harness.routing.base import list_routers

    s, l = _write_runs(tmp_path)
    out = tmp_path / "out"
    args = _parser().parse_args(
        ["cascade", "--small", str(s.parent), "--large", str(l), "--bins", "8", "--bins-sweep", "4", "8",
         "--mf-epochs", "5", "--output", str(out), "--no-progress", "--deploy-share", "0.5", "--n-boot", "100"]
    )
    assert args.func(args) == 0
    printed = capsys.readouterr().out
    assert "APGR" in printed and "oracle" in printed and "95% CI" in printed
    comp = _strict(out / "comparison.json")
    assert set(comp["apgr"]) == set(list_routers())  # every registered router, nothing hard-coded
    assert comp["n_cal"] + comp["n_test"] == 160
    assert comp["apgr"]["random"] == pytest.approx(0.5, abs=1e-9)
    assert comp["roles"]["by"] == "calibration-half accuracy" and not comp["roles"]["swapped"]
    # the small model's confidence is informative: confidence routers beat random, oracle beats all
    for name in ("CC", "UC", "threshold"):
        assert 0.5 < comp["apgr"][name] <= comp["apgr"]["oracle"] + 1e-9
        lo, hi = comp["apgr_ci95"][name]
        assert lo <= comp["apgr"][name] <= hi
    assert set(comp["bins_sensitivity"]["CC"]) == {"4", "8"}
    assert comp["calibration"]["CC"]["calibrator"] in comp["calibration"]["CC"]["selection"]
    assert len(comp["bands95"]["CC"]["lo"]) == len(comp["bands95"]["CC"]["share_small"])
    for f in ("table.md", "curves.png", "bins.png", "router.json"):
        assert (out / f).stat().st_size > 0
    assert (out / "curves.png").read_bytes()[:4] == b"\x89PNG"
    assert (out / "embeddings" / "all-MiniLM-L6-v2" / "vectors.npy").exists()
    _strict(out / "router.json")
    router = DeployableRouter.load(out / "router.json")
    assert router.small_model == "smol" and router.large_model == "qwen"
    assert router.meta["calibrator"] == comp["calibration"]["CC"]["calibrator"]
    assert router.route([math.log(0.95), -4, -4, -4]) == "small"
    assert router.route([math.log(0.3), math.log(0.7 / 3), math.log(0.7 / 3), math.log(0.7 / 3)]) == "large"


def test_cascade_rerun_needs_force_and_keeps_the_embedding_cache(tmp_path):
    s, l = _write_runs(tmp_path, n=60)
    out = tmp_path / "out"
    argv = ["cascade", "--small", str(s), "--large", str(l), "--routers", "CC", "MF", "random", "--bins", "4",
            "--bins-sweep", "--mf-epochs", "2", "--no-plots", "--no-progress", "-o", str(out), "--n-boot", "20",
            "--method", "temperature"]
    args = _parser().parse_args(argv)
    assert args.func(args) == 0
    before = (out / "router.json").read_bytes()
    vectors = (out / "embeddings" / "all-MiniLM-L6-v2" / "vectors.npy").read_bytes()
    args = _parser().parse_args(argv[:-2] + ["--method", "none"])
    with pytest.raises(CliError, match="--force"):
        args.func(args)
    assert (out / "router.json").read_bytes() == before  # a deployed router is never replaced silently
    args = _parser().parse_args(argv[:-2] + ["--method", "none", "--force"])
    assert args.func(args) == 0
    assert DeployableRouter.load(out / "router.json").calibrator == {"kind": "identity"}
    assert (out / "embeddings" / "all-MiniLM-L6-v2" / "vectors.npy").read_bytes() == vectors


def _main(argv, capsys):
    from calib_harness.cli import main

    rc = main(argv)
    cap = capsys.readouterr()
    return rc, cap.out, cap.err


def test_cascade_on_twenty_docs_runs_without_nan_or_crash(tmp_path, capsys):
    """The README commands on --limit 20 runs: a table, strict JSON, plots and a router, with
    warnings instead of RuntimeWarnings and NaN tables."""
    import warnings

    s, l = _write_runs(tmp_path, n=20)
    out = tmp_path / "out"
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)  # no numpy RuntimeWarning may escape
        rc, printed, err = _main(["cascade", "--small", str(s), "--large", str(l), "-o", str(out), "--no-progress",
                                  "--routers", "CC", "UC", "threshold", "random", "oracle", "--n-boot", "50"], capsys)
    assert rc == 0, err
    assert "nan" not in printed.lower()
    comp = _strict(out / "comparison.json")
    assert comp["n_cal"] == 10 and comp["n_test"] == 10
    assert any("per bin" in w for w in comp["warnings"])
    for f in ("table.md", "curves.png", "router.json"):
        assert (out / f).exists()
    assert "nan" not in (out / "table.md").read_text().lower()


def test_cascade_refuses_too_few_docs_and_the_same_run_twice(tmp_path, capsys):
    s, l = _write_runs(tmp_path, n=12)
    out = tmp_path / "out"
    rc, _, err = _main(["cascade", "--small", str(s), "--large", str(l), "-o", str(out)], capsys)
    assert rc == 2 and err.count("\n") == 1 and "at least 20" in err and "--limit" in err
    assert not out.exists()  # nothing half-written
    s, l = _write_runs(tmp_path / "b", n=40)
    rc, _, err = _main(["cascade", "--small", str(s), "--large", str(s), "-o", str(out)], capsys)
    assert rc == 2 and err.count("\n") == 1 and "identical" in err and "two different models" in err
    assert not out.exists()


def test_cascade_help_states_the_minimum(capsys):
    with pytest.raises(SystemExit):
        _parser().parse_args(["cascade", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert "Minimum: 20 documents in common" in text


def test_cascade_roles_follow_the_data(tmp_path):
    s, l = _write_runs(tmp_path, n=80)
    out = tmp_path / "o"
    args = _parser().parse_args(["cascade", "--small", str(l), "--large", str(s), "--routers", "CC", "random",
                                 "--bins", "4", "--bins-sweep", "--no-plots", "-o", str(out), "--n-boot", "0"])
    assert args.func(args) == 0
    comp = _strict(out / "comparison.json")
    assert (comp["small_model"], comp["large_model"]) == ("smol", "qwen") and comp["roles"]["swapped"]
    assert any("roles swapped" in w for w in comp["warnings"])
    assert "roles swapped" in (out / "table.md").read_text()


def test_cascade_cli_errors(tmp_path):
    s, l = _write_runs(tmp_path, n=40)
    p = _parser()
    args = p.parse_args(["cascade", "--small", str(tmp_path / "missing.jsonl"), "--large", str(l)])
    with pytest.raises(FileNotFoundError):
        args.func(args)
    # runs over different docs are refused unless --intersect
    Run("qwen", load_records_jsonl(l).records[:30]).save(tmp_path / "short" / "records.jsonl")
    args = p.parse_args(["cascade", "--small", str(s), "--large", str(tmp_path / "short" / "records.jsonl"),
                         "--routers", "CC", "random", "--output", str(tmp_path / "o"), "--no-plots", "--bins-sweep"])
    with pytest.raises(ValueError, match="different documents"):
        args.func(args)
    args = p.parse_args(["cascade", "--small", str(s), "--large", str(tmp_path / "short" / "records.jsonl"),
                         "--routers", "cc", "random", "--output", str(tmp_path / "o"), "--no-plots", "--bins-sweep",
                         "--intersect", "--bins", "4", "--n-boot", "0"])
    assert args.func(args) == 0
    comp = json.loads((tmp_path / "o" / "comparison.json").read_text())
    assert comp["n_cal"] + comp["n_test"] == 30 and set(comp["apgr"]) == {"CC", "random"}
    with pytest.raises(ValueError, match="unknown router"):
        args = p.parse_args(["cascade", "--small", str(s), "--large", str(l), "--routers", "nope", "--output", str(tmp_path / "o2")])
        args.func(args)
