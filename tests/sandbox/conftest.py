"""Sandbox fixtures: one `backend` fixture parametrized over every backend.

The contract suite (test_contract.py) runs unchanged against each of them. The docker
backend comes from `tests/sandbox/docker_env.py`, imported only when that param runs.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from ash.sandbox.base import Limits, SandboxSpec

BACKEND_PARAMS = [
    pytest.param("process-strict", id="process-strict"),
    pytest.param("process-degraded", id="process-degraded"),
    pytest.param("docker", id="docker", marks=[pytest.mark.docker, pytest.mark.slow]),
]
# Degraded mode is not an isolation boundary by design: what only isolation promises runs here.
ISOLATING_BACKEND_PARAMS = [p for p in BACKEND_PARAMS if p.id != "process-degraded"]


@pytest.fixture(scope="session")
def sandbox_root() -> Iterator[Path]:
    """A host directory sandbox uids can pass through (pytest's tmp_path is 0700 root)."""
    root = Path(tempfile.mkdtemp(prefix="ash-sbx-test-", dir="/tmp"))
    root.chmod(0o711)
    yield root
    shutil.rmtree(root, ignore_errors=True)


@pytest.fixture(scope="session")
def workspace_root(sandbox_root: Path) -> Path:
    ws = sandbox_root / "workspaces"
    ws.mkdir(mode=0o711)
    return ws


_backends: dict[str, Any] = {}


def _make_backend(kind: str, sandbox_root: Path) -> Any:
    if kind not in _backends:
        if kind == "docker":
            from tests.sandbox.docker_env import docker_backend_factory

            _backends[kind] = docker_backend_factory()
        else:
            from ash.sandbox.process_backend import ProcessBackend

            _backends[kind] = ProcessBackend(
                base_dir=sandbox_root / kind, strict=(kind == "process-strict")
            )
    return _backends[kind]


@pytest.fixture(params=BACKEND_PARAMS)
def backend_kind(request: pytest.FixtureRequest) -> str:
    return request.param


@pytest.fixture
def backend(backend_kind: str, sandbox_root: Path) -> Any:
    return _make_backend(backend_kind, sandbox_root)


@pytest.fixture(params=["process-strict", "process-degraded"])
def any_process_backend(request: pytest.FixtureRequest, sandbox_root: Path) -> Any:
    """Both modes of the process backend, for what only that backend promises."""
    return _make_backend(request.param, sandbox_root)


@pytest.fixture
async def make_process_sandbox(
    any_process_backend: Any, workspace_root: Path
) -> AsyncIterator[SandboxFactory]:
    async with _factory(any_process_backend, workspace_root) as make:
        yield make


@pytest.fixture
def strict_backend(sandbox_root: Path) -> Any:
    return _make_backend("process-strict", sandbox_root)


@pytest.fixture
def degraded_backend(sandbox_root: Path) -> Any:
    return _make_backend("process-degraded", sandbox_root)


SandboxFactory = Callable[..., Any]


@pytest.fixture
async def make_sandbox(backend: Any, workspace_root: Path) -> AsyncIterator[SandboxFactory]:
    """Create sandboxes on `backend`; every one is destroyed (workspace too) afterwards."""
    async with _factory(backend, workspace_root) as make:
        yield make


@contextlib.asynccontextmanager
async def _factory(backend: Any, workspace_root: Path) -> AsyncIterator[SandboxFactory]:
    made: list[Any] = []

    async def make(*, limits: Limits | None = None, **spec_args: Any) -> Any:
        sid = f"t{uuid.uuid4().hex[:12]}"
        spec = SandboxSpec(
            sandbox_id=sid,
            workspace=workspace_root / sid,
            limits=limits or Limits(memory_bytes=256 << 20, pids=64),
            **spec_args,
        )
        sb = await backend.create(spec)
        made.append(sb)
        return sb

    try:
        yield make
    finally:
        for sb in made:
            with contextlib.suppress(Exception):
                await backend.destroy(sb, keep_workspace=False)


@pytest.fixture
def sandbox_factory(workspace_root: Path) -> Callable[[Any], Any]:
    """For tests that pick their backend themselves: `async with sandbox_factory(b) as make`."""
    return lambda backend: _factory(backend, workspace_root)


def pids_with_arg(marker: str) -> list[int]:
    """Host pids whose command line contains `marker` (to prove processes are gone)."""
    found = []
    for entry in os.scandir("/proc"):
        if entry.name.isdigit():
            with contextlib.suppress(OSError):
                cmd = Path(f"/proc/{entry.name}/cmdline").read_bytes()
                state = Path(f"/proc/{entry.name}/stat").read_text().rsplit(")", 1)[1].split()[0]
                if marker.encode() in cmd and state != "Z":
                    found.append(int(entry.name))
    return found
