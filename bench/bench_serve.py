"""Latency the serving cascade adds: ``calib-harness serve`` against calling the small server directly.

    python bench/bench_serve.py [--n 300] [--model smollm2-135m]

Two upstreams, each in its own process on 127.0.0.1, and the cascade as its own process too (the
real ``calib-harness serve`` command), so the client, the proxy and the model do not share a GIL:

* ``llama.cpp``: the shipped SmolLM2-135M served by llama.cpp (``calib_harness.serve.upstream``),
  a one-token completion of a short prompt (cached prompt), generation and multiple-choice requests;
* ``no-model``: an upstream that answers at once with a fixed body
  (:func:`calib_harness.serve.testing.faulty_upstream_app`, mode ``ok``): the proxy's own cost with
  no model time to hide it.

The router keeps every answer on the small model (the path whose cost the proxy adds; a deferral
adds the large model's own time).  Requests alternate direct / via the cascade, one at a time, on
kept-alive connections.  Reported: p50 and p95 of each, and of the paired difference; the target is
an added p50 <= 5 ms.  Also the proxy process's CPU time per request (from /proc), which a busy
machine's scheduling does not inflate.  Writes ``bench/results/serve.json`` and prints a table.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

TARGET_P50_MS = 5.0


def _pct(xs, q):
    xs = sorted(xs)
    k = (len(xs) - 1) * q
    lo, hi = int(k), min(int(k) + 1, len(xs) - 1)
    return xs[lo] + (xs[hi] - xs[lo]) * (k - lo)


def _wait(url: str, timeout: float = 60.0) -> None:
    import httpx

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if httpx.get(url, timeout=1).status_code < 500:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    raise RuntimeError(f"{url} did not come up")


def _spawn(cmd: list[str], log: Path) -> subprocess.Popen:
    return subprocess.Popen(cmd, stdout=open(log, "ab"), stderr=subprocess.STDOUT, env={**os.environ, "PYTHONUNBUFFERED": "1"})  # noqa: SIM115


def _stop(p: subprocess.Popen) -> None:
    p.terminate()
    try:
        p.wait(timeout=20)
    except subprocess.TimeoutExpired:
        p.kill()


def _cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process (Linux /proc), robust to a busy machine's scheduling."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def measure(direct_url: str, proxy_url: str, path: str, body: dict, n: int, warmup: int = 20, proxy_pid: int | None = None) -> dict:
    import httpx

    d_client, p_client = httpx.Client(timeout=120), httpx.Client(timeout=120)
    d_ms, p_ms = [], []
    proxy_body = dict(body)
    direct_body = {k: v for k, v in body.items() if k != "cascade"}
    cpu0 = None
    for i in range(warmup + n):
        if i == warmup and proxy_pid:
            cpu0 = _cpu_seconds(proxy_pid)
        order = ((d_client, direct_url, direct_body, d_ms), (p_client, proxy_url, proxy_body, p_ms))
        for client, base, b, out in order if i % 2 == 0 else order[::-1]:
            t0 = time.perf_counter()
            r = client.post(base + path, json=b)
            dt = (time.perf_counter() - t0) * 1000
            if r.status_code != 200:
                raise RuntimeError(f"{base}{path}: HTTP {r.status_code} {r.text[:200]}")
            if base == proxy_url and r.json()["cascade"]["model"] != "small":
                raise RuntimeError("the bench router must keep the small answer")
            if i >= warmup:
                out.append(dt)
    diff = [p - d for p, d in zip(p_ms, d_ms)]
    cpu_ms = (_cpu_seconds(proxy_pid) - cpu0) * 1000 / n if proxy_pid and cpu0 is not None else None
    return {
        "proxy_cpu_ms_per_request": cpu_ms,
        "n": n,
        "direct_p50_ms": _pct(d_ms, 0.5),
        "direct_p95_ms": _pct(d_ms, 0.95),
        "cascade_p50_ms": _pct(p_ms, 0.5),
        "cascade_p95_ms": _pct(p_ms, 0.95),
        "added_p50_ms": _pct(p_ms, 0.5) - _pct(d_ms, 0.5),
        "added_p95_ms": _pct(p_ms, 0.95) - _pct(d_ms, 0.95),
        "paired_diff_p50_ms": _pct(diff, 0.5),
        "paired_diff_p95_ms": _pct(diff, 0.95),
        "paired_diff_mean_ms": statistics.fmean(diff),
    }


def main() -> int:
    from calib_harness.outputs import write_json
    from calib_harness.routing.deploy import DeployableRouter
    from calib_harness.serve.testing import free_port
    from calib_harness.serve.upstream import UpstreamServer

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=300, help="measured requests per case (after 20 warm-up ones)")
    ap.add_argument("--model", default="smollm2-135m", help="shipped model behind the small server")
    ap.add_argument("--output", default=str(REPO / "bench" / "results" / "serve.json"), help="results file")
    args = ap.parse_args()

    tmp = Path(tempfile.mkdtemp(prefix="bench_serve_"))
    router = DeployableRouter(edges=[0.5], selected_bins=[0, 1], calibrator={"kind": "identity"}).save(tmp / "router.json")
    py = sys.executable
    procs: list[subprocess.Popen] = []
    results: dict[str, dict] = {}
    try:
        fake_port = free_port()
        procs.append(_spawn([py, "-m", "uvicorn", "calib_harness.serve.testing:faulty_upstream_app", "--factory", "--host", "127.0.0.1", "--port", str(fake_port), "--log-level", "warning"], tmp / "fake.log"))
        fake = f"http://127.0.0.1:{fake_port}/ok/v1"
        with UpstreamServer(args.model, log_path=tmp / "llama.log") as small:
            cases = {}
            for name, up in (("no-model", fake), ("llama.cpp", small.url)):
                port = free_port()
                procs.append(_spawn([py, "-m", "calib_harness.cli", "serve", "--router", str(router), "--small", up, "--large", up, "--port", str(port), "--log-level", "warning"], tmp / f"serve_{name}.log"))
                _wait(f"http://127.0.0.1:{port}/health")
                cases[name] = (up, f"http://127.0.0.1:{port}/v1", procs[-1].pid)
            if fake.startswith("http"):
                _wait(fake.replace("/ok/v1", "/docs"))
            gen = {"prompt": "The capital of France is", "max_tokens": 1, "temperature": 0}
            mc = {**gen, "prompt": "Question: 2+2=?\nA. 3\nB. 4\nC. 5\nD. 6\nAnswer:", "cascade": {"options": [" A", " B", " C", " D"]}}
            chat = {"messages": [{"role": "user", "content": "Hi"}], "max_tokens": 1, "temperature": 0}
            for name, (up, proxy, pid) in cases.items():
                for kind, path, body in (("completion", "/completions", gen), ("multiple choice", "/completions", mc), ("chat", "/chat/completions", chat)):
                    key = f"{name} / {kind}"
                    print(f"measuring {key} ...", file=sys.stderr, flush=True)
                    results[key] = measure(up, proxy, path, body, args.n, proxy_pid=pid)
    finally:
        for p in procs:
            _stop(p)

    out = {
        "what": "latency added by calib-harness serve over calling the small server directly (loopback, one request at a time)",
        "target_added_p50_ms": TARGET_P50_MS,
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version(), "load_avg_1m": os.getloadavg()[0]},
        "cases": results,
        "meets_target": all(r["added_p50_ms"] <= TARGET_P50_MS for r in results.values()),
    }
    write_json(args.output, out)
    cols = ["direct p50", "direct p95", "cascade p50", "cascade p95", "added p50", "added p95", "paired diff p50", "proxy CPU/request"]
    keys = ["direct_p50_ms", "direct_p95_ms", "cascade_p50_ms", "cascade_p95_ms", "added_p50_ms", "added_p95_ms", "paired_diff_p50_ms", "proxy_cpu_ms_per_request"]
    print(f"\nlatency in ms, {args.n} requests per case (target: added p50 <= {TARGET_P50_MS} ms); load average {out['machine']['load_avg_1m']:.1f} on {os.cpu_count()} cores")
    print(f"| case | {' | '.join(cols)} |")
    print("|---" * (len(cols) + 1) + "|")
    for name, r in results.items():
        print(f"| {name} | " + " | ".join(f"{r[k]:.2f}" for k in keys) + " |")
    print(f"\nwrote {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
