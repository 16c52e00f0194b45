"""Read lm-eval output folders, our records files and plain tables into :class:`~calib_harness.records.Run`.

``load_run(path)`` accepts:

* a ``records.jsonl`` file, or a folder holding one (what the vision adapter and the
  post-processors write);
* a plain per-sample table (``.csv``, ``.tsv``, ``.jsonl``, ``.parquet``; see
  :mod:`calib_harness.readers.table` and docs/PLAIN_TABLE.md);
* an lm-eval ``--output_path`` folder written with ``--log_samples``: ``results_<time>.json``
  plus ``samples_<task>_<time>.jsonl``, directly in the folder or in the one sub-folder per
  model that lm-eval creates (``model=`` / ``--model NAME`` picks one when there are several),
  or one ``samples_*.jsonl`` file.

Samples of calib-harness tasks (``calib_*``) carry their record in the per-sample metric
``ece`` (see :mod:`calib_harness.capture`).  Samples of any other task are read by
:mod:`calib_harness.readers.stock`: ``multiple_choice`` logs give option scores (the restricted
softmax, or ``scoring="acc_norm"`` for lm-eval's length-normalised variant), ``generate_until``
logs give records without confidence that a verifier can re-score.

**Filters.** lm-eval writes one sample line per filter pipeline (e.g. ``strict-match`` and
``flexible-extract`` for ``gsm8k``).  The filter is part of the record key: with one filter per
task the task name is kept; when a task logged several and none is picked, every filter is read
and the record's task becomes ``<task>[<filter>]``.  ``filter=`` / ``--filter NAME`` reads one.

**Several samples files of one task** (the task was run twice into the same folder) are an
error that lists them, unless ``latest=True`` / ``--latest`` (the newest file is read).
"""

from __future__ import annotations

import json
import logging
import re
from pathlib import Path
from typing import Any

from calib_harness.capture.payload import PAYLOAD_METRIC
from calib_harness.models import SHIPPED_MODELS, cache_dir
from calib_harness.readers.stock import record_from_stock_sample
from calib_harness.readers.table import TABLE_SUFFIXES, read_table
from calib_harness.records import RECORDS_FILENAME, RecordError, Run, SampleRecord, load_records_jsonl, name_tasks

logger = logging.getLogger(__name__)

_SAMPLES_RE = re.compile(r"^samples_(?P<task>.+)_(?P<time>\d{4}-\d{2}-\d{2}T[\d\-\.]+)\.jsonl$")


def model_name_from_args(model_args: Any) -> str:
    """A readable model name: the shipped short name when the path is one of ours."""
    if isinstance(model_args, str):
        args = dict(p.split("=", 1) for p in model_args.split(",") if "=" in p)
    else:
        args = dict(model_args or {})
    pretrained = str(args.get("pretrained", args.get("model", "model")))
    p = Path(pretrained)
    if p.name in SHIPPED_MODELS and (p.parent == cache_dir() / "models" or p.parent.name == "models"):
        return p.name
    return pretrained


def _model_names(folder: Path) -> set[str]:
    """Names a user may give for the model of one lm-eval sub-folder."""
    names = {folder.name}
    results = sorted(folder.glob("results_*.json"))
    if results:
        try:
            data = json.loads(results[-1].read_text())
        except (OSError, ValueError):
            data = {}
        cfg = data.get("config", {}) or {}
        names.add(model_name_from_args(cfg.get("model_args")))
        for key in ("model_name", "model_name_sanitized"):
            if data.get(key):
                names.add(str(data[key]))
    names |= {n.rsplit("__", 1)[-1] for n in list(names)}  # lm-eval's sanitised path: last component
    names |= {Path(n).name for n in list(names)}
    return names


def _find_lm_eval_folder(path: Path, model: str | None = None) -> Path:
    if list(path.glob("samples_*.jsonl")):
        return path
    subs = sorted(d for d in path.iterdir() if d.is_dir() and list(d.glob("samples_*.jsonl")))
    if model is not None and subs:
        hits = [d for d in subs if model in _model_names(d)]
        if len(hits) == 1:
            return hits[0]
        known = sorted({max(_model_names(d) - {d.name}, key=len, default=d.name) for d in subs})
        if not hits:
            raise RecordError(f"{path}: no model {model!r}; it holds {', '.join(known)} (pass one of them to --model)")
        raise RecordError(f"{path}: --model {model!r} matches several folders: {', '.join(d.name for d in hits)}")
    if len(subs) == 1:
        return subs[0]
    if len(subs) > 1:
        shown = "; ".join(f"{d.name} ({', '.join(sorted(_model_names(d) - {d.name}))})" for d in subs)
        raise RecordError(f"{path} holds samples of several models: {shown}; pick one with --model NAME (or pass its folder)")
    raise RecordError(
        f"{path}: no {RECORDS_FILENAME}, no plain table and no lm-eval samples_*.jsonl; "
        "run lm-eval with --output_path and --log_samples"
    )


def _samples_files(folder: Path, latest: bool) -> dict[str, Path]:
    """One samples file per task; several for one task is an error unless ``latest``."""
    by_task: dict[str, list[tuple[str, Path]]] = {}
    for f in folder.glob("samples_*.jsonl"):
        m = _SAMPLES_RE.match(f.name)
        if m:
            by_task.setdefault(m["task"], []).append((m["time"], f))
    out: dict[str, Path] = {}
    for task, files in sorted(by_task.items()):
        files.sort()
        if len(files) > 1 and not latest:
            raise RecordError(
                f"{folder}: {len(files)} samples files for task {task!r} ({', '.join(f.name for _, f in files)}); "
                "pass --latest to read the newest, or move the others away"
            )
        out[task] = files[-1][1]
    return out


def _results_for(folder: Path, samples: Path | None = None) -> dict[str, Any]:
    """The results JSON written with ``samples`` (same time stamp), else the newest."""
    files = sorted(folder.glob("results_*.json"))
    if samples is not None:
        m = _SAMPLES_RE.match(samples.name)
        same = [f for f in files if m and f.name == f"results_{m['time']}.json"]
        if same:
            files = same
    if not files:
        return {}
    try:
        return json.loads(files[-1].read_text())
    except (OSError, ValueError) as e:
        raise RecordError(f"{files[-1]}: not JSON ({e})") from e


def record_from_sample(sample: dict[str, Any], task: str, model: str) -> SampleRecord:
    """A calib-harness task's sample (record payload in the ``ece`` metric) as a record."""
    payload = sample.get(PAYLOAD_METRIC)
    if not isinstance(payload, dict):
        raise RecordError(f"task {task!r}: samples carry no {PAYLOAD_METRIC!r} record payload")
    features = {k: float(v) for k, v in (payload.get("features") or {}).items()}
    extra = {k: v for k, v in payload.items() if k in ("output", "extracted", "verifier", "details")}
    if "filter" in sample:
        extra["filter"] = sample["filter"]
    return SampleRecord(
        task=task,
        doc_id=str(sample["doc_id"]),
        model=model,
        prediction=payload.get("prediction"),
        confidence=float(payload["confidence"]),
        score=float(payload["score"]),
        gold=payload.get("gold"),
        option_labels=tuple(payload["option_labels"]) if payload.get("option_labels") is not None else None,
        option_scores=tuple(payload["option_scores"]) if payload.get("option_scores") is not None else None,
        option_token_mode=payload.get("option_token_mode"),
        features=features,
        prompt=payload.get("prompt"),
        extra=extra,
    )


def _read_samples(path: Path) -> list[dict[str, Any]]:
    rows = []
    with path.open() as fh:
        for n, line in enumerate(fh, 1):
            if line.strip():
                try:
                    rows.append(json.loads(line))
                except ValueError as e:
                    raise RecordError(f"{path}:{n}: not JSON ({e})") from e
    return rows


def records_from_samples_file(
    path: Path,
    task: str,
    model: str,
    *,
    config: dict[str, Any] | None = None,
    filter: str | None = None,
    scoring: str = "acc",
) -> list[SampleRecord]:
    """Records of one ``samples_<task>_<time>.jsonl`` (ours or a stock task's), per the filter rules."""
    samples = _read_samples(path)
    filters = sorted({str(s.get("filter", "none")) for s in samples})
    if filter is not None:
        if filter not in filters:
            raise RecordError(f"{path.name}: task {task!r} has no filter {filter!r}; it logged {', '.join(filters)}")
        samples = [s for s in samples if str(s.get("filter", "none")) == filter]
    elif len(filters) > 1:
        logger.info(
            "task %s logged %d filters (%s): each is read as its own task %s[FILTER]; pick one with --filter NAME",
            task, len(filters), ", ".join(filters), task,
        )
    several = filter is None and len(filters) > 1
    records = []
    for n, sample in enumerate(samples, 1):
        name = f"{task}[{sample.get('filter', 'none')}]" if several else task
        try:
            if isinstance(sample.get(PAYLOAD_METRIC), dict):
                records.append(record_from_sample(sample, name, model))
            else:
                records.append(record_from_stock_sample(sample, name, model, config=config, scoring=scoring))
        except (KeyError, TypeError, ValueError) as e:
            raise RecordError(f"{path}: sample {n}: {e}") from e
    return records


def load_lm_eval_folder(
    path: str | Path,
    model: str | None = None,
    tasks: list[str] | None = None,
    *,
    filter: str | None = None,
    latest: bool = False,
    scoring: str = "acc",
) -> Run:
    """Records of one model from an lm-eval ``--output_path`` folder (see the module docstring)."""
    folder = _find_lm_eval_folder(Path(path), model)
    files = _samples_files(folder, latest)
    if tasks is not None:
        unknown = sorted(set(tasks) - set(files))
        if unknown:
            raise RecordError(f"{folder}: no samples for tasks {unknown}; it has {sorted(files)}")
        files = {t: files[t] for t in tasks}
    results = _results_for(folder, next(iter(files.values()), None))
    cfg = results.get("config", {}) or {}
    name = model_name_from_args(cfg.get("model_args")) if cfg.get("model_args") else folder.name
    records: list[SampleRecord] = []
    for task, f in files.items():
        task_cfg = (results.get("configs") or {}).get(task) or {}
        records += records_from_samples_file(f, task, name, config=task_cfg, filter=filter, scoring=scoring)
    meta = {
        "lm_eval_config": cfg,
        "n_shot": results.get("n-shot", {}),
        "results": results.get("results", {}),
        "samples_files": {t: str(f) for t, f in files.items()},
        "scoring": scoring,
    }
    logger.info("read %d records of %s from %s (%s)", len(records), name, folder, name_tasks(files))
    return Run(name, records, source=str(folder), meta=meta)


def _looks_like_records(first: dict[str, Any]) -> bool:
    return {"task", "doc_id", "model", "confidence", "score"} <= set(first)


def _looks_like_samples(first: dict[str, Any]) -> bool:
    return "doc_id" in first and ("resps" in first or "filtered_resps" in first or PAYLOAD_METRIC in first)


def _first_json_line(path: Path) -> dict[str, Any] | None:
    with path.open() as fh:
        for line in fh:
            if line.strip():
                try:
                    value = json.loads(line)
                except ValueError:
                    return None
                return value if isinstance(value, dict) else None
    return None


def load_run(
    path: str | Path,
    model: str | None = None,
    tasks: list[str] | None = None,
    *,
    filter: str | None = None,
    latest: bool = False,
    scoring: str = "acc",
) -> Run:
    """Read one model's records from a records file, a plain table, or an lm-eval output folder.

    Args:
        path: see the module docstring.
        model: which model, when the input holds several (records of several models, a
            multi-model lm-eval folder, a plain table with a ``model`` column).
        tasks: only these tasks.
        filter: the lm-eval filter to read when a task logged several.
        latest: read the newest samples file when a task has several in one folder.
        scoring: multiple-choice option scores of stock logs: ``"acc"`` (restricted softmax of the
            summed log-likelihoods) or ``"acc_norm"`` (length-normalised, as lm-eval's acc_norm).
    """
    p = Path(path)
    if not p.exists():
        raise FileNotFoundError(f"{path}: no such file or folder")
    if p.is_file():
        run = _load_file(p, model, filter=filter, scoring=scoring)
    elif (p / RECORDS_FILENAME).exists():
        run = load_records_jsonl(p / RECORDS_FILENAME, model)
    else:
        return load_lm_eval_folder(p, model, tasks, filter=filter, latest=latest, scoring=scoring)
    return run.filter_tasks(tasks) if tasks is not None else run


def _load_file(p: Path, model: str | None, *, filter: str | None, scoring: str) -> Run:
    suffix = p.suffix.lower()
    if suffix == ".jsonl":
        first = _first_json_line(p)
        if first is None:
            raise RecordError(f"{p}: empty, or its first line is not a JSON object")
        if _looks_like_samples(first):
            m = _SAMPLES_RE.match(p.name)
            task = m["task"] if m else p.stem
            results = _results_for(p.parent, p)
            cfg = results.get("config", {}) or {}
            name = model or (model_name_from_args(cfg.get("model_args")) if cfg.get("model_args") else p.parent.name)
            task_cfg = (results.get("configs") or {}).get(task) or {}
            records = records_from_samples_file(p, task, name, config=task_cfg, filter=filter, scoring=scoring)
            return Run(name, records, source=str(p), meta={"lm_eval_config": cfg, "scoring": scoring})
        if _looks_like_records(first):
            return load_records_jsonl(p, model)
        return read_table(p, model)
    if suffix in TABLE_SUFFIXES:
        return read_table(p, model)
    return load_records_jsonl(p, model)


def model_folders(path: str | Path) -> list[Path]:
    """The per-model sub-folders of an lm-eval ``--output_path`` folder (empty when it is not one)."""
    p = Path(path)
    if not p.is_dir() or (p / RECORDS_FILENAME).exists() or list(p.glob("samples_*.jsonl")):
        return []
    return sorted(d for d in p.iterdir() if d.is_dir() and list(d.glob("samples_*.jsonl")))


def load_runs(path: str | Path, model: str | None = None, tasks: list[str] | None = None, **kwargs: Any) -> list[Run]:
    """Every model's run in ``path``: one per sub-folder of a multi-model lm-eval folder (unless ``model``
    picks one), else ``[load_run(path)]``.  ``report`` and ``clean`` take such a folder as several runs."""
    subs = model_folders(path)
    if model is None and len(subs) > 1:
        return [load_lm_eval_folder(d, None, tasks, **kwargs) for d in subs]
    return [load_run(path, model, tasks, **kwargs)]
