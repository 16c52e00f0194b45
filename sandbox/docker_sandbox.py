"""Docker backend (``docker`` SDK): a fresh container per run, or a warm pool of long-lived containers.

Every container: no network, memory (= memory+swap), pids and CPU limits, RLIMIT_FSIZE/NOFILE/CORE ulimits,
read-only root with a size-limited tmpfs on /tmp, user 10001, all capabilities dropped,
``no-new-privileges``, and a label so leftovers can be found.  PID 1 is the job runner (``runner.py``,
sent in as ``python3 -c``); jobs go in as JSON lines over a stdin attach socket, and the answers come back
through the SDK's demultiplexed attach stream (``attach(stream=True, demux=True)``), read by one thread per
container.  The runner forks a fresh
process per job in a fresh directory, kills the whole PID namespace and wipes /tmp after each job, and
enforces the wall-clock timeout and output caps; the host enforces a second, looser deadline and replaces
(removes) a container that stops answering.  Containers are always removed (``close()``, context manager,
``atexit``).

Kinds registered here: ``docker`` (fresh container per run), ``pool`` (warm pool, ``pool_size`` 2) and
``auto`` (``pool`` when Docker answers; otherwise it FAILS with :class:`DockerUnavailable`, naming how to start
Docker or how to ask for the weaker ``local`` kind explicitly -- it never falls back silently).
"""

from __future__ import annotations

import atexit
import json
import logging
import queue
import threading
import time
import weakref
from concurrent.futures import ThreadPoolExecutor
from typing import Iterable, Mapping

from .core import RUNNER_SOURCE, DockerUnavailable, ExecutionResult, Job, Limits, Sandbox, SandboxError, job_payload, register_sandbox, to_result

logger = logging.getLogger(__name__)

DEFAULT_IMAGE = "calib-sandbox:py311"
BIGCODEBENCH_IMAGE = "calib-sandbox:bigcodebench"
LABEL = "calib_harness.sandbox"
SANDBOX_UID = "10001:10001"
HOST_GRACE_S = 5.0


def docker_client(timeout: int = 60):
    """A docker SDK client, or DockerUnavailable with the reason."""
    try:
        import docker
    except ImportError as exc:  # pragma: no cover - docker is a dependency
        raise DockerUnavailable("the 'docker' Python package is not installed") from exc
    try:
        client = docker.from_env(timeout=timeout)
        client.ping()
        return client
    except Exception as exc:
        raise DockerUnavailable(
            f"Docker daemon not reachable ({exc}); start it with `bash scripts/setup_docker.sh` (installs Docker, "
            "starts dockerd and builds the sandbox images), or ask for the weaker local sandbox explicitly: "
            "get_sandbox('local') / code_exec sandbox='local'"
        ) from exc


def docker_available() -> bool:
    try:
        docker_client(timeout=5).close()
        return True
    except DockerUnavailable:
        return False


def image_exists(image: str, client=None) -> bool:
    import docker

    c = client or docker_client()
    try:
        c.images.get(image)
        return True
    except docker.errors.ImageNotFound:
        return False


def leftover_containers(client=None) -> list:
    """Containers (any state) this package created and has not removed."""
    c = client or docker_client()
    return c.containers.list(all=True, filters={"label": LABEL})


class _Container:
    """One sandbox container with the runner as PID 1 and an attached stdin/stdout socket."""

    def __init__(self, client, image: str, limits: Limits, extra_env: Mapping[str, str] | None = None, start_timeout: float = 60.0):
        import docker

        self.client = client
        self.limits = limits
        self.container = None
        self._stdin = None
        self._chunks: queue.Queue[bytes | None] = queue.Queue()  # runner stdout chunks; None = end of stream
        self._eof = False
        self._out = bytearray()  # runner stdout not yet split into lines (JSON lines)
        self._err = bytearray()  # runner stderr (diagnostics)
        env = {"PYTHONDONTWRITEBYTECODE": "1", "SANDBOX_WORKROOT": "/tmp"}
        env.update(extra_env or {})
        fsize = int(limits.file_size_mb) << 20
        t0 = time.monotonic()
        try:
            self.container = client.containers.create(
                image,
                command=["python3", "-I", "-c", RUNNER_SOURCE, "serve"],
                user=SANDBOX_UID,
                stdin_open=True,
                tty=False,
                network_mode="none",
                mem_limit=f"{int(limits.memory_mb)}m",
                memswap_limit=f"{int(limits.memory_mb)}m",
                pids_limit=int(limits.pids),
                nano_cpus=int(float(limits.cpus) * 1e9),
                read_only=True,
                tmpfs={"/tmp": f"rw,nosuid,nodev,exec,size={int(limits.tmpfs_mb)}m,mode=1777"},
                shm_size=f"{min(64, int(limits.tmpfs_mb))}m",
                cap_drop=["ALL"],
                security_opt=["no-new-privileges"],
                ulimits=[
                    docker.types.Ulimit(name="fsize", soft=fsize, hard=fsize),
                    docker.types.Ulimit(name="nofile", soft=1024, hard=1024),
                    docker.types.Ulimit(name="core", soft=0, hard=0),
                ],
                environment=env,
                working_dir="/tmp",
                labels={LABEL: "1"},
                detach=True,
            )
            # attach before start so that the runner's hello line is not missed: stdin through a raw attach
            # socket, stdout/stderr through the SDK's demultiplexed stream, drained by a reader thread
            self._stdin = client.api.attach_socket(self.container.id, params={"stdin": 1, "stream": 1})
            frames = client.api.attach(self.container.id, stdout=True, stderr=True, stream=True, logs=False, demux=True)
            threading.Thread(target=self._drain, args=(frames,), name=f"sandbox-{self.container.short_id}", daemon=True).start()
            self.container.start()
            hello = self._read_line(time.monotonic() + start_timeout)
            if hello is None or not json.loads(hello).get("ready"):
                raise SandboxError(f"sandbox runner did not start in {image}: {self._err.decode(errors='replace')[-2000:]}")
        except docker.errors.ImageNotFound as exc:
            self.remove()
            raise SandboxError(f"sandbox image {image!r} not found: build it with sandbox/build_images.sh (scripts/setup_docker.sh)") from exc
        except Exception:
            self.remove()
            raise
        self.start_s = time.monotonic() - t0
        self.jobs_done = 0

    # -- attach-stream plumbing -------------------------------------------------------------------
    def _drain(self, frames) -> None:
        """Reader thread: move the SDK's ``(stdout, stderr)`` chunks into the line queue / stderr buffer."""
        try:
            for out, err in frames:
                if out:
                    self._chunks.put(out)
                if err:
                    self._err.extend(err)
        except Exception as exc:  # the stream dies with the container; anything else is logged
            if self.container is not None:
                logger.debug("sandbox attach stream ended: %s", exc)
        finally:
            self._chunks.put(None)

    def _read_line(self, deadline: float) -> bytes | None:
        """Next stdout line of the runner, or None on end of stream or deadline."""
        while b"\n" not in self._out:
            remaining = deadline - time.monotonic()
            if self._eof or remaining <= 0:
                return None
            try:
                chunk = self._chunks.get(timeout=remaining)
            except queue.Empty:
                return None
            if chunk is None:
                self._eof = True
                return None
            self._out += chunk
        i = self._out.index(b"\n")
        line = bytes(self._out[:i])
        del self._out[: i + 1]
        return line

    def request(self, payload: dict, host_timeout: float) -> dict | None:
        sock = getattr(self._stdin, "_sock", self._stdin)
        sock.settimeout(30)
        sock.sendall(json.dumps(payload).encode() + b"\n")
        line = self._read_line(time.monotonic() + host_timeout)
        if line is None:
            return None
        self.jobs_done += 1
        return json.loads(line)

    def oom_killed(self) -> bool:
        import docker

        try:
            self.container.reload()
            return bool(self.container.attrs.get("State", {}).get("OOMKilled"))
        except docker.errors.DockerException as exc:
            logger.warning("could not inspect sandbox container %s: %s", self.container.short_id, exc)
            return False

    def remove(self) -> None:
        """Remove the container (this ends the attach stream and its reader thread), then close stdin."""
        import docker

        container, self.container = self.container, None
        if container is not None:
            try:
                container.remove(force=True)
            except docker.errors.NotFound:
                pass
            except docker.errors.DockerException as exc:
                logger.warning("could not remove sandbox container %s: %s", container.short_id, exc)
        if self._stdin is not None:
            try:
                self._stdin.close()
            except OSError:
                pass
            self._stdin = None


@register_sandbox("docker")
class DockerSandbox(Sandbox):
    """Docker backend.  ``pool_size=0``: a fresh container per run (created, used once, removed).
    ``pool_size=N``: N warm containers reused across runs (each run still a fresh process and directory)."""

    isolated = True

    def __init__(self, image: str = DEFAULT_IMAGE, limits: Limits | None = None, pool_size: int = 0, env: Mapping[str, str] | None = None, client=None, host_grace: float = HOST_GRACE_S):
        """host_grace: seconds past the job timeout after which the host stops waiting for the runner, removes
        the container and (pool) starts a replacement."""
        super().__init__(limits)
        self.host_grace = float(host_grace)
        if pool_size < 0:
            raise SandboxError(f"pool_size must be >= 0, got {pool_size}")
        self.image = image
        self.pool_size = int(pool_size)
        self.env = dict(env or {})
        self.backend = "docker-pool" if self.pool_size else "docker"
        self.client = client or docker_client()
        if not image_exists(image, self.client):
            raise SandboxError(f"sandbox image {image!r} not found: build it with `sandbox/build_images.sh` (or scripts/setup_docker.sh)")
        self._pool: queue.Queue[_Container] = queue.Queue()
        self._all: set[_Container] = set()
        self._lock = threading.Lock()
        self._closed = False
        _LIVE.add(self)
        if self.pool_size:
            with ThreadPoolExecutor(max_workers=self.pool_size) as ex:
                for c in ex.map(lambda _: self._new_container(), range(self.pool_size)):
                    self._pool.put(c)

    def _new_container(self) -> _Container:
        c = _Container(self.client, self.image, self.limits, self.env)
        with self._lock:
            self._all.add(c)
        return c

    def _drop(self, c: _Container) -> None:
        with self._lock:
            self._all.discard(c)
        c.remove()

    def run_job(self, job: Job, timeout: float | None = None) -> ExecutionResult:
        if self._closed:
            raise SandboxError("sandbox is closed")
        limits = self._limits_for(timeout)
        payload = job_payload(job, limits, self.env)
        t0 = time.monotonic()
        if self.pool_size:
            try:
                c = self._pool.get(timeout=max(600.0, limits.timeout * 4))
            except queue.Empty:
                raise SandboxError(f"no sandbox container became free in the pool of {self.pool_size} (replacements failing?)") from None
        else:
            c = self._new_container()
        keep = bool(self.pool_size)
        try:
            raw = c.request(payload, max(0.5, limits.timeout + self.host_grace))
            extra = {"container": c.container.id[:12] if c.container else None, "wall_s": None}
            if raw is None:  # runner stuck or dead: the host kills the container
                keep = False
                oom = c.oom_killed()
                raw = {
                    "exit_code": None,
                    "timed_out": not oom,
                    "oom": oom,
                    "duration": time.monotonic() - t0,
                    "stderr": "",
                    "stdout": "",
                }
                extra["host_killed"] = True
                extra["runner_stderr"] = c._err.decode(errors="replace")[-2000:]
            elif raw.get("id") != payload["id"]:
                keep = False
                raw = {"error": f"runner answered job {raw.get('id')!r} to {payload['id']!r}"}
            extra["wall_s"] = time.monotonic() - t0
            return to_result(raw, self.backend, True, None, extra)
        finally:
            if keep:
                self._pool.put(c)
            else:
                self._drop(c)
                if self.pool_size and not self._closed:
                    self._pool.put(self._new_container())  # raises (clearly) if Docker/the image went away

    def run_many(self, jobs: Iterable[Job], timeout: float | None = None, progress: bool = False, desc: str = "sandbox") -> list[ExecutionResult]:
        jobs = list(jobs)
        workers = max(1, self.pool_size or 1)
        bar = None
        if progress:
            from tqdm.auto import tqdm

            bar = tqdm(total=len(jobs), desc=desc)

        def one(j: Job) -> ExecutionResult:
            r = self.run_job(j, timeout=timeout)
            if bar is not None:
                bar.update(1)
            return r

        try:
            if workers == 1:
                return [one(j) for j in jobs]
            with ThreadPoolExecutor(max_workers=workers) as ex:
                return list(ex.map(one, jobs))
        finally:
            if bar is not None:
                bar.close()

    def close(self) -> None:
        self._closed = True
        with self._lock:
            cs = list(self._all)
            self._all.clear()
        for c in cs:
            c.remove()
        while not self._pool.empty():
            try:
                self._pool.get_nowait()
            except queue.Empty:
                break
        _LIVE.discard(self)


_LIVE: "weakref.WeakSet[DockerSandbox]" = weakref.WeakSet()


@register_sandbox("pool")
def pool_sandbox(image: str = DEFAULT_IMAGE, limits: Limits | None = None, pool_size: int = 2, **kwargs) -> DockerSandbox:
    """``pool``: a :class:`DockerSandbox` with ``pool_size`` warm containers (default 2)."""
    if pool_size < 1:
        raise SandboxError(f"the pool sandbox needs pool_size >= 1, got {pool_size}; use kind 'docker' for none")
    return DockerSandbox(image=image, limits=limits, pool_size=pool_size, **kwargs)


@register_sandbox("auto")
def auto_sandbox(image: str = DEFAULT_IMAGE, limits: Limits | None = None, pool_size: int = 2, **kwargs) -> DockerSandbox:
    """``auto``: the Docker pool when the daemon answers; otherwise :class:`DockerUnavailable` (fail closed).

    The weaker local sandbox is never chosen here: ask for it by name (``get_sandbox("local")``)."""
    client = kwargs.pop("client", None) or docker_client()  # raises DockerUnavailable with how to fix it
    return pool_sandbox(image=image, limits=limits, pool_size=pool_size, client=client, **kwargs)


@atexit.register
def _close_all() -> None:
    for s in list(_LIVE):
        try:
            s.close()
        except Exception as exc:  # at interpreter exit: report, never raise
            logger.warning("closing a sandbox at exit failed: %s", exc)
