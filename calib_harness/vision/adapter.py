"""The vision task adapter: a timm classifier over an image dataset -> per-sample records.

    cfg = AdapterConfig("tf_efficientnet_lite0", checkpoint, remap=True)
    run = run_adapter(cfg, imagenet_dataset(folder, label_pattern=r"_(\\d+)\\.\\w+$"), "runs/lite0")

writes the same :class:`~calib_harness.records.SampleRecord` as the LM tasks (``option_scores``
= logits, ``option_token_mode="logits"``, ``confidence`` = max softmax, ``score`` = 1 when the
argmax is the given label), so calibration, routing and cleaning read image runs unchanged.

Resumable: each finished batch is appended to ``records.partial.jsonl`` (flushed and
fsynced) and ``checkpoint.json`` records how many images and bytes are done.  Running again
into the same folder with the same model, preprocessing and dataset continues after the last
finished batch without recomputing it; when all images are done ``records.jsonl`` is
written (``Run.save``) and the partial file removed.  A finished folder is read back as is.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from calib_harness.records import RECORDS_FILENAME, Run, SampleRecord, load_records_jsonl
from calib_harness.vision.datasets import ImageDataset

PARTIAL_FILENAME = "records.partial.jsonl"
CHECKPOINT_FILENAME = "checkpoint.json"


class ResumeError(ValueError):
    """The output folder holds a run of another model / preprocessing / dataset."""


@dataclass
class AdapterConfig:
    """What to run.  ``data_config`` overrides timm's preprocessing (see ``preprocess``)."""

    model_name: str
    checkpoint: str | Path
    model_kwargs: dict[str, Any] = field(default_factory=dict)
    run_name: str | None = None  # the records' ``model``; default: the timm name
    remap: bool = False
    batch_size: int = 32
    data_config: dict[str, Any] = field(default_factory=dict)
    device: str = "cpu"

    @property
    def name(self) -> str:
        return self.run_name or self.model_name

    def identity(self) -> dict[str, Any]:
        """What must match for a resumed run (batch size and device may change)."""
        d = asdict(self)
        d["checkpoint"] = str(Path(self.checkpoint).resolve())
        d.pop("batch_size")
        d.pop("device")
        return json.loads(json.dumps(d, default=list))


def make_record(task: str, doc_id: str, model: str, logits: np.ndarray, classes: list[str], label: int | None,
                extra: dict[str, Any] | None = None) -> SampleRecord:
    """One vision record from a logits vector (:meth:`SampleRecord.from_option_scores`, ``logits`` mode)."""
    return SampleRecord.from_option_scores(
        logits, classes, label, task=task, doc_id=doc_id, model=model, option_token_mode="logits", extra=extra
    )


class _Output:
    """records.partial.jsonl + checkpoint.json in one folder."""

    def __init__(self, folder: Path, identity: dict[str, Any]):
        self.folder = folder
        self.partial = folder / PARTIAL_FILENAME
        self.ckpt = folder / CHECKPOINT_FILENAME
        self.identity = identity

    def read_checkpoint(self) -> dict[str, Any] | None:
        if not self.ckpt.exists():
            return None
        return json.loads(self.ckpt.read_text())

    def write_checkpoint(self, state: dict[str, Any]) -> None:
        tmp = self.ckpt.with_suffix(".json.tmp")
        tmp.write_text(json.dumps(state, indent=1))
        os.replace(tmp, self.ckpt)

    def check_same(self, state: dict[str, Any], overwrite: bool) -> bool:
        """True when ``state`` belongs to this run; False (start over) or ResumeError otherwise."""
        if state.get("identity") == self.identity:
            return True
        if overwrite:
            return False
        def flat(d: dict[str, Any]) -> dict[str, Any]:
            return {**{k: v for k, v in d.items() if k != "config"}, **d.get("config", {})}

        old, new = flat(state.get("identity", {})), flat(self.identity)
        diff = sorted(k for k in set(old) | set(new) if old.get(k) != new.get(k))
        raise ResumeError(
            f"{self.folder} holds a run with different {diff}; use another -o/--output or pass --force (Python: overwrite=True)"
        )


def run_adapter(
    config: AdapterConfig,
    dataset: ImageDataset,
    out_dir: str | Path,
    *,
    resume: bool = True,
    overwrite: bool = False,
    max_batches: int | None = None,
    progress: bool = True,
) -> Run:
    """Run ``config``'s model over ``dataset`` and write records into ``out_dir``.

    Returns the run (``meta``: ``complete``, ``batches_computed`` in this call,
    ``images_resumed``, ``data_config``, ``seconds``).  ``max_batches`` stops after that many
    new batches (an incomplete run, continued by the next call).
    """
    from calib_harness.vision.model import load_model
    from calib_harness.vision.preprocess import build_preprocess

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    if config.batch_size < 1:
        raise ValueError("batch_size must be >= 1")
    identity = {"config": config.identity(), "dataset": dataset.name, "fingerprint": dataset.fingerprint(),
                "n_images": len(dataset)}
    io = _Output(out, identity)
    state = io.read_checkpoint()
    same = state is not None and io.check_same(state, overwrite)
    final = out / RECORDS_FILENAME
    if same and state["complete"] and final.exists() and resume:
        run = load_records_jsonl(final, model=config.name)
        run.meta.update(complete=True, batches_computed=0, images_resumed=len(run), data_config=state["data_config"])
        return run

    records: list[SampleRecord] = []
    if same and resume and io.partial.exists():
        # drop a torn last write: keep exactly the bytes the checkpoint vouches for
        with io.partial.open("r+b") as f:
            f.truncate(int(state["bytes"]))
        records = list(load_records_jsonl(io.partial, model=config.name).records) if state["done"] else []
        if len(records) != state["done"]:
            raise ResumeError(f"{io.partial}: {len(records)} records but the checkpoint says {state['done']}")
    else:
        io.partial.unlink(missing_ok=True)
        final.unlink(missing_ok=True)
    done = resumed = len(records)
    if not len(dataset):
        raise ValueError(f"dataset {dataset.name!r} has no images")
    done_ids = [r.doc_id for r in records]
    if done_ids != [it.doc_id for it in dataset.items[:done]]:
        raise ResumeError(f"{out}: finished records are not the first {done} images of the dataset")

    import torch

    model = load_model(config.model_name, config.checkpoint, model_kwargs=config.model_kwargs,
                       remap=config.remap, device=config.device)
    pre = build_preprocess(model, config.data_config)
    data_config = {k: (list(v) if isinstance(v, tuple) else v) for k, v in pre.config.items()}
    n_classes = len(dataset.classes)

    bar = None
    if progress:
        from tqdm import tqdm

        bar = tqdm(total=len(dataset), initial=done, desc=f"{config.name} on {dataset.name}", unit="img")
    t0 = time.time()
    batches = 0
    nbytes = io.partial.stat().st_size if io.partial.exists() else 0
    try:
        with io.partial.open("a", encoding="utf-8") as f:
            while done < len(dataset) and (max_batches is None or batches < max_batches):
                items = dataset.items[done : done + config.batch_size]
                x = torch.stack([pre(dataset.load(it)) for it in items]).to(config.device)
                with torch.inference_mode():
                    logits = model(x).float().cpu().numpy()
                if logits.shape[1] != n_classes:
                    raise ValueError(
                        f"{config.name} outputs {logits.shape[1]} classes but dataset {dataset.name!r} has {n_classes}"
                    )
                new = [make_record(dataset.name, it.doc_id, config.name, lg, dataset.classes, it.label)
                       for it, lg in zip(items, logits)]
                text = "".join(json.dumps(r.to_dict(), ensure_ascii=False) + "\n" for r in new)
                f.write(text)
                f.flush()
                os.fsync(f.fileno())
                nbytes += len(text.encode("utf-8"))
                records.extend(new)
                done += len(items)
                batches += 1
                io.write_checkpoint({"identity": identity, "done": done, "bytes": nbytes, "complete": False,
                                     "data_config": data_config})
                if bar is not None:
                    bar.update(len(items))
    finally:
        if bar is not None:
            bar.close()
    complete = done == len(dataset)
    run = Run(config.name, records, source=str(out))
    if complete:
        run.save(final)
        io.write_checkpoint({"identity": identity, "done": done, "bytes": nbytes, "complete": True,
                             "data_config": data_config})
        io.partial.unlink(missing_ok=True)
        run.source = str(final)
    run.meta.update(complete=complete, batches_computed=batches, images_resumed=resumed,
                    data_config=data_config, seconds=round(time.time() - t0, 2))
    return run
