"""Local sandbox (kind ``local``): clearly weaker than Docker.  Used only when asked for by name -- ``auto``
never falls back to it.

Two strengths, both stated in every result (``isolated=False`` and ``warning``):

* ``local-bwrap`` (bubblewrap present): new user/PID/network/IPC namespaces, the runner as PID 1 of its
  namespace (it kills all other processes after each job), read-only binds of /usr, /lib*, /bin, /etc and a
  private tmpfs /tmp.  Missing versus Docker: no cgroup memory/pids/CPU limits (memory is approximated by
  RLIMIT_AS, which breaks programs that reserve large address space), host /etc is visible.
* ``local-rlimit``: the runner as a plain host process with rlimits only.  No network isolation, the whole
  host file system is visible, no pid limit when run as root, and a program that escapes its session survives.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from typing import Mapping

from .core import RUNNER_PATH, ExecutionResult, Job, Limits, Sandbox, SandboxError, job_payload, register_sandbox, to_result

logger = logging.getLogger(__name__)

WARN_BWRAP = "weak isolation (local-bwrap): namespaces + rlimits only; no cgroup memory/pid/CPU limits; host /etc readable"
WARN_RLIMIT = "NO isolation (local-rlimit): plain host process with rlimits; network and host files reachable"


def bwrap_path() -> str | None:
    return shutil.which("bwrap")


def _bwrap_works(bwrap: str) -> bool:
    try:
        r = subprocess.run([bwrap, "--ro-bind", "/", "/", "--unshare-all", "--as-pid-1", "--", "/bin/true"], capture_output=True, timeout=10)
        return r.returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        return False


@register_sandbox("local")
class LocalSandbox(Sandbox):
    """Weak local execution; every result says so (``isolated=False``, ``warning``)."""

    isolated = False

    def __init__(self, limits: Limits | None = None, use_bwrap: bool | None = None, python: str | None = None, env: Mapping[str, str] | None = None):
        super().__init__(limits)
        self.python = python or sys.executable
        self.env = dict(env or {})
        bw = bwrap_path()
        if use_bwrap is None:
            use_bwrap = bool(bw) and _bwrap_works(bw)
        elif use_bwrap and not (bw and _bwrap_works(bw)):
            raise SandboxError("use_bwrap=True but bubblewrap (bwrap) is missing or cannot create namespaces here")
        self.backend = "local-bwrap" if use_bwrap else "local-rlimit"
        self.warning = WARN_BWRAP if use_bwrap else WARN_RLIMIT
        self._workroot = tempfile.mkdtemp(prefix="calib-local-sandbox-")
        runner_dst = os.path.join(self._workroot, "runner.py")
        shutil.copy(RUNNER_PATH, runner_dst)
        if use_bwrap:
            cmd = [bw, "--unshare-all", "--die-with-parent", "--as-pid-1", "--new-session"]
            for d in ("/usr", "/lib", "/lib64", "/lib32", "/bin", "/sbin", "/etc"):
                if os.path.exists(d):
                    cmd += ["--ro-bind", d, d]
            # The runner needs the standard library only: run the base interpreter (a virtualenv's
            # bin/python is a link to it), so that a venv living under /tmp -- hidden by the tmpfs
            # below -- does not matter.
            interpreter = os.path.realpath(self.python)
            base = os.path.realpath(getattr(sys, "base_prefix", sys.prefix))
            if not base.startswith("/usr"):
                cmd += ["--ro-bind", base, base]
            cmd += ["--proc", "/proc", "--dev", "/dev", "--tmpfs", "/tmp", "--ro-bind", runner_dst, "/opt/runner.py", "--chdir", "/tmp", "--setenv", "SANDBOX_WORKROOT", "/tmp", "--", interpreter, "-I", "/opt/runner.py", "serve"]
        else:
            jobs_dir = os.path.join(self._workroot, "jobs")
            os.makedirs(jobs_dir)
            cmd = [self.python, "-I", runner_dst, "serve"]
            self.env["SANDBOX_WORKROOT"] = jobs_dir
        self._cmd = cmd
        self._lock = threading.Lock()
        self._proc: subprocess.Popen | None = None

    def _start(self) -> None:
        env = {"PATH": "/usr/local/bin:/usr/bin:/bin", "LANG": "C.UTF-8"}
        env.update({k: v for k, v in self.env.items() if k == "SANDBOX_WORKROOT"})
        self._proc = subprocess.Popen(self._cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
        hello = self._proc.stdout.readline()
        if not hello or not json.loads(hello).get("ready"):
            err = self._proc.stderr.read().decode(errors="replace") if self._proc.poll() is not None else ""
            raise SandboxError(f"local runner failed to start ({self.backend}): {err[-2000:]}")

    def _stop(self) -> None:
        if self._proc is not None:
            try:
                self._proc.kill()
                self._proc.wait(timeout=5)
            except (OSError, subprocess.TimeoutExpired) as exc:
                logger.warning("local sandbox runner did not stop cleanly: %s", exc)
            self._proc = None

    def run_job(self, job: Job, timeout: float | None = None) -> ExecutionResult:
        limits = self._limits_for(timeout)
        payload = job_payload(job, limits, {k: v for k, v in self.env.items() if k != "SANDBOX_WORKROOT"}, rlimit_as=int(limits.memory_mb) << 20)
        payload["nproc"] = 0
        with self._lock:
            if self._proc is None or self._proc.poll() is not None:
                self._start()
            t0 = time.monotonic()
            self._proc.stdin.write(json.dumps(payload).encode() + b"\n")
            self._proc.stdin.flush()
            result: list = []
            reader = threading.Thread(target=lambda: result.append(self._proc.stdout.readline()), daemon=True)
            reader.start()
            reader.join(limits.timeout + 5.0)
            line = result[0] if result else b""
            if not line:
                self._stop()
                raw = {"exit_code": None, "timed_out": True, "duration": time.monotonic() - t0}
            else:
                raw = json.loads(line)
        return to_result(raw, self.backend, False, self.warning)

    def close(self) -> None:
        self._stop()
        shutil.rmtree(self._workroot, ignore_errors=True)
