"""Task configs are checked when the task loads, before any model call (issue: a typo failed after all generation)."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "my_arith"


CASES = {
    "my_arith_ok": ("numeric", "final_answer", None),
    "my_arith_bad_verifier": ("numerc", "final_answer", "unknown verifier 'numerc'; available: .*numeric"),
    "my_arith_bad_span": ("numeric", "final", "unknown span 'final'"),
    "my_arith_bad_regex": ("numeric", "regex:(", "not a valid regular expression"),
}


def _task_folder(root: Path, name: str, verifier: str, span: str) -> Path:
    folder = root / name
    shutil.copytree(EXAMPLE, folder)
    (folder / "my_arith.yaml").rename(folder / f"{name}.yaml")
    yaml = folder / f"{name}.yaml"
    yaml.write_text(yaml.read_text().replace("task: my_arith", f"task: {name}").replace("test: arith.jsonl", f"test: {folder / 'arith.jsonl'}"))
    utils = folder / "utils.py"
    text = utils.read_text()
    assert 'verifier="numeric", span="final_answer"' in text
    utils.write_text(text.replace('verifier="numeric", span="final_answer"', f'verifier="{verifier}", span="{span}"'))
    return folder


def test_bad_task_config_fails_when_the_task_loads(tmp_path):
    """lm-eval's own TaskManager loading the task (no model at all) raises the clear error."""
    from lm_eval.tasks import TaskManager

    for name, (verifier, span, _) in CASES.items():
        _task_folder(tmp_path, name, verifier, span)
    tm = TaskManager(include_path=str(tmp_path))
    assert tm.load(["my_arith_ok"])
    for name, (_, _, message) in CASES.items():
        if message:
            with pytest.raises(Exception, match=message):
                tm.load([name])


def test_calib_lm_eval_fails_at_once_on_unknown_short_name_and_missing_offline_data(tmp_path):
    """Both errors come before any model loads: one line, exit status 2, the fix named."""
    # loads no model (tests/test_repo_structure.py: not a slow test)
    exe = Path(sys.executable).parent / "calib-lm-eval"
    env = {"HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", "PATH": "/usr/bin:/bin", "HOME": str(Path.home())}
    bad = subprocess.run([str(exe), "--model", "hf", "--model_args", "pretrained=smollm3-135m", "--tasks", "calib_arc_easy"],
                         capture_output=True, text=True, env=env, cwd=tmp_path, timeout=300)
    assert bad.returncode == 2 and "Traceback" not in bad.stderr
    assert "did you mean 'smollm2-135m'" in bad.stderr and "qwen2.5-coder-0.5b" in bad.stderr
    nodata = subprocess.run([str(exe), "--model", "hf", "--model_args", "pretrained=smollm2-135m", "--tasks", "calib_arc_easy"],
                            capture_output=True, text=True, env=env, cwd=tmp_path, timeout=300)
    assert nodata.returncode == 2 and "Traceback" not in nodata.stderr
    assert "CALIB_HARNESS_DATA_DIR" in nodata.stderr and "allenai/ai2_arc" in nodata.stderr
    helped = subprocess.run([str(exe), "--help"], capture_output=True, text=True, env=env, cwd=tmp_path, timeout=300)
    assert "--data_dir" in helped.stdout and "calib-hf" in helped.stdout and "smollm2-135m" in helped.stdout
