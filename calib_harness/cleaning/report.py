"""What a person acts on: ranked flagged samples (CSV + JSONL) and the overlap between methods.

Each flagged row has the question, its options, the given label, every expert's calibrated
prediction and confidence, which methods flag it (method 2 as the smallest K that flags it),
the experts' agreed answer, the reference verdict when one was given, and a blank
``human_verdict`` column to fill with the categories of the paper's appendix B
(:data:`VERDICT_CATEGORIES`; a ``verdict_guide.txt`` beside the files repeats them).

Rows are ranked by ``score`` = the experts' mean calibrated confidence in their own answer
where it disagrees with the given label (an expert agreeing with the given label adds 0), so
the most confident disagreements come first.

**Human edits survive reruns** (:func:`carry_over`): on a rerun into the same folder the
human-edited columns of the earlier ``flagged.csv`` -- ``human_verdict``, ``notes`` and any
column a reviewer added -- are carried over to the new rows, matched on ``(task, doc_id)``.
A row a reviewer edited that the rerun no longer flags is kept at the end with
``still_flagged = no``.  Files are written atomically (:mod:`calib_harness.outputs`).
"""

from __future__ import annotations

import csv
import io
import logging
import math
import re
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from calib_harness.cleaning.reference import MMLU_TASK_PREFIX, Reference
from calib_harness.outputs import write_jsonl, write_text

if TYPE_CHECKING:  # annotations only: pipeline imports this module for CleaningOutcome.to_frame
    from calib_harness.cleaning.pipeline import CleaningOutcome

logger = logging.getLogger(__name__)

#: Columns a reviewer fills in; written blank, carried over on reruns.
HUMAN_COLUMNS = ("human_verdict", "notes")
#: Columns the tool writes (plus the per-expert ``pred[...]``, ``conf[...]``, ``p_given[...]``).
TOOL_COLUMNS = frozenset({
    "rank", "task", "doc_id", "score", "question", "options", "given_label", "agreed_answer", "m2_min_k",
    "m2_agree_min_k", "methods", "ref_error_type", "ref_label", "still_flagged", "risk_controlled",
})
_TOOL_PATTERN = re.compile(r"^(pred|conf|p_given)\[.*\]$")

#: Hao et al. 2026, appendix B.1 (verification guidelines), categories 1-4.
VERDICT_CATEGORIES = {
    1: "GT wrong: the input does not fit the given label",
    2: "GT and model correct: the given label and at least one expert's answer both fit",
    3: "Only GT correct: only the given label fits (the experts are wrong)",
    4: "Unable to determine",
}


def _question_and_options(outcome: CleaningOutcome, i: int, reference: Reference | None) -> tuple[str, list[str]]:
    key = outcome.panel.keys[i]
    rec = outcome.panel.records[0][i]
    if reference is not None and key in reference.entries and reference.entries[key].question:
        e = reference.entries[key]
        return e.question or "", list(e.choices or ())
    choices = rec.extra.get("choices") if isinstance(rec.extra, dict) else None
    return rec.prompt or "", list(choices) if choices else []


def flagged_rows(outcome: CleaningOutcome, reference: Reference | None = None, only_flagged: bool = True) -> list[dict]:
    """One dict per sample (flagged by any method unless ``only_flagged=False``), ranked."""
    p = outcome.panel
    pred, conf = p.pred, p.conf
    pg = p.p_given() if p.has_option_scores else None
    flags = outcome.union_flags() if only_flagged else np.ones(p.n, dtype=bool)
    idx = np.flatnonzero(flags)
    idx = idx[np.argsort(-outcome.score[idx], kind="stable")]
    rows = []
    for rank, i in enumerate(idx, 1):
        task, doc_id = p.keys[i]
        question, options = _question_and_options(outcome, i, reference)
        row = {
            "rank": rank,
            "task": task,
            "doc_id": doc_id,
            "score": round(float(outcome.score[i]), 6),
            "question": question,
            "options": " | ".join(f"{lab}. {txt}" for lab, txt in zip(p.option_labels(i), options))
            if options
            else " | ".join(p.option_labels(i)),
            "given_label": p.label_name(i, int(p.given[i])),
        }
        for j, model in enumerate(p.models):
            row[f"pred[{model}]"] = p.label_name(i, int(pred[j, i]))
            row[f"conf[{model}]"] = round(float(conf[j, i]), 6)
            if pg is not None:
                row[f"p_given[{model}]"] = round(float(pg[j, i]), 6)
        row["agreed_answer"] = p.label_name(i, int(outcome.agreed[i])) if outcome.agreed[i] >= 0 else ""
        mk = outcome.min_k[i]
        row["m2_min_k"] = "" if math.isinf(mk) else int(mk)
        mka = outcome.min_k_agree[i]
        row["m2_agree_min_k"] = "" if math.isinf(mka) else int(mka)
        row["methods"] = ";".join(r.name for r in outcome.results if r.flags[i] and r.method != "high-confidence")
        if reference is not None:
            e = reference.entries.get(p.keys[i])
            row["ref_error_type"] = e.error_type if e else ""
            row["ref_label"] = (e.label or "") if e else ""
        row["still_flagged"] = "yes"
        for c in HUMAN_COLUMNS:
            row[c] = ""
        rows.append(row)
    return rows


def is_human_column(name: str) -> bool:
    """A column a reviewer wrote: ``human_verdict``, ``notes`` or one the tool never writes."""
    return name in HUMAN_COLUMNS or (name not in TOOL_COLUMNS and not _TOOL_PATTERN.match(name))


def read_flagged_csv(path: str | Path) -> tuple[list[str], list[dict]]:
    """(columns, rows) of a flagged.csv as a reviewer may have saved it (a BOM is fine)."""
    with Path(path).open(newline="", encoding="utf-8-sig") as f:
        reader = csv.DictReader(f)
        rows = [dict(r) for r in reader]
        return list(reader.fieldnames or []), rows


@dataclass
class CarryOver:
    """What :func:`carry_over` did: edited rows matched, and edited rows kept although no longer flagged."""

    matched: int = 0
    kept_unflagged: int = 0
    columns: tuple[str, ...] = ()

    @property
    def any(self) -> bool:
        return bool(self.matched or self.kept_unflagged)


def _has_edit(row: dict, cols) -> bool:
    return any((row.get(c) or "").strip() for c in cols)


def carry_over(new_rows: list[dict], old_columns: list[str], old_rows: list[dict]) -> tuple[list[dict], CarryOver]:
    """New rows with the human-edited columns of the earlier rows carried over (see module doc).

    Matching is on ``(task, doc_id)``.  A non-empty earlier value is never lost: it fills the
    new row's column, or, when the rerun no longer flags that sample, the earlier row is kept at
    the end (``still_flagged = no``, ``rank`` blank).
    """
    human = [c for c in old_columns if is_human_column(c)]
    for c in HUMAN_COLUMNS:
        if c not in human:
            human.append(c)
    info = CarryOver(columns=tuple(human))
    old_by_key: dict[tuple[str, str], dict] = {}
    for r in old_rows:
        key = (str(r.get("task", "")), str(r.get("doc_id", "")))
        if _has_edit(r, human):
            old_by_key[key] = r
    out = []
    for r in new_rows:
        row = dict(r)
        for c in human:
            row.setdefault(c, "")
        old = old_by_key.pop((str(row.get("task", "")), str(row.get("doc_id", ""))), None)
        if old is not None:
            for c in human:
                if (old.get(c) or "").strip():
                    row[c] = old[c]
            info.matched += 1
        out.append(row)
    for old in old_by_key.values():  # edited earlier, not flagged now: keep the human work
        row = {k: v for k, v in old.items() if k is not None}
        row["rank"] = ""
        row["still_flagged"] = "no"
        out.append(row)
        info.kept_unflagged += 1
    return out, info


def _fields(rows: list[dict]) -> list[str]:
    fields: list[str] = []
    for r in rows:
        fields += [k for k in r if k not in fields]
    # the human columns last, in a stable order
    tool = [c for c in fields if not is_human_column(c)]
    return tool + [c for c in fields if is_human_column(c)]


def _csv_text(rows: list[dict], fields: list[str]) -> str:
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=fields, restval="")
    w.writeheader()
    w.writerows(rows)
    return buf.getvalue()


def write_flagged(rows: list[dict], out_dir: str | Path, stem: str = "flagged", carry: bool = True) -> tuple[Path, Path]:
    """``<stem>.csv``, ``<stem>.jsonl`` and ``verdict_guide.txt`` in ``out_dir``, atomically.

    With ``carry`` (default) an existing ``<stem>.csv`` there is read first and its human
    edits are carried over (:func:`carry_over`); the result says how many in the log.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    csv_path, jsonl_path = out / f"{stem}.csv", out / f"{stem}.jsonl"
    if carry and csv_path.exists():
        cols, old = read_flagged_csv(csv_path)
        rows, info = carry_over(rows, cols, old)
        if info.any:
            logger.info("%s: carried the human edits of %d earlier rows over (%d no longer flagged, kept with "
                        "still_flagged = no)", csv_path, info.matched + info.kept_unflagged, info.kept_unflagged)
    fields = _fields(rows) if rows else ["rank", "task", "doc_id", "score", "question", "options", "given_label",
                                         "still_flagged", *HUMAN_COLUMNS]
    write_text(csv_path, _csv_text(rows, fields))
    write_jsonl(jsonl_path, rows)
    write_text(
        out / "verdict_guide.txt",
        "Fill the human_verdict column with one number (Hao et al. 2026, appendix B.1):\n"
        + "\n".join(f"  {k}: {v}" for k, v in VERDICT_CATEGORIES.items())
        + "\nUse the notes column (or any column you add) for anything else. A rerun of clean into this folder "
        "carries these columns over (matched on task + doc_id); rows you edited that are no longer flagged stay, "
        "with still_flagged = no.\n",
    )
    return csv_path, jsonl_path


def overlap_rows(outcome: CleaningOutcome, names: list[str], reference: Reference | None = None, positives: str = "any") -> list[dict]:
    """Pairwise overlap (the paper's Table 3): sizes, intersection, and precision of each side's unique flags."""
    results = [outcome.result(n) for n in names]
    if reference is not None:
        covered, err = reference.labels_for(outcome.panel.keys, positives)
    rows = []
    for a_i in range(len(results)):
        for b_i in range(a_i + 1, len(results)):
            a, b = results[a_i], results[b_i]
            inter = a.flags & b.flags
            union = a.flags | b.flags
            row = {
                "method_a": a.name,
                "method_b": b.name,
                "n_a": a.n_flagged,
                "n_b": b.n_flagged,
                "overlap": int(inter.sum()),
                "only_a": int((a.flags & ~b.flags).sum()),
                "only_b": int((b.flags & ~a.flags).sum()),
                "jaccard": float(inter.sum() / union.sum()) if union.any() else float("nan"),
            }
            if reference is not None:
                for tag, m in (("only_a", a.flags & ~b.flags), ("only_b", b.flags & ~a.flags), ("overlap", inter)):
                    sel = m & covered
                    row[f"precision_{tag}"] = float(err[sel].mean()) if sel.any() else float("nan")
            rows.append(row)
    return rows


def write_table(rows: list[dict], path: str | Path) -> Path:
    """A CSV of dict rows (columns in first-seen order), written atomically; undefined floats
    (NaN, inf) become empty cells."""
    fields: list[str] = []
    for r in rows:
        fields += [k for k in r if k not in fields]
    clean = [{k: ("" if isinstance(v, float) and not math.isfinite(v) else v) for k, v in r.items()} for r in rows]
    return write_text(path, _csv_text(clean, fields))


def mmlu_subject(task: str) -> str | None:
    return task[len(MMLU_TASK_PREFIX):] if task.startswith(MMLU_TASK_PREFIX) else None
