"""The plain per-sample table: per-sample results from any tool, as records.

One row per (model, document).  Files: ``.csv``, ``.tsv``, ``.jsonl`` / ``.json`` (one object
per line), ``.parquet`` (read with pandas / pyarrow).  Columns (docs/PLAIN_TABLE.md):

=================  ========  ===============================================================
column             required  meaning
=================  ========  ===============================================================
``id``             yes       document id, unique per model and task (``doc_id`` also read)
``task``           no        task name (default: the file name without suffix)
``model``          no        model name (default: the file name); several models per file are
                             fine, pick one with ``model=`` / ``--model``
``prompt``         no        the question (MF routing, alignment check, cleaning report)
``confidence``     one of    probability of ``prediction``, in [0, 1]
``p_<LABEL>``      these     option probabilities, one column per option (``p_A``, ``p_B``...);
                   two       or ``option_probs`` (a list) with ``option_labels`` (a list) in
                             JSONL / Parquet
``correct``        one of    1/0 or true/false: the prediction is right
``score``          these     a score in [0, 1] (continuous scores allowed)
``label``          no        the given (gold) label; with option probabilities it names one
                             option; ``correct`` is derived from it when absent
``prediction``     no        the model's answer; default with option probabilities: the most
                             probable option
=================  ========  ===============================================================

Rows with option probabilities become records with option scores (``log p``; softmax gives the
probabilities back), so every post-processor works, temperature scaling and Confident Learning
included.  Rows with only a confidence become scalar records: calibration (Platt, histogram,
isotonic), all routers and the cleaning methods that need only prediction and confidence.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np

from calib_harness.records import RecordError, Run, SampleRecord

TABLE_SUFFIXES = (".csv", ".tsv", ".parquet", ".jsonl", ".json")
PROB_PREFIX = "p_"
_ID_COLUMNS = ("id", "doc_id")


def _is_missing(v: Any) -> bool:
    if v is None:
        return True
    if isinstance(v, float) and math.isnan(v):
        return True
    return isinstance(v, str) and v.strip() == ""


def _read_frame(path: Path):
    import pandas as pd

    suffix = path.suffix.lower()
    if suffix == ".parquet":
        return pd.read_parquet(path)
    if suffix in (".jsonl", ".json"):
        try:
            return pd.read_json(path, lines=True, dtype=False)
        except ValueError as e:
            raise RecordError(f"{path}: not one JSON object per line ({e})") from e
    sep = "\t" if suffix == ".tsv" else ","
    # ids and labels stay text ("01" is not 1); numbers are parsed per column below
    return pd.read_csv(path, sep=sep, dtype=str, keep_default_na=False)


def _to_bool(v: Any, where: str) -> float:
    if isinstance(v, (bool, np.bool_)):
        return float(bool(v))
    s = str(v).strip().lower()
    if s in ("1", "1.0", "true", "yes", "t", "y"):
        return 1.0
    if s in ("0", "0.0", "false", "no", "f", "n"):
        return 0.0
    raise RecordError(f"{where}: correct must be 1/0 or true/false, got {v!r}")


def _to_float(v: Any, where: str, column: str) -> float:
    try:
        x = float(v)
    except (TypeError, ValueError):
        raise RecordError(f"{where}: {column} must be a number, got {v!r}") from None
    if not math.isfinite(x):
        raise RecordError(f"{where}: {column} is {v!r}")
    return x


def _as_list(v: Any) -> list | None:
    if isinstance(v, np.ndarray):
        return v.tolist()
    if isinstance(v, (list, tuple)):
        return list(v)
    if isinstance(v, str) and v.strip():
        try:
            value = json.loads(v)
        except ValueError:
            return None
        return list(value) if isinstance(value, list) else None
    return None


def read_table(path: str | Path, model: str | None = None, task: str | None = None) -> Run:
    """Read a plain per-sample table (see the module docstring) as one model's run."""
    path = Path(path)
    df = _read_frame(path)
    cols = list(df.columns)
    id_col = next((c for c in _ID_COLUMNS if c in cols), None)
    if id_col is None:
        raise RecordError(f"{path}: no 'id' column (columns: {cols}); see docs/PLAIN_TABLE.md")
    prob_cols = [c for c in cols if str(c).startswith(PROB_PREFIX)]
    has_list = "option_probs" in cols
    if "confidence" not in cols and not prob_cols and not has_list:
        raise RecordError(
            f"{path}: needs a 'confidence' column or option probabilities ('p_<label>' columns, or 'option_probs'); "
            f"columns: {cols}"
        )
    if "correct" not in cols and "score" not in cols and "label" not in cols:
        raise RecordError(f"{path}: needs a 'correct' or 'score' column (or 'label' with option probabilities); columns: {cols}")
    models_in = sorted({str(m) for m in df["model"]}) if "model" in cols else []
    if "model" in cols:
        if model is None and len(models_in) > 1:
            raise RecordError(f"{path}: rows of several models {models_in}; pick one with --model NAME")
        name = model or models_in[0]
        if name not in models_in:
            raise RecordError(f"{path}: no rows of model {name!r}; it has {models_in}")
        df = df[df["model"].astype(str) == name]
    else:
        name = model or path.stem
    default_task = task or path.stem
    records = []
    for n, row in enumerate(df.to_dict("records"), 1):
        where = f"{path}: row {n}"
        doc_id = row[id_col]
        if _is_missing(doc_id):
            raise RecordError(f"{where}: empty id")
        t = str(row["task"]) if "task" in cols and not _is_missing(row.get("task")) else default_task
        prompt = None if _is_missing(row.get("prompt")) else str(row.get("prompt"))
        label = None if _is_missing(row.get("label")) else str(row["label"])
        prediction = None if _is_missing(row.get("prediction")) else str(row["prediction"])
        extra = {"source": f"plain table {path.name}"}
        labels, probs = None, None
        if has_list and _as_list(row.get("option_probs")) is not None:
            probs = [_to_float(x, where, "option_probs") for x in _as_list(row["option_probs"]) or []]
            labels = [str(x) for x in (_as_list(row.get("option_labels")) or range(len(probs)))]
        elif prob_cols:
            present = [(c[len(PROB_PREFIX):], row[c]) for c in prob_cols if not _is_missing(row[c])]
            if present:
                labels = [lab for lab, _ in present]
                probs = [_to_float(v, where, f"{PROB_PREFIX}{lab}") for lab, v in present]
        if probs is not None:
            p = np.asarray(probs, dtype=np.float64)
            if p.size == 0 or np.any(p < 0) or np.any(p > 1 + 1e-9) or p.sum() <= 0:
                raise RecordError(f"{where}: option probabilities must be in [0, 1], got {probs}")
            if abs(p.sum() - 1.0) > 1e-3:
                extra["renormalised_from_sum"] = float(p.sum())
            scores = np.log(np.clip(p / p.sum(), 1e-300, None))  # a 0 cell stays finite (strict JSON)
            rec = SampleRecord.from_option_scores(
                scores, labels, label, task=t, doc_id=doc_id, model=name, option_token_mode="probabilities",
                prompt=prompt, extra=extra,
            )
            if prediction is not None and prediction != rec.prediction:
                if prediction not in rec.option_labels:
                    raise RecordError(f"{where}: prediction {prediction!r} is not an option {list(rec.option_labels)}")
                i = rec.option_labels.index(prediction)
                rec = _replace(rec, prediction=prediction, confidence=float(np.exp(scores[i])))
            score = _score(row, cols, where, rec.prediction, label)
            if score is None:
                raise RecordError(f"{where}: no 'correct' / 'score' and no 'label' to compare the prediction with")
            records.append(_replace(rec, score=score))
            continue
        conf = _to_float(row.get("confidence"), where, "confidence")
        if not 0.0 <= conf <= 1.0:
            raise RecordError(f"{where}: confidence must be in [0, 1], got {conf}")
        score = _score(row, cols, where, prediction, label)
        if score is None:
            raise RecordError(f"{where}: no 'correct' / 'score' (and no 'label' + 'prediction' to compare)")
        records.append(
            SampleRecord(task=t, doc_id=str(doc_id), model=name, prediction=prediction, confidence=conf, score=score,
                         gold=label, prompt=prompt, extra=extra)
        )
    if not records:
        raise RecordError(f"{path}: no rows")
    return Run(name, records, source=str(path), meta={"format": "plain table"})


def _score(row: dict, cols: list, where: str, prediction: str | None, label: str | None) -> float | None:
    if "correct" in cols and not _is_missing(row.get("correct")):
        return _to_bool(row["correct"], where)
    if "score" in cols and not _is_missing(row.get("score")):
        s = _to_float(row["score"], where, "score")
        if not 0.0 <= s <= 1.0:
            raise RecordError(f"{where}: score must be in [0, 1], got {s}")
        return s
    if prediction is not None and label is not None:
        return float(prediction == label)
    return None


def _replace(rec: SampleRecord, **changes: Any) -> SampleRecord:
    import dataclasses

    return dataclasses.replace(rec, **changes)
