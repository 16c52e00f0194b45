"""calib_harness.outputs: strict JSON, atomic writes, output folders that never lose earlier work silently."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from calib_harness.outputs import (
    MANIFEST,
    CliError,
    Null,
    dumps_strict,
    prepare_output_dir,
    write_json,
    write_text,
)

_floats = st.floats(allow_nan=True, allow_infinity=True)
_json_like = st.recursive(
    st.none() | st.booleans() | st.integers() | _floats | st.text(max_size=5),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=5), children, max_size=4),
    max_leaves=20,
)


def _reject_constants(c):
    raise AssertionError(f"bare {c} in the JSON")


@settings(max_examples=200, deadline=None)
@given(_json_like)
def test_strict_json_never_holds_nan_or_infinity(obj):
    text = dumps_strict(obj)
    back = json.loads(text, parse_constant=_reject_constants)  # strict parsers reject NaN / Infinity
    # finite numbers survive exactly; every NaN / inf became null
    def same(a, b):
        if isinstance(a, float) and not math.isfinite(a):
            return b is None
        if isinstance(a, dict):
            return all(same(v, b[str(k)]) for k, v in a.items())
        if isinstance(a, list):
            return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b))
        return a == b
    assert same(obj, back)


def test_null_carries_its_reason():
    out = json.loads(dumps_strict({"auroc": Null("one class only"), "ece": float("nan"), "n": np.int64(3),
                                   "curve": np.array([0.5, np.nan])}))
    assert out["auroc"] is None and out["ece"] is None and out["n"] == 3 and out["curve"] == [0.5, None]
    assert out["null_reasons"]["auroc"] == "one class only"
    assert "undefined" in out["null_reasons"]["ece"] and "curve" in out["null_reasons"]


def test_atomic_write_keeps_the_old_file_when_writing_fails(tmp_path):
    target = tmp_path / "metrics.json"
    write_json(target, {"a": 1})
    with pytest.raises(TypeError):
        write_json(target, {"a": object()})  # fails while serialising: nothing replaced
    assert json.loads(target.read_text()) == {"a": 1}
    assert [p.name for p in tmp_path.iterdir()] == ["metrics.json"]  # no temp file left behind
    write_text(target, "new\n")
    assert target.read_text() == "new\n"


def test_output_folder_refused_unless_force_and_nothing_stale(tmp_path):
    out = tmp_path / "out"
    first = prepare_output_dir(out, False, "demo")
    write_text(first / "a.txt", "1")
    write_text(first / "sub" / "b.txt", "2")
    first.finish()
    assert json.loads((out / MANIFEST).read_text())["files"] == ["a.txt", "sub/b.txt"]
    with pytest.raises(CliError, match="already holds results.*--force"):
        prepare_output_dir(out, False, "demo")
    assert (out / "a.txt").read_text() == "1"  # refused: untouched
    again = prepare_output_dir(out, True, "demo")
    assert sorted(p.name for p in again.removed) == sorted([MANIFEST, "a.txt", "b.txt"])
    assert [p.name for p in out.rglob("*")] == [MANIFEST]  # nothing stale remains


def test_force_keeps_named_files_and_never_deletes_inputs(tmp_path):
    out = tmp_path / "out"
    prepare_output_dir(out, False, "clean")
    write_text(out / "flagged.csv", "id,human_verdict\n1,wrong label\n")
    write_text(out / "summary.csv", "x\n")
    prepare_output_dir(out, True, "clean", keep=("flagged.csv",))
    assert (out / "flagged.csv").read_text().endswith("wrong label\n") and not (out / "summary.csv").exists()
    write_text(out / "records.jsonl", "{}\n")
    with pytest.raises(CliError, match="input files of this run"):
        prepare_output_dir(out, True, "calibrate", protect=[out / "records.jsonl"])
    assert (out / "records.jsonl").exists()


def test_a_file_is_not_an_output_folder(tmp_path):
    f = tmp_path / "x"
    f.write_text("")
    with pytest.raises(CliError, match="is a file"):
        prepare_output_dir(f, True, "report")
