"""In-sandbox job runner (standard library only; sent into the container as ``python3 -c SOURCE serve``).

Protocol: one JSON job per line on stdin, one JSON result per line on stdout.

A job::

    {"id": str, "files": {relpath: base64}, "mode": "fork" | "exec", "entry": "main.py",
     "argv": [...] (exec mode; default ["python3", entry]), "timeout": seconds, "max_output": bytes per stream,
     "fsize": bytes (RLIMIT_FSIZE), "rlimit_as": bytes or 0, "nproc": int or 0, "env": {...}}

Each job runs in a fresh process (``fork``: a fork of this warm runner that executes ``entry`` with
``runpy``; ``exec``: a new interpreter) in a fresh private directory, in its own session.  Wall-clock
timeout and output caps kill the whole process group.

When this runner is PID 1 of its own PID namespace (the Docker container, or bubblewrap ``--as-pid-1``) it
also, after every job, SIGKILLs every other process in the namespace (``kill(-1)``: catches fork bombs and
``setsid`` escapes), reaps them, and empties /tmp and /dev/shm, so nothing is left for the next job.  As
PID 1 the kernel drops signals from inside the namespace that it has no handler for, so a program cannot
kill it; it also makes itself non-dumpable so its /proc entries (stdin/stdout) are closed to the program.
Outside a PID namespace (the plain local fallback) it only kills the job's process group.
"""

from __future__ import annotations

import base64
import json
import os
import resource
import select
import shutil
import signal
import sys
import tempfile
import time

IS_INIT = os.getpid() == 1
_CATCHABLE = [s for s in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP, signal.SIGQUIT, signal.SIGUSR1, signal.SIGUSR2, signal.SIGPIPE, signal.SIGXFSZ, signal.SIGALRM, signal.SIGTTIN, signal.SIGTTOU)]


def _oom_kills() -> int:
    """OOM-kill counter of this container's memory cgroup (v2 memory.events, v1 memory.oom_control)."""
    for path in ("/sys/fs/cgroup/memory.events", "/sys/fs/cgroup/memory/memory.oom_control"):
        try:
            with open(path) as f:
                for line in f:
                    k, _, v = line.partition(" ")
                    if k == "oom_kill":
                        return int(v)
        except OSError:
            continue
    return -1


def _set_limits(job: dict) -> None:
    def lim(res, value):
        if value and value > 0:
            try:
                soft, hard = resource.getrlimit(res)
                value = value if hard == resource.RLIM_INFINITY else min(value, hard)
                resource.setrlimit(res, (value, value))
            except (ValueError, OSError):
                pass

    lim(resource.RLIMIT_FSIZE, int(job.get("fsize") or 0))
    lim(resource.RLIMIT_AS, int(job.get("rlimit_as") or 0))
    lim(resource.RLIMIT_NPROC, int(job.get("nproc") or 0))
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    cpu = int(job.get("cpu_seconds") or 0)
    lim(resource.RLIMIT_CPU, cpu)
    try:
        with open("/proc/self/oom_score_adj", "w") as f:  # the job, never the runner, is the OOM victim
            f.write("1000")
    except OSError:
        pass


def _reset_signals() -> None:
    for s in _CATCHABLE:
        try:
            signal.signal(s, signal.SIG_DFL)
        except (OSError, ValueError):
            pass
    # Python itself ignores these; keep a program's view identical to a normal `python3 main.py`
    signal.signal(signal.SIGPIPE, signal.SIG_IGN)
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)


def _write_files(workdir: str, files: dict) -> None:
    for rel, b64 in files.items():
        if os.path.isabs(rel) or ".." in rel.replace("\\", "/").split("/"):
            raise ValueError(f"file path must be relative and inside the work dir: {rel!r}")
        path = os.path.join(workdir, rel)
        os.makedirs(os.path.dirname(path) or workdir, exist_ok=True)
        with open(path, "wb") as f:
            f.write(base64.b64decode(b64))


def _enter_child(workdir: str, out_w: int, err_w: int) -> None:
    """In a forked child (fork and exec mode alike): a fresh session in ``workdir``, stdin from /dev/null,
    stdout / stderr into the pipes, no other file descriptor, default signal handlers."""
    os.setsid()
    os.chdir(workdir)
    devnull = os.open(os.devnull, os.O_RDONLY)
    os.dup2(devnull, 0)
    os.dup2(out_w, 1)
    os.dup2(err_w, 2)
    os.closerange(3, 65536)
    _reset_signals()


def _child_fork(job: dict, workdir: str, out_w: int, err_w: int) -> None:
    """In the forked child: become a fresh session, apply limits and run the entry file as __main__."""
    code = 1
    try:
        _enter_child(workdir, out_w, err_w)
        if IS_INIT:
            try:
                import ctypes

                ctypes.CDLL(None).prctl(4, 1, 0, 0, 0)  # PR_SET_DUMPABLE=1 for the job
            except Exception:
                pass
        env = job.get("env") or {}
        os.environ.clear()
        os.environ.update({k: str(v) for k, v in env.items()})
        os.environ.setdefault("HOME", workdir)
        os.environ.setdefault("TMPDIR", workdir)
        tempfile.tempdir = None
        _set_limits(job)
        import io
        import runpy

        sys.stdin = io.TextIOWrapper(io.FileIO(0, "r", closefd=False))
        sys.stdout = io.TextIOWrapper(io.FileIO(1, "w", closefd=False), encoding="utf-8", errors="backslashreplace")
        sys.stderr = io.TextIOWrapper(io.FileIO(2, "w", closefd=False), encoding="utf-8", errors="backslashreplace", line_buffering=True)
        entry = job.get("entry", "main.py")
        sys.argv = [entry] + list(job.get("args") or [])
        sys.path[0:0] = [workdir]
        try:
            runpy.run_path(entry, run_name="__main__")
            code = 0
        except SystemExit as e:
            c = e.code
            if c is None:
                code = 0
            elif isinstance(c, int):
                code = c & 0xFF
            else:
                print(c, file=sys.stderr)
                code = 1
        except BaseException:
            import traceback

            traceback.print_exc()
            code = 1
        for s in (sys.stdout, sys.stderr):
            try:
                s.flush()
            except Exception:
                pass
    except BaseException:
        code = 1
    finally:
        os._exit(code)


def _kill_rest(pgid: int) -> None:
    if IS_INIT:
        try:
            os.kill(-1, signal.SIGKILL)
        except ProcessLookupError:
            pass
    else:
        try:
            os.killpg(pgid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass


def _reap_all() -> None:
    if not IS_INIT:
        return
    deadline = time.monotonic() + 2.0
    while True:
        try:
            pid, _ = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            if time.monotonic() > deadline:
                return
            try:
                os.kill(-1, signal.SIGKILL)
            except ProcessLookupError:
                pass
            time.sleep(0.002)


def _wipe(path: str) -> None:
    try:
        entries = os.listdir(path)
    except OSError:
        return
    for name in entries:
        p = os.path.join(path, name)
        try:
            if os.path.isdir(p) and not os.path.islink(p):
                for root, dirs, _files in os.walk(p):
                    for d in dirs:
                        try:
                            os.chmod(os.path.join(root, d), 0o700)
                        except OSError:
                            pass
                os.chmod(p, 0o700)
                shutil.rmtree(p, ignore_errors=True)
            else:
                os.unlink(p)
        except OSError:
            pass


def execute(job: dict, workroot: str | None = None) -> dict:
    t0 = time.monotonic()
    timeout = float(job.get("timeout", 10.0))
    cap = int(job.get("max_output", 1 << 20))
    workdir = tempfile.mkdtemp(prefix="job-", dir=workroot)
    os.chmod(workdir, 0o700)
    result: dict = {"id": job.get("id"), "exit_code": None, "signal": None, "timed_out": False, "output_limit": False, "oom": False, "error": None}
    oom_before = _oom_kills()
    try:
        _write_files(workdir, job.get("files") or {})
    except (ValueError, OSError) as exc:
        result.update(error=f"bad files: {exc}", stdout="", stderr="", duration=0.0)
        shutil.rmtree(workdir, ignore_errors=True)
        return result
    out_r, out_w = os.pipe()
    err_r, err_w = os.pipe()
    mode = job.get("mode", "fork")
    start = time.monotonic()
    pid = os.fork()
    if pid == 0:
        os.close(out_r)
        os.close(err_r)
        if mode == "fork":
            _child_fork(job, workdir, out_w, err_w)
        try:  # exec mode: a brand-new interpreter (or any argv)
            _enter_child(workdir, out_w, err_w)
            signal.signal(signal.SIGPIPE, signal.SIG_DFL)
            signal.signal(signal.SIGXFSZ, signal.SIG_DFL)
            _set_limits(job)
            env = {k: str(v) for k, v in (job.get("env") or {}).items()}
            env.setdefault("HOME", workdir)
            env.setdefault("TMPDIR", workdir)
            env.setdefault("PATH", "/usr/local/bin:/usr/bin:/bin")
            argv = job.get("argv") or [sys.executable, job.get("entry", "main.py")]
            os.execvpe(argv[0], argv, env)
        except BaseException as exc:
            try:
                os.write(2, f"sandbox runner: exec failed: {exc}\n".encode())
            finally:
                os._exit(127)
    os.close(out_w)
    os.close(err_w)
    bufs = {out_r: bytearray(), err_r: bytearray()}
    trunc = {out_r: False, err_r: False}
    open_fds = [out_r, err_r]
    status = None
    deadline = start + timeout
    child_done_at = None
    while True:
        now = time.monotonic()
        if status is None:
            wpid, st = os.waitpid(pid, os.WNOHANG)
            if wpid == pid:
                status = st
                child_done_at = now
        if status is not None and (not open_fds or now - child_done_at > 0.2):
            break  # child gone; pipes drained (or held open by a background grandchild: stop after 0.2 s)
        if now >= deadline:
            result["timed_out"] = True
            break
        if open_fds:
            ready, _, _ = select.select(open_fds, [], [], min(0.05, max(0.0, deadline - now)))
        else:
            ready = []
            time.sleep(0.001)
        for fd in ready:
            chunk = os.read(fd, 65536)
            if not chunk:
                open_fds.remove(fd)
                continue
            room = cap - len(bufs[fd])
            if room > 0:
                bufs[fd] += chunk[:room]
            if len(chunk) > room:
                trunc[fd] = True
                result["output_limit"] = True
        if result["output_limit"]:
            break
    _kill_rest(pid)
    if status is None:
        try:
            _, status = os.waitpid(pid, 0)
        except ChildProcessError:
            status = None
    duration = time.monotonic() - start
    for fd in (out_r, err_r):
        os.close(fd)
    _reap_all()
    if status is not None:
        if os.WIFEXITED(status):
            result["exit_code"] = os.WEXITSTATUS(status)
        elif os.WIFSIGNALED(status):
            result["signal"] = os.WTERMSIG(status)
            result["exit_code"] = -os.WTERMSIG(status)
    oom_after = _oom_kills()
    result["oom"] = oom_before >= 0 and oom_after > oom_before
    shutil.rmtree(workdir, ignore_errors=True)
    if IS_INIT:
        for d in (workroot or tempfile.gettempdir(), "/dev/shm"):
            _wipe(d)
    result.update(
        stdout=base64.b64encode(bytes(bufs[out_r])).decode(),
        stderr=base64.b64encode(bytes(bufs[err_r])).decode(),
        stdout_truncated=trunc[out_r],
        stderr_truncated=trunc[err_r],
        duration=duration,
        overhead=time.monotonic() - t0 - duration,
    )
    return result


def serve() -> None:
    if IS_INIT:
        for s in _CATCHABLE:
            try:
                signal.signal(s, signal.SIG_IGN)
            except (OSError, ValueError):
                pass
        try:
            import ctypes

            ctypes.CDLL(None).prctl(4, 0, 0, 0, 0)  # PR_SET_DUMPABLE=0: /proc/1/* closed to the jobs
        except Exception:
            pass
        signal.signal(signal.SIGCHLD, signal.SIG_DFL)
    inp = sys.stdin.buffer
    out = sys.stdout.buffer
    # optional warm imports (e.g. numpy,pandas,matplotlib.pyplot for BigCodeBench): every forked job starts
    # with them already imported, in the runner's pristine state (the runner never runs job code itself)
    preloaded = []
    for name in filter(None, (os.environ.get("SANDBOX_PRELOAD") or "").split(",")):
        try:
            __import__(name.strip())
            preloaded.append(name.strip())
        except Exception:
            pass
    out.write(json.dumps({"ready": True, "pid": os.getpid(), "preloaded": preloaded}).encode() + b"\n")
    out.flush()
    workroot = os.environ.get("SANDBOX_WORKROOT") or None
    while True:
        line = inp.readline()
        if not line:
            return
        if not line.strip():
            continue
        try:
            job = json.loads(line)
            res = execute(job, workroot)
        except Exception as exc:  # never die on a bad job
            res = {"id": None, "error": f"runner: {type(exc).__name__}: {exc}"}
        out.write(json.dumps(res).encode() + b"\n")
        out.flush()


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[-1] == "serve":
        serve()
    else:
        print("usage: runner.py serve", file=sys.stderr)
        sys.exit(2)
