"""Runs users already have: stock lm-eval sample logs and plain per-sample tables, through every post-processor.

Fixtures are real: ``tests/fixtures/stock_logs/arc_easy_limit40`` is what
``examples/stock_logs/run_stock.sh`` wrote (stock ``lm_eval --model hf --tasks arc_easy --log_samples
--limit 40`` with SmolLM2-135M and Qwen2.5-Coder-0.5B, the stock YAML pointed at local Parquet files);
``examples/stock_logs/plain_table*.{csv,jsonl}`` are the same answers written as plain tables.
The slow test at the end makes a stock run again with the real lm_eval CLI.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from calib_harness.cli import main
from calib_harness.lm_eval_io import load_run
from calib_harness.records import RecordError, softmax

ROOT = Path(__file__).resolve().parents[1]
STOCK = ROOT / "tests" / "fixtures" / "stock_logs" / "arc_easy_limit40"
EXAMPLE = ROOT / "examples" / "stock_logs"
MODELS = ("smollm2-135m", "qwen2.5-coder-0.5b")


def _folder(model: str) -> Path:
    return next(d for d in STOCK.iterdir() if d.is_dir() and d.name.endswith(model))


def _results(model: str) -> dict:
    return json.loads(next(_folder(model).glob("results_*.json")).read_text())["results"]["arc_easy"]


def _samples(model: str) -> list[dict]:
    return [json.loads(x) for x in next(_folder(model).glob("samples_*.jsonl")).read_text().splitlines()]


@pytest.mark.parametrize("model", MODELS)
def test_stock_multiple_choice_log_becomes_records(model):
    run = load_run(STOCK, model=model)
    assert run.model == model and len(run) == 40 and run.tasks == ["arc_easy"]
    # correctness is the log's own metric: the means are lm-eval's aggregated acc / acc_norm
    assert run.scores().mean() == pytest.approx(_results(model)["acc,none"], abs=1e-12)
    norm = load_run(STOCK, model=model, scoring="acc_norm")
    assert norm.scores().mean() == pytest.approx(_results(model)["acc_norm,none"], abs=1e-12)
    for rec, rec_norm, s in zip(run.records, norm.records, _samples(model)):
        lls = np.array([float(r[0]) for r in s["filtered_resps"]])
        choices = [a["arg_1"][1:] for a in s["arguments"].values()]
        # restricted softmax over the choices' log-likelihoods; lm-eval's acc prediction
        assert rec.confidence == pytest.approx(softmax(lls).max(), abs=1e-12)
        assert rec.prediction_index == int(np.argmax(lls))
        assert rec.extra["scoring"] == "acc" and rec_norm.extra["scoring"] == "acc_norm"
        # acc_norm: log-likelihood per character of the choice, as lm-eval's acc_norm
        per_char = lls / np.array([len(c) for c in choices])
        assert rec_norm.prediction_index == int(np.argmax(per_char))
        assert rec_norm.confidence == pytest.approx(softmax(per_char).max(), abs=1e-12)
        assert rec.features["acc_norm_confidence"] == pytest.approx(rec_norm.confidence, abs=1e-12)
        assert rec.score == s["acc"] and rec_norm.score == s["acc_norm"]
        assert rec.gold == choices[int(s["target"])] and rec.extra["filter"] == "none"


def test_selection_model_and_several_samples_files(tmp_path):
    with pytest.raises(RecordError, match="several models.*--model"):
        load_run(STOCK)
    with pytest.raises(RecordError, match="no model 'smollm3-135m'.*smollm2-135m"):
        load_run(STOCK, model="smollm3-135m")
    # the same task run twice into one folder: an error listing both files, unless latest
    folder = tmp_path / "m"
    shutil.copytree(_folder("smollm2-135m"), folder)
    src = next(folder.glob("samples_*.jsonl"))
    later = folder / "samples_arc_easy_2099-01-01T00-00-00.000001.jsonl"
    lines = src.read_text().splitlines()[:10]
    later.write_text("\n".join(lines) + "\n")
    with pytest.raises(RecordError, match=f"2 samples files for task 'arc_easy'.*{src.name}.*--latest"):
        load_run(folder)
    assert len(load_run(folder, latest=True)) == 10


def test_filters_are_part_of_the_key(tmp_path):
    """Two filter pipelines (as lm-eval logs them: one line per filter) load without duplicated keys."""
    folder = tmp_path / "m"
    shutil.copytree(_folder("smollm2-135m"), folder)
    src = next(folder.glob("samples_*.jsonl"))
    rows = [json.loads(x) for x in src.read_text().splitlines()]
    other = [{**r, "filter": "second"} for r in rows]
    src.write_text("".join(json.dumps(r) + "\n" for r in rows + other))
    both = load_run(folder)
    assert len(both) == 80 and both.tasks == ["arc_easy[none]", "arc_easy[second]"]
    one = load_run(folder, filter="second")
    assert len(one) == 40 and one.tasks == ["arc_easy"] and {r.extra["filter"] for r in one} == {"second"}
    with pytest.raises(RecordError, match="no filter 'strict'.*none, second"):
        load_run(folder, filter="strict")


@pytest.mark.parametrize("name", ["plain_table.csv", "plain_table_conf.jsonl"])
def test_plain_table_matches_the_stock_log(name, tmp_path):
    table = EXAMPLE / name
    with pytest.raises(RecordError, match="several models"):
        load_run(table)
    for model in MODELS:
        run, stock = load_run(table, model=model), load_run(STOCK, model=model)
        assert len(run) == 40 and run.scores().mean() == pytest.approx(stock.scores().mean())
        assert np.allclose(run.confidences(), stock.confidences(), atol=1e-5)
        assert (run.records[0].option_scores is not None) == name.endswith(".csv")
    # the same table as Parquet
    import pandas as pd

    pq = tmp_path / "t.parquet"
    df = pd.read_csv(table) if name.endswith(".csv") else pd.read_json(table, lines=True)
    df.to_parquet(pq)
    again = load_run(pq, model=MODELS[0])
    assert np.allclose(again.confidences(), load_run(table, model=MODELS[0]).confidences())


def test_plain_table_errors_name_the_columns(tmp_path):
    bad = tmp_path / "t.csv"
    bad.write_text("id,prediction\n1,A\n")
    with pytest.raises(RecordError, match="'confidence' column or option probabilities"):
        load_run(bad)
    bad.write_text("id,confidence,correct\n1,1.5,1\n")
    with pytest.raises(RecordError, match=r"row 1: confidence must be in \[0, 1\]"):
        load_run(bad)


def _cli(argv, capsys):
    code = main(argv)
    out = capsys.readouterr()
    assert code == 0, out.err
    return out.out


@pytest.mark.parametrize("source", ["stock", "table"])
def test_stock_runs_and_tables_go_through_every_post_processor(source, tmp_path, capsys):
    """calibrate, cascade, clean and report, unchanged, on the stock logs and on the plain table."""
    if source == "stock":
        small, large = [str(_folder(m)) for m in MODELS]
        sel_small, sel_large = [], []
    else:
        small = large = str(EXAMPLE / "plain_table.csv")
        sel_small, sel_large = ["--model", MODELS[0]], ["--model", MODELS[1]]
    out = tmp_path / "cal"
    _cli(["calibrate", small, *sel_small, "--bins", "4", "--no-plots", "-o", str(out)], capsys)
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["n"] == 40 and "temperature" in metrics["methods"]
    if source == "stock":
        _cli(["cascade", "--small", small, "--large", large, "--bins", "4", "--bins-sweep", "--routers", "CC", "random",
              "oracle", "--no-plots", "--no-progress", "-o", str(tmp_path / "cas")], capsys)
        assert (tmp_path / "cas" / "router.json").is_file()
        _cli(["clean", small, large, "--bins", "4", "--no-plots", "-o", str(tmp_path / "clean")], capsys)
        assert (tmp_path / "clean" / "flagged.csv").is_file()
        _cli(["report", small, large, "--no-mf", "--no-plots", "-o", str(tmp_path / "rep")], capsys)
        assert "smollm2-135m" in (tmp_path / "rep" / "report.md").read_text()
    else:
        a, b = tmp_path / "a.csv", tmp_path / "b.csv"  # one model per file, as another tool might write them
        import pandas as pd

        df = pd.read_csv(small)
        for m, f in zip(MODELS, (a, b)):
            df[df.model == m].to_csv(f, index=False)
        _cli(["cascade", "--small", str(a), "--large", str(b), "--bins", "4", "--bins-sweep", "--routers", "CC",
              "random", "oracle", "--no-plots", "--no-progress", "-o", str(tmp_path / "cas")], capsys)
        _cli(["clean", str(a), str(b), "--bins", "4", "--no-plots", "-o", str(tmp_path / "clean")], capsys)
        assert (tmp_path / "clean" / "flagged.csv").is_file()
    # strict JSON everywhere
    for f in tmp_path.rglob("*.json"):
        json.loads(f.read_text(), parse_constant=lambda c: pytest.fail(f"{f} holds bare {c}"))


@pytest.mark.slow
def test_a_stock_lm_eval_run_made_as_a_user_makes_it(tmp_path):
    """The real stock `lm_eval` CLI, offline, on local Parquet files (examples/stock_logs/README.md)."""
    if shutil.which("lm_eval") is None and not (Path(sys.executable).parent / "lm_eval").exists():
        pytest.fail("lm_eval is not installed next to this Python")
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", "LIMIT": "8", "OUT": str(tmp_path / "runs"),
           "PATH": f"{Path(sys.executable).parent}:{os.environ.get('PATH', '')}"}
    subprocess.run(["bash", str(EXAMPLE / "run_stock.sh")], env=env, check=True, timeout=3000, capture_output=True)
    for model in MODELS:
        run = load_run(tmp_path / "runs", model=model)
        assert len(run) == 8 and run.tasks == ["arc_easy"]
        res = json.loads(next((tmp_path / "runs").glob(f"*{model}/results_*.json")).read_text())["results"]["arc_easy"]
        assert run.scores().mean() == pytest.approx(res["acc,none"])


GSM8K = ROOT / "tests" / "fixtures" / "stock_logs" / "gsm8k_limit4"


def test_stock_generation_log_two_filters_no_confidence(capsys):
    """Stock gsm8k (examples/stock_logs/run_stock_gsm8k.sh): one line per filter, outputs a verifier can re-score."""
    from calib_harness.readers import rescore

    both = load_run(GSM8K)
    assert both.tasks == ["gsm8k[flexible-extract]", "gsm8k[strict-match]"] and len(both) == 8
    assert not both.has_confidence
    samples = [json.loads(x) for x in next(GSM8K.rglob("samples_*.jsonl")).read_text().splitlines()]
    strict = load_run(GSM8K, filter="strict-match")
    assert strict.tasks == ["gsm8k"] and len(strict) == 4
    logged = {str(s["doc_id"]): s for s in samples if s["filter"] == "strict-match"}
    for r in strict:
        s = logged[r.doc_id]
        assert r.confidence is None and r.score == s["exact_match"] and r.prediction == s["filtered_resps"][0]
        assert r.extra["output"] == s["resps"][0][0] and r.extra["doc"] == s["doc"]
    # a verifier re-scores the filtered response against the document
    flexible = rescore(load_run(GSM8K, filter="flexible-extract"), "numeric")
    assert all(r.extra["score_metric"] == "verifier:numeric" and "logged_score" in r.extra for r in flexible)
    # calibrate refuses them with one clear line
    assert main(["calibrate", str(GSM8K), "--filter", "strict-match", "-o", "unused"]) == 2
    err = capsys.readouterr().err
    assert "no token probabilities" in err and "calib-hf" in err and err.count("\n") == 1


def test_runs_without_confidence_route_with_oracle_random_mf(tmp_path, capsys):
    """Records without confidence (as stock generation logs give): oracle, random and MF route; CC is refused clearly."""
    import dataclasses

    from calib_harness.records import Run

    paths = []
    for m in MODELS:
        run = load_run(STOCK, model=m)
        stripped = [dataclasses.replace(r, confidence=None, option_scores=None, option_labels=None) for r in run]
        paths.append(Run(m, stripped).save(tmp_path / m))
    base = ["cascade", "--small", str(paths[0]), "--large", str(paths[1]), "--bins", "4", "--bins-sweep", "--no-plots",
            "--no-progress"]
    assert main([*base, "-o", str(tmp_path / "cc")]) == 2
    assert "need per-sample confidences" in capsys.readouterr().err
    _cli([*base, "--routers", "oracle", "random", "MF", "-o", str(tmp_path / "ok")], capsys)
    comp = json.loads((tmp_path / "ok" / "comparison.json").read_text())
    assert set(comp["apgr"]) == {"oracle", "random", "MF"} and comp["n_test"] == 20
    assert comp["apgr"]["random"] == pytest.approx(0.5) and comp["apgr"]["MF"] <= comp["apgr"]["oracle"]


def test_confidence_only_table_calibrates_and_cleans(tmp_path, capsys):
    """A plain table with a confidence and a prediction only: Platt calibration; clean runs the methods that
    need no option scores and names those that do."""
    import pandas as pd

    df = pd.read_json(EXAMPLE / "plain_table_conf.jsonl", lines=True)
    files = []
    for m in MODELS:
        files.append(tmp_path / f"{m}.jsonl")
        df[df.model == m].to_json(files[-1], orient="records", lines=True)
    _cli(["calibrate", str(files[0]), "--bins", "4", "--no-plots", "-o", str(tmp_path / "cal")], capsys)
    assert list(json.loads((tmp_path / "cal" / "metrics.json").read_text())["methods"]) == ["platt"]
    code = main(["clean", *map(str, files), "--bins", "4", "--no-plots", "-o", str(tmp_path / "clean")])
    out = capsys.readouterr()
    assert code == 0, out.err
    assert "confident-learning" in out.err + out.out and "need option scores" in out.err + out.out
    summary = pd.read_csv(tmp_path / "clean" / "summary.csv")
    assert summary["method"].str.startswith("M1").any() and summary["method"].str.startswith("M2").any()
