"""The sandbox: real containers running hostile programs, each contained with the right verdict and nothing
left behind; the weaker local fallback says so.

The warm pool has ONE container here, so every follow-up probe runs in the very container the hostile
program ran in: that is how "nothing left behind" is checked (no extra process, no file in /tmp or /dev/shm).
"""

from __future__ import annotations

import json
import os
import textwrap
import warnings

import pytest

from calib_harness.sandbox import (
    DEFAULT_IMAGE,
    DockerSandbox,
    ExecutionResult,
    Limits,
    LocalSandbox,
    Sandbox,
    SandboxError,
    get_sandbox,
    leftover_containers,
    list_sandboxes,
    register_sandbox,
)
from calib_harness.sandbox.core import DockerUnavailable

from sandbox_fixtures import HOSTILE_LIMITS, docker_ok, pool, require_docker_image  # noqa: F401

PROBE = textwrap.dedent(
    """
    import os, json
    me = os.getpid()
    pids = sorted(int(p) for p in os.listdir('/proc') if p.isdigit())
    cmd = {}
    for p in pids:
        try:
            cmd[p] = open(f'/proc/{p}/cmdline','rb').read().replace(b'\\0', b' ').decode()[:60]
        except OSError:
            pass
    tmp = sorted(os.listdir('/tmp'))
    here = os.path.basename(os.getcwd())
    print(json.dumps({"pids": pids, "me": me, "cmd": cmd, "tmp": [t for t in tmp if t != here],
                      "shm": sorted(os.listdir('/dev/shm'))}))
    """
)


def probe_clean(sb) -> dict:
    """Run the probe in the (single) pool container and assert nothing from earlier jobs survives."""
    r = sb.run(PROBE)
    assert r.verdict == "ok", r.stderr
    info = json.loads(r.stdout)
    others = [p for p in info["pids"] if p not in (1, info["me"])]
    assert others == [], f"processes left behind: {info['cmd']}"
    assert info["tmp"] == [] and info["shm"] == [], f"files left behind: {info}"
    return {"container": r.details["container"], **info}


pytestmark = pytest.mark.docker


# ------------------------------------------------------------------ basic contract
def test_run_ok_and_error_and_files(pool):
    r = pool.run("import helper\nprint(helper.X * 2)\nimport sys; print('err', file=sys.stderr)", files={"helper.py": "X = 21\n", "data/in.txt": "hi"})
    assert (r.verdict, r.exit_code, r.stdout, r.stderr) == ("ok", 0, "42\n", "err\n")
    assert r.backend == "docker-pool" and r.isolated and r.warning is None and r.duration > 0
    r = pool.run("raise ValueError('boom')")
    assert r.verdict == "error" and r.exit_code == 1 and "ValueError: boom" in r.stderr
    r = pool.run("import sys; sys.exit(7)", mode="exec")  # a fresh interpreter instead of a fork
    assert r.verdict == "error" and r.exit_code == 7
    with pytest.raises(SandboxError, match="relative"):
        pool.run("x", files={"../escape.py": "x"})


def test_identity_non_root_no_caps_readonly_root(pool):
    r = pool.run(
        textwrap.dedent(
            """
            import os, json
            caps = [l.split()[1] for l in open('/proc/self/status') if l.startswith(('CapEff', 'CapPrm', 'CapBnd'))]
            nnp = [l.split()[1] for l in open('/proc/self/status') if l.startswith('NoNewPrivs')][0]
            try:
                open('/usr/evil', 'w'); ro = False
            except OSError:
                ro = True
            print(json.dumps({"uid": os.getuid(), "gid": os.getgid(), "caps": caps, "nnp": nnp, "ro": ro,
                              "ifaces": sorted(os.listdir('/sys/class/net'))}))
            """
        )
    )
    info = json.loads(r.stdout)
    assert info["uid"] == 10001 and info["gid"] == 10001
    assert set(info["caps"]) == {"0000000000000000"}
    assert info["nnp"] == "1" and info["ro"] is True
    assert info["ifaces"] == ["lo"]


# ------------------------------------------------------------------ hostile programs
def test_network_egress_blocked(pool):
    r = pool.run(
        textwrap.dedent(
            """
            import socket
            for target in [("1.1.1.1", 53), ("8.8.8.8", 443), ("deb.debian.org", 80)]:
                try:
                    socket.create_connection(target, timeout=2)
                    print("CONNECTED", target)
                except OSError as e:
                    print("blocked", target, type(e).__name__)
            socket.create_connection(("1.1.1.1", 80), timeout=2)
            """
        )
    )
    assert "CONNECTED" not in r.stdout and r.stdout.count("blocked") == 3
    assert r.verdict == "error" and ("OSError" in r.stderr or "gaierror" in r.stderr)
    probe_clean(pool)


def test_fork_bomb_contained(pool):
    before = probe_clean(pool)["container"]
    r = pool.run("import os\nwhile True:\n    try:\n        os.fork()\n    except OSError:\n        pass\n", timeout=3)
    assert r.verdict == "timeout" and r.timed_out
    after = probe_clean(pool)
    assert after["container"] == before  # the runner survived and cleaned up


def test_memory_bomb_contained(pool):
    r = pool.run("blocks = []\nwhile True:\n    blocks.append(b'x' * (16 << 20))\n", timeout=20)
    assert r.verdict == "memory", (r.verdict, r.exit_code, r.signal, r.stderr[-500:])
    assert r.oom_killed or "MemoryError" in r.stderr
    probe_clean(pool)


def test_infinite_loop_times_out(pool):
    r = pool.run("while True:\n    pass\n", timeout=2)
    assert r.verdict == "timeout" and r.timed_out and 2.0 <= r.duration < 3.5
    probe_clean(pool)


def test_sleep_past_timeout_killed_and_background_child_reaped(pool):
    code = textwrap.dedent(
        """
        import os, time
        if os.fork() == 0:          # a detached grandchild in its own session tries to outlive the job
            os.setsid()
            time.sleep(600)
        time.sleep(600)
        """
    )
    r = pool.run(code, timeout=2)
    assert r.verdict == "timeout" and r.duration < 3.5
    probe_clean(pool)


def test_filling_the_disk(pool):
    code = textwrap.dedent(
        """
        import os
        i = 0
        while True:
            with open(f'/tmp/fill{i}.bin', 'wb') as f:
                f.write(b'\\0' * (6 << 20))
            i += 1
        """
    )
    r = pool.run(code)
    assert r.verdict == "disk_full", (r.verdict, r.stderr[-300:])
    r = pool.run("open('big.bin', 'wb').write(b'x' * (20 << 20))")  # one file over RLIMIT_FSIZE (8 MB)
    assert r.verdict == "file_size", (r.verdict, r.stderr[-300:])
    probe_clean(pool)


def test_100mb_of_stdout_capped(pool):
    r = pool.run("import sys\nfor _ in range(100):\n    sys.stdout.write('x' * (1 << 20))\n")
    assert r.verdict == "output_limit" and r.stdout_truncated
    assert len(r.stdout) == HOSTILE_LIMITS.max_output
    probe_clean(pool)


def test_reading_host_files_impossible(pool, tmp_path, shared_data):
    secret = tmp_path / "host_secret.txt"
    secret.write_text("TOP-SECRET-HOST-VALUE")
    code = textwrap.dedent(
        f"""
        import os
        for p in [{str(secret)!r}, {str(shared_data / 'SOURCES.md')!r}, '/var/run/docker.sock', '/root/.bash_history']:
            print(p, os.path.exists(p))
        print(open({str(secret)!r}).read())
        """
    )
    r = pool.run(code)
    assert r.verdict == "error" and "FileNotFoundError" in r.stderr
    assert "TOP-SECRET" not in r.stdout + r.stderr
    assert r.stdout.count(" False") == 4
    probe_clean(pool)


def test_signalling_the_parent_does_not_kill_the_runner(pool):
    before = probe_clean(pool)["container"]
    code = textwrap.dedent(
        """
        import os, signal
        for pid in {os.getppid(), 1}:
            for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP, signal.SIGKILL):
                try:
                    os.kill(pid, sig)
                except OSError as e:
                    print('refused', pid, sig, type(e).__name__)
        try:
            os.kill(-1, signal.SIGKILL)   # everything this user may signal
        except OSError:
            pass
        print('still here')
        """
    )
    r = pool.run(code)
    # the parent is the runner = PID 1 of the container's PID namespace: the kernel drops these signals,
    # so nothing is refused, nothing dies (kill(-1) spares the caller), and the job ends normally
    assert r.verdict == "ok" and r.stdout == "still here\n", (r.verdict, r.signal, r.stdout, r.stderr)
    after = probe_clean(pool)
    assert after["container"] == before


def test_writing_outside_its_directory(pool):
    code = textwrap.dedent(
        """
        import os
        blocked = []
        for p in ['/etc/passwd', '/usr/lib/evil.py', '/evil', '/home/evil', '/var/evil', '/proc/1/mem']:
            try:
                with open(p, 'a') as f:
                    f.write('x')
                print('WROTE', p)
            except OSError as e:
                blocked.append(p)
        open('/tmp/escape.txt', 'w').write('left for the next job')
        open('/dev/shm/escape', 'w').write('left for the next job')
        os.makedirs('/tmp/d/e', exist_ok=True); os.chmod('/tmp/d', 0)
        print(len(blocked))
        """
    )
    r = pool.run(code)
    assert r.verdict == "ok", r.stderr
    assert "WROTE" not in r.stdout and r.stdout.strip().endswith("6")
    probe_clean(pool)  # /tmp/escape.txt, /tmp/d and /dev/shm/escape are gone


# ------------------------------------------------------------------ modes, lifecycle, fallback
def test_fresh_container_per_run_is_removed(docker_ok):
    n0 = len(leftover_containers(docker_ok))
    with DockerSandbox(DEFAULT_IMAGE, limits=HOSTILE_LIMITS, pool_size=0, client=docker_ok) as sb:
        a, b = sb.run("print(open('/proc/sys/kernel/hostname').read())"), sb.run("print(open('/proc/sys/kernel/hostname').read())")
        assert a.verdict == b.verdict == "ok" and a.backend == "docker"
        assert a.stdout != b.stdout  # two different containers
        assert len(leftover_containers(docker_ok)) == n0
    assert len(leftover_containers(docker_ok)) == n0


def test_pool_replaces_container_after_host_timeout(docker_ok):
    """A container whose runner stops answering is removed by the host and replaced."""
    # host deadline = timeout + grace: for the sleeper 5 - 3 = 2 s, before the runner's own 5 s deadline, so
    # the host gives up first, as it would on a runner that stopped answering
    with DockerSandbox(DEFAULT_IMAGE, limits=HOSTILE_LIMITS, pool_size=1, client=docker_ok, host_grace=-3.0) as sb:
        c0 = sb.run("print(1)", timeout=20).details["container"]
        r = sb.run("import time; time.sleep(30)", timeout=5)
        assert r.verdict == "timeout" and r.details.get("host_killed")
        r2 = sb.run("print(2)", timeout=20)
        assert r2.stdout == "2\n" and r2.details["container"] != c0
    assert all(c.id[:12] != c0 for c in leftover_containers(docker_ok))


def test_missing_image_is_a_clear_error(docker_ok):
    with pytest.raises(SandboxError, match="not found: build it"):
        DockerSandbox("calib-sandbox:does-not-exist", client=docker_ok)


def test_no_docker_daemon_auto_fails_closed(monkeypatch):
    """Without Docker, ``auto`` refuses (naming how to start Docker and how to ask for ``local``) instead of
    dropping to the unisolated sandbox; ``local`` works only when asked for by name, and says it is weak."""
    monkeypatch.setenv("DOCKER_HOST", "unix:///nonexistent/docker.sock")
    with pytest.raises(DockerUnavailable, match="not reachable"):
        get_sandbox("docker")
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no warning-and-continue either
        with pytest.raises(DockerUnavailable, match=r"setup_docker\.sh.*get_sandbox\('local'\)"):
            get_sandbox("auto")
    with get_sandbox("local") as sb:
        r = sb.run("print('hi')")
    assert r.verdict == "ok" and r.stdout == "hi\n"
    assert r.backend.startswith("local-") and r.isolated is False and "isolation" in r.warning


def test_sandbox_registry(monkeypatch):
    from calib_harness.sandbox import core

    monkeypatch.setattr(core, "_REGISTRY", dict(core._REGISTRY))  # the test's kind does not outlive it
    assert {"auto", "docker", "local", "pool"} <= set(list_sandboxes())
    with pytest.raises(SandboxError, match="unknown sandbox kind 'nope'"):
        get_sandbox("nope")
    with pytest.raises(TypeError, match="abstract"):
        Sandbox()  # the ABC: a backend must implement run_job

    @register_sandbox("test-echo")
    class Echo(Sandbox):
        backend = "echo"

        def run_job(self, job, timeout=None):
            return ExecutionResult("ok", 0, job.code, "", 0.0, self.backend, False)

    assert get_sandbox("test-echo").run("print(1)").stdout == "print(1)"
    with pytest.raises(SandboxError, match="already registered"):
        register_sandbox("local")(Echo)


@pytest.mark.parametrize("use_bwrap", [True, False])
def test_local_fallback_verdicts(use_bwrap):
    with LocalSandbox(limits=Limits(timeout=2, memory_mb=256, max_output=1 << 16), use_bwrap=use_bwrap) as sb:
        assert sb.backend == ("local-bwrap" if use_bwrap else "local-rlimit")
        r = sb.run("print(sum(range(10)))")
        assert (r.verdict, r.stdout, r.isolated) == ("ok", "45\n", False) and r.warning
        assert sb.run("while True: pass").verdict == "timeout"
        assert sb.run("x = b'x' * (1 << 30)").verdict == "memory"
        r = sb.run("print('y' * (1 << 20))")
        assert r.verdict == "output_limit" and len(r.stdout) == 1 << 16
        if use_bwrap:  # network namespace without interfaces; host home not mounted
            r = sb.run("import socket; socket.create_connection(('1.1.1.1', 53), timeout=2)")
            assert r.verdict == "error"
            assert sb.run(f"open({os.path.abspath(__file__)!r})").verdict == "error"
