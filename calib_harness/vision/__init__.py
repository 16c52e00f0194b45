"""Vision adapter: timm classifiers over image datasets -> the same per-sample records as LM tasks.

Modules (one job each):

* :mod:`.datasets`: class folders, flat folder + CSV / file-name labels, ImageNet index order,
  in-memory arrays (Pillow only);
* :mod:`.model`: a timm model by name from a local ``.pth`` / ``.safetensors`` (never downloads);
* :mod:`.preprocess`: timm's data config with user overrides -> transform;
* :mod:`.adapter`: batched inference with a progress bar, resumable record writing;
* :mod:`.mnist_pair`: the shipped MNIST small/large pair (weights, logits -> records).

Calibration, cascade and cleaning of vision runs go through the same report as LM runs
(:func:`calib_harness.report.build.build_report`; ``calib-harness vision mnist-pair --report``).

torch / timm / torchvision are the optional ``vision`` extra; :mod:`.datasets` and
:mod:`.mnist_pair` (records from the shipped logits) work without them,
and everything else raises :class:`MissingVisionExtra` ("install calib-harness[vision]").
Attribute access is lazy, so ``import calib_harness.vision`` never imports torch.
"""

from __future__ import annotations

import importlib

from calib_harness.vision._deps import MissingVisionExtra, require_vision

_EXPORTS = {
    "ImageDataset": "datasets",
    "ArrayDataset": "datasets",
    "class_folder_dataset": "datasets",
    "flat_folder_dataset": "datasets",
    "imagenet_dataset": "datasets",
    "load_model": "model",
    "build_preprocess": "preprocess",
    "AdapterConfig": "adapter",
    "run_adapter": "adapter",
    "ResumeError": "adapter",
    "load_pair_runs": "mnist_pair",
}

__all__ = sorted([*_EXPORTS, "MissingVisionExtra", "require_vision"])


def __getattr__(name: str):
    if name in _EXPORTS:
        return getattr(importlib.import_module(f"{__name__}.{_EXPORTS[name]}"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
