"""Scale-out through vLLM on its CPU build: ``pipeline_parallel_size`` and ``tensor_parallel_size`` (two
workers of one ``vllm.LLM``) and ``data_parallel_size`` (lm-eval's path: one engine per replica, as Ray
tasks) give ``calib-vllm`` the answers and figures of one ``calib-hf`` model on the same documents.

Each setting runs one ``simple_evaluate`` over ARC-Easy (multi-token options: lm-eval's
``prompt_logprobs`` path), an MMLU subject (letters: one request per question) and GSM8K (generation,
32 tokens).  The models: SmolLM2-135M for pipeline and data parallelism; Qwen2.5-Coder-0.5B for tensor
parallelism (its 14 query and 2 key-value heads split in two; SmolLM2's 9 do not).

On one CPU, vLLM wants each worker's cores named (``VLLM_CPU_OMP_THREADS_BIND``, one list per worker:
this machine's cores in two halves).  lm-eval reserves ``num_gpus=tensor_parallel_size`` per replica,
so the data-parallel test starts a local Ray head that declares two GPUs; on the CPU build they are
labels and nothing else.  About 9 minutes on 2 cores, mostly engine starts (lm-eval starts the
replicas' engines anew for every batch of requests).
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import pytest
from vllm_helpers import (ENGINE, by_doc, captures, device, evaluate, hf_evaluate, hf_teacher_forced, load_hf_model,
                          option_scores, shutdown)

pytestmark = pytest.mark.slow

TASKS = {"calib_arc_easy": list(range(6)), "calib_mmlu_astronomy": list(range(6)), "calib_gsm8k": [0]}
MC = ["calib_arc_easy", "calib_mmlu_astronomy"]
SETTINGS = {
    # vLLM's CPU build needs the compiled model for pipeline stages (calib-vllm refuses enforce_eager there)
    "pipeline": ("smollm2-135m", dict(pipeline_parallel_size=2, enforce_eager=False)),
    "tensor": ("qwen2.5-coder-0.5b", dict(tensor_parallel_size=2)),
    "data": ("smollm2-135m", dict(data_parallel_size=2)),
}


def _two_core_lists() -> str:
    cpus = sorted(os.sched_getaffinity(0))
    half = max(1, len(cpus) // 2)
    return "|".join(",".join(map(str, part)) for part in (cpus[:half], cpus[half:] or cpus[:half]))


@pytest.fixture(scope="module", autouse=True)
def _env(shared_data):
    from calib_harness.data_sources import set_data_dir
    from calib_harness.lm_eval_cli import add_task_folder

    saved = dict(os.environ)
    os.environ.setdefault("VLLM_CPU_KVCACHE_SPACE", "1")  # GiB per worker; CPU build only
    if device() == "cpu":
        os.environ.setdefault("VLLM_CPU_OMP_THREADS_BIND", _two_core_lists())
    set_data_dir(shared_data)
    add_task_folder()
    yield
    os.environ.clear()
    os.environ.update(saved)


@pytest.fixture(scope="module")
def ray_head(tmp_path_factory):
    """A local Ray cluster with two (logical) GPUs; lm-eval's replicas connect to it through RAY_ADDRESS."""
    ray = Path(sys.executable).with_name("ray")
    assert ray.exists(), "ray is not installed: `make vllm` installs it (lm-eval's data-parallel path needs it)"
    tmp = tmp_path_factory.mktemp("ray")
    with socket.socket() as free:
        free.bind(("127.0.0.1", 0))
        port = free.getsockname()[1]
    env = {**os.environ, "RAY_USAGE_STATS_ENABLED": "0"}
    subprocess.run([str(ray), "start", "--head", f"--port={port}", "--num-cpus=2", "--num-gpus=2",
                    "--include-dashboard=false", "--object-store-memory=500000000", f"--temp-dir={tmp}"],
                   check=True, capture_output=True, env=env, timeout=300)
    os.environ["RAY_ADDRESS"] = f"127.0.0.1:{port}"
    try:
        yield os.environ["RAY_ADDRESS"]
    finally:
        os.environ.pop("RAY_ADDRESS", None)
        subprocess.run([str(ray), "stop", "--force"], capture_output=True, env=env, timeout=300)
        shutil.rmtree(tmp, ignore_errors=True)


def _run_parallel(path, par):
    from calib_harness.lm_models.vllm_entry import CalibVLLM

    lm = CalibVLLM(pretrained=path, capture_topk=-1, batch_size="auto", **{**ENGINE, **par})
    try:
        out = evaluate(lm, list(TASKS), None, samples=TASKS, gen_kwargs="max_gen_toks=32")
        return out, lm.tok_encode, lm.tokenizer
    finally:
        shutdown(lm)


@pytest.mark.parametrize("name", list(SETTINGS))
def test_parallel_engine_matches_one_hf_model(name, request):
    from calib_harness.models import resolve_model

    if name == "data":
        request.getfixturevalue("ray_head")
    model, par = SETTINGS[name]
    path = resolve_model(model)
    out, encode, tokenizer = _run_parallel(path, par)
    hf = hf_evaluate(path, MC, None, samples={t: TASKS[t] for t in MC})
    for task in MC:
        ours, ref = by_doc(out, task), by_doc(hf, task)
        assert sorted(ours) == sorted(ref) == TASKS[task]
        for d in ours:
            o, h = option_scores(ours[d]), option_scores(ref[d])
            assert max(range(len(o)), key=o.__getitem__) == max(range(len(h)), key=h.__getitem__), (name, task, d, o, h)
            assert max(abs(a - b) for a, b in zip(o, h)) < 1e-3, (name, task, d, o, h)
            assert ours[d]["acc"] == ref[d]["acc"]
    (s, cap), = captures(out, "calib_gsm8k")
    feats = s["ece"]["features"]
    assert tokenizer.decode(cap["tokens"], skip_special_tokens=True) == cap["text"] == s["ece"]["output"]
    assert 0 < feats["n_tokens"] == len(cap["tokens"]) <= 32
    hf_model = load_hf_model(path)
    _, lp, ent = hf_teacher_forced(hf_model, encode(s["arguments"][0][0]), cap["tokens"])
    assert abs(feats["mean_logprob"] - lp.mean().item()) < 1e-3, (name, feats["mean_logprob"], lp.mean().item())
    assert abs(feats["mean_entropy"] - ent.mean().item()) < 1e-3, (name, feats["mean_entropy"], ent.mean().item())
    assert s["ece"]["details"]["backend"] == "vllm"


def test_eager_pipeline_stages_refused_on_the_cpu_build():
    from calib_harness.lm_models.vllm_entry import CalibVLLM
    from calib_harness.outputs import CliError

    if device() != "cpu":
        pytest.skip("vLLM's GPU builds run pipeline stages eagerly")
    with pytest.raises(CliError, match="drop enforce_eager"):
        CalibVLLM(pretrained="/nonexistent", pipeline_parallel_size=2, enforce_eager=True)
