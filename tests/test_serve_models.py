"""``calib-harness serve`` in front of real model servers: the shipped SmolLM2-135M (small) and
Qwen2.5-Coder-0.5B (large), each served by llama.cpp's server (the ``xllamacpp`` wheel) on a free
127.0.0.1 port, started and stopped by the fixtures below.

* the served decisions equal the offline router's on the same prompts (multiple choice: a router
  fitted by the real ``calib-harness cascade`` on records scored offline; generation: a Platt
  router on ``mean_logprob``);
* streaming passes through, and the ``openai`` client reads the answer and the decision;
* N concurrent clients: nothing dropped, nothing mixed up between requests.

The offline scores come from llama.cpp's native ``/completion`` endpoint (``n_probs``), parsed
here, not by the serving code, so the comparison checks the served path against an independent one.
Every request here says ``"cache_prompt": false`` (llama.cpp's own field, passed through by the
cascade): llama.cpp's numbers for a prompt depend slightly (1e-5) on how much of it was cached, and
the comparisons below are exact.
"""

from __future__ import annotations

import json
import math
import threading
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest

from calib_harness.records import Run, SampleRecord
from calib_harness.routing.deploy import DeployableRouter
from calib_harness.serve.app import ServeConfig, Upstream, create_app
from calib_harness.serve.testing import ServerThread
from calib_harness.serve.upstream import UpstreamServer

pytestmark = pytest.mark.slow

K = 50  # top alternatives, offline and served alike
LETTERS = ["A", "B", "C", "D"]
OPTIONS = [" " + x for x in LETTERS]
NO_CACHE = {"cache_prompt": False}


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    logs = tmp_path_factory.mktemp("upstream_logs")
    with UpstreamServer("smollm2-135m", alias="smollm2-135m", log_path=logs / "small.log") as small, UpstreamServer(
        "qwen2.5-coder-0.5b", alias="qwen2.5-coder-0.5b", log_path=logs / "large.log"
    ) as large:
        yield small, large


def arc_questions(shared_data, n):
    out = []
    with open(shared_data / "arc" / "ARC-Easy" / "ARC-Easy-Test.jsonl") as f:
        for line in f:
            o = json.loads(line)
            q = o["question"]
            if [c["label"] for c in q["choices"]] != LETTERS:
                continue
            prompt = "Question: " + q["stem"] + "\n" + "".join(f"{c['label']}. {c['text']}\n" for c in q["choices"]) + "Answer:"
            out.append({"id": o["id"], "prompt": prompt, "gold": o["answerKey"]})
            if len(out) == n:
                break
    return out


def native_option_scores(client, server, prompt):
    """Option log-probabilities from llama.cpp's native endpoint (None when one is outside the top K)."""
    r = client.post(server.url[: -len("/v1")] + "/completion", json={"prompt": prompt, "n_predict": 1, "n_probs": K, "temperature": 0, "cache_prompt": False})
    r.raise_for_status()
    top = {t["token"]: t["logprob"] for t in r.json()["completion_probabilities"][0]["top_logprobs"]}
    return [top[o] for o in OPTIONS] if all(o in top for o in OPTIONS) else None


class Cascade:
    def __init__(self, router, small, large, **cfg):
        self.app = create_app(router, ServeConfig([Upstream(small.url, "small", timeout=120), Upstream(large.url, "large", timeout=300)], top_logprobs=K, **cfg))
        self.thread = ServerThread(self.app)

    def __enter__(self):
        self.base = self.thread.__enter__() + "/v1"
        return self

    def __exit__(self, *exc):
        self.thread.__exit__(*exc)


def test_mc_decisions_equal_the_offline_router(models, shared_data, tmp_path):
    from calib_harness.cli import main

    small, large = models
    qs = arc_questions(shared_data, 40)
    fit, held_out = qs[:28], qs[28:]
    client = httpx.Client(timeout=300)
    runs = {"small": [], "large": []}
    for q in fit:
        s, g = native_option_scores(client, small, q["prompt"]), native_option_scores(client, large, q["prompt"])
        if s is None or g is None:
            continue
        for role, scores in (("small", s), ("large", g)):
            runs[role].append(SampleRecord.from_option_scores(scores, LETTERS, q["gold"], task="arc_easy_letters", doc_id=q["id"], model=role, option_token_mode="single_token", prompt=q["prompt"]))
    assert len(runs["small"]) >= 20, "most ARC letter options are among the top 50 tokens of both models"
    for role, recs in runs.items():
        Run(role, recs).save(tmp_path / role)
    out = tmp_path / "cascade"
    rc = main(["cascade", "--small", str(tmp_path / "small"), "--large", str(tmp_path / "large"), "--routers", "CC", "--method", "temperature", "--bins", "3", "--bins-sweep", "3", "-o", str(out), "--no-plots", "--no-progress"])
    assert rc == 0
    router = DeployableRouter.load(out / "router.json")
    assert router.calibrator["kind"] == "temperature"

    with Cascade(router, small, large) as c:
        routes = []
        for q in fit[:4] + held_out:
            scores = native_option_scores(client, small, q["prompt"])
            expected = router.route(scores) if scores is not None else "large"
            r = client.post(c.base + "/completions", json={"prompt": q["prompt"], "max_tokens": 1, "temperature": 0, "cache_prompt": False, "cascade": {"options": OPTIONS}})
            assert r.status_code == 200, r.text
            info = r.json()["cascade"]
            assert info["model"] == expected, (q["id"], scores, info)
            assert r.json()["model"] == ("smollm2-135m" if expected == "small" else "qwen2.5-coder-0.5b")
            if scores is None:
                assert info["confidence"] is None
            else:
                assert info["confidence"] == pytest.approx(router.confidence(scores), abs=1e-9)
                assert info["bin"] == router.bin_of(scores)
                assert info["prediction"] == OPTIONS[max(range(4), key=lambda i: (scores[i], -i))]
            routes.append(info["model"])
        metrics = client.get(c.base[: -len("/v1")] + "/metrics").text
    assert set(routes) == {"small", "large"}, f"the fitted router should use both models on 16 questions: {routes}"
    n_small = routes.count("small")
    assert f'cascade_answers_total{{model="small"}} {float(n_small)}' in metrics
    assert f"cascade_share_small {n_small / len(routes)}" in metrics


def chat_features(client, server, messages, max_tokens):
    """Offline generation figures of a direct call to the small server (mean log-prob of the answer's tokens)."""
    r = client.post(server.url + "/chat/completions", json={"messages": messages, "max_tokens": max_tokens, "temperature": 0, "logprobs": True, "top_logprobs": 1, "cache_prompt": False})
    r.raise_for_status()
    ch = r.json()["choices"][0]
    lps = [e["logprob"] for e in ch["logprobs"]["content"] if e["token"] != ""]
    return ch["message"]["content"], sum(lps) / len(lps)


ARITH = [(a, b) for a, b in [(2, 3), (7, 8), (12, 30), (45, 17), (9, 9), (100, 250), (6, 7), (33, 44), (81, 19), (5, 12)]]


def test_generation_decisions_equal_the_offline_router_and_streams_pass_through(models):
    small, large = models
    client = httpx.Client(timeout=300)
    msgs = [[{"role": "user", "content": f"What is {a} + {b}? Reply with the number only."}] for a, b in ARITH]
    offline = [chat_features(client, small, m, 6) for m in msgs]
    # a Platt calibrator on mean_logprob and equal-count bins of the offline confidences; keep the upper half
    spec = {"kind": "platt", "a": 1.5, "b": 1.0, "feature": "mean_logprob"}
    from calib_harness.routing.deploy import apply_calibrator

    conf = sorted(apply_calibrator(spec, {"mean_logprob": m}) for _, m in offline)
    edges = [(conf[i - 1] + conf[i]) / 2 for i in (3, 5, 7)]
    router = DeployableRouter(edges=edges, selected_bins=[2, 3], calibrator=spec)
    with Cascade(router, small, large) as c:
        import openai

        oa = openai.OpenAI(base_url=c.base, api_key="unused", max_retries=0, timeout=300)
        for m, (text, mean_lp) in zip(msgs, offline):
            expected = router.route({"mean_logprob": mean_lp})
            raw = oa.chat.completions.with_raw_response.create(model="cascade", messages=m, max_tokens=6, temperature=0, extra_body=NO_CACHE)
            resp = raw.parse()
            info = resp.model_extra["cascade"]
            assert info["model"] == expected == raw.headers["x-cascade-model"]
            assert info["confidence"] == pytest.approx(apply_calibrator(spec, {"mean_logprob": mean_lp}), abs=1e-9)
            if expected == "small":
                assert resp.choices[0].message.content == text, "the kept answer is the small model's own"
            # the same request streamed: same decision, same text, chunk by chunk
            stream = oa.chat.completions.create(model="cascade", messages=m, max_tokens=6, temperature=0, stream=True, extra_body=NO_CACHE)
            chunks = list(stream)
            assert {ch.model_extra["cascade"]["model"] for ch in chunks} == {expected}
            streamed = "".join(ch.choices[0].delta.content or "" for ch in chunks if ch.choices)
            assert streamed == resp.choices[0].message.content
            assert len(chunks) > 2, "a stream, not one blob"
        routes = [router.route({"mean_logprob": m}) for _, m in offline]
        assert set(routes) == {"small", "large"}


def test_concurrent_clients_get_their_own_answers(models):
    """8 clients x 3 requests at once, small and large answers mixed: each answer equals the one the
    same request gets alone (greedy decoding), none is lost, none carries another request's text."""
    small, large = models
    client = httpx.Client(timeout=300)
    words = ["apple", "river", "candle", "mountain", "violin", "garden", "rocket", "pencil", "island", "tiger", "window", "summer"]
    prompts = [f"Repeat this word exactly: {w}\nWord:" for w in words] + [f"Spell the word {w} in capitals:" for w in words]
    prompts = prompts[:24]
    router = DeployableRouter(edges=[0.0], selected_bins=[1], calibrator={"kind": "identity"})  # placeholder, replaced below
    # keep about half on the small model: threshold at the median of the offline confidences
    confs = []
    for p in prompts:
        r = client.post(small.url + "/completions", json={"prompt": p, "max_tokens": 4, "temperature": 0, "logprobs": 1, **NO_CACHE}).json()
        lps = [e["logprob"] for e in r["choices"][0]["logprobs"]["content"] if e["token"] != ""] or [r["choices"][0]["logprobs"]["content"][0]["logprob"]]
        confs.append(math.exp(sum(lps) / len(lps)))
    mid = sorted(confs)[len(confs) // 2]
    router = DeployableRouter(edges=[mid], selected_bins=[1], calibrator={"kind": "identity"})
    with Cascade(router, small, large) as c:
        alone = {}
        for p in prompts:
            r = client.post(c.base + "/completions", json={"prompt": p, "max_tokens": 4, "temperature": 0, **NO_CACHE})
            assert r.status_code == 200
            alone[p] = (r.json()["choices"][0]["text"], r.json()["cascade"]["model"], r.json()["model"])
        assert {m for _, m, _ in alone.values()} == {"small", "large"}

        barrier = threading.Barrier(8)

        def worker(i):
            mine = prompts[i::8]
            got = []
            with httpx.Client(timeout=600) as cl:
                barrier.wait()
                for p in mine:
                    r = cl.post(c.base + "/completions", json={"prompt": p, "max_tokens": 4, "temperature": 0, **NO_CACHE})
                    got.append((p, r.status_code, r.json()))
            return got

        with ThreadPoolExecutor(8) as ex:
            results = [x for chunk in ex.map(worker, range(8)) for x in chunk]
        assert len(results) == len(prompts)
        assert sorted(p for p, _, _ in results) == sorted(prompts)
        for p, status, body in results:
            assert status == 200, body
            assert (body["choices"][0]["text"], body["cascade"]["model"], body["model"]) == alone[p], p
        metrics = client.get(c.base[: -len("/v1")] + "/metrics").text
        assert f'cascade_requests_total{{endpoint="completions",model="small"}}' in metrics
        answered = sum(float(line.split()[-1]) for line in metrics.splitlines() if line.startswith("cascade_answers_total{"))
        assert answered == 2 * len(prompts)
        assert "cascade_errors_total{" not in metrics
