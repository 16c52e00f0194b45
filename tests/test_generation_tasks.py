"""The generation tasks end to end through ``calib-lm-eval`` with the shipped SmolLM2-135M (offline).

* calib_gsm8k twice in one run -- as shipped (no filter) and with lm-eval's gsm8k-cot regex filter
  wrapped in our ``calib`` filter -- then the same command again with ``--use_cache``: every request
  is a cache hit and the records come back with the same token figures.
* calib_mbpp: one document through the ``code_exec`` verifier in the Docker sandbox.
* The prompts are lm-eval's stock ones (gsm8k_cot, mbpp).
"""

from __future__ import annotations

import json
import math
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from calib_harness.lm_eval_io import load_run
from calib_harness.tasks import TASKS_DIR

FEATURES = {"mean_logit", "mean_logprob", "sum_logprob", "mean_entropy", "n_tokens"}
STOCK = Path(__import__("lm_eval").__file__).parent / "tasks"

REGEX_TASK = f"""include: {TASKS_DIR / 'calib_gsm8k' / 'calib_gsm8k.yaml'}
task: calib_gsm8k_regex
filter_list:
  - name: flexible-extract
    filter:
      - function: calib
        filters:
          - function: regex
            group_select: -1
            regex_pattern: "(-?[$0-9.,]{{2,}})|(-?[0-9]+)"
          - function: take_first
"""


def _cli(args, env_extra=None):
    env = dict(os.environ, OMP_NUM_THREADS="1", HF_HUB_OFFLINE="1", HF_DATASETS_OFFLINE="1", **(env_extra or {}))
    cmd = [sys.executable, "-m", "calib_harness.lm_eval_cli", *args]
    p = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=1200)
    assert p.returncode == 0, p.stdout[-3000:] + p.stderr[-5000:]
    return p.stdout + p.stderr


def _samples(out: Path, task: str):
    f = next(out.rglob(f"samples_{task}_*.jsonl"))
    return [json.loads(line) for line in f.read_text().splitlines() if line.strip()]


class _Yaml(yaml.SafeLoader):
    pass


_Yaml.add_constructor("!function", lambda loader, node: loader.construct_scalar(node))


def _load_yaml(path: Path) -> dict:
    return yaml.load(path.read_text(), Loader=_Yaml)


def test_prompts_are_lm_evals_stock_ones():
    ours, stock = _load_yaml(TASKS_DIR / "calib_gsm8k" / "calib_gsm8k.yaml"), _load_yaml(STOCK / "gsm8k" / "gsm8k-cot.yaml")
    for k in ("doc_to_text", "doc_to_target", "num_fewshot", "fewshot_config", "generation_kwargs"):
        assert ours[k] == stock[k], k
    ours, stock = _load_yaml(TASKS_DIR / "calib_mbpp" / "calib_mbpp.yaml"), _load_yaml(STOCK / "mbpp" / "mbpp.yaml")
    for k in ("doc_to_text", "doc_to_target", "target_delimiter", "num_fewshot", "generation_kwargs", "test_split"):
        assert ours[k] == stock[k], k


def test_local_data_loaders(monkeypatch, shared_data):
    from calib_harness import data_sources_gen as g

    monkeypatch.setenv("CALIB_HARNESS_DATA_DIR", str(shared_data))
    gsm = g.load_gsm8k()
    assert gsm["test"].num_rows == 1319 and gsm["train"].num_rows == 7473
    mbpp = g.load_mbpp()
    assert {s: mbpp[s].num_rows for s in mbpp} == {"train": 374, "test": 500, "validation": 90, "prompt": 10}
    assert mbpp["test"][0]["task_id"] == 11 and len(mbpp["test"][0]["test_list"]) == 3
    bcb = g.load_bigcodebench()
    assert bcb["v0.1.0_hf"].num_rows == 1140 and bcb["v0.1.0_hf"][0]["entry_point"] == "task_func"
    monkeypatch.setenv("CALIB_HARNESS_DATA_DIR", str(shared_data / "arc"))
    with pytest.raises(FileNotFoundError, match="CALIB_HARNESS_DATA_DIR.*HF_DATASETS_OFFLINE"):
        g.load_mbpp()


def _check_generation_record(r):
    assert FEATURES <= set(r.features) and {f"span_{k}" for k in FEATURES} <= set(r.features)
    assert r.option_scores is None and r.score in (0.0, 1.0)
    assert r.confidence == pytest.approx(math.exp(r.features["mean_logprob"]))
    assert r.features["n_tokens"] >= 1 and r.features["span_n_tokens"] <= r.features["n_tokens"]
    assert r.features["sum_logprob"] == pytest.approx(r.features["mean_logprob"] * r.features["n_tokens"])
    assert r.extra["output"] and r.extra["verifier"]


@pytest.mark.slow
def test_gsm8k_end_to_end_filter_and_cache(tmp_path, shared_data):
    inc = tmp_path / "tasks"
    inc.mkdir()
    (inc / "calib_gsm8k_regex.yaml").write_text(REGEX_TASK)
    common = ["--model", "calib-hf", "--model_args", "pretrained=smollm2-135m,dtype=float32",
              "--tasks", "calib_gsm8k,calib_gsm8k_regex", "--include_path", str(inc), "--data_dir", str(shared_data),
              "--limit", "2", "--batch_size", "4", "--gen_kwargs", "max_gen_toks=16",
              "--use_cache", str(tmp_path / "cache" / "lm"), "--log_samples"]
    log1 = _cli([*common, "--output_path", str(tmp_path / "run1")])
    assert re.search(r"Cached requests: 0, Requests remaining: 4", log1)

    run = load_run(tmp_path / "run1")
    assert run.model == "smollm2-135m" and run.tasks == ["calib_gsm8k", "calib_gsm8k_regex"] and len(run) == 4
    for r in run:
        _check_generation_record(r)
        assert r.extra["verifier"] == "numeric" and r.gold in ("18", "3")
    plain = {r.doc_id: r for r in run.filter_tasks(["calib_gsm8k"])}
    regex = {r.doc_id: r for r in run.filter_tasks(["calib_gsm8k_regex"])}
    for doc_id, r in regex.items():  # the regex filter changed the text the verifier reads, not the figures
        assert r.extra["output"] == plain[doc_id].extra["output"]
        assert {k: r.features[k] for k in FEATURES} == {k: plain[doc_id].features[k] for k in FEATURES}
        assert r.extra["extracted"] in r.extra["output"] or r.extra["extracted"] == "[invalid]"
    for s in _samples(tmp_path / "run1", "calib_gsm8k_regex"):
        assert s["filter"] == "flexible-extract"
        assert s["filtered_resps"][0] != s["resps"][0][0] and re.fullmatch(r"-?[$0-9.,]+|\[invalid\]", s["filtered_resps"][0])
        assert s["ece"]["output"] == s["resps"][0][0]

    # again with the cache: nothing is generated, the figures come back
    log2 = _cli([*common, "--output_path", str(tmp_path / "run2")])
    assert re.search(r"Cached requests: 4, Requests remaining: 0", log2)
    again = load_run(tmp_path / "run2")
    assert [(r.key, r.features, r.score, r.extra["output"]) for r in again] == [
        (r.key, r.features, r.score, r.extra["output"]) for r in run
    ]


def _docker_ready() -> bool:
    try:
        return subprocess.run(["docker", "image", "inspect", "calib-sandbox:py311"], capture_output=True, timeout=30).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        return False


@pytest.mark.slow
@pytest.mark.docker
def test_mbpp_end_to_end_with_sandbox(tmp_path, shared_data):
    if not _docker_ready():
        pytest.skip("needs the Docker daemon and the calib-sandbox:py311 image (sandbox/build_images.sh)")
    _cli(["--model", "calib-hf", "--model_args", "pretrained=smollm2-135m,dtype=float32", "--tasks", "calib_mbpp",
          "--data_dir", str(shared_data), "--limit", "1", "--gen_kwargs", "max_gen_toks=48",
          "--output_path", str(tmp_path / "out"), "--log_samples"])
    (r,) = load_run(tmp_path / "out")
    _check_generation_record(r)
    d = r.extra["details"]
    assert r.extra["verifier"] == "code_exec" and d["suite"] == "mbpp" and d["backend"] == "hf"
    assert d["verdict"] in ("ok", "error", "timeout") and r.score == float(d["passed"])
    assert r.prompt.startswith("Write a python function to remove first and last occurrence")
