"""Verifiers: registry, entry points, label_match, numeric (agreement with lm-eval's own GSM8K filters on
the 1,319 real test answers), continuous scores, code extraction."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import yaml

import lm_eval
import lm_eval.filters  # noqa: F401  (registers lm-eval's built-in filters)
from lm_eval.api.registry import get_filter

from calib_harness.verifiers import (
    VerifierError,
    VerifierResult,
    available_verifiers,
    extract_code,
    get_verifier,
    register_verifier,
)
from calib_harness.verifiers.numeric import normalize_number_text, parse_number

GSM8K_TASK_DIR = Path(lm_eval.__file__).parent / "tasks" / "gsm8k"


# --------------------------------------------------------------------------------------------- registry
def test_builtins_registered():
    names = available_verifiers()
    for n in ("label_match", "numeric", "code_exec", "judge", "token_f1"):
        assert n in names


def test_unknown_verifier_and_bad_score_raise():
    with pytest.raises(VerifierError, match="unknown verifier 'nope'"):
        get_verifier("nope")
    with pytest.raises(VerifierError):
        VerifierResult(1.5, None)
    with pytest.raises(VerifierError):
        VerifierResult(float("nan"), None)


def test_register_and_duplicate():
    class Always:
        def __init__(self, value=1.0):
            self.value = value

        def verify(self, doc, output):
            return VerifierResult(self.value, output, {})

    register_verifier("test_always_tmp", Always)
    assert get_verifier("test_always_tmp", value=0.25).verify({}, "x").score == 0.25
    with pytest.raises(VerifierError, match="already registered"):
        register_verifier("test_always_tmp", lambda: None)


def test_entry_point_plugin_from_installed_distribution(tmp_path):
    """A real (minimal) installed distribution on sys.path advertises a verifier through the entry-point
    group; a fresh interpreter discovers and builds it by name."""
    site = tmp_path / "site"
    (site / "my_plugin_verifiers").mkdir(parents=True)
    (site / "my_plugin_verifiers" / "__init__.py").write_text(
        textwrap.dedent(
            """
            from calib_harness.verifiers import Verifier, VerifierResult
            class Upper(Verifier):
                name = "plugin_upper"
                def __init__(self, gold_key="answer"):
                    self.gold_key = gold_key
                def verify(self, doc, output):
                    ok = output.strip().upper() == str(doc[self.gold_key]).upper()
                    return VerifierResult(float(ok), output.strip(), {"plugin": True})
            def factory(**kw):
                return Upper(**kw)
            """
        )
    )
    dist = site / "my_plugin_verifiers-0.1.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: my-plugin-verifiers\nVersion: 0.1\n")
    (dist / "entry_points.txt").write_text("[calib_harness.verifiers]\nplugin_upper = my_plugin_verifiers:factory\n")
    code = textwrap.dedent(
        f"""
        import sys, json
        sys.path.insert(0, {str(site)!r})
        from calib_harness.verifiers import available_verifiers, get_verifier
        v = get_verifier("plugin_upper")
        r = v.verify({{"answer": "Paris"}}, " paris ")
        print(json.dumps({{"listed": "plugin_upper" in available_verifiers(), "score": r.score, "details": r.details}}))
        """
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    got = json.loads(out.stdout.strip().splitlines()[-1])
    assert got == {"listed": True, "score": 1.0, "details": {"plugin": True}}


# --------------------------------------------------------------------------------------------- label_match
@pytest.mark.parametrize(
    "output,expected",
    [
        ("B", "B"),
        (" (B)", "B"),
        ("B.", "B"),
        ("Answer: B", "B"),
        ("b", "B"),
        ("the answer is (b)", "B"),
        ("b) Paris", "B"),
        ("**C**", "C"),
        ("I think A is wrong, so the correct option is D.", "D"),
        ("Let me see. (C)", "C"),
        ("no idea", None),
    ],
)
def test_label_match_extraction(output, expected):
    assert get_verifier("label_match").extract(output)[0] == expected


def test_label_match_on_real_arc_docs(shared_data):
    """Gold from real ARC answerKeys (letters and the digit labels some questions use)."""
    docs = [json.loads(x) for x in (shared_data / "arc/ARC-Challenge/ARC-Challenge-Test.jsonl").read_text().splitlines()]
    v = get_verifier("label_match", gold_key="answerKey", labels_key="labels")
    n_digit = 0
    for d in docs:
        d = dict(d, labels=[c["label"] for c in d["question"]["choices"]])
        gold = d["answerKey"]
        n_digit += gold.isdigit()
        wrong = next(lab for lab in d["labels"] if lab != gold)
        assert v.verify(d, f"Answer: {gold}").score == 1.0
        assert v.verify(d, f"({gold.lower()})").score == 1.0
        assert v.verify(d, f"{wrong}.").score == 0.0
    assert n_digit > 0  # the digit-labelled questions were exercised


def test_label_match_index_gold_and_errors():
    v = get_verifier("label_match", labels=["A", "B", "C", "D"])
    assert v.verify({"gold": 2}, "C").score == 1.0
    assert v.verify({"gold": 2}, "B").score == 0.0
    with pytest.raises(VerifierError, match="outside"):
        v.verify({"gold": 7}, "C")
    with pytest.raises(VerifierError, match="none of the gold fields"):
        v.verify({"question": "?"}, "C")


# --------------------------------------------------------------------------------------------- numeric
def _lm_eval_filters(yaml_name: str) -> dict:
    """lm-eval's own RegexFilter objects, built from the filter_list of its task YAML."""
    cfg = yaml.safe_load((GSM8K_TASK_DIR / yaml_name).read_text())
    out = {}
    for fl in cfg["filter_list"]:
        step = fl["filter"][0]
        assert step["function"] == "regex"
        out[fl["name"]] = get_filter("regex")(**{k: v for k, v in step.items() if k != "function"})
    return out


@pytest.fixture(scope="module")
def gsm8k_test(shared_data):
    docs = [json.loads(x) for x in (shared_data / "gsm8k/test.jsonl").read_text().splitlines()]
    assert len(docs) == 1319
    return docs


def _variants(docs):
    raw = [d["answer"] for d in docs]
    no_hash = [d["answer"].replace("#### ", "") for d in docs]  # only the last-number rule can apply
    cot = [d["answer"].split("####")[0].strip() + " The answer is " + d["answer"].split("####")[-1].strip() + "." for d in docs]
    return {"raw": raw, "no_hash": no_hash, "cot": cot}


@pytest.mark.parametrize(
    "yaml_name,filter_name,variant",
    [
        ("gsm8k.yaml", "strict-match", "raw"),
        ("gsm8k.yaml", "flexible-extract", "raw"),
        ("gsm8k.yaml", "flexible-extract", "no_hash"),
        ("gsm8k-cot.yaml", "strict-match", "cot"),
        ("gsm8k-cot.yaml", "flexible-extract", "cot"),
    ],
)
def test_numeric_agrees_with_lm_eval_filters(gsm8k_test, yaml_name, filter_name, variant):
    filt = _lm_eval_filters(yaml_name)[filter_name]
    texts = _variants(gsm8k_test)[variant]
    theirs = [r[0] for r in filt.apply([[t] for t in texts], gsm8k_test)]
    v = get_verifier("numeric")
    applied = disagree = 0
    for t, o in zip(texts, theirs):
        if o == "[invalid]":  # the filter does not apply
            continue
        applied += 1
        ours, _ = v.extract(t)
        # compare after the normalisation lm-eval's exact_match applies (regexes_to_ignore: , $ trailing .)
        if ours is None or parse_number(ours) != parse_number(normalize_number_text(o)):
            disagree += 1
    assert applied == 1319
    assert disagree == 0


@pytest.mark.parametrize("split,n_docs", [("test", 1319), ("train", 7473)])
def test_numeric_is_exact_on_every_gsm8k_answer(shared_data, split, n_docs):
    """Every GSM8K gold (test and train): the gold itself scores right, gold+1 and gold-1 score wrong, in
    each form an answer arrives in (lm-eval's ``####``, CoT's "The answer is", a bare last number)."""
    docs = [json.loads(x) for x in (shared_data / f"gsm8k/{split}.jsonl").read_text().splitlines()]
    assert len(docs) == n_docs
    v = get_verifier("numeric")
    wrong = []
    for d in docs:
        gold = parse_number(v.gold_text(d))
        assert gold is not None and gold.denominator == 1
        if v.verify(d, d["answer"]).score != 1.0:
            wrong.append((d["answer"][-30:], "gold"))
        for off in (1, -1):
            bad = int(gold) + off
            for text in (f"#### {bad}", f"The answer is {bad}.", f"so she pays {bad:,} in all"):
                if v.verify(d, text).score != 0.0:
                    wrong.append((v.gold_text(d), text))
    assert wrong == []


def test_numeric_large_off_by_one_is_wrong():
    v = get_verifier("numeric")
    assert v.verify({"answer": "... #### 1,450,000"}, "The answer is 1450001.").score == 0.0
    assert v.verify({"answer": "... #### 1,450,000"}, "The answer is 1,450,000.").score == 1.0
    # exact decimals compare exactly too
    assert v.verify({"answer": "0.3"}, "0.30000001").score == 0.0
    assert v.verify({"answer": "0.3"}, "$0.30").score == 1.0


def test_numeric_tolerance_only_for_inexact_gold():
    v = get_verifier("numeric", rel_tol=1e-3)
    assert v.verify({"answer": 3.14159}, "about 3.1416").score == 1.0  # float gold: tolerance
    assert v.verify({"answer": "~3.14159"}, "3.1416").score == 1.0  # marked approximate
    assert v.verify({"answer": "6.02e23"}, "602,100,000,000,000,000,000,000").score == 1.0
    r = v.verify({"answer": "3.14159"}, "3.1416")  # written-out decimal: exact
    assert r.score == 0.0 and r.details["exact"] is True
    assert v.verify({"answer": 3}, "3.0").score == 1.0 and v.verify({"answer": 3}, "3.001").score == 0.0


@pytest.mark.parametrize(
    "output,gold",
    [
        ("#### 1,234", "1234"),
        ("The total is $1,234.00.", "1234"),
        ("\\boxed{18}", "18"),
        ("\\boxed{\\frac{3}{4}}", "0.75"),
        ("she owes -5 dollars", "-5"),
        ("It takes 1 1/2 hours", "1.5"),
        ("x = 3/4", "3/4"),
        ("The answer is 12.0", "12"),
        ("The answer is 7. Then 3 more steps were unnecessary? no, 7", "7"),
    ],
)
def test_numeric_forms(output, gold):
    assert get_verifier("numeric").verify({"answer": gold}, output).score == 1.0


def test_numeric_no_number_and_bad_gold():
    v = get_verifier("numeric")
    r = v.verify({"answer": "5"}, "I do not know")
    assert r.score == 0.0 and r.extracted is None and r.details["method"] == "none"
    with pytest.raises(VerifierError, match="not a number"):
        v.verify({"answer": "five"}, "5")


# --------------------------------------------------------------------------------------------- continuous
def test_judge_hook_passes_continuous_scores_and_validates():
    def judge(doc, output):
        return (0.73, {"why": "paraphrase"}) if "capital" in output else 0.1

    v = get_verifier("judge", scorer=judge)
    r = v.verify({"answer": "Paris"}, "Paris is the capital")
    assert r.score == pytest.approx(0.73) and r.details["why"] == "paraphrase" and r.correct
    assert not v.verify({"answer": "Paris"}, "London").correct
    assert get_verifier("judge", scorer=lambda d, o: 0.9).verify({}, "x").correct
    with pytest.raises(VerifierError, match="outside"):
        get_verifier("judge", scorer=lambda d, o: 1.2).verify({}, "x")
    with pytest.raises(VerifierError):
        get_verifier("judge")


def test_token_f1_is_continuous():
    v = get_verifier("token_f1")
    r = v.verify({"answer": ["the Eiffel Tower in Paris"]}, "Eiffel Tower")
    assert 0.0 < r.score < 1.0
    assert v.verify({"answer": "Paris"}, "paris.").score == 1.0


# --------------------------------------------------------------------------------------------- code extraction
def test_extract_code_forms():
    assert extract_code("Here:\n```python\ndef f():\n    return 1\n```\nDone") == "def f():\n    return 1"
    assert extract_code("```\nx = 1\n```") == "x = 1"
    assert extract_code("```py\nx = 2\n") == "x = 2"  # unterminated fence
    assert extract_code("def g(): pass\n") == "def g(): pass"
    assert extract_code("```text\nnot code\n```\n```python\ny = 3\n```") == "y = 3"


def test_code_exec_bad_input():
    with pytest.raises(VerifierError, match="unknown suite"):
        get_verifier("code_exec", suite="humaneval")
    v = get_verifier("code_exec", suite="mbpp")
    with pytest.raises(VerifierError, match="test_list"):
        v.build_program({"text": "x"}, "def f(): pass")
