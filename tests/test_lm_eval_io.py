"""lm_eval_io.load_run: which reader a path goes to, model selection, strict records files."""

from __future__ import annotations

import dataclasses
import json
import math
from pathlib import Path

import pytest

from calib_harness.lm_eval_io import load_run
from calib_harness.records import RecordError, Run, load_records_jsonl

FIXTURES = Path(__file__).resolve().parent / "fixtures"
OURS = FIXTURES / "records" / "lm_eval_arc_easy_smollm2"
STOCK = FIXTURES / "stock_logs" / "arc_easy_limit40"


def test_our_tasks_and_stock_tasks_load_through_one_function():
    ours = load_run(OURS)
    assert ours.tasks == ["calib_arc_easy"] and ours.model == "smollm2-135m" and len(ours) == 40
    assert ours.records[0].option_token_mode == "sequence" and "scoring" not in ours.records[0].extra
    stock = load_run(STOCK, model="smollm2-135m")
    assert stock.tasks == ["arc_easy"] and stock.records[0].extra["scoring"] == "acc"


def test_model_by_short_name_folder_name_or_one_samples_file():
    sub = next(d for d in STOCK.iterdir() if d.name.endswith("qwen2.5-coder-0.5b"))
    by_name = load_run(STOCK, model="qwen2.5-coder-0.5b")
    by_folder = load_run(STOCK, model=sub.name)
    one_file = load_run(next(sub.glob("samples_*.jsonl")))
    assert by_name.keys == by_folder.keys == one_file.keys
    assert by_name.model == by_folder.model == one_file.model == "qwen2.5-coder-0.5b"
    assert [r.confidence for r in by_name] == [r.confidence for r in one_file]


def test_records_files_are_strict_json_and_round_trip(tmp_path):
    run = load_run(STOCK, model="smollm2-135m")
    odd = dataclasses.replace(run.records[0], features={**run.records[0].features, "mean_logit": math.nan})
    path = Run(run.model, [odd, *run.records[1:]]).save(tmp_path / "r")
    text = path.read_text()
    for line in text.splitlines():
        json.loads(line, parse_constant=lambda c: pytest.fail(f"bare {c} in records.jsonl"))
    back = load_records_jsonl(path)
    assert math.isnan(back.records[0].features["mean_logit"])
    assert [r.to_dict() for r in back.records[1:]] == [r.to_dict() for r in run.records[1:]]
    # records files are recognised by content, also under another name
    other = tmp_path / "mine.jsonl"
    other.write_text(text)
    assert load_run(other).keys == run.keys


def test_nothing_to_read_names_what_is_expected(tmp_path):
    (tmp_path / "notes.txt").write_text("x")
    with pytest.raises(RecordError, match="no records.jsonl, no plain table and no lm-eval samples"):
        load_run(tmp_path)


def test_a_multi_model_folder_is_one_run_per_model_for_report_and_clean():
    from calib_harness.lm_eval_io import load_runs

    runs = load_runs(STOCK)
    assert sorted(r.model for r in runs) == ["qwen2.5-coder-0.5b", "smollm2-135m"]
    assert [r.model for r in load_runs(STOCK, model="smollm2-135m")] == ["smollm2-135m"]
    assert [r.model for r in load_runs(OURS)] == ["smollm2-135m"]
