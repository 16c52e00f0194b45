"""THE table of the project: one :class:`Table` (title, columns, rows, note) and one renderer,
:func:`render`, for Markdown (reports), plain text (what the CLI prints) and HTML (the report template
renders the same cells through :func:`format_cell`).

Rows may be built from the JSON-ready dicts the stages write (:meth:`Table.from_dicts`): a value that is an
interval -- ``{"value": v, "lo": a, "hi": b}`` (or ``"estimate"``/``"ci"``), or a key ``X`` with siblings
``X_ci = [a, b]`` or ``X_lo``/``X_hi`` -- prints as ``v [a, b]``; ``None`` whose reason is given (a sibling ``X_reason`` or
``null_reasons[X]``, as :func:`calib_harness.outputs.dumps_strict` writes it) prints ``n/a (reason)``.  So a
stage that adds intervals or reasons to its dicts shows them in every table without a change here.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass, field
from typing import Any, Iterable, Mapping, Sequence

import jinja2
import markupsafe

FORMATS = ("markdown", "text", "html")


@dataclass
class Table:
    title: str
    columns: list[str]
    rows: list[list[Any]] = field(default_factory=list)
    note: str = ""

    @classmethod
    def from_dicts(
        cls,
        title: str,
        dicts: Iterable[Mapping[str, Any]],
        columns: Sequence[str] | Mapping[str, str] | None = None,
        note: str = "",
    ) -> "Table":
        """Rows from dicts; ``columns`` = keys (or ``{key: header}``); default: every key of the first dict
        that is not a companion (``X_ci``, ``X_lo``/``X_hi``, ``X_reason``, ``null_reasons``).  Missing keys
        print empty."""
        dicts = list(dicts)
        if columns is None:
            first = dicts[0] if dicts else {}
            keys = [k for k in first if not _companion(k, first)]
            columns = {k: k for k in keys}
        elif not isinstance(columns, Mapping):
            columns = {k: k for k in columns}
        rows = [[cell_value(d, k) for k in columns] for d in dicts]
        return cls(title, list(columns.values()), rows, note)

    def render(self, fmt: str = "markdown", floatfmt: str = "{:.3f}") -> str:
        return render(self, fmt, floatfmt)


def _companion(key: str, d: Mapping[str, Any]) -> bool:
    """``X_ci``, ``X_lo``, ``X_hi``, ``X_reason`` beside an ``X``, and ``null_reasons``: not columns of their own."""
    if key == "null_reasons":
        return True
    for suffix in ("_ci", "_lo", "_hi", "_reason"):
        if key.endswith(suffix) and key[: -len(suffix)] in d:
            return True
    return False


@dataclass(frozen=True)
class Interval:
    """A point estimate with a (95%) interval; prints as ``v [lo, hi]``."""

    value: float | None
    lo: float | None
    hi: float | None


def cell_value(d: Mapping[str, Any], key: str) -> Any:
    """``d[key]``, turned into an :class:`Interval` when ``d`` carries one for it, or the reason for a null."""
    v = d.get(key)
    ci = d.get(f"{key}_ci")
    if isinstance(v, Mapping):
        lo, hi = v.get("lo"), v.get("hi")
        if lo is None and isinstance(v.get("ci"), (list, tuple)) and len(v["ci"]) == 2:
            lo, hi = v["ci"]
        return Interval(v.get("value", v.get("estimate")), lo, hi)
    if isinstance(ci, (list, tuple)) and len(ci) == 2:
        return Interval(v, ci[0], ci[1])
    if f"{key}_lo" in d and f"{key}_hi" in d:
        return Interval(v, d[f"{key}_lo"], d[f"{key}_hi"])
    if v is None:
        why = d.get(f"{key}_reason") or (d.get("null_reasons") or {}).get(key)
        if why:
            return f"n/a ({why})"
    return v


def format_cell(v: Any, floatfmt: str = "{:.3f}") -> str:
    """One cell as text: floats by ``floatfmt`` (NaN/None as ``n/a``/empty), intervals as ``v [lo, hi]``."""
    if v is None:
        return ""
    if hasattr(v, "reason") and type(v).__name__ == "Null":  # calib_harness.outputs.Null
        return f"n/a ({v.reason})"
    if isinstance(v, bool):
        return str(v)
    if isinstance(v, Interval):
        if v.value is None or (isinstance(v.value, float) and math.isnan(v.value)):
            return "n/a"
        bounds_known = all(b is not None and not (isinstance(b, float) and math.isnan(b)) for b in (v.lo, v.hi))
        inner = f" [{format_cell(v.lo, floatfmt)}, {format_cell(v.hi, floatfmt)}]" if bounds_known else ""
        return format_cell(v.value, floatfmt) + inner
    if isinstance(v, float) or type(v).__name__.startswith("float"):
        v = float(v)
        if math.isnan(v):
            return "n/a"
        s = floatfmt.format(v) if abs(v) < 1e4 else f"{v:.0f}"
        return s[1:] if s.startswith("-") and not s.strip("-0.") else s  # no "-0.000"
    return str(v)


def cell_html(v: Any, floatfmt: str = "{:.3f}") -> markupsafe.Markup:
    """One cell as escaped HTML: as :func:`format_cell`, an interval's ``[lo, hi]`` in a ``<span class="ci">``
    (the line may break before it, never inside it, so wide tables of intervals fit the page)."""
    text = format_cell(v, floatfmt)
    head, sep, tail = text.partition(" [")
    if isinstance(v, Interval) and sep:
        return markupsafe.Markup('{} <span class="ci">[{}</span>').format(head, tail)
    return markupsafe.escape(text)


def render(table: Table, fmt: str = "markdown", floatfmt: str = "{:.3f}") -> str:
    """The table as Markdown, fixed-width text or an HTML fragment."""
    if fmt not in FORMATS:
        raise ValueError(f"unknown table format {fmt!r}; choose one of {FORMATS}")
    if fmt == "html":
        return environment().get_template("table.html.j2").render(t=table, floatfmt=floatfmt)
    cells = [[format_cell(v, floatfmt) for v in row] for row in table.rows]
    if fmt == "markdown":
        lines = [f"**{table.title}**", ""] if table.title else []
        lines += ["| " + " | ".join(table.columns) + " |", "|" + "---|" * len(table.columns)]
        lines += ["| " + " | ".join(c.replace("|", "\\|") for c in row) + " |" for row in cells]
        if table.note:
            lines += ["", f"_{table.note}_"]
        return "\n".join(lines)
    if not table.rows:
        return (table.title + "\n" if table.title else "") + "(no rows)"
    width = [max(len(c), *(len(r[i]) for r in cells)) for i, c in enumerate(table.columns)]
    lines = [table.title] if table.title else []
    lines += ["  ".join(c.ljust(w) for c, w in zip(table.columns, width)).rstrip(), "  ".join("-" * w for w in width)]
    lines += ["  ".join(x.ljust(w) for x, w in zip(row, width)).rstrip() for row in cells]
    if table.note:
        lines.append(table.note)
    return "\n".join(lines)


@functools.lru_cache(maxsize=1)
def environment() -> jinja2.Environment:
    """The report templates (``report/templates``; HTML autoescaped, Markdown not), with the ``cell`` and
    ``markdown`` filters; :mod:`calib_harness.report.document` adds its own on an overlay."""
    env = jinja2.Environment(
        loader=jinja2.PackageLoader("calib_harness.report", "templates"),
        autoescape=jinja2.select_autoescape(enabled_extensions=("html", "html.j2"), default_for_string=False),
        undefined=jinja2.StrictUndefined,
        keep_trailing_newline=True,
    )
    env.filters.update(cell=format_cell, cell_html=cell_html,
                       markdown=lambda t, floatfmt="{:.3f}": render(t, "markdown", floatfmt))
    return env
