"""A report as data (sections of text, tables and figures) and its Markdown / HTML renderings.

Both renderings come from jinja2 templates in ``report/templates/`` (``report.md.j2``,
``report.html.j2`` with ``table.html.j2`` and ``report.css``); tables are :class:`~.tables.Table`
and their cells are formatted once (:func:`~.tables.format_cell`).  The HTML page is self-contained:
figures are embedded as base64 PNG, the style sheet is inline, nothing is fetched.  The Markdown file links
the PNGs that sit beside it.
"""

from __future__ import annotations

import base64
import functools
import re
from dataclasses import dataclass, field
from pathlib import Path

import jinja2

from calib_harness.outputs import write_text
from calib_harness.report import tables
from calib_harness.report.tables import Table

__all__ = ["Document", "Figure", "Section", "Table", "environment", "to_html", "to_markdown", "write"]


@dataclass
class Figure:
    path: Path  # PNG beside the report
    caption: str


@dataclass
class Section:
    title: str
    text: str = ""
    tables: list[Table] = field(default_factory=list)
    figures: list[Figure] = field(default_factory=list)


@dataclass
class Document:
    title: str
    intro: str
    sections: list[Section] = field(default_factory=list)


def _paragraphs(text: str) -> list[str]:
    return [p.strip() for p in (text or "").split("\n\n") if p.strip()]


def _anchor(title: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", title.lower()).strip("-")


def _b64png(path: Path) -> str:
    return base64.b64encode(Path(path).read_bytes()).decode()


@functools.lru_cache(maxsize=1)
def environment() -> jinja2.Environment:
    """The tables' template environment plus the document filters (paragraphs, anchors, embedded PNGs)."""
    env = tables.environment().overlay()
    env.filters.update(paragraphs=_paragraphs, anchor=_anchor, b64png=_b64png)
    return env


def to_markdown(doc: Document, base: Path, floatfmt: str = "{:.3f}") -> str:
    base = Path(base).resolve()

    def relpath(p: Path) -> str:
        p = Path(p).resolve()
        return str(p.relative_to(base)) if p.is_relative_to(base) else str(p)

    env = environment().overlay()
    env.filters["relpath"] = relpath
    return env.get_template("report.md.j2").render(doc=doc, floatfmt=floatfmt)


def to_html(doc: Document, floatfmt: str = "{:.3f}") -> str:
    return environment().get_template("report.html.j2").render(doc=doc, floatfmt=floatfmt)


def write(doc: Document, out: Path, stem: str = "report") -> tuple[Path, Path]:
    """Write ``<stem>.md`` and ``<stem>.html`` into ``out`` (atomically)."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    md, page = out / f"{stem}.md", out / f"{stem}.html"
    write_text(md, to_markdown(doc, out))
    write_text(page, to_html(doc))
    return md, page
