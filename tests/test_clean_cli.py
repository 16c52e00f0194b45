"""``calib-harness clean`` end to end: records files in, ranked CSV, evaluation, plot, re-evaluation out."""

from __future__ import annotations

import argparse
import csv
import json
import re as re_module

import numpy as np
import pytest

from calib_harness.commands import clean
from calib_harness.outputs import CliError
from calib_harness.records import Run, SampleRecord

LABELS = ("A", "B", "C", "D")


def parse(argv):
    parser = argparse.ArgumentParser(prog="calib-harness")
    sub = parser.add_subparsers(dest="command")
    clean.add_parser(sub)
    return parser.parse_args(["clean", *argv])


def write_runs(tmp_path, n=150, option_scores=True):
    """Two experts, a 'weak' and a 'strong' model on the same docs; every 8th given label is wrong
    and the strong model knows the right answer."""
    rng = np.random.default_rng(3)
    true = rng.integers(0, 4, n)
    paths = {}
    for name, strength in (("small", 1.5), ("medium", 2.5), ("weak", 1.0), ("strong", 6.0)):
        recs = []
        for i in range(n):
            logits = rng.normal(0, 0.4, 4)
            logits[true[i]] += strength
            p = np.exp(logits) / np.exp(logits).sum()
            gold = LABELS[(true[i] + 2) % 4] if i % 8 == 0 else LABELS[true[i]]
            pred = int(p.argmax())
            if option_scores:
                recs.append(
                    SampleRecord("calib_toy", str(i), name, LABELS[pred], float(p[pred]), float(LABELS[pred] == gold), gold,
                                 LABELS, tuple(np.log(p)), "single_token", {}, f"question {i}?")
                )
            else:  # a plain per-sample table: prediction, confidence, correctness, no option scores
                recs.append(SampleRecord("calib_toy", str(i), name, LABELS[pred], float(p[pred]),
                                         float(LABELS[pred] == gold), gold, prompt=f"question {i}?"))
        paths[name] = Run(name, recs).save(tmp_path / name)
    return paths


def _strict_json(path):
    def bad(c):
        raise AssertionError(f"{path.name}: bare {c}")

    return json.loads(path.read_text(), parse_constant=bad)


def test_clean_cli_with_pseudo_label_reference_and_reevaluation(tmp_path, capsys):
    paths = write_runs(tmp_path)
    out = tmp_path / "out"
    args = parse(
        [str(paths["small"]), str(paths["medium"]), "--bins", "5", "--reference", f"pseudo:{paths['strong']}",
         "--filter-by", "prune_by_noise_rate", "both", "--reeval", str(paths["weak"]), str(paths["strong"]),
         "--reeval-with", "M1 top-1 +agree", "--cascade", "-o", str(out)]
    )
    assert args.func(args) == 0
    printed = capsys.readouterr().out
    assert "150 documents evaluated" in printed and "pseudo-strong" in printed
    assert "95% Wilson intervals in brackets" in printed and "CIRCULAR" not in printed
    assert re_module.search(r"1\.000 \[0\.\d{3}, 1\.000\]", printed)  # a precision with its interval
    for name in ("flagged.csv", "flagged.jsonl", "summary.csv", "bins.csv", "evaluation.csv", "evaluation.json",
                 "overlap.csv", "precision_detection.png", "reevaluation.csv", "reevaluation.json", "verdict_guide.txt",
                 "run.json"):
        assert (out / name).exists(), name
    assert (out / "precision_detection.png").read_bytes()[:4] == b"\x89PNG"
    ev = list(csv.DictReader((out / "evaluation.csv").open()))
    methods = {r["method"] for r in ev}
    assert {"M1 top-1", "M2 K=1", "M2 +agree K=5", "M3 class-threshold (all)", "CL prune_by_noise_rate", "CL both"} <= methods
    m1 = next(r for r in ev if r["method"] == "M1 top-1 +agree" and r["positives"] == "any")
    # 150 docs, every 8th wrong = 19; the strong model gets all right, so these are the positives
    assert int(m1["n_eval"]) == 150 and int(m1["n_errors"]) == 19
    assert float(m1["precision"]) > 0.5 and float(m1["detection_rate"]) > 0.5
    assert float(m1["precision_lo"]) <= float(m1["precision"]) <= float(m1["precision_hi"])
    ej = _strict_json(out / "evaluation.json")
    assert ej["interval"] == "95% Wilson score"
    nothing = next(r for r in ej["rows"] if r["n_flagged"] == 0)  # undefined precision: null plus a reason
    assert nothing["precision"] is None and "precision" in nothing["null_reasons"]
    flagged = list(csv.DictReader((out / "flagged.csv").open()))
    assert flagged and flagged[0]["rank"] == "1" and "human_verdict" in flagged[0] and "notes" in flagged[0]
    assert {"pred[small]", "conf[medium]", "ref_error_type"} <= set(flagged[0])
    rows = list(csv.DictReader((out / "reevaluation.csv").open()))
    re = {(r["scored"], r["label_set"]): r for r in rows}
    assert {ls for _, ls in re} == {"full", "removed", "relabeled"}
    assert all(r["circular"] == "False" for r in rows)
    # the strong model answers the true labels: cleaning raises its measured accuracy
    acc = {k: float(v["accuracy"]) for k, v in re.items()}
    assert acc[("strong", "full")] < acc[("strong", "removed")] <= 1.0
    assert acc[("strong", "relabeled")] > acc[("strong", "full")]
    casc = re[("CC weak->strong", "full")]
    assert casc["role"] == "cascade" and casc["operating_point_from"] == "calibration half"
    assert 0 < float(casc["accuracy"]) <= 1 and casc["K"] != ""
    rj = _strict_json(out / "reevaluation.json")
    assert rj["circular"] is False and rj["cleaned_with"] == "M1 top-1 +agree"
    run_json = _strict_json(out / "run.json")
    assert run_json["methods_skipped"] == {} and run_json["reevaluation"]["circular"] is False


def test_clean_cli_refuses_circular_reevaluation_unless_allowed(tmp_path, capsys):
    paths = write_runs(tmp_path, n=80)
    base = [str(paths["small"]), str(paths["medium"]), "--bins", "4"]
    args = parse([*base, "--cascade", "-o", str(tmp_path / "a")])
    with pytest.raises(CliError, match="took no part in the cleaning.*--allow-circular"):
        args.func(args)
    args = parse([*base, "--reeval", str(paths["small"]), str(paths["strong"]), "-o", str(tmp_path / "b")])
    with pytest.raises(ValueError, match="small, which took part in the cleaning"):
        args.func(args)
    args = parse([*base, "--cascade", "--allow-circular", "-o", str(tmp_path / "c")])
    assert args.func(args) == 0
    assert "[CIRCULAR: scored runs took part in the cleaning]" in capsys.readouterr().out
    rows = list(csv.DictReader((tmp_path / "c" / "reevaluation.csv").open()))
    assert rows and all(r["circular"] == "True" for r in rows)
    # the relabelled rows never take their labels from the run they score
    for r in rows:
        if r["label_set"] == "relabeled" and r["role"] == "model":
            assert r["scored"] not in r["labels_from"].replace("agreed answer of experts ", "").split(", ")
    assert _strict_json(tmp_path / "c" / "reevaluation.json")["circular"] is True


def test_clean_cli_rerun_keeps_human_edits(tmp_path, capsys):
    paths = write_runs(tmp_path, n=120)
    out = tmp_path / "out"
    argv = [str(paths["small"]), str(paths["medium"]), "--bins", "5", "-o", str(out)]
    assert parse(argv).func(parse(argv)) == 0
    path = out / "flagged.csv"
    rows = list(csv.DictReader(path.open()))
    fields = list(rows[0]) + ["my_column"]
    edited = {}
    for r in rows[:3]:
        r["human_verdict"], r["notes"], r["my_column"] = "1", f"checked {r['doc_id']}, \"really\"", "x"
        edited[r["doc_id"]] = r
    with path.open("w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=fields, restval="")
        w.writeheader()
        w.writerows(rows)
    # a rerun without --force is refused: nothing is touched
    with pytest.raises(CliError, match="--force"):
        parse(argv).func(parse(argv))
    # a rerun with --force and other settings (flags only method 2 at K=1 now): the edits stay
    argv2 = [str(paths["small"]), str(paths["medium"]), "--bins", "3", "--method", "high-confidence", "--k", "1",
             "--force", "-o", str(out)]
    assert parse(argv2).func(parse(argv2)) == 0
    new = {r["doc_id"]: r for r in csv.DictReader(path.open())}
    for doc, r in edited.items():
        assert new[doc]["human_verdict"] == "1" and new[doc]["notes"] == r["notes"] and new[doc]["my_column"] == "x"
        assert new[doc]["still_flagged"] in ("yes", "no")
    assert list(new.values())[-1]["human_verdict"] == "" or any(v["still_flagged"] == "no" for v in new.values())


def test_clean_cli_on_records_without_option_scores(tmp_path, capsys):
    paths = write_runs(tmp_path, n=120, option_scores=False)
    out = tmp_path / "plain"
    args = parse([str(paths["small"]), str(paths["medium"]), "--bins", "5", "--reference", f"pseudo:{paths['strong']}",
                  "-o", str(out)])
    assert args.func(args) == 0
    printed = capsys.readouterr().out
    note = [line for line in printed.splitlines() if line.startswith("note:")]
    assert len(note) == 1 and "class-threshold, confident-learning need option scores" in note[0]
    ev = {r["method"] for r in csv.DictReader((out / "evaluation.csv").open())}
    assert "M1 top-1" in ev and "M2 K=1" in ev and not any(m.startswith(("M3", "CL")) for m in ev)
    rj = _strict_json(out / "run.json")
    assert set(rj["methods_skipped"]["methods"]) == {"class-threshold", "confident-learning"}
    # asking for one of them explicitly is an error naming it
    args = parse([str(paths["small"]), "--bins", "5", "--method", "confident-learning", "-o", str(tmp_path / "x")])
    with pytest.raises(ValueError, match="confident-learning need option scores"):
        args.func(args)


def test_clean_cli_min_precision(tmp_path, capsys):
    paths = write_runs(tmp_path, n=400)
    out = tmp_path / "rc"
    args = parse([str(paths["small"]), str(paths["medium"]), "--bins", "5", "--reference", f"pseudo:{paths['strong']}",
                  "--min-precision", "0.7", "--delta", "0.1", "--reeval", str(paths["weak"]), "-o", str(out)])
    assert args.func(args) == 0
    printed = capsys.readouterr().out
    assert "risk control:" in printed
    rc = _strict_json(out / "risk_control.json")
    assert rc["min_precision"] == 0.7 and rc["delta"] == 0.1 and rc["references"]
    assert rc["satisfied"] and rc["chosen"].startswith("M2 K=") and "probability >= 0.9" in rc["guarantee"]
    assert _strict_json(out / "run.json")["risk_control"]["chosen"] == rc["chosen"]
    flagged = list(csv.DictReader((out / "flagged.csv").open()))
    assert sum(r["risk_controlled"] == "yes" for r in flagged) == rc["n_flagged"]
    assert _strict_json(out / "reevaluation.json")["cleaned_with"] == f"risk-controlled ({rc['chosen']})"
    # too few labelled samples for the requested level: one clear error that says how many are needed
    small = write_runs(tmp_path / "small", n=40)
    args = parse([str(small["small"]), str(small["medium"]), "--bins", "4", "--reference", f"pseudo:{small['strong']}",
                  "--min-precision", "0.95", "--delta", "0.05", "-o", str(tmp_path / "rc2")])
    with pytest.raises(ValueError, match=r"too few calibration samples.*needs at least \d+"):
        args.func(args)
    assert not (tmp_path / "rc2").exists()  # refused before any output was written
    args = parse([str(small["small"]), "--min-precision", "0.9", "-o", str(tmp_path / "rc3")])
    with pytest.raises(CliError, match="--min-precision needs --reference"):
        args.func(args)


def test_clean_help_states_minimums(capsys):
    with pytest.raises(SystemExit):
        parse(["--help"])
    text = capsys.readouterr().out
    assert "Minimums: 2 x --bins documents" in text and "log(D) / log(P)" in text
    assert "--allow-circular" in text and "need option scores" in text


def test_clean_cli_rejects_bad_input(tmp_path):
    paths = write_runs(tmp_path, n=60)
    args = parse([str(paths["small"]), "--reference", "imagenet-real", "-o", str(tmp_path / "o")])
    with pytest.raises(CliError, match="--reference"):
        args.func(args)
    args = parse([str(tmp_path / "missing.jsonl")])
    with pytest.raises(FileNotFoundError):
        args.func(args)
    args = parse([str(paths["small"]), "--k", "9", "--bins", "5", "-o", str(tmp_path / "o")])
    with pytest.raises(ValueError, match="K must lie"):
        args.func(args)


def test_clean_cli_cifar10_against_mturk(tmp_path, shared_data, capsys):
    out = tmp_path / "cifar"
    args = parse(["cleanlab:cifar10", "--data-dir", str(shared_data), "--reference", "mturk-cifar10",
                  "--require-agreement", "no", "--method", "high-confidence", "confident-learning", "-o", str(out)])
    assert args.func(args) == 0
    ev = list(csv.DictReader((out / "evaluation.csv").open()))
    cl = next(r for r in ev if r["method"] == "CL prune_by_noise_rate" and r["positives"] == "any")
    assert int(cl["n_eval"]) == 275 and int(cl["n_errors"]) == 54
    assert "mturk-cifar10" in capsys.readouterr().out


def test_clean_cli_on_plain_csv_tables(tmp_path, capsys):
    """The documented plain table (id, prediction, confidence, correct, label; no option probabilities)
    goes through clean: methods 1 and 2 run, the others are named."""
    import pandas as pd

    paths = write_runs(tmp_path, n=100, option_scores=False)
    from calib_harness.records import load_records_jsonl

    csvs = {}
    for name in ("small", "medium"):
        run = load_records_jsonl(paths[name])
        df = pd.DataFrame({"id": [r.doc_id for r in run.records], "task": "calib_toy", "model": name,
                           "prompt": [r.prompt for r in run.records], "prediction": [r.prediction for r in run.records],
                           "confidence": [r.confidence for r in run.records], "correct": [int(r.score) for r in run.records],
                           "label": [r.gold for r in run.records]})
        csvs[name] = tmp_path / f"{name}.csv"
        df.to_csv(csvs[name], index=False)
    out = tmp_path / "csv_out"
    args = parse([str(csvs["small"]), str(csvs["medium"]), "--bins", "5", "-o", str(out)])
    assert args.func(args) == 0
    printed = capsys.readouterr().out
    assert "100 documents evaluated" in printed and "need option scores" in printed
    summary = {r["method"] for r in csv.DictReader((out / "summary.csv").open())}
    assert "M1 top-1 +agree" in summary and "M2 K=5" in summary and not any(m.startswith(("M3", "CL")) for m in summary)
    flagged = list(csv.DictReader((out / "flagged.csv").open()))
    assert flagged and all(int(r["doc_id"]) % 8 == 0 for r in flagged if r["methods"].find("+agree") >= 0)
