"""``calib-harness serve`` with ``vllm serve`` (vLLM's CPU build, ``make vllm``) as the small model:
the server that gives raw logits (``--logprobs-mode raw_logits``), so a router fitted on
``mean_logit`` (the default calibrator of generation runs) can be served, and the legacy
completions layout of logprobs (vLLM's ``/v1/completions``).  One engine start (a minute or two on
2 cores) serves the module; the large model is Qwen2.5-Coder-0.5B behind llama.cpp's server.
"""

from __future__ import annotations

import math
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from calib_harness.routing.deploy import DeployableRouter, apply_calibrator
from calib_harness.serve.app import ServeConfig, Upstream, create_app
from calib_harness.serve.testing import ServerThread, free_port
from calib_harness.serve.upstream import UpstreamServer

pytestmark = pytest.mark.slow

OPTIONS = [" A", " B", " C", " D"]


@pytest.fixture(scope="module")
def servers(smollm2_path, tmp_path_factory):
    exe = Path(sys.executable).parent / "vllm"
    exe = str(exe) if exe.exists() else shutil.which("vllm")
    assert exe, "vllm is not installed: run `make vllm`"
    port = free_port()
    log = tmp_path_factory.mktemp("vllm") / "vllm.log"
    cmd = [exe, "serve", smollm2_path, "--served-model-name", "smollm2-135m", "--host", "127.0.0.1", "--port", str(port),
           "--logprobs-mode", "raw_logits", "--max-logprobs", "50", "--max-model-len", "1024", "--dtype", "float32",
           "--enforce-eager", "--seed", "0"]
    env = {**os.environ, "VLLM_CPU_KVCACHE_SPACE": os.environ.get("VLLM_CPU_KVCACHE_SPACE", "1")}
    with open(log, "wb") as f:
        proc = subprocess.Popen(cmd, stdout=f, stderr=subprocess.STDOUT, env=env)
    url = f"http://127.0.0.1:{port}/v1"
    try:
        deadline = time.monotonic() + 1200
        while True:
            assert proc.poll() is None, f"vllm serve exited:\n{log.read_text()[-3000:]}"
            try:
                if httpx.get(url + "/models", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert time.monotonic() < deadline, f"vllm serve did not come up:\n{log.read_text()[-3000:]}"
            time.sleep(1)
        with UpstreamServer("qwen2.5-coder-0.5b", alias="qwen2.5-coder-0.5b") as large:
            yield url, large
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            proc.kill()


def _cascade(router, small_url, large):
    app = create_app(router, ServeConfig([Upstream(small_url, "small", timeout=300), Upstream(large.url, "large", timeout=300)], logprobs_mode="raw_logits", top_logprobs=50))
    return ServerThread(app)


def _answer_tokens(entries, text):
    """The leading tokens that spell the answer (the rest is the end-of-sequence token)."""
    acc = ""
    for i, e in enumerate(entries):
        if len(acc) >= len(text):
            return entries[:i]
        acc += e["token"]
    return entries


def test_mean_logit_router_routes_as_offline(servers):
    small_url, large = servers
    client = httpx.Client(timeout=300)
    prompts = [[{"role": "user", "content": f"What is {a} + {b}? Reply with the number only."}] for a, b in [(2, 3), (17, 25), (6, 7), (120, 33), (9, 9), (48, 51)]]
    offline = []
    for m in prompts:
        r = client.post(small_url + "/chat/completions", json={"model": "smollm2-135m", "messages": m, "max_tokens": 8, "temperature": 0, "logprobs": True, "top_logprobs": 1})
        ch = r.json()["choices"][0]
        toks = _answer_tokens(ch["logprobs"]["content"], ch["message"]["content"])
        offline.append(sum(e["logprob"] for e in toks) / len(toks))  # raw logits in this mode
    assert all(x > 1.0 for x in offline), f"raw logits, not log-probabilities: {offline}"
    spec = {"kind": "platt", "a": 0.3, "b": -8.0, "feature": "mean_logit"}
    conf = sorted(apply_calibrator(spec, {"mean_logit": x}) for x in offline)
    router = DeployableRouter(edges=[(conf[2] + conf[3]) / 2], selected_bins=[1], calibrator=spec)
    with _cascade(router, small_url, large) as base:
        for m, x in zip(prompts, offline):
            r = client.post(base + "/v1/chat/completions", json={"model": "cascade", "messages": m, "max_tokens": 8, "temperature": 0})
            info = r.json()["cascade"]
            assert info["feature"] == "mean_logit"
            assert info["model"] == router.route({"mean_logit": x})
            assert info["confidence"] == pytest.approx(apply_calibrator(spec, {"mean_logit": x}), rel=1e-6)
            assert r.json()["model"] == ("smollm2-135m" if info["model"] == "small" else "qwen2.5-coder-0.5b")


def test_multiple_choice_from_vllm_legacy_logprobs(servers):
    small_url, large = servers
    client = httpx.Client(timeout=300)
    router = DeployableRouter(edges=[0.45], selected_bins=[1], calibrator={"kind": "identity"})
    prompts = [
        "Question: Which gas do plants take in for photosynthesis?\nA. oxygen\nB. carbon dioxide\nC. nitrogen\nD. helium\nAnswer:",
        "Question: What is 3 + 4?\nA. 5\nB. 6\nC. 7\nD. 8\nAnswer:",
        "Question: Which planet is closest to the Sun?\nA. Venus\nB. Earth\nC. Mars\nD. Mercury\nAnswer:",
    ]
    with _cascade(router, small_url, large) as base:
        for p in prompts:
            d = client.post(small_url + "/completions", json={"model": "smollm2-135m", "prompt": p, "max_tokens": 1, "temperature": 0, "logprobs": 50}).json()
            top = d["choices"][0]["logprobs"]["top_logprobs"][0]  # legacy layout: {token: value}
            scores = [top[o] for o in OPTIONS]
            z = [math.exp(s - max(scores)) for s in scores]
            expected_conf = max(z) / sum(z)
            r = client.post(base + "/v1/completions", json={"model": "cascade", "prompt": p, "max_tokens": 1, "temperature": 0, "cascade": {"options": OPTIONS}})
            info = r.json()["cascade"]
            assert info["confidence"] == pytest.approx(expected_conf, rel=1e-6)
            assert info["model"] == ("small" if expected_conf > 0.45 else "large")
