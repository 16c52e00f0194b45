"""Code sandbox: ``get_sandbox(kind).run(code, files, timeout) -> ExecutionResult``.

Kinds are registered by name (``@register_sandbox``; :func:`list_sandboxes`):

* ``docker``: a fresh container per run;
* ``pool``: a warm Docker pool (``pool_size``, default 2);
* ``auto``: ``pool`` when Docker answers, else :class:`DockerUnavailable` -- it fails closed and says how to
  start Docker (``bash scripts/setup_docker.sh``) or how to ask for ``local`` explicitly;
* ``local``: the weaker local sandbox (bubblewrap if usable, else rlimits), only when asked for by name; its
  results say so (``isolated=False``, ``warning``).

Images are built from this folder by ``sandbox/build_images.sh`` (see :mod:`.images`).
"""

from __future__ import annotations

from .core import (
    VERDICTS,
    DockerUnavailable,
    ExecutionResult,
    Job,
    Limits,
    Sandbox,
    SandboxError,
    get_sandbox,
    list_sandboxes,
    register_sandbox,
)
from .docker_sandbox import BIGCODEBENCH_IMAGE, DEFAULT_IMAGE, DockerSandbox, docker_available, leftover_containers
from .images import build_images
from .local_sandbox import LocalSandbox

__all__ = [
    "VERDICTS",
    "DockerUnavailable",
    "ExecutionResult",
    "Job",
    "Limits",
    "Sandbox",
    "SandboxError",
    "DockerSandbox",
    "LocalSandbox",
    "DEFAULT_IMAGE",
    "BIGCODEBENCH_IMAGE",
    "get_sandbox",
    "list_sandboxes",
    "register_sandbox",
    "docker_available",
    "leftover_containers",
    "build_images",
]
