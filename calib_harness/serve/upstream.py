"""An OpenAI-compatible model server for the shipped GGUF models: llama.cpp's own server.

``python -m calib_harness.serve.upstream smollm2-135m --port 8001`` serves a shipped model
(short name from :mod:`calib_harness.models`, or a path to any GGUF file) with llama.cpp's C++
HTTP server through the ``xllamacpp`` wheel (prebuilt for CPU, no compiler, starts in about a
second).  It answers ``/v1/chat/completions``, ``/v1/completions`` (with ``logprobs`` and
``top_logprobs``), ``/v1/models`` and ``/health``.  It binds to 127.0.0.1 unless told otherwise.

:class:`UpstreamServer` runs one in a child process (tests, the bench, the README's example):
it picks a free loopback port, waits until ``/health`` answers, and stops the process on exit.
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

logger = logging.getLogger(__name__)

READY_PREFIX = "calib-harness-upstream listening on "


def model_file(model: str) -> Path:
    """A shipped model's GGUF file (short name) or the given path."""
    from calib_harness.models import gguf_path, is_shipped

    if is_shipped(model):
        return gguf_path(model)
    path = Path(model)
    if not path.is_file():
        raise FileNotFoundError(f"{model} is neither a shipped model short name nor a GGUF file")
    return path


def serve_forever(model: str, host: str = "127.0.0.1", port: int = 0, threads: int = 1, ctx: int = 2048, parallel: int = 1, alias: str | None = None) -> None:
    """Start llama.cpp's server on ``model`` and block until SIGTERM/SIGINT."""
    import xllamacpp

    path = model_file(model)
    params = xllamacpp.CommonParams()
    params.model.path = str(path)
    params.n_ctx = int(ctx) * max(1, int(parallel))  # llama.cpp splits the context over the slots
    params.n_parallel = int(parallel)
    params.hostnames = [host]
    params.port = int(port)
    params.cpuparams.n_threads = int(threads)
    params.cpuparams_batch.n_threads = int(threads)
    params.model_alias = {alias or Path(model).name}
    # llama.cpp's host-memory prompt cache restores earlier prompts' states; a restored prompt's
    # next-token log-probs differ from a fresh evaluation (by 0.2 nats on an ARC prompt with
    # SmolLM2), so the same request could get another confidence.  Off: scores are reproducible.
    params.cache_ram_mib = 0
    server = xllamacpp.Server(params)
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    print(READY_PREFIX + str(server.listening_address), flush=True)
    while not stop.wait(0.5):
        pass
    del server


def _get(url: str, timeout: float = 2.0) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as r:  # noqa: S310 - loopback URL we started
            return r.status, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()


class UpstreamServer:
    """A llama.cpp server on a shipped model in a child process, on a free 127.0.0.1 port.

    >>> with UpstreamServer("smollm2-135m") as s:   # doctest: +SKIP
    ...     print(s.url)                             # http://127.0.0.1:PORT/v1
    """

    def __init__(self, model: str, threads: int = 1, ctx: int = 2048, parallel: int = 1, alias: str | None = None, start_timeout: float = 120.0, log_path: str | Path | None = None) -> None:
        self.model = model
        self.alias = alias or model
        self.args = ["--threads", str(threads), "--ctx", str(ctx), "--parallel", str(parallel), "--alias", self.alias]
        self.start_timeout = start_timeout
        self.log_path = Path(log_path) if log_path else None
        self.proc: subprocess.Popen | None = None
        self.base: str | None = None

    @property
    def url(self) -> str:
        """The OpenAI base URL (``.../v1``)."""
        if self.base is None:
            raise RuntimeError("server not started")
        return self.base + "/v1"

    def start(self) -> "UpstreamServer":
        log = open(self.log_path, "ab") if self.log_path else subprocess.DEVNULL  # noqa: SIM115
        cmd = [sys.executable, "-m", "calib_harness.serve.upstream", self.model, "--host", "127.0.0.1", "--port", "0", *self.args]
        self.proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=log, text=True, env={**os.environ, "PYTHONUNBUFFERED": "1"})
        deadline = time.monotonic() + self.start_timeout
        assert self.proc.stdout is not None
        line = ""
        while time.monotonic() < deadline:
            line = self.proc.stdout.readline()
            if line.startswith(READY_PREFIX) or not line and self.proc.poll() is not None:
                break
        if not line.startswith(READY_PREFIX):
            self.stop()
            raise RuntimeError(f"llama.cpp server for {self.model} did not start (see {self.log_path or 'its stderr'})")
        self.base = line[len(READY_PREFIX):].strip().rstrip("/")
        while time.monotonic() < deadline:
            try:
                if _get(self.base + "/health")[0] == 200:
                    logger.info("llama.cpp server for %s ready at %s", self.model, self.base)
                    return self
            except OSError:
                pass
            time.sleep(0.2)
        self.stop()
        raise RuntimeError(f"llama.cpp server for {self.model} never became healthy")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if self.proc is not None and self.proc.stdout is not None:
            self.proc.stdout.close()
        self.proc = None

    def __enter__(self) -> "UpstreamServer":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m calib_harness.serve.upstream", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("model", help="shipped model short name (smollm2-135m, qwen2.5-coder-0.5b, ...) or a GGUF file")
    p.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1, loopback only)")
    p.add_argument("--port", type=int, default=0, help="port (default 0: a free one, printed on start)")
    p.add_argument("--threads", type=int, default=1, help="CPU threads for decoding and prefill (default 1)")
    p.add_argument("--ctx", type=int, default=2048, help="context length per parallel slot (default 2048)")
    p.add_argument("--parallel", type=int, default=1, help="parallel decoding slots (default 1)")
    p.add_argument("--alias", default=None, help="model name the server reports (default: the model argument)")
    args = p.parse_args(argv)
    serve_forever(args.model, args.host, args.port, args.threads, args.ctx, args.parallel, args.alias)
    return 0


if __name__ == "__main__":
    sys.exit(main())

__all__ = ["UpstreamServer", "main", "model_file", "serve_forever"]
