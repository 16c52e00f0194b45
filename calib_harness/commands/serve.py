"""``calib-harness serve``: an OpenAI-compatible serving cascade in front of two model servers.

    calib-harness serve --router cascade_output/router.json \\
        --small http://127.0.0.1:8001/v1 --large http://127.0.0.1:8002/v1 [--port 8000]

Each chat or completions request goes to the small model (with logprobs); the confidence feature
the router was fitted on is computed from its answer, calibrated and binned by ``router.json``;
the small answer is returned, or the request is forwarded to the large model.  Answers carry
``"cascade": {"model", "confidence", "bin", ...}`` and the headers ``X-Cascade-Model`` /
``X-Cascade-Confidence``.  A multiple-choice request names its option tokens in the body:
``"cascade": {"options": [" A", " B", " C", " D"]}`` (``extra_body=`` in the ``openai`` client).
``GET /metrics`` serves Prometheus metrics.  API keys come from environment variables (see the
``--*-api-key-env`` flags) and are never logged.  See :mod:`calib_harness.serve.app`.
"""

from __future__ import annotations

import argparse
import logging

from calib_harness.outputs import CliError

logger = logging.getLogger(__name__)


def add_parser(subparsers) -> argparse.ArgumentParser:
    p = subparsers.add_parser(
        "serve",
        help="OpenAI-compatible endpoint that answers with the small model and defers to the large one by calibrated confidence",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--router", required=True, metavar="JSON", help="router.json written by `calib-harness cascade`")
    p.add_argument("--small", required=True, metavar="URL", help="OpenAI base URL of the small model's server, e.g. http://127.0.0.1:8001/v1")
    p.add_argument("--large", required=True, metavar="URL", help="OpenAI base URL of the large model's server")
    p.add_argument("--via", action="append", default=[], metavar="URL", help="middle models of a chain router, in order (repeat; only for chain router files)")
    p.add_argument("--small-model", default=None, metavar="NAME", help="model name sent to the small server (default: the first model its /v1/models lists, else the client's)")
    p.add_argument("--large-model", default=None, metavar="NAME", help="model name sent to the large server (default: the first model its /v1/models lists, else the client's)")
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    p.add_argument("--port", type=int, default=8000, help="port to listen on (default 8000)")
    p.add_argument("--small-timeout", type=float, default=60.0, metavar="S", help="seconds per attempt for the small model's whole answer (default 60)")
    p.add_argument("--large-timeout", type=float, default=300.0, metavar="S", help="seconds per attempt for the large model's answer; between chunks when streaming (default 300)")
    p.add_argument("--connect-timeout", type=float, default=5.0, metavar="S", help="seconds to open a connection to an upstream (default 5)")
    p.add_argument("--retries", type=int, default=1, help="extra attempts after a timeout, connection error, 5xx or 429 (default 1)")
    p.add_argument("--retry-backoff", type=float, default=0.25, metavar="S", help="seconds before the first retry, doubled after each (default 0.25)")
    p.add_argument("--top-logprobs", type=int, default=20, metavar="K", help="alternatives asked from the small model for a multiple-choice request; options outside them defer (default 20)")
    p.add_argument(
        "--small-logprobs-mode",
        choices=["logprobs", "raw_logits"],
        default="logprobs",
        help="what the small server puts in logprob fields: log-probabilities (default) or raw logits (vLLM --logprobs-mode raw_logits; needed for routers on mean_logit)",
    )
    p.add_argument("--api-key-env", default="CASCADE_API_KEY", metavar="VAR", help="when this environment variable is set, clients must send its value as a Bearer key (default CASCADE_API_KEY)")
    p.add_argument("--small-api-key-env", default="CASCADE_SMALL_API_KEY", metavar="VAR", help="environment variable with the small server's API key, if any (default CASCADE_SMALL_API_KEY)")
    p.add_argument("--large-api-key-env", default="CASCADE_LARGE_API_KEY", metavar="VAR", help="environment variable with the large server's API key, if any (default CASCADE_LARGE_API_KEY)")
    p.add_argument("--log-level", default="info", choices=["critical", "error", "warning", "info", "debug"], help="uvicorn log level (default info)")
    p.set_defaults(func=run)
    return p


def build(args: argparse.Namespace):
    """The app of the parsed arguments (the CLI's wiring, used by tests)."""
    from pathlib import Path

    from calib_harness.serve.app import ServeConfig, Upstream, create_app, load_router

    if not Path(args.router).is_file():
        raise CliError(f"router file {args.router} does not exist; write one with `calib-harness cascade ... -o DIR` (DIR/router.json)")
    try:
        router = load_router(args.router)
    except (ValueError, KeyError) as e:
        raise CliError(f"{args.router} is not a router file: {e}") from None
    ups = [Upstream(args.small, "small", args.small_model, args.small_api_key_env, args.small_timeout)]
    ups += [Upstream(u, f"via{i + 1}", None, None, args.small_timeout) for i, u in enumerate(args.via)]
    ups.append(Upstream(args.large, "large", args.large_model, args.large_api_key_env, args.large_timeout))
    try:
        config = ServeConfig(
            ups,
            retries=args.retries,
            retry_backoff=args.retry_backoff,
            connect_timeout=args.connect_timeout,
            top_logprobs=args.top_logprobs,
            logprobs_mode=args.small_logprobs_mode,
            api_key_env=args.api_key_env or None,
        )
        return create_app(router, config)
    except ValueError as e:
        raise CliError(f"cannot serve {args.router}: {e}") from None


def run(args: argparse.Namespace) -> int:
    import uvicorn

    app = build(args)
    cascade = app.state.cascade
    logger.info(
        "serving cascade on http://%s:%d/v1: %s (router reads %s)",
        args.host,
        args.port,
        " -> ".join(f"{u.role} {u.url}" for u in cascade.config.upstreams),
        ", ".join(cascade.features),
    )
    uvicorn.run(app, host=args.host, port=args.port, log_level=args.log_level, access_log=args.log_level == "debug")
    return 0
