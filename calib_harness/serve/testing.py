"""Helpers to exercise a cascade on loopback: run an ASGI app in a thread, and an upstream that
misbehaves on purpose (timeouts, 5xx, malformed bodies, broken streams) so the failure paths of
``calib-harness serve`` can be checked against real HTTP, not mocks.

The faulty upstream serves ``/{mode}/v1/chat/completions`` and ``/{mode}/v1/completions``; the
mode in the URL picks the behaviour (see :data:`MODES`), so one server plays every failure.
A well-formed answer (mode ``ok``) has the tokens ``"The answer"`` with log-probabilities
``log(0.9)`` each and, at the first position, the top alternatives `` A`` (0.9), `` B`` (0.06),
`` C`` (0.03), `` D`` (0.01).  Mode ``unsure`` is the same with log-probabilities ``log(0.2)``.
"""

from __future__ import annotations

import asyncio
import json
import math
import socket
import threading
import time
from collections import Counter
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import Response, StreamingResponse

MODES = {
    "ok": "a well-formed, confident answer with logprobs",
    "unsure": "a well-formed answer with low token log-probabilities",
    "slow": "a well-formed answer after 3 s",
    "error500": "HTTP 500 every time",
    "flaky": "HTTP 503 on the first attempt of each prompt, then ok",
    "notjson": "HTTP 200 with an HTML body",
    "nochoices": "HTTP 200 with a JSON object without choices",
    "nologprobs": "HTTP 200, choices without logprobs",
    "badlogprob": "HTTP 200, a logprob that is a string",
    "missing_options": "ok, but the option ' B' is not among the top logprobs",
    "truncated": "a stream that stops without [DONE] (non-stream: ok)",
    "auth": "ok, and remembers the Authorization header it got",
}

OPTION_PROBS = {" A": 0.9, " B": 0.06, " C": 0.03, " D": 0.01}


def free_port() -> int:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


class ServerThread:
    """Run an ASGI app with uvicorn on 127.0.0.1 in a daemon thread (``with ServerThread(app) as base:``)."""

    def __init__(self, app: Any, port: int | None = None, log_level: str = "warning") -> None:
        import uvicorn

        self.port = port or free_port()
        self.server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=self.port, log_level=log_level, access_log=False))
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def __enter__(self) -> str:
        self.thread.start()
        deadline = time.monotonic() + 30
        while not self.server.started:
            if time.monotonic() > deadline or not self.thread.is_alive():
                raise RuntimeError("the test server did not start")
            time.sleep(0.02)
        return self.base

    def __exit__(self, *exc) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=30)


def _entry(token: str, p: float, top: dict[str, float] | None = None) -> dict[str, Any]:
    top = top or {token: p}
    return {
        "token": token,
        "logprob": math.log(p),
        "bytes": list(token.encode()),
        "top_logprobs": [{"token": t, "logprob": math.log(q), "bytes": list(t.encode())} for t, q in top.items()],
    }


def faulty_upstream_app(name: str = "faulty") -> FastAPI:
    """The misbehaving upstream (see the module doc); ``app.state.calls`` counts calls per mode,
    ``app.state.auth`` holds the Authorization headers seen in mode ``auth``."""
    app = FastAPI()
    app.state.calls = Counter()
    app.state.auth = []
    app.state.seen: set[str] = set()

    def answer(mode: str, endpoint: str, body: dict[str, Any]) -> dict[str, Any]:
        p = 0.2 if mode == "unsure" else 0.9
        top = {k: v for k, v in OPTION_PROBS.items() if not (mode == "missing_options" and k == " B")}
        entries = [_entry("The", p, top), _entry(" answer", p)]
        entries.append({"token": "", "logprob": math.log(0.5), "bytes": [], "top_logprobs": []})  # EOS, as llama.cpp lists it
        text = "The answer"
        choice: dict[str, Any] = {"index": 0, "finish_reason": "stop", "logprobs": {"content": entries}}
        if mode == "nologprobs":
            choice.pop("logprobs")
        if mode == "badlogprob":
            entries[0]["logprob"] = "high"
        if endpoint == "chat":
            choice["message"] = {"role": "assistant", "content": text}
        else:
            choice["text"] = text
        out = {"id": "x", "object": "chat.completion" if endpoint == "chat" else "text_completion", "model": name, "choices": [choice]}
        if mode == "nochoices":
            out.pop("choices")
        return out

    async def handle(mode: str, endpoint: str, request: Request) -> Response:
        app.state.calls[mode] += 1
        body = await request.json()
        if mode == "auth":
            app.state.auth.append(request.headers.get("authorization"))
        if mode == "slow":
            await asyncio.sleep(3.0)
        if mode == "error500":
            return Response(b'{"error": "boom"}', 500, media_type="application/json")
        if mode == "flaky":
            key = json.dumps(body.get("messages") or body.get("prompt"))
            if key not in app.state.seen:
                app.state.seen.add(key)
                return Response(b"overloaded", 503)
        if mode == "notjson":
            return Response(b"<html>oops</html>", 200, media_type="text/html")
        ans = answer(mode, endpoint, body)
        if not body.get("stream"):
            return Response(json.dumps(ans).encode(), media_type="application/json")

        async def events():
            if "choices" not in ans:
                yield ("data: " + json.dumps(ans) + "\n\n").encode()
                yield b"data: [DONE]\n\n"
                return
            entries = (ans["choices"][0].get("logprobs") or answer("ok", endpoint, body)["choices"][0]["logprobs"])["content"]
            for i, e in enumerate(entries):
                delta = {"content": e["token"]} if endpoint == "chat" else None
                c = {"index": 0, "finish_reason": None, "logprobs": None if mode == "nologprobs" else {"content": [e]}}
                if endpoint == "chat":
                    c["delta"] = delta
                else:
                    c["text"] = e["token"]
                yield ("data: " + json.dumps({"id": "x", "model": name, "choices": [c]}) + "\n\n").encode()
                if mode == "truncated" and i == 0:
                    return
            yield ("data: " + json.dumps({"id": "x", "model": name, "choices": [{"index": 0, "finish_reason": "stop", "delta": {}, "text": ""}]}) + "\n\n").encode()
            yield b"data: [DONE]\n\n"

        return StreamingResponse(events(), media_type="text/event-stream")

    @app.post("/{mode}/v1/chat/completions")
    async def chat(mode: str, request: Request) -> Response:
        return await handle(mode, "chat", request)

    @app.post("/{mode}/v1/completions")
    async def completions(mode: str, request: Request) -> Response:
        return await handle(mode, "completions", request)

    return app
