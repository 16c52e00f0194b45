"""``calib-harness serve`` without a model: features, and every failure path over real HTTP.

The upstream here is a real HTTP server that misbehaves on purpose
(:func:`calib_harness.serve.testing.faulty_upstream_app`): timeouts, 5xx, malformed bodies,
broken streams.  The tests with the real shipped models are in ``test_serve_models.py``.
"""

from __future__ import annotations

import argparse
import logging
import math

import httpx
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from calib_harness.records import SampleRecord
from calib_harness.routing.deploy import DeployableRouter
from calib_harness.serve import features as F
from calib_harness.serve.app import ServeConfig, Upstream, create_app
from calib_harness.serve.testing import OPTION_PROBS, ServerThread, faulty_upstream_app, free_port

# keep the small answer when its (raw) confidence is >= 0.5
ROUTER = DeployableRouter(edges=[0.5], selected_bins=[1], calibrator={"kind": "identity"})
CHAT = {"messages": [{"role": "user", "content": "Which letter?"}], "max_tokens": 4, "temperature": 0}
PROMPT = {"prompt": "Which letter?\nAnswer:", "max_tokens": 1, "temperature": 0}
OPTIONS = {"cascade": {"options": [" A", " B", " C", " D"]}}


# ----------------------------------------------------------------------------- features
def _content(tokens):
    return {"content": [{"token": t, "logprob": lp, "bytes": list(t.encode()), "top_logprobs": []} for t, lp in tokens]}


def test_generation_features_skip_the_trailing_eos_like_the_offline_capture():
    entries = F.token_logprobs(_content([("Paris", -0.1), (".", -0.3), ("", -0.7)]))
    f = F.generation_features(entries, "stop")
    assert f["n_tokens"] == 2
    assert f["mean_logprob"] == pytest.approx(-0.2)
    assert f["sum_logprob"] == pytest.approx(-0.4)
    assert f["confidence"] == pytest.approx(math.exp(-0.2))
    # an empty answer: the figures of the token that ended it, n_tokens = 0
    empty = F.generation_features(F.token_logprobs(_content([("", -0.05)])), "stop")
    assert empty["n_tokens"] == 0 and empty["mean_logprob"] == pytest.approx(-0.05)
    raw = F.generation_features(entries, "stop", logprobs_mode="raw_logits")
    assert set(raw) == {"mean_logit", "n_tokens"} and raw["mean_logit"] == pytest.approx(-0.2)


def test_legacy_completions_layout_reads_the_same_numbers():
    legacy = {"tokens": [" A", "\n"], "token_logprobs": [-0.2, -1.0], "top_logprobs": [{" A": -0.2, " B": -2.0}, {"\n": -1.0}]}
    entries = F.token_logprobs(legacy)
    assert [e.token for e in entries] == [" A", "\n"]
    assert F.option_scores(entries, [" B", " A"]) == [-2.0, -0.2]


@pytest.mark.parametrize(
    "bad",
    [None, {"content": "x"}, {"content": [{"token": "a"}]}, {"content": [{"token": "a", "logprob": "high"}]}, {"tokens": ["a"], "token_logprobs": []}],
)
def test_malformed_logprobs_are_refused(bad):
    with pytest.raises(F.MalformedResponse):
        F.token_logprobs(bad)


def test_options_outside_top_logprobs_are_unavailable_not_guessed():
    entries = F.token_logprobs({"content": [{"token": " A", "logprob": -0.1, "top_logprobs": [{"token": " A", "logprob": -0.1}]}]})
    with pytest.raises(F.FeatureUnavailable, match="' B'"):
        F.option_scores(entries, [" A", " B"])


@settings(max_examples=200, deadline=None)
@given(st.lists(st.floats(min_value=-40, max_value=0, allow_nan=False), min_size=2, max_size=8))
def test_mc_features_equal_the_offline_record(scores):
    """The served restricted softmax is the offline MC record's (same confidence, margin, entropy, argmax)."""
    labels = [f"o{i}" for i in range(len(scores))]
    rec = SampleRecord.from_option_scores(scores, labels, 0, task="t", doc_id=0, model="m", option_token_mode="single_token")
    f = F.mc_features(scores)
    assert f["confidence"] == pytest.approx(rec.confidence, abs=1e-12)
    assert f["margin"] == pytest.approx(rec.features["margin"], abs=1e-9)
    assert f["entropy"] == pytest.approx(rec.features["entropy"], abs=1e-9)
    assert labels[f["prediction"]] == rec.prediction


def test_routers_that_need_unavailable_features_are_refused():
    assert F.check_servable({"kind": "temperature", "temperature": 2.0}, "logprobs") == (True, False)
    assert F.check_servable({"kind": "platt", "a": 1, "b": 0, "feature": "mean_logprob"}, "logprobs") == (False, True)
    assert F.check_servable({"kind": "identity"}, "logprobs") == (True, True)
    with pytest.raises(ValueError, match="raw logits"):
        F.check_servable({"kind": "platt", "a": 1, "b": 0, "feature": "mean_logit"}, "logprobs")
    assert F.check_servable({"kind": "platt", "a": 1, "b": 0, "feature": "mean_logit"}, "raw_logits") == (False, True)
    with pytest.raises(ValueError, match="mean_entropy"):
        F.check_servable({"kind": "platt", "a": 1, "b": 0, "feature": "mean_entropy"}, "logprobs")


# ----------------------------------------------------------------------------- over HTTP
@pytest.fixture(scope="module")
def faulty():
    app = faulty_upstream_app()
    with ServerThread(app) as base:
        yield base, app


class Cascade:
    def __init__(self, small_url, large_url, router=ROUTER, **cfg):
        cfg.setdefault("retry_backoff", 0.01)
        small_timeout = cfg.pop("small_timeout", 10.0)
        self.app = create_app(router, ServeConfig([Upstream(small_url, "small", timeout=small_timeout, api_key_env="CASCADE_SMALL_API_KEY"), Upstream(large_url, "large", timeout=10.0)], **cfg))
        self.thread = ServerThread(self.app)

    def __enter__(self):
        self.base = self.thread.__enter__()
        self.client = httpx.Client(base_url=self.base, timeout=30)
        return self

    def __exit__(self, *exc):
        self.client.close()
        self.thread.__exit__(*exc)

    def chat(self, **extra):
        return self.client.post("/v1/chat/completions", json={**CHAT, **extra})

    def complete(self, **extra):
        return self.client.post("/v1/completions", json={**PROMPT, **extra})

    def metric(self, name):
        for line in self.client.get("/metrics").text.splitlines():
            if line.startswith(name + " ") or line.startswith(name + "{"):
                yield line


def _is_clear_error(r, status, *words):
    assert r.status_code == status, r.text
    body = r.json()
    assert "choices" not in body and "cascade" not in body, "an error must not carry an answer"
    assert "x-cascade-model" not in r.headers
    msg = body["error"]["message"]
    for w in words:
        assert w in msg, msg
    return body["error"]


def test_small_kept_and_deferred_answers_say_which_model_answered(faulty):
    base, _ = faulty
    with Cascade(f"{base}/ok/v1", f"{base}/unsure/v1") as c:
        r = c.chat()
        assert r.status_code == 200
        assert r.json()["cascade"]["model"] == "small" and r.headers["x-cascade-model"] == "small"
        assert float(r.headers["x-cascade-confidence"]) == pytest.approx(0.9)
        assert r.json()["choices"][0]["logprobs"] is None  # the client did not ask for them
        r = c.complete(**OPTIONS)
        assert r.json()["cascade"]["prediction"] == " A"
        assert r.json()["cascade"]["confidence"] == pytest.approx(0.9 / sum(OPTION_PROBS.values()))
    with Cascade(f"{base}/unsure/v1", f"{base}/ok/v1") as c:
        r = c.chat(logprobs=True, top_logprobs=1)
        info = r.json()["cascade"]
        assert info["model"] == "large" and info["confidence"] == pytest.approx(0.2) and info["bin"] == 0
        assert r.json()["choices"][0]["logprobs"]["content"], "the client asked for logprobs: it gets the large model's"
        assert list(c.metric("cascade_share_small")) == ["cascade_share_small 0.0"]
        assert list(c.metric("cascade_answers_total")) == ['cascade_answers_total{model="large"} 1.0']


@pytest.mark.parametrize("endpoint", ["chat", "complete"])
def test_small_timeout_is_a_504_and_never_an_answer(faulty, endpoint):
    base, app = faulty
    with Cascade(f"{base}/slow/v1", f"{base}/ok/v1", small_timeout=0.5, retries=1) as c:
        before = app.state.calls["slow"]
        err = _is_clear_error(getattr(c, endpoint)(), 504, "small", "did not answer within 0.5 s")
        assert err["type"] == "upstream_timeout"
        assert app.state.calls["slow"] - before == 2, "one retry after the timeout"
        assert any('kind="timeout"' in line for line in c.metric("cascade_errors_total"))


def test_small_5xx_is_retried_then_a_502(faulty):
    base, app = faulty
    with Cascade(f"{base}/error500/v1", f"{base}/ok/v1", retries=2) as c:
        before = app.state.calls["error500"]
        _is_clear_error(c.chat(), 502, "small", "HTTP 500")
        assert app.state.calls["error500"] - before == 3
    with Cascade(f"{base}/flaky/v1", f"{base}/ok/v1", retries=1) as c:
        r = c.chat(messages=[{"role": "user", "content": "flaky once"}])
        assert r.status_code == 200 and r.json()["cascade"]["model"] == "small"


@pytest.mark.parametrize("mode,words", [("notjson", "not JSON"), ("nochoices", "no choices"), ("nologprobs", "no logprobs"), ("badlogprob", "not a number")])
@pytest.mark.parametrize("stream", [False, True])
def test_malformed_small_body_is_a_502(faulty, mode, words, stream):
    base, _ = faulty
    with Cascade(f"{base}/{mode}/v1", f"{base}/ok/v1") as c:
        r = c.chat(stream=stream)
        if mode in ("nochoices", "nologprobs") and stream:
            words = "no token logprobs"  # a stream without them has nothing to score
        if mode == "notjson" and stream:
            words = "without [DONE]"
        err = _is_clear_error(r, 502, "small", words)
        assert err["upstream"] == "small"


def test_truncated_small_stream_is_a_502(faulty):
    base, _ = faulty
    with Cascade(f"{base}/truncated/v1", f"{base}/ok/v1") as c:
        _is_clear_error(c.chat(stream=True), 502, "without [DONE]")
        assert c.chat().status_code == 200  # the same upstream's plain answers are fine


def test_large_failures_after_a_deferral_are_errors_not_small_answers(faulty):
    base, _ = faulty
    with Cascade(f"{base}/unsure/v1", f"{base}/error500/v1", retries=0) as c:
        _is_clear_error(c.chat(), 502, "large", "HTTP 500")
        _is_clear_error(c.chat(stream=True), 502, "large", "HTTP 500")
    with Cascade(f"{base}/unsure/v1", f"{base}/truncated/v1", retries=0) as c:
        with c.client.stream("POST", "/v1/chat/completions", json={**CHAT, "stream": True}) as r:
            lines = [line for line in r.iter_lines() if line.startswith("data:")]
        assert r.headers["x-cascade-model"] == "large"
        assert '"error"' in lines[-1] and "without [DONE]" in lines[-1], "a broken large stream ends in an error event"
    with Cascade(f"{base}/unsure/v1", f"http://127.0.0.1:{free_port()}/v1", retries=1) as c:
        _is_clear_error(c.chat(), 502, "cannot reach the large model")


def test_options_missing_from_top_logprobs_defer_unscored(faulty):
    base, _ = faulty
    with Cascade(f"{base}/missing_options/v1", f"{base}/ok/v1") as c:
        r = c.complete(**OPTIONS)
        info = r.json()["cascade"]
        assert r.status_code == 200 and info["model"] == "large" and info["confidence"] is None
        assert "' B'" in info["reason"] and r.headers["x-cascade-confidence"] == "none"
        assert any(line.endswith(" 1.0") for line in c.metric("cascade_deferred_unscored_total"))


def test_requests_the_router_cannot_score_are_refused(faulty):
    base, _ = faulty
    mc_router = DeployableRouter(edges=[0.5], selected_bins=[1], calibrator={"kind": "temperature", "temperature": 1.5})
    with Cascade(f"{base}/ok/v1", f"{base}/ok/v1", router=mc_router) as c:
        _is_clear_error(c.chat(), 400, "cascade.options")
        assert c.complete(**OPTIONS).json()["cascade"]["model"] == "small"
        _is_clear_error(c.chat(n=2), 400, "n must be 1")
        _is_clear_error(c.client.post("/v1/chat/completions", content=b"{not json"), 400, "not JSON")
        _is_clear_error(c.complete(cascade={"options": [" A"]}), 400, "at least two")


def test_streamed_small_answer_is_replayed_with_the_decision(faulty):
    base, _ = faulty
    with Cascade(f"{base}/ok/v1", f"{base}/unsure/v1") as c:
        with c.client.stream("POST", "/v1/chat/completions", json={**CHAT, "stream": True}) as r:
            chunks = [line[6:] for line in r.iter_lines() if line.startswith("data: ")]
        assert r.headers["x-cascade-model"] == "small" and chunks[-1] == "[DONE]"
        import json

        objs = [json.loads(x) for x in chunks[:-1]]
        assert all(o["cascade"]["model"] == "small" for o in objs)
        assert "".join(o["choices"][0].get("delta", {}).get("content", "") for o in objs) == "The answer"
        assert all(o["choices"][0].get("logprobs") is None for o in objs)


def test_api_keys_come_from_the_environment_and_are_never_logged(faulty, monkeypatch, caplog):
    base, app = faulty
    secret, inbound = "sk-upstream-7f3a9c", "sk-client-b41d2e"
    monkeypatch.setenv("CASCADE_SMALL_API_KEY", secret)
    monkeypatch.setenv("CASCADE_API_KEY", inbound)
    caplog.set_level(logging.DEBUG)
    with Cascade(f"{base}/auth/v1", f"{base}/ok/v1") as c:
        assert c.chat().status_code == 401
        r = c.client.post("/v1/chat/completions", json=CHAT, headers={"Authorization": f"Bearer {inbound}"})
        assert r.status_code == 200
        assert app.state.auth[-1] == f"Bearer {secret}"
    with Cascade(f"{base}/error500/v1", f"{base}/ok/v1", retries=1) as c:
        r = c.client.post("/v1/chat/completions", json=CHAT, headers={"Authorization": f"Bearer {inbound}"})
        assert r.status_code == 502
        assert secret not in r.text and inbound not in r.text
    assert caplog.records, "the failures above are logged"
    assert secret not in caplog.text and inbound not in caplog.text
    assert secret not in repr(c.app.state.cascade.config)


def test_cli_builds_the_app_and_refuses_bad_routers(tmp_path):
    from calib_harness.cli import build_parser
    from calib_harness.commands.serve import build
    from calib_harness.outputs import CliError

    parser = build_parser()
    path = ROUTER.save(tmp_path / "router.json")
    args = parser.parse_args(["serve", "--router", str(path), "--small", "http://127.0.0.1:1/v1", "--large", "http://127.0.0.1:2/v1", "--retries", "3"])
    app = build(args)
    assert app.state.cascade.config.retries == 3
    bad = DeployableRouter(edges=[0.5], selected_bins=[1], calibrator={"kind": "platt", "a": 1.0, "b": 0.0, "feature": "mean_logit"}).save(tmp_path / "logit.json")
    with pytest.raises(CliError, match="raw logits"):
        build(parser.parse_args(["serve", "--router", str(bad), "--small", "http://127.0.0.1:1/v1", "--large", "http://127.0.0.1:2/v1"]))
    with pytest.raises(CliError, match="does not exist"):
        build(argparse.Namespace(router=str(tmp_path / "nope.json")))


def test_the_serve_command_runs_the_cascade(faulty, tmp_path):
    """``calib-harness serve`` as a user starts it: its own process, real port, real upstream."""
    import os
    import subprocess
    import sys
    import time

    base, _ = faulty
    path = ROUTER.save(tmp_path / "router.json")
    port = free_port()
    cmd = [sys.executable, "-m", "calib_harness.cli", "serve", "--router", str(path), "--small", f"{base}/ok/v1", "--large", f"{base}/unsure/v1", "--port", str(port), "--log-level", "warning"]
    env = {k: v for k, v in os.environ.items() if k != "CASCADE_API_KEY"}
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=env)
    try:
        deadline = time.monotonic() + 120
        while True:
            assert proc.poll() is None, proc.stdout.read().decode()
            try:
                if httpx.get(f"http://127.0.0.1:{port}/health", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert time.monotonic() < deadline, "serve did not come up"
            time.sleep(0.2)
        r = httpx.post(f"http://127.0.0.1:{port}/v1/chat/completions", json=CHAT, timeout=30)
        assert r.status_code == 200 and r.json()["cascade"]["model"] == "small"
        assert "cascade_answers_total" in httpx.get(f"http://127.0.0.1:{port}/metrics").text
    finally:
        proc.terminate()
        proc.wait(timeout=30)
    assert proc.returncode in (0, -15)


def test_only_the_tokens_of_the_returned_text_are_scored():
    """vLLM lists the end-of-sequence token by name: the returned text decides which tokens count."""
    entries = F.token_logprobs(_content([("5", -0.1), ("<|im_end|>", -3.0)]))
    assert F.generation_features(entries, "stop", text="5")["n_tokens"] == 1
    assert F.generation_features(entries, "stop", text="5")["mean_logprob"] == pytest.approx(-0.1)
    # a token carrying part of a character (bytes) still counts by bytes
    e = F.token_logprobs({"content": [{"token": "bytes:\\xc3", "logprob": -0.2, "bytes": [195]}, {"token": "bytes:\\xa9", "logprob": -0.4, "bytes": [169]}, {"token": "<eos>", "logprob": -1.0, "bytes": [60]}]})
    assert F.generation_features(e, "stop", text="é")["n_tokens"] == 2
    empty = F.generation_features(entries, "stop", text="")
    assert empty["n_tokens"] == 0 and empty["mean_logprob"] == pytest.approx(-0.1)


def test_chain_of_three_keeps_the_first_confident_answer(faulty):
    """A chain router (``stages``: one two-model router per step, as ``DeployableChain``) over three
    upstreams: the unsure first model defers, the confident second one answers."""
    from types import SimpleNamespace

    base, _ = faulty
    chain = SimpleNamespace(stages=[ROUTER, ROUTER])
    ups = [Upstream(f"{base}/unsure/v1", "small"), Upstream(f"{base}/ok/v1", "via1"), Upstream(f"{base}/error500/v1", "large")]
    app = create_app(chain, ServeConfig(ups, retries=0))
    with ServerThread(app) as url:
        r = httpx.post(url + "/v1/chat/completions", json=CHAT, timeout=30)
        info = r.json()["cascade"]
        assert r.status_code == 200 and info["model"] == "via1" and r.headers["x-cascade-model"] == "via1"
        assert [s["model"] for s in info["stages"]] == ["small", "via1"]
        assert [s["keep"] for s in info["stages"]] == [False, True]
        assert info["confidence"] == pytest.approx(0.2), "the first model's calibrated confidence"
    with pytest.raises(ValueError, match="needs 3 upstreams"):
        create_app(chain, ServeConfig(ups[::2]))
