"""The serving cascade: an OpenAI-compatible endpoint that answers with the small model and defers
to the large one by calibrated confidence (Phase II of Algorithm 1 behind an HTTP API).

For each ``POST /v1/chat/completions`` or ``POST /v1/completions``:

1. the request goes to the small model's OpenAI-compatible endpoint with ``logprobs`` switched on
   (``top_logprobs`` raised to ``top_logprobs`` for a multiple-choice request);
2. the confidence feature the router was fitted on is computed from the answer
   (:mod:`calib_harness.serve.features`: the restricted-option softmax when the request names its
   options in ``"cascade": {"options": [...]}``, the generation figures otherwise);
3. the router of ``router.json`` (:class:`calib_harness.routing.deploy.DeployableRouter`, not a
   copy of it) applies the fitted calibrator and the bin rule;
4. the small model's answer is returned, or the original request is forwarded to the large model.

Every answer says which model answered and the small model's calibrated confidence: the field
``"cascade"`` in the body (in every chunk of a stream) and the headers ``X-Cascade-Model``,
``X-Cascade-Confidence`` and ``X-Cascade-Bin``.  A streamed request is streamed: the small
model's stream is read whole (its confidence needs all its tokens) and replayed, or the large
model's stream is passed through chunk by chunk.

Failures never turn into an unchecked answer: when an upstream times out (504), answers 5xx or
cannot be reached (502, after the configured retries), or returns a body that is not an OpenAI
completion with the logprobs asked for (502), the client gets an OpenAI-style error naming the
upstream and the cause.  When the small answer is well-formed but cannot give the router's input
(an option outside ``top_logprobs``), the request is deferred to the large model and the body
says why (``"confidence": null``).  ``GET /metrics`` reports answers per model, the share kept
on the small model, latencies and errors in Prometheus' text format.

API keys come from the environment (variable names in :class:`ServeConfig`); they are sent
upstream as ``Authorization: Bearer ...`` and never logged or echoed.
"""

from __future__ import annotations

import asyncio
import hmac
import json
import logging
import os
import time
from dataclasses import dataclass, field
from typing import Any, AsyncIterator, Mapping, Sequence

import httpx
from fastapi import FastAPI, Request
from fastapi.responses import Response, StreamingResponse
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Gauge, Histogram, generate_latest

from calib_harness.serve import features as F

logger = logging.getLogger(__name__)

ENDPOINTS = {"chat": "/chat/completions", "completions": "/completions"}
LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120)


@dataclass
class Upstream:
    """One model server: its OpenAI base URL (``http://host:port/v1``) and how to call it."""

    url: str
    role: str
    model: str | None = None  # name sent as "model"; None: the client's
    api_key_env: str | None = None  # environment variable holding its API key
    timeout: float = 120.0  # seconds per attempt (whole answer; for a passed-through stream: between chunks)

    def __post_init__(self) -> None:
        self.url = self.url.rstrip("/")
        if not self.url.startswith(("http://", "https://")):
            raise ValueError(f"upstream URL {self.url!r} must start with http:// or https://")
        if self.timeout <= 0:
            raise ValueError("timeouts must be positive")

    def headers(self) -> dict[str, str]:
        key = os.environ.get(self.api_key_env) if self.api_key_env else None
        return {"Authorization": f"Bearer {key}"} if key else {}

    def __repr__(self) -> str:  # never shows a key (there is none in the object anyway)
        return f"Upstream(role={self.role!r}, url={self.url!r}, model={self.model!r}, timeout={self.timeout})"


@dataclass
class ServeConfig:
    """Upstreams in cascade order (small first, large last) and the calling policy."""

    upstreams: list[Upstream]
    retries: int = 1  # extra attempts after a timeout, a connection error, a 5xx or a 429
    retry_backoff: float = 0.25  # seconds before the first retry, doubled each time
    connect_timeout: float = 5.0
    top_logprobs: int = 20  # alternatives asked from a scored upstream for a multiple-choice request
    logprobs_mode: str = "logprobs"  # what the scored upstreams put in logprob fields: "logprobs" or "raw_logits"
    api_key_env: str | None = "CASCADE_API_KEY"  # clients must send this key when the variable is set
    max_connections: int = 256

    def __post_init__(self) -> None:
        if len(self.upstreams) < 2:
            raise ValueError("a cascade needs at least a small and a large upstream")
        if self.retries < 0 or self.retry_backoff < 0:
            raise ValueError("retries and retry_backoff must be >= 0")
        if self.top_logprobs < 1:
            raise ValueError("top_logprobs must be >= 1")
        if self.logprobs_mode not in F.LOGPROBS_MODES:
            raise ValueError(f"logprobs_mode must be one of {F.LOGPROBS_MODES}")


class UpstreamError(Exception):
    """A failed upstream call: ``status`` is what the client gets."""

    def __init__(self, role: str, kind: str, message: str, status: int = 502, body: bytes | None = None, content_type: str | None = None):
        super().__init__(message)
        self.role, self.kind, self.status, self.body, self.content_type = role, kind, status, body, content_type


class RequestError(Exception):
    def __init__(self, message: str, status: int = 400, kind: str = "invalid_request_error"):
        super().__init__(message)
        self.status, self.kind = status, kind


def _dumps(obj: Any) -> bytes:
    return json.dumps(obj, separators=(",", ":"), allow_nan=False).encode()


def _stages_of(router: Any) -> list[Any]:
    """The per-stage two-model routers of a router or a chain router (public attributes only)."""
    stages = getattr(router, "stages", None)
    return list(stages) if stages is not None else [router]


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.requests = Counter("cascade_requests", "requests answered, by endpoint and answering model (or error)", ["endpoint", "model"], registry=r)
        self.answers = Counter("cascade_answers", "answers by the model that gave them", ["model"], registry=r)
        self.share = Gauge("cascade_share_small", "share of answers given by the first (small) model since start", registry=r)
        self.errors = Counter("cascade_errors", "errors returned to clients, by upstream and cause", ["upstream", "kind"], registry=r)
        self.upstream_calls = Counter("cascade_upstream_calls", "upstream attempts by outcome", ["upstream", "outcome"], registry=r)
        self.deferred_unscored = Counter("cascade_deferred_unscored", "requests deferred because the small answer could not give the router's input", registry=r)
        self.latency = Histogram("cascade_request_seconds", "time from request to complete response", ["endpoint", "model"], buckets=LATENCY_BUCKETS, registry=r)
        self.upstream_latency = Histogram("cascade_upstream_seconds", "time of successful upstream calls", ["upstream"], buckets=LATENCY_BUCKETS, registry=r)
        self.confidence = Histogram("cascade_confidence", "calibrated confidence of the small model", buckets=tuple(i / 10 for i in range(1, 11)), registry=r)
        self._n_small = 0
        self._n_total = 0

    def answered(self, endpoint: str, model: str, first: bool, seconds: float) -> None:
        self.requests.labels(endpoint, model).inc()
        self.answers.labels(model).inc()
        self.latency.labels(endpoint, model).observe(seconds)
        self._n_total += 1
        self._n_small += int(first)
        self.share.set(self._n_small / self._n_total)


class Cascade:
    """The routing logic, independent of the web framework (``create_app`` wires it to FastAPI)."""

    def __init__(self, router: Any, config: ServeConfig) -> None:
        self.router = router
        self.config = config
        self.stages = _stages_of(router)
        if len(self.stages) != len(config.upstreams) - 1:
            raise ValueError(f"the router has {len(self.stages)} stage(s), so it needs {len(self.stages) + 1} upstreams; got {len(config.upstreams)}")
        self.kinds = [F.check_servable(s.calibrator, config.logprobs_mode) for s in self.stages]
        self.features = [F.needed_feature(s.calibrator) for s in self.stages]
        self.metrics = Metrics()
        self.client: httpx.AsyncClient | None = None
        self._inbound_key = os.environ.get(config.api_key_env) if config.api_key_env else None
        self._discovered: dict[str, str | None] = {}
        self._discovery_lock = asyncio.Lock()

    # -- lifecycle ---------------------------------------------------------------------
    async def start(self) -> None:
        limits = httpx.Limits(max_connections=self.config.max_connections, max_keepalive_connections=self.config.max_connections)
        self.client = httpx.AsyncClient(limits=limits, timeout=httpx.Timeout(None, connect=self.config.connect_timeout), trust_env=False)

    async def close(self) -> None:
        if self.client is not None:
            await self.client.aclose()
            self.client = None

    # -- upstream calls ----------------------------------------------------------------
    async def _attempts(self, up: Upstream, call):
        """Run ``call()`` with the retry policy; returns its result or raises UpstreamError."""
        cfg = self.config
        err: UpstreamError | None = None
        for attempt in range(cfg.retries + 1):
            if attempt:
                await asyncio.sleep(cfg.retry_backoff * 2 ** (attempt - 1))
            t0 = time.perf_counter()
            try:
                result = await asyncio.wait_for(call(), timeout=up.timeout)
            except (asyncio.TimeoutError, httpx.TimeoutException):
                err = UpstreamError(up.role, "timeout", f"the {up.role} model did not answer within {up.timeout:g} s", 504)
            except httpx.TransportError as e:
                err = UpstreamError(up.role, "connect_error", f"cannot reach the {up.role} model ({type(e).__name__})", 502)
            except UpstreamError as e:
                err = e
            else:
                self.metrics.upstream_calls.labels(up.role, "ok").inc()
                self.metrics.upstream_latency.labels(up.role).observe(time.perf_counter() - t0)
                return result
            self.metrics.upstream_calls.labels(up.role, err.kind).inc()
            if err.kind not in ("timeout", "connect_error", "http_5xx", "http_429"):
                break  # the upstream answered, badly: retrying the same request does not help
            logger.warning("%s upstream attempt %d/%d failed: %s", up.role, attempt + 1, cfg.retries + 1, err)
        assert err is not None
        raise err

    @staticmethod
    def _check_status(up: Upstream, status: int, body: bytes, content_type: str | None) -> None:
        if status < 400:
            return
        if status >= 500 or status == 429:
            kind = "http_429" if status == 429 else "http_5xx"
            detail = body[:200].decode("utf-8", "replace").strip()
            raise UpstreamError(up.role, kind, f"the {up.role} model answered HTTP {status}: {detail}", 502)
        # 4xx: the upstream refused this request (bad parameters): relay its answer as is
        raise UpstreamError(up.role, f"http_{status}", f"the {up.role} model refused the request (HTTP {status})", status, body, content_type)

    async def post_json(self, up: Upstream, path: str, payload: Mapping[str, Any]) -> dict[str, Any]:
        assert self.client is not None
        data = _dumps(payload)
        headers = {"Content-Type": "application/json", **up.headers()}

        async def call():
            r = await self.client.post(up.url + path, content=data, headers=headers)
            self._check_status(up, r.status_code, r.content, r.headers.get("content-type"))
            try:
                body = json.loads(r.content)
            except ValueError:
                raise UpstreamError(up.role, "malformed", f"the {up.role} model's answer is not JSON", 502) from None
            try:
                F.first_choice(body)
            except F.MalformedResponse as e:
                raise UpstreamError(up.role, "malformed", f"the {up.role} model's answer is malformed: {e}", 502) from None
            return body

        return await self._attempts(up, call)

    async def read_stream(self, up: Upstream, path: str, payload: Mapping[str, Any]) -> list[dict[str, Any]]:
        """All chunks of an upstream stream (for an answer that must be scored before it is sent)."""
        assert self.client is not None
        data = _dumps(payload)
        headers = {"Content-Type": "application/json", **up.headers()}

        async def call():
            async with self.client.stream("POST", up.url + path, content=data, headers=headers) as r:
                if r.status_code >= 400:
                    self._check_status(up, r.status_code, await r.aread(), r.headers.get("content-type"))
                return _parse_sse([line async for line in r.aiter_lines()], up.role)

        return await self._attempts(up, call)

    async def open_stream(self, up: Upstream, path: str, payload: Mapping[str, Any]) -> httpx.Response:
        """An upstream stream whose status is checked and whose body is still unread."""
        assert self.client is not None
        data = _dumps(payload)
        headers = {"Content-Type": "application/json", **up.headers()}

        async def call():
            req = self.client.build_request("POST", up.url + path, content=data, headers=headers, timeout=httpx.Timeout(up.timeout, connect=self.config.connect_timeout))
            r = await self.client.send(req, stream=True)
            if r.status_code >= 400:
                body = await r.aread()
                await r.aclose()
                self._check_status(up, r.status_code, body, r.headers.get("content-type"))
            return r

        return await self._attempts(up, call)

    # -- one request -------------------------------------------------------------------
    def check_auth(self, request: Request) -> None:
        if self._inbound_key is None:
            return
        got = request.headers.get("authorization", "")
        token = got[7:] if got.lower().startswith("bearer ") else ""
        if not hmac.compare_digest(token.encode(), self._inbound_key.encode()):
            raise RequestError("missing or wrong API key (Authorization: Bearer ...)", 401, "authentication_error")

    async def with_model(self, body: dict[str, Any], up: Upstream) -> dict[str, Any]:
        """The request for ``up``: its model name (configured, else the first of its ``/models``,
        asked once; servers such as vLLM refuse other names), else the client's."""
        if up.model is None and up.role not in self._discovered:
            async with self._discovery_lock:
                if up.role not in self._discovered:
                    try:
                        assert self.client is not None
                        r = await self.client.get(up.url + "/models", headers=up.headers(), timeout=self.config.connect_timeout)
                        up.model = str(r.json()["data"][0]["id"]) if r.status_code == 200 else None
                    except (httpx.HTTPError, ValueError, KeyError, IndexError, TypeError):
                        up.model = None
                    self._discovered[up.role] = up.model
                    logger.info("%s upstream serves %s", up.role, up.model or "an unnamed model (the client's name is sent)")
        req = dict(body)
        if up.model:
            req["model"] = up.model
        return req

    def scored_request(self, req: dict[str, Any], endpoint: str, options: Sequence[str] | None, body: Mapping[str, Any]) -> dict[str, Any]:
        req = dict(req)
        k = self.config.top_logprobs if options else 0
        if endpoint == "chat":
            req["logprobs"] = True
            req["top_logprobs"] = max(int(body.get("top_logprobs") or 0), k, 1)  # llama.cpp sends no logprobs with 0
        else:
            req["logprobs"] = max(int(body.get("logprobs") or 0), k, 1)
        return req

    def score(self, stage: int, endpoint: str, options: Sequence[str] | None, entries: list[F.TokenLogprob], finish: str | None, text: str | None = None) -> dict[str, Any]:
        """Decision of one stage: ``{"keep", "confidence", "bin", "feature", "reason", ...}``."""
        router = self.stages[stage]
        mc_ok, gen_ok = self.kinds[stage]
        if options:
            feats = F.mc_features(F.option_scores(entries, options))
        else:
            feats = F.generation_features(entries, finish, self.config.logprobs_mode, text)
        x = F.router_input(feats)
        conf = float(router.confidence(x))
        b = int(router.bin_of(x))
        keep = router.route(x) == "small"
        info: dict[str, Any] = {
            "keep": keep,
            "confidence": conf,
            "bin": b,
            "feature": self.features[stage],
            "reason": f"bin {b} is {'' if keep else 'not '}among the router's selected bins",
        }
        if options:
            info["prediction"] = options[feats["prediction"]]
            info["option_probs"] = feats["option_probs"]
        return info

    def validate(self, body: Any, endpoint: str) -> tuple[dict[str, Any], list[str] | None]:
        if not isinstance(body, dict):
            raise RequestError("the request body must be a JSON object")
        body = dict(body)
        extra = body.pop("cascade", None) or {}
        if not isinstance(extra, Mapping):
            raise RequestError("'cascade' must be an object, e.g. {\"options\": [\" A\", \" B\"]}")
        options = extra.get("options")
        if options is not None:
            if not isinstance(options, list) or len(options) < 2 or not all(isinstance(o, str) and o for o in options) or len(set(options)) != len(options):
                raise RequestError("cascade.options must be a list of at least two distinct non-empty strings (the option tokens)")
        if endpoint == "chat" and not isinstance(body.get("messages"), list):
            raise RequestError("'messages' is required")
        if endpoint == "completions" and not isinstance(body.get("prompt"), str):
            raise RequestError("'prompt' must be one string (a cascade scores one prompt per request)")
        if int(body.get("n") or 1) != 1:
            raise RequestError("n must be 1 (the cascade scores one answer per request)")
        return body, options

    async def handle(self, request: Request, endpoint: str) -> Response:
        t0 = time.perf_counter()
        try:
            self.check_auth(request)
            try:
                raw = json.loads(await request.body())
            except ValueError:
                raise RequestError("the request body is not JSON") from None
            body, options = self.validate(raw, endpoint)
            if body.get("stream"):
                return await self._handle_stream(body, options, endpoint, t0)
            return await self._handle_plain(body, options, endpoint, t0)
        except RequestError as e:
            self.metrics.errors.labels("client", e.kind).inc()
            self.metrics.requests.labels(endpoint, "error").inc()
            return _error(e.status, str(e), e.kind)
        except UpstreamError as e:
            self.metrics.errors.labels(e.role, e.kind).inc()
            self.metrics.requests.labels(endpoint, "error").inc()
            if e.body is not None:  # an upstream 4xx, relayed
                return Response(e.body, e.status, media_type=e.content_type or "application/json", headers={"X-Cascade-Error": f"{e.role}:{e.kind}"})
            return _error(e.status, str(e), f"upstream_{e.kind}", upstream=e.role)

    def _check_kind(self, stage: int, options: Sequence[str] | None) -> None:
        mc_ok, gen_ok = self.kinds[stage]
        if options and not mc_ok:
            raise RequestError(f"this router reads {self.features[stage]!r} of a generated answer; drop cascade.options", 400, "unservable_request")
        if not options and not gen_ok:
            raise RequestError(
                f"this router was fitted on multiple-choice scores ({self.features[stage]!r}); pass the option tokens in cascade.options",
                400,
                "unservable_request",
            )

    def _decide(self, stage: int, endpoint: str, options, entries, finish, text: str | None = None) -> dict[str, Any]:
        up = self.config.upstreams[stage]
        try:
            info = self.score(stage, endpoint, options, entries, finish, text)
        except F.MalformedResponse as e:
            raise UpstreamError(up.role, "malformed", f"the {up.role} model's answer is malformed: {e}", 502) from None
        except F.FeatureUnavailable as e:
            self.metrics.deferred_unscored.inc()
            return {"keep": False, "confidence": None, "bin": None, "feature": self.features[stage], "reason": f"not scored: {e}"}
        self.metrics.confidence.observe(info["confidence"])
        return info

    def _cascade_info(self, answered: int, decisions: list[dict[str, Any]]) -> dict[str, Any]:
        up = self.config.upstreams[answered]
        first = decisions[0] if decisions else {}
        info = {
            "model": up.role,
            "model_name": up.model,
            "confidence": first.get("confidence"),
            "bin": first.get("bin"),
            "feature": first.get("feature"),
            "reason": first.get("reason"),
        }
        if "prediction" in first:
            info["prediction"] = first["prediction"]
            info["option_probs"] = first["option_probs"]
        if len(self.config.upstreams) > 2:
            info["stages"] = [{"model": self.config.upstreams[j].role, **{k: v for k, v in d.items() if k != "option_probs"}} for j, d in enumerate(decisions)]
        return info

    @staticmethod
    def _headers(info: Mapping[str, Any]) -> dict[str, str]:
        c = info.get("confidence")
        return {
            "X-Cascade-Model": str(info["model"]),
            "X-Cascade-Confidence": "none" if c is None else f"{c:.6f}",
            "X-Cascade-Bin": "none" if info.get("bin") is None else str(info["bin"]),
        }

    async def _handle_plain(self, body: dict[str, Any], options, endpoint: str, t0: float) -> Response:
        path = ENDPOINTS[endpoint]
        decisions: list[dict[str, Any]] = []
        for j, up in enumerate(self.config.upstreams[:-1]):
            self._check_kind(j, options)
            answer = await self.post_json(up, path, self.scored_request(await self.with_model(body, up), endpoint, options, body))
            choice = F.first_choice(answer)
            try:
                entries = F.token_logprobs(choice.get("logprobs"))
            except F.MalformedResponse as e:
                raise UpstreamError(up.role, "malformed", f"the {up.role} model's answer is malformed: {e}", 502) from None
            d = self._decide(j, endpoint, options, entries, choice.get("finish_reason"), F.choice_text(choice))
            decisions.append(d)
            if d["keep"]:
                _restore_logprobs(answer, body, endpoint)
                return self._finish(answer, j, decisions, endpoint, t0)
        last = len(self.config.upstreams) - 1
        up = self.config.upstreams[last]
        answer = await self.post_json(up, path, await self.with_model(body, up))
        return self._finish(answer, last, decisions, endpoint, t0)

    def _finish(self, answer: dict[str, Any], j: int, decisions, endpoint: str, t0: float) -> Response:
        info = self._cascade_info(j, decisions)
        answer["cascade"] = info
        self.metrics.answered(endpoint, info["model"], j == 0, time.perf_counter() - t0)
        return Response(_dumps(answer), 200, media_type="application/json", headers=self._headers(info))

    async def _handle_stream(self, body: dict[str, Any], options, endpoint: str, t0: float) -> Response:
        path = ENDPOINTS[endpoint]
        decisions: list[dict[str, Any]] = []
        for j, up in enumerate(self.config.upstreams[:-1]):
            self._check_kind(j, options)
            chunks = await self.read_stream(up, path, self.scored_request(await self.with_model(body, up), endpoint, options, body))
            entries: list[F.TokenLogprob] = []
            finish = None
            pieces: list[str] = []
            try:
                for c in chunks:
                    ch = (c.get("choices") or [None])[0]
                    if not isinstance(ch, Mapping):
                        continue  # e.g. the usage chunk
                    if ch.get("logprobs") is not None:
                        entries.extend(F.token_logprobs(ch["logprobs"]))
                    delta = ch.get("delta")
                    piece = delta.get("content") if isinstance(delta, Mapping) else ch.get("text")
                    pieces.append(piece if isinstance(piece, str) else "")
                    finish = ch.get("finish_reason") or finish
            except F.MalformedResponse as e:
                raise UpstreamError(up.role, "malformed", f"the {up.role} model's stream is malformed: {e}", 502) from None
            d = self._decide(j, endpoint, options, entries, finish, "".join(pieces))
            decisions.append(d)
            if d["keep"]:
                info = self._cascade_info(j, decisions)
                for c in chunks:
                    _restore_logprobs(c, body, endpoint)
                return self._stream_response((c for c in chunks), None, info, endpoint, j, t0)
        last = len(self.config.upstreams) - 1
        up = self.config.upstreams[last]
        resp = await self.open_stream(up, path, await self.with_model(body, up))
        info = self._cascade_info(last, decisions)
        return self._stream_response(None, resp, info, endpoint, last, t0)

    def _stream_response(self, chunks, upstream: httpx.Response | None, info: dict[str, Any], endpoint: str, j: int, t0: float) -> StreamingResponse:
        metrics = self.metrics
        role = self.config.upstreams[j].role

        async def replay() -> AsyncIterator[bytes]:
            ok = True
            try:
                if chunks is not None:
                    for c in chunks:
                        c["cascade"] = info
                        yield b"data: " + _dumps(c) + b"\n\n"
                    yield b"data: [DONE]\n\n"
                    return
                assert upstream is not None
                done = False
                async for line in upstream.aiter_lines():
                    if not line.startswith("data:"):
                        continue
                    payload = line[5:].strip()
                    if payload == "[DONE]":
                        done = True
                        yield b"data: [DONE]\n\n"
                        break
                    try:
                        c = json.loads(payload)
                    except ValueError:
                        raise UpstreamError(role, "malformed", f"the {role} model sent a chunk that is not JSON", 502) from None
                    if isinstance(c, dict) and "error" in c:
                        raise UpstreamError(role, "http_5xx", f"the {role} model failed mid-stream: {str(c['error'])[:200]}", 502)
                    if isinstance(c, dict):
                        c["cascade"] = info
                    yield b"data: " + _dumps(c) + b"\n\n"
                if not done:
                    raise UpstreamError(role, "malformed", f"the {role} model's stream ended without [DONE]", 502)
            except (UpstreamError, httpx.HTTPError) as e:
                ok = False
                kind = e.kind if isinstance(e, UpstreamError) else ("timeout" if isinstance(e, httpx.TimeoutException) else "connect_error")
                metrics.errors.labels(role, kind).inc()
                metrics.requests.labels(endpoint, "error").inc()
                msg = str(e) if isinstance(e, UpstreamError) else f"the {role} model's stream broke ({type(e).__name__})"
                yield b"data: " + _dumps({"error": {"message": msg, "type": f"upstream_{kind}", "upstream": role}, "cascade": info}) + b"\n\n"
            finally:
                if upstream is not None:
                    await upstream.aclose()
                if ok:
                    metrics.answered(endpoint, info["model"], j == 0, time.perf_counter() - t0)

        return StreamingResponse(replay(), 200, media_type="text/event-stream", headers=self._headers(info))


def _parse_sse(lines: list[str], role: str) -> list[dict[str, Any]]:
    chunks: list[dict[str, Any]] = []
    done = False
    for line in lines:
        if not line.startswith("data:"):
            continue
        payload = line[5:].strip()
        if payload == "[DONE]":
            done = True
            break
        try:
            c = json.loads(payload)
        except ValueError:
            raise UpstreamError(role, "malformed", f"the {role} model sent a stream chunk that is not JSON", 502) from None
        if not isinstance(c, dict):
            raise UpstreamError(role, "malformed", f"the {role} model sent a stream chunk that is not an object", 502)
        if "error" in c:
            raise UpstreamError(role, "http_5xx", f"the {role} model failed mid-stream: {str(c['error'])[:200]}", 502)
        chunks.append(c)
    if not done:
        raise UpstreamError(role, "malformed", f"the {role} model's stream ended without [DONE]", 502)
    if not chunks:
        raise UpstreamError(role, "malformed", f"the {role} model's stream has no chunks", 502)
    return chunks


def _restore_logprobs(answer: dict[str, Any], body: Mapping[str, Any], endpoint: str) -> None:
    """Give the client the logprobs it asked for, no more (we asked the upstream for them)."""
    for ch in answer.get("choices") or []:
        if not isinstance(ch, dict) or ch.get("logprobs") is None:
            continue
        wanted = body.get("logprobs")
        if not wanted:
            ch["logprobs"] = None
            continue
        k = int(body.get("top_logprobs") or 0) if endpoint == "chat" else int(wanted if not isinstance(wanted, bool) else 0)
        lp = ch["logprobs"]
        for e in lp.get("content") or []:
            if isinstance(e, dict) and isinstance(e.get("top_logprobs"), list):
                e["top_logprobs"] = e["top_logprobs"][:k]
        if isinstance(lp.get("top_logprobs"), list):
            lp["top_logprobs"] = [dict(sorted(t.items(), key=lambda kv: -kv[1])[:k]) if isinstance(t, dict) else t for t in lp["top_logprobs"]]


def _error(status: int, message: str, kind: str, upstream: str | None = None) -> Response:
    err: dict[str, Any] = {"message": message, "type": kind, "code": status}
    if upstream:
        err["upstream"] = upstream
    headers = {"X-Cascade-Error": kind}
    return Response(_dumps({"error": err}), status, media_type="application/json", headers=headers)


def create_app(router: Any, config: ServeConfig) -> FastAPI:
    """The FastAPI app of a cascade (``router``: a loaded :class:`DeployableRouter` or chain)."""
    from contextlib import asynccontextmanager

    cascade = Cascade(router, config)

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        await cascade.start()
        try:
            yield
        finally:
            await cascade.close()

    app = FastAPI(title="calib-harness serving cascade", lifespan=lifespan, docs_url=None, redoc_url=None, openapi_url=None)
    app.state.cascade = cascade

    @app.post("/v1/chat/completions")
    async def chat(request: Request) -> Response:
        return await cascade.handle(request, "chat")

    @app.post("/v1/completions")
    async def completions(request: Request) -> Response:
        return await cascade.handle(request, "completions")

    @app.get("/v1/models")
    async def models() -> Response:
        data = [{"id": "cascade", "object": "model", "owned_by": "calib-harness"}]
        data += [{"id": u.model or u.role, "object": "model", "owned_by": u.role} for u in config.upstreams]
        return Response(_dumps({"object": "list", "data": data}), media_type="application/json")

    @app.get("/health")
    async def health() -> Response:
        return Response(b'{"status":"ok"}', media_type="application/json")

    @app.get("/metrics")
    async def metrics() -> Response:
        return Response(generate_latest(cascade.metrics.registry), media_type=CONTENT_TYPE_LATEST)

    return app


def load_router(path: str) -> Any:
    """A router file written by ``calib-harness cascade`` (two models, or a chain)."""
    from calib_harness.routing.chain_deploy import load_router as _load

    return _load(path)


__all__ = ["Cascade", "ServeConfig", "Upstream", "UpstreamError", "create_app", "load_router"]
