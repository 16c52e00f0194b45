"""The report: real runs in, Markdown + self-contained HTML out, checked in a real headless Chromium."""

from __future__ import annotations

import shutil
import subprocess

import numpy as np
import pytest

from calib_harness.outputs import Null
from calib_harness.report.build import build_report
from calib_harness.report.document import Document, Section, to_html, to_markdown
from calib_harness.report.tables import Table, render
from calib_harness.vision.mnist_pair import load_pair_runs

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync"]


@pytest.fixture(scope="module")
def mnist_report(tmp_path_factory):
    small, large = load_pair_runs("test")  # the shipped MNIST pair's real test logits
    small, large = small.subset(np.arange(3000)), large.subset(np.arange(3000))
    out = tmp_path_factory.mktemp("report")
    return build_report([small, large], out, title="MNIST pair", mf=True, progress=False)


def test_report_has_every_section_and_real_numbers(mnist_report):
    md = mnist_report.markdown.read_text()
    for heading in ("## Runs", "## Calibration", "## Cascade", "## Label cleaning"):
        assert heading in md
    n = mnist_report.numbers
    assert set(n["runs"]) == {"mnist-resnet10t-w4", "mnist-resnet10t-w32"}
    apgr = n["cascade"]["apgr"]
    assert apgr["random"] == pytest.approx(0.5, abs=1e-6)
    assert apgr["oracle"] >= apgr["CC"] > apgr["random"]  # a real pair: routing beats random
    assert "MF" not in apgr and "no prompt text" in md  # images have no prompts: said, not hidden
    for model, rep in n["calibration"].items():
        assert rep["metrics"]["test"]["after"]["ece"] < rep["metrics"]["test"]["before"]["ece"], model
    assert (mnist_report.markdown.parent / "cascade_curves.png").stat().st_size > 10_000
    assert (mnist_report.markdown.parent / "cleaning_flagged.csv").exists()


def test_report_shows_what_the_stages_add(mnist_report):
    """Data-driven: the intervals and roles that routing / metrics put in their dicts reach the tables."""
    md = mnist_report.markdown.read_text()
    cascade = md.split("## Cascade")[1].split("## Label cleaning")[0]
    row_cc = next(line for line in cascade.splitlines() if line.startswith("| CC |"))
    assert row_cc.count("[") >= 2  # APGR and s_d with their 95% intervals
    n = mnist_report.numbers
    if n["cascade"].get("roles"):
        assert "Roles:" in cascade or any(str(v) in cascade for v in n["cascade"]["roles"].values())
    runs = md.split("## Runs")[1].split("## Calibration")[0]
    assert runs.count("[") >= 4  # accuracy and ECE intervals of both runs


def test_one_table_renderer_three_formats():
    t = Table.from_dicts("t", [{"router": "CC", "APGR": 0.71234, "APGR_ci": [0.6, 0.8], "s_d": None,
                                "null_reasons": {"s_d": "same accuracy"}, "n": 3},
                               {"router": "a|b", "APGR": float("nan"), "s_d": Null("one class"), "n": 4}])
    assert t.columns == ["router", "APGR", "s_d", "n"]
    md = render(t, "markdown")
    assert "| CC | 0.712 [0.600, 0.800] | n/a (same accuracy) | 3 |" in md and "a\\|b" in md
    assert "n/a (one class)" in md and "| n/a |" in md
    txt = render(t, "text").splitlines()
    assert txt[1].split() == ["router", "APGR", "s_d", "n"] and len({len(x) for x in txt[2:]}) <= 2
    html = render(t, "html")
    assert '<td>0.712 <span class="ci">[0.600, 0.800]</span></td>' in html and "a|b" in html
    with pytest.raises(ValueError, match="unknown table format"):
        render(t, "latex")


def test_templates_escape_html_but_not_markdown(tmp_path):
    doc = Document("<T&C>", "intro <b>", [Section("S <1>", "a < b", tables=[Table("x<y", ["c<"], [["<v>"]])])])
    page = to_html(doc)
    assert "<T&C>" not in page and "&lt;T&amp;C&gt;" in page and "<td>&lt;v&gt;</td>" in page
    assert 'id="s-1"' in page
    md = to_markdown(doc, tmp_path)
    assert md.startswith("# <T&C>") and "| <v> |" in md


def test_html_is_self_contained(mnist_report):
    html = mnist_report.html.read_text()
    assert html.count("<img") == len(mnist_report.figures) >= 4
    assert "data:image/png;base64," in html
    assert "src=\"http" not in html and "href=\"http" not in html  # nothing fetched


def test_html_renders_in_headless_chromium(mnist_report, tmp_path):
    assert CHROMIUM, "chromium is not installed (make test installs Debian's chromium)"
    url = mnist_report.html.resolve().as_uri()
    base = [CHROMIUM, *CHROMIUM_FLAGS, f"--user-data-dir={tmp_path / 'profile'}"]
    dom = subprocess.run([*base, "--dump-dom", url], capture_output=True, text=True, timeout=120, check=True).stdout
    assert "<h2>Cascade</h2>" in dom and dom.count("<table>") >= 4
    shot = tmp_path / "report.png"
    subprocess.run([*base, f"--screenshot={shot}", "--window-size=1200,2400", url],
                   capture_output=True, timeout=120, check=True)
    from PIL import Image

    img = np.asarray(Image.open(shot).convert("RGB"))
    assert img.shape[:2] == (2400, 1200)
    # a rendered page with tables and plots, not a blank or error page
    assert len(np.unique(img.reshape(-1, 3), axis=0)) > 200
    assert (img < 100).any(axis=2).mean() > 0.005  # dark pixels: text and plot lines


def test_runs_below_the_stage_minimums_are_listed_as_skipped(tmp_path):
    """8 real stock-log docs: below the split protocol's minimum (calibration), the cascade's and cleaning's
    size guards. The report still comes out, with the runs and each skipped stage's reason."""
    from pathlib import Path

    from calib_harness.lm_eval_io import load_run

    stock = Path(__file__).parent / "fixtures" / "stock_logs" / "arc_easy_limit40"
    runs = [load_run(stock, model=m).subset(np.arange(8)) for m in ("smollm2-135m", "qwen2.5-coder-0.5b")]
    rep = build_report(runs, tmp_path / "r", mf=False, progress=False, plots=False)
    md = rep.markdown.read_text()
    assert "## Runs" in md and "## Calibration" not in md and "## Label cleaning" not in md
    skipped = md.split("## Skipped")[1]
    for model in ("smollm2-135m", "qwen2.5-coder-0.5b"):
        assert f"Calibration of {model} skipped: 8 records are too few" in skipped
    assert "Cascade skipped:" in skipped and "Label cleaning skipped: 8 documents are too few" in skipped
    assert "calibration" not in rep.numbers and "cleaning" not in rep.numbers
