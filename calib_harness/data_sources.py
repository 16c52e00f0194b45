"""Where the tasks' documents come from: the Hugging Face hub (default) or local files.

By default every task loads the same Hugging Face dataset as the stock lm-eval task
(``cais/mmlu``, ``allenai/ai2_arc``, ``openai/gsm8k`` ...).  When a local data folder is
configured, with ``CALIB_HARNESS_DATA_DIR`` or ``calib-lm-eval --data_dir``, the tasks read local
files in the layout of the project's ``shared/data`` instead and convert them to the hub
schema, so prompts and targets are identical either way:

    <data_dir>/mmlu/data/{dev,val,test}/<subject>_{dev,val,test}.csv
    <data_dir>/arc/ARC-{Easy,Challenge}/ARC-*-{Train,Dev,Test}.jsonl
    <data_dir>/gsm8k/{train,test}.jsonl
    <data_dir>/mbpp/mbpp.jsonl
    <data_dir>/bigcodebench/BigCodeBench-v0.1.0_hf.jsonl.gz

A relative ``CALIB_HARNESS_DATA_DIR`` is resolved once, against the directory where it was
set (our CLI stores the absolute path), never against whatever the working directory is
when lm-eval later loads a task.
"""

from __future__ import annotations

import csv
import gzip
import json
import os
from pathlib import Path
from typing import Any, Callable, Iterable

import datasets

DATA_DIR_ENV = "CALIB_HARNESS_DATA_DIR"


class DataNotFoundError(FileNotFoundError):
    """The documents of a task are neither in the local data folder nor reachable on the hub."""


def data_dir() -> Path | None:
    value = os.environ.get(DATA_DIR_ENV)
    if not value:
        return None
    path = Path(value).expanduser()
    if not path.is_absolute():
        path = path.resolve()
        os.environ[DATA_DIR_ENV] = str(path)
    return path


def set_data_dir(path: str | os.PathLike) -> Path:
    """Configure the local data folder for this process (and the lm-eval tasks it loads)."""
    resolved = Path(path).expanduser().resolve()
    if not resolved.is_dir():
        raise DataNotFoundError(f"--data_dir {path}: no such folder")
    os.environ[DATA_DIR_ENV] = str(resolved)
    return resolved


def _missing(what: str, hub_id: str, local: Path | None, layout: str, err: Exception | None = None) -> DataNotFoundError:
    where = f"not found under {local}" if local else "no local data folder is configured"
    cause = f" (hub: {type(err).__name__}: {str(err).splitlines()[0][:200]})" if err else ""
    return DataNotFoundError(
        f"{what}: {where}, and the Hugging Face dataset {hub_id!r} could not be loaded{cause}. Fix it either way: "
        f"(1) point {DATA_DIR_ENV} (or `calib-lm-eval --data_dir DIR`) at a folder holding {layout}; "
        f"or (2) allow hub access (unset HF_DATASETS_OFFLINE / HF_HUB_OFFLINE, with network) so {hub_id!r} downloads."
    )


def hub_offline() -> bool:
    """``HF_HUB_OFFLINE`` / ``HF_DATASETS_OFFLINE`` is set: nothing may be downloaded."""
    return any(os.environ.get(v, "").strip().lower() in ("1", "true", "yes", "on") for v in ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE"))


def hub_dataset_cached(hub_id: str) -> bool:
    """Whether a copy of the hub dataset is in the local Hugging Face caches (so offline loading can work)."""
    from huggingface_hub import constants

    org_name = hub_id.replace("/", "___")
    candidates = [
        Path(datasets.config.HF_DATASETS_CACHE) / org_name,
        Path(constants.HF_HUB_CACHE) / ("datasets--" + hub_id.replace("/", "--")),
    ]
    return any(p.is_dir() and any(p.iterdir()) for p in candidates)


def check_hub_reachable(what: str, hub_id: str, layout: str) -> None:
    """Offline with no cached copy: the clear data error now, not after a minute of retries."""
    if hub_offline() and not hub_dataset_cached(hub_id):
        raise _missing(what, hub_id, None, layout, ConnectionError(
            f"HF_HUB_OFFLINE/HF_DATASETS_OFFLINE is set and {hub_id!r} is not in the local Hugging Face cache"))


def _from_hub(what: str, hub_id: str, name: str | None, layout: str, convert: Callable[[dict], dict] | None = None):
    check_hub_reachable(what, hub_id, layout)
    try:
        ds = datasets.load_dataset(hub_id, name)
    except Exception as e:  # offline, missing, auth ...: one clear error with both fixes
        raise _missing(what, hub_id, None, layout, e) from e
    return ds.map(convert) if convert else ds


def _dataset_dict(splits: dict[str, list[dict[str, Any]]], features: datasets.Features | None = None) -> datasets.DatasetDict:
    return datasets.DatasetDict(
        {name: datasets.Dataset.from_list(rows, features=features) for name, rows in splits.items()}
    )


# --------------------------------------------------------------------------- MMLU
MMLU_HUB = "cais/mmlu"
MMLU_LAYOUT = "mmlu/data/{dev,val,test}/<subject>_<split>.csv"
_MMLU_FEATURES = datasets.Features(
    {
        "question": datasets.Value("string"),
        "subject": datasets.Value("string"),
        "choices": datasets.Sequence(datasets.Value("string")),
        "answer": datasets.ClassLabel(names=["A", "B", "C", "D"]),
    }
)


def read_mmlu_csv(path: Path, subject: str) -> list[dict[str, Any]]:
    rows = []
    with path.open(newline="", encoding="utf-8") as f:
        for n, row in enumerate(csv.reader(f), 1):
            if len(row) != 6 or row[5] not in "ABCD" or not row[5]:
                raise ValueError(f"{path}:{n}: expected question, A, B, C, D, answer letter; got {len(row)} fields")
            rows.append({"question": row[0], "subject": subject, "choices": row[1:5], "answer": "ABCD".index(row[5])})
    return rows


def load_mmlu(subject: str | None = None, **kwargs: Any) -> datasets.DatasetDict:
    """``custom_dataset`` of the calib_mmlu tasks: splits ``test``, ``validation``, ``dev`` as on the hub."""
    subject = subject or kwargs.get("dataset_name")
    if not subject:
        raise ValueError("load_mmlu needs the subject (dataset_kwargs: {subject: ...})")
    root = data_dir()
    if root is None:
        return _from_hub(f"MMLU {subject}", MMLU_HUB, subject, MMLU_LAYOUT)
    base = root / "mmlu" / "data"
    files = {"test": base / "test" / f"{subject}_test.csv", "validation": base / "val" / f"{subject}_val.csv",
             "dev": base / "dev" / f"{subject}_dev.csv"}
    missing = [str(p) for p in files.values() if not p.exists()]
    if missing:
        raise _missing(f"MMLU {subject}", MMLU_HUB, root, MMLU_LAYOUT) from FileNotFoundError(missing[0])
    return _dataset_dict({split: read_mmlu_csv(p, subject) for split, p in files.items()}, _MMLU_FEATURES)


# --------------------------------------------------------------------------- ARC
ARC_HUB = "allenai/ai2_arc"
ARC_LAYOUT = "arc/ARC-{Easy,Challenge}/ARC-*-{Train,Dev,Test}.jsonl"
_ARC_SPLITS = {"train": "Train", "validation": "Dev", "test": "Test"}


def arc_row(obj: dict[str, Any]) -> dict[str, Any]:
    """One line of the AI2 release JSONL -> the hub schema of ``allenai/ai2_arc``."""
    q = obj["question"]
    return {
        "id": obj["id"],
        "question": q["stem"],
        "choices": {"text": [c["text"] for c in q["choices"]], "label": [c["label"] for c in q["choices"]]},
        "answerKey": obj["answerKey"],
    }


def read_jsonl(path: Path) -> Iterable[dict[str, Any]]:
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rt", encoding="utf-8") as f:
        for line in f:
            if line.strip():
                yield json.loads(line)


def load_arc(name: str = "ARC-Easy", **kwargs: Any) -> datasets.DatasetDict:
    """``custom_dataset`` of calib_arc_easy / calib_arc_challenge: ``train``, ``validation``, ``test``."""
    if name not in ("ARC-Easy", "ARC-Challenge"):
        raise ValueError(f"ARC subset must be ARC-Easy or ARC-Challenge, got {name!r}")
    root = data_dir()
    if root is None:
        return _from_hub(name, ARC_HUB, name, ARC_LAYOUT)
    files = {split: root / "arc" / name / f"{name}-{suffix}.jsonl" for split, suffix in _ARC_SPLITS.items()}
    present = {s: p for s, p in files.items() if p.exists()}
    if "test" not in present:
        raise _missing(name, ARC_HUB, root, ARC_LAYOUT) from FileNotFoundError(str(files["test"]))
    return _dataset_dict({split: [arc_row(o) for o in read_jsonl(p)] for split, p in present.items()})
