"""``calib-harness calibrate`` end to end on the real ARC record fixtures."""

from __future__ import annotations

import argparse
import json
import shutil

import numpy as np
import pytest

from calib_harness import metrics as M
from calib_harness.calibration import RunCalibrator, split_indices
from calib_harness.commands import calibrate as cmd
from calib_harness.records import load_records_jsonl


def run_cli(argv: list[str]) -> int:
    """Parse with the real sub-parser and call its func, as calib_harness.cli does."""
    parser = argparse.ArgumentParser(prog="calib-harness")
    sub = parser.add_subparsers(dest="command")
    cmd.add_parser(sub)
    args = parser.parse_args(["calibrate", *argv])
    return args.func(args)


@pytest.fixture()
def easy_dir(fixtures_dir, tmp_path):
    """A copy of the fixture as a run folder holding records.jsonl."""
    d = tmp_path / "run_easy"
    d.mkdir()
    shutil.copy(fixtures_dir / "records" / "arc_easy_dev_smollm2.jsonl", d / "records.jsonl")
    return d


def test_calibrate_temperature_writes_everything_beside_the_input(easy_dir, capsys):
    before = {p.name: p.read_bytes() for p in easy_dir.iterdir()}
    assert run_cli([str(easy_dir), "--seed", "0"]) == 0
    out = easy_dir / "calibration"
    text = capsys.readouterr().out
    assert "calibration half" in text and "test half" in text and "ECE" in text
    # input untouched
    assert {p.name: p.read_bytes() for p in easy_dir.iterdir() if p.is_file()} == before
    for name in ("metrics.json", "calibrator_temperature.json", "reliability_temperature.png"):
        assert (out / name).is_file(), name
    assert (out / "reliability_temperature.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

    summary = json.loads((out / "metrics.json").read_text())
    run = load_records_jsonl(easy_dir / "records.jsonl")
    assert summary["n"] == len(run) and summary["model"] == "smollm2-135m"
    m = summary["methods"]["temperature"]["metrics"]
    # the figures are the metrics of the halves the seeded split defines
    cal_idx, test_idx = split_indices(len(run), 0.5, 0)
    test = run.subset(test_idx)
    assert m["test"]["before"]["ece"] == pytest.approx(M.ece(test.confidences(), test.scores()))

    cal = RunCalibrator.from_json((out / "calibrator_temperature.json").read_text())
    assert cal.method == "temperature" and cal.meta["n_fit"] == len(cal_idx)
    assert m["test"]["after"]["ece"] == pytest.approx(M.ece(cal.confidence(test), test.scores()))

    recs = load_records_jsonl(out / "calibrated" / "records.jsonl")
    assert recs.keys == run.keys
    assert np.allclose(recs.feature("raw_confidence"), run.confidences())
    assert np.allclose(recs.confidences(), cal.confidence(run))
    splits = [r.extra["calibration_split"] for r in recs.records]
    assert splits.count("cal") == len(cal_idx) and splits.count("test") == len(test_idx)


def test_calibrate_all_methods_and_shift(easy_dir, fixtures_dir, tmp_path, capsys):
    out = tmp_path / "out"
    shift = fixtures_dir / "records" / "arc_challenge_dev_smollm2.jsonl"
    code = run_cli([str(easy_dir / "records.jsonl"), "--method", "all", "--apply-to", str(shift), "--output", str(out)])
    assert code == 0
    summary = json.loads((out / "metrics.json").read_text())
    assert list(summary["methods"]) == ["temperature", "platt", "histogram", "isotonic"]
    for method, rep in summary["methods"].items():
        assert set(rep["metrics"]) == {"cal", "test", "shift"}
        assert rep["metrics"]["shift"]["before"]["n"] == 150
        assert (out / f"reliability_{method}.png").is_file()
        assert (out / f"calibrator_{method}.json").is_file()
    assert (out / "calibrated" / "records.jsonl").is_file()
    assert (out / "calibrated_platt" / "records.jsonl").is_file()
    shifted = load_records_jsonl(out / "shifted" / "records.jsonl")
    assert len(shifted) == 150 and shifted.records[0].extra["calibration"]["method"] == "temperature"
    assert "shifted run" in capsys.readouterr().out


def test_calibrate_with_saved_calibrator(easy_dir, fixtures_dir, tmp_path):
    assert run_cli([str(easy_dir), "--method", "platt", "--no-plots"]) == 0
    saved = easy_dir / "calibration" / "calibrator_platt.json"
    out = tmp_path / "applied"
    shift = fixtures_dir / "records" / "arc_challenge_dev_smollm2.jsonl"
    assert run_cli([str(shift), "--calibrator", str(saved), "--output", str(out)]) == 0
    recs = load_records_jsonl(out / "calibrated" / "records.jsonl")
    cal = RunCalibrator.from_json(saved.read_text())
    assert np.allclose(recs.confidences(), cal.confidence(load_records_jsonl(shift)))
    assert json.loads((out / "metrics.json").read_text())["methods"]["platt"]["metrics"]["all"]["before"]["n"] == 150


def test_calibrate_refuses_to_overwrite_its_input(easy_dir):
    src = easy_dir / "calibrated" / "records.jsonl"
    src.parent.mkdir()
    shutil.copy(easy_dir / "records.jsonl", src)
    before = {p: p.read_bytes() for p in easy_dir.rglob("*") if p.is_file()}
    with pytest.raises(ValueError, match="already holds results"):
        run_cli([str(src), "--output", str(easy_dir), "--no-plots"])
    with pytest.raises(ValueError, match="holds input files of this run"):
        run_cli([str(src), "--output", str(easy_dir), "--no-plots", "--force"])
    assert {p: p.read_bytes() for p in easy_dir.rglob("*") if p.is_file()} == before


def test_calibrate_rerun_with_the_default_output(easy_dir):
    """A rerun is refused with a hint at --force (not a false 'overwrite the input'); --force replaces it."""
    assert run_cli([str(easy_dir), "--method", "platt", "histogram"]) == 0
    out = easy_dir / "calibration"
    assert (out / "calibrator_histogram.json").is_file() and (out / "reliability_histogram.png").is_file()
    with pytest.raises(ValueError, match="already holds results.*--force"):
        run_cli([str(easy_dir), "--method", "platt"])
    assert run_cli([str(easy_dir), "--method", "platt", "--no-plots", "--force"]) == 0
    # nothing stale: the histogram files of the first run are gone, the new run's files are there
    assert not (out / "calibrator_histogram.json").exists() and not list(out.glob("*.png"))
    assert json.loads((out / "metrics.json").read_text())["methods"].keys() == {"platt"}
    assert (easy_dir / "records.jsonl").is_file()


def test_calibrate_clear_errors(easy_dir, tmp_path):
    with pytest.raises(FileNotFoundError):
        run_cli([str(tmp_path / "missing")])
    with pytest.raises(ValueError, match="no feature 'mean_entropy'"):
        run_cli([str(easy_dir), "--method", "platt", "--feature", "mean_entropy", "--no-plots"])
    with pytest.raises(ValueError, match="strictly between"):
        run_cli([str(easy_dir), "--cal-fraction", "1.2", "--no-plots"])



def test_calibrate_an_lm_eval_output_folder(fixtures_dir, tmp_path, capsys):
    """A real `calib-lm-eval --output_path ... --log_samples` folder (40 ARC-Easy test docs)."""
    from calib_harness.lm_eval_io import load_run

    src = tmp_path / "lm_eval_run"
    shutil.copytree(fixtures_dir / "records" / "lm_eval_arc_easy_smollm2", src)
    before = {p: p.read_bytes() for p in src.rglob("*") if p.is_file()}
    run = load_run(src)
    assert len(run) == 40 and run.tasks == ["calib_arc_easy"] and run.model == "smollm2-135m"
    # lm-eval's aggregated ece / brier (computed by the task glue) agree with ours on the records
    results = json.loads(next(src.rglob("results_*.json")).read_text())["results"]["calib_arc_easy"]
    assert results["ece,none"] == pytest.approx(M.ece(run.confidences(), run.scores()), abs=1e-12)
    assert results["brier,none"] == pytest.approx(M.brier(run.confidences(), run.scores()), abs=1e-12)

    assert run_cli([str(src), "--method", "temperature", "platt", "--bins", "5"]) == 0
    assert "calib_arc_easy" in capsys.readouterr().out
    out = src / "calibration"
    assert {p: p.read_bytes() for p in before} == before  # lm-eval's files untouched
    summary = json.loads((out / "metrics.json").read_text())
    assert summary["n_bins"] == 5 and list(summary["methods"]) == ["temperature", "platt"]
    recs = load_records_jsonl(out / "calibrated" / "records.jsonl")
    assert recs.keys == run.keys
    # temperature-scaled option scores keep confidence = max softmax(option_scores)
    assert all(r.confidence == pytest.approx(r.option_probs.max(), abs=1e-9) for r in recs.records)


def test_a_run_over_many_tasks_is_named_by_count_not_by_every_task(easy_dir, tmp_path, capsys):
    """57 MMLU subjects in one run made the table title a wall of names; it gives the count and the ends."""
    import dataclasses

    from calib_harness.records import Run

    run = load_records_jsonl(easy_dir / "records.jsonl")
    subjects = [f"calib_mmlu_subject_{i:02d}" for i in range(8)]
    many = Run(run.model, [dataclasses.replace(r, task=subjects[i % 8]) for i, r in enumerate(run.records)], "fixture")
    src = tmp_path / "many_tasks"
    many.save(src / "records.jsonl")
    assert run_cli([str(src), "--method", "platt", "--bins", "5", "--no-plots"]) == 0
    title = next(line for line in capsys.readouterr().out.splitlines() if " samples, 5 equal-count bins" in line)
    assert "8 tasks: calib_mmlu_subject_00, calib_mmlu_subject_01, calib_mmlu_subject_02, ..., calib_mmlu_subject_07" in title
    assert "calib_mmlu_subject_04" not in title


# -- guards, intervals, degenerate inputs (issue 15) ----------------------------------------


def _write_run(tmp_path, name, records):
    from calib_harness.records import Run

    d = tmp_path / name
    Run("smollm2-135m", records, "fixture").save(d / "records.jsonl")
    return d


def test_help_states_the_minimums(capsys):
    with pytest.raises(SystemExit):
        run_cli(["--help"])
    text = capsys.readouterr().out
    assert "minimums" in text and "at least 10 records" in text and "one bin per 10 calibration samples" in text


def test_calibrate_refuses_two_samples_before_writing(fixtures_dir, tmp_path):
    from calib_harness.outputs import CliError

    run = load_records_jsonl(fixtures_dir / "records" / "arc_easy_dev_smollm2.jsonl")
    d = _write_run(tmp_path, "two", list(run.records[:2]))
    with pytest.raises(CliError, match=r"2 records are too few.*at least 10.*--calibrator"):
        run_cli([str(d), "--bins", "15"])
    assert not (d / "calibration").exists()


@pytest.mark.parametrize("kind", ["identical", "all_correct", "third_at_one"])
def test_calibrate_degenerate_inputs_finish_with_finite_strict_json(fixtures_dir, tmp_path, kind, capsys):
    import dataclasses

    run = load_records_jsonl(fixtures_dir / "records" / "arc_easy_dev_smollm2.jsonl")
    recs = list(run.records[:40])
    if kind == "identical":
        recs = [dataclasses.replace(r, confidence=0.6) for r in recs]
    elif kind == "all_correct":
        recs = [dataclasses.replace(r, score=1.0) for r in recs]
    else:  # a third of the confidences exactly 1.0 (a saturated model), on the whole fixture
        recs = [dataclasses.replace(r, confidence=1.0) if i % 3 == 0 else r for i, r in enumerate(run.records)]
    d = _write_run(tmp_path, kind, recs)
    assert run_cli([str(d), "--method", "platt", "histogram", "isotonic", "--bins", "15"]) == 0
    captured = capsys.readouterr()
    raw = (d / "calibration" / "metrics.json").read_text()
    assert "NaN" not in raw and "Infinity" not in raw
    summary = json.loads(raw)
    for method, rep in summary["methods"].items():
        for part in ("cal", "test"):
            for stage in ("before", "after"):
                m = rep["metrics"][part][stage]
                for key in ("accuracy", "ece", "brier", "nll", "accuracy_lo", "accuracy_hi", "ece_lo", "ece_hi"):
                    assert isinstance(m[key], float) and np.isfinite(m[key]), (method, part, stage, key)
                assert m["accuracy_lo"] <= m["accuracy"] <= m["accuracy_hi"]
                assert m["ece_lo"] <= m["ece"] <= m["ece_hi"]
                if m["auroc"] is None:
                    assert "both correct and wrong" in m["null_reasons"]["auroc"]
    if kind != "third_at_one":  # 20 per half in 15 bins: the ECE warning, once, with a --bins that fits
        ece_warnings = [w for w in summary["warnings"] if w.startswith("ECE on the test half")]
        assert len(ece_warnings) == 1 and "--bins 2" in ece_warnings[0]
        assert "warning: ECE on the test half" in captured.err
    if kind == "all_correct":
        assert any("only correct answers" in w for w in summary["warnings"])
        assert any("collapsed the confidences" in w for w in summary["warnings"])
    assert "Traceback" not in captured.err


def test_calibrate_table_and_json_carry_intervals(easy_dir, capsys):
    assert run_cli([str(easy_dir), "--method", "temperature", "--no-plots"]) == 0
    text = capsys.readouterr().out
    assert "95% interval" in text
    m = json.loads((easy_dir / "calibration" / "metrics.json").read_text())["methods"]["temperature"]["metrics"]
    test = m["test"]["before"]
    run = load_records_jsonl(easy_dir / "records.jsonl")
    _, test_idx = split_indices(len(run), 0.5, 0)
    sub = run.subset(test_idx)
    assert (test["accuracy_lo"], test["accuracy_hi"]) == pytest.approx(
        M.wilson_interval(sub.scores().sum(), len(sub))
    )
    assert (test["ece_lo"], test["ece_hi"]) == pytest.approx(M.ece_interval(sub.confidences(), sub.scores(), 15))
    assert f"[{test['ece_lo']:.3f}, {test['ece_hi']:.3f}]" in text
