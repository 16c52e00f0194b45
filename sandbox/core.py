"""Sandbox interface: typed limits, results, the :class:`Sandbox` ABC every backend implements, and the
registry of sandbox kinds (``@register_sandbox(name)`` / :func:`get_sandbox`, in the style of inspect_ai's
``@sandboxenv``)."""

from __future__ import annotations

import abc
import base64
import os
import signal as _signal
import uuid
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping, Sequence, TypeVar

RUNNER_PATH = Path(__file__).with_name("runner.py")
RUNNER_SOURCE = RUNNER_PATH.read_text()

#: resource verdicts, from best to worst
VERDICTS = ("ok", "error", "timeout", "memory", "output_limit", "file_size", "disk_full", "sandbox_error")


class SandboxError(RuntimeError):
    """The sandbox itself could not run the job (no Docker, no image, bad arguments)."""


class DockerUnavailable(SandboxError):
    pass


@dataclass(frozen=True)
class Limits:
    """Resource limits for one run.  Docker enforces memory/pids/cpus with cgroups; the local fallback can
    only approximate memory with RLIMIT_AS and has no pid or CPU-share limit."""

    timeout: float = 10.0  # wall-clock seconds; the process group is killed at the deadline
    memory_mb: int = 512
    pids: int = 64
    cpus: float = 1.0
    file_size_mb: int = 16  # RLIMIT_FSIZE: largest file a program may write
    tmpfs_mb: int = 64  # size of the writable /tmp (the only writable place)
    max_output: int = 1 << 20  # bytes kept per stream; more kills the program (verdict output_limit)

    def __post_init__(self) -> None:
        for name in ("timeout", "memory_mb", "pids", "cpus", "file_size_mb", "tmpfs_mb", "max_output"):
            v = getattr(self, name)
            if not isinstance(v, (int, float)) or isinstance(v, bool) or v <= 0:
                raise SandboxError(f"Limits.{name} must be a positive number, got {v!r}")


@dataclass(frozen=True)
class ExecutionResult:
    """What one run produced.

    verdict: ``ok`` (exit 0), ``error`` (non-zero exit or killed by a signal), ``timeout``, ``memory`` (OOM
    kill or MemoryError), ``output_limit``, ``file_size`` (RLIMIT_FSIZE hit), ``disk_full`` (tmpfs full),
    ``sandbox_error`` (the sandbox failed, not the program).
    backend: ``docker``, ``docker-pool``, ``local-bwrap`` or ``local-rlimit``; ``isolated`` is False for the
    local backends and ``warning`` says what protection is missing.
    """

    verdict: str
    exit_code: int | None
    stdout: str
    stderr: str
    duration: float
    backend: str
    isolated: bool
    timed_out: bool = False
    oom_killed: bool = False
    signal: int | None = None
    stdout_truncated: bool = False
    stderr_truncated: bool = False
    warning: str | None = None
    details: dict[str, Any] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return self.verdict == "ok"

    def stderr_tail(self, n: int = 2000) -> str:
        return self.stderr[-n:]

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class Job:
    """A program to run: ``code`` becomes ``entry`` (main.py) in a fresh directory with ``files`` beside it."""

    code: str
    files: Mapping[str, str | bytes] = field(default_factory=dict)
    entry: str = "main.py"
    mode: str = "fork"  # fork: fork of the warm runner (fast); exec: a new python3 interpreter
    argv: Sequence[str] | None = None
    env: Mapping[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not isinstance(self.code, str):
            raise SandboxError(f"Job.code must be a str, got {type(self.code).__name__}")
        if self.mode not in ("fork", "exec"):
            raise SandboxError(f"Job.mode must be 'fork' or 'exec', got {self.mode!r}")
        for name in list(self.files) + [self.entry]:
            p = str(name).replace("\\", "/")
            if not p or p.startswith("/") or ".." in p.split("/"):
                raise SandboxError(f"file names must be relative paths inside the work dir, got {name!r}")


def job_payload(job: Job, limits: Limits, extra_env: Mapping[str, str] | None = None, rlimit_as: int = 0) -> dict:
    files = {job.entry: job.code.encode()}
    for k, v in job.files.items():
        files[str(k)] = v.encode() if isinstance(v, str) else bytes(v)
    env = {"PATH": "/usr/local/bin:/usr/bin:/bin", "LANG": "C.UTF-8", "PYTHONIOENCODING": "utf-8", "MPLBACKEND": "Agg", "PYTHONDONTWRITEBYTECODE": "1"}
    env.update(extra_env or {})
    env.update(job.env)
    argv = list(job.argv) if job.argv else None
    return {
        "id": uuid.uuid4().hex,
        "files": {k: base64.b64encode(v).decode() for k, v in files.items()},
        "entry": job.entry,
        "mode": job.mode,
        "argv": argv,
        "timeout": float(limits.timeout),
        "max_output": int(limits.max_output),
        "fsize": int(limits.file_size_mb) << 20,
        "rlimit_as": int(rlimit_as),
        "env": env,
    }


def classify(raw: dict) -> tuple[str, str]:
    """(verdict, stderr text) from a runner result dict."""
    stderr = base64.b64decode(raw.get("stderr") or "").decode("utf-8", "replace")
    if raw.get("error"):
        return "sandbox_error", stderr
    sig = raw.get("signal")
    tail = stderr[-4000:]
    if raw.get("timed_out"):
        return "timeout", stderr
    if raw.get("output_limit"):
        return "output_limit", stderr
    if raw.get("oom") or "MemoryError" in tail:
        return "memory", stderr
    if sig == _signal.SIGXFSZ or "File too large" in tail:
        return "file_size", stderr
    if "No space left on device" in tail:
        return "disk_full", stderr
    if raw.get("exit_code") == 0:
        return "ok", stderr
    return "error", stderr


def to_result(raw: dict, backend: str, isolated: bool, warning: str | None = None, extra: dict | None = None) -> ExecutionResult:
    verdict, stderr = classify(raw)
    details = {"runner_overhead_s": raw.get("overhead")}
    if raw.get("error"):
        details["error"] = raw["error"]
    details.update(extra or {})
    return ExecutionResult(
        verdict=verdict,
        exit_code=raw.get("exit_code"),
        stdout=base64.b64decode(raw.get("stdout") or "").decode("utf-8", "replace"),
        stderr=stderr,
        duration=float(raw.get("duration") or 0.0),
        backend=backend,
        isolated=isolated,
        timed_out=bool(raw.get("timed_out")),
        oom_killed=bool(raw.get("oom")),
        signal=raw.get("signal"),
        stdout_truncated=bool(raw.get("stdout_truncated")),
        stderr_truncated=bool(raw.get("stderr_truncated")),
        warning=warning,
        details=details,
    )


class Sandbox(abc.ABC):
    """The narrow interface: ``run(code, files=None, timeout=None) -> ExecutionResult``.

    A backend implements :meth:`run_job` (and :meth:`close` when it holds resources) and registers itself
    with :func:`register_sandbox`.  Backends: :class:`~calib_harness.sandbox.docker_sandbox.DockerSandbox`
    (``docker``: fresh container per run; ``pool``: warm containers) and
    :class:`~calib_harness.sandbox.local_sandbox.LocalSandbox` (``local``: weaker, bubblewrap or rlimits; only
    ever used when asked for by name).  Failures of the sandbox itself raise :class:`SandboxError`; what the
    program did (timeout, memory, output limit, ...) is the result's ``verdict``.
    """

    backend = "abstract"
    isolated = False

    def __init__(self, limits: Limits | None = None):
        self.limits = limits or Limits()

    def run(self, code: str, files: Mapping[str, str | bytes] | None = None, timeout: float | None = None, *, mode: str = "fork", argv: Sequence[str] | None = None, env: Mapping[str, str] | None = None) -> ExecutionResult:
        job = Job(code=code, files=dict(files or {}), mode=mode, argv=argv, env=dict(env or {}))
        return self.run_job(job, timeout=timeout)

    @abc.abstractmethod
    def run_job(self, job: Job, timeout: float | None = None) -> ExecutionResult:
        """Run one job and return its result; raise :class:`SandboxError` only when the sandbox fails."""

    def run_many(self, jobs: Iterable[Job], timeout: float | None = None, progress: bool = False, desc: str = "sandbox") -> list[ExecutionResult]:
        jobs = list(jobs)
        it = jobs
        if progress:
            from tqdm.auto import tqdm

            it = tqdm(jobs, desc=desc)
        return [self.run_job(j, timeout=timeout) for j in it]

    def _limits_for(self, timeout: float | None) -> Limits:
        if timeout is None:
            return self.limits
        from dataclasses import replace

        return replace(self.limits, timeout=float(timeout))

    def close(self) -> None:
        pass

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.close()


# ------------------------------------------------------------------------------------------- registry
_F = TypeVar("_F", bound=Callable[..., Sandbox])
_REGISTRY: dict[str, Callable[..., Sandbox]] = {}


def register_sandbox(name: str) -> Callable[[_F], _F]:
    """Register a sandbox kind: a :class:`Sandbox` subclass or a factory returning one.

    >>> @register_sandbox("my-kind")  # doctest: +SKIP
    ... class MySandbox(Sandbox): ...
    """

    def deco(factory: _F) -> _F:
        if name in _REGISTRY and _REGISTRY[name] is not factory:
            raise SandboxError(f"sandbox kind {name!r} is already registered")
        _REGISTRY[name] = factory
        return factory

    return deco


def list_sandboxes() -> list[str]:
    """Names of the registered sandbox kinds."""
    return sorted(_REGISTRY)


def get_sandbox(kind: str = "auto", **kwargs: Any) -> Sandbox:
    """Build the sandbox registered as ``kind`` with ``kwargs`` (see each backend for its arguments)."""
    try:
        factory = _REGISTRY[kind]
    except KeyError:
        raise SandboxError(f"unknown sandbox kind {kind!r}; choose one of {list_sandboxes()}") from None
    return factory(**kwargs)


def env_flag(name: str) -> bool:
    return os.environ.get(name, "").lower() in ("1", "true", "yes")
