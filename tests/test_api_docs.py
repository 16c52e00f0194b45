"""docs/API.md: every ``python`` block runs, in order, in one namespace (as a reader would paste them)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

API_MD = Path(__file__).resolve().parents[1] / "docs" / "API.md"
BLOCK = re.compile(r"^```python\n(.*?)^```", re.S | re.M)


def blocks() -> list[str]:
    return BLOCK.findall(API_MD.read_text())


def test_api_page_covers_the_four_topics():
    text = API_MD.read_text()
    for heading in ("## Records", "## Calibrators", "## Routers", "## Cleaning"):
        assert heading in text
    assert len(blocks()) >= 5


def test_api_examples_run(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)  # the examples write under ./api_demo
    namespace: dict = {"__name__": "api_docs"}
    for i, code in enumerate(blocks()):
        try:
            exec(compile(code, f"{API_MD.name}[block {i}]", "exec"), namespace)
        except Exception as exc:  # name the failing block
            pytest.fail(f"docs/API.md block {i} failed: {type(exc).__name__}: {exc}\n{code}")
    out = capsys.readouterr().out
    assert "test ECE" in out and "M1 top-1" in out
    assert (tmp_path / "api_demo" / "report" / "report.html").exists()
