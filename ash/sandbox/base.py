"""The sandbox backend interface: one async API over every isolation technology.

A sandbox is the security boundary for agent code. Backends implement `SandboxBackend`;
everything above (pool, runner, file APIs) depends only on this module.
"""

from __future__ import annotations

import contextlib
import enum
from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol, runtime_checkable

# Paths as the agent sees them, identical for every backend.
WORKSPACE_PATH = "/workspace"
AGENT_PATH = "/agent"
PROXY_DIR_PATH = "/run/ash-proxy"
RUNTIME_PATH = "/opt/ash"
# While waiting for a cgroup to freeze, ask again this often: cgroup v1 tries each task once per
# request, and one caught mid-syscall on a busy machine leaves the group FREEZING for good.
FREEZE_RETRY_SECONDS = 0.05


def compile_runtime_code() -> None:
    """Byte-compile the sandbox runtime's modules where they live (`ash/__init__`, `ash/runtime/`).

    Sandboxes mount that code read-only, so a runtime can never cache what it compiles: without
    this, every sandbox start compiled them all from source again (~70 ms of CPU on the bench
    machine). The server's own imports cover only some of them, and none at all where
    PYTHONDONTWRITEBYTECODE is set. Up-to-date files are skipped; a read-only install keeps
    whatever its installer compiled."""
    import compileall

    import ash

    root = Path(ash.__file__).resolve().parent
    with contextlib.suppress(OSError):
        compileall.compile_file(root / "__init__.py", quiet=2)
        compileall.compile_dir(root / "runtime", quiet=2)


class Isolation(enum.StrEnum):
    STRICT = "strict"  # namespaces + cgroup limits (bwrap) or a container
    DEGRADED = "degraded"  # separate uid + rlimits + process group: NOT a security boundary


class SandboxError(Exception):
    """A sandbox operation failed (the sandbox may be gone)."""


class SandboxGone(SandboxError):
    """The sandbox no longer exists (destroyed, lost or killed)."""


@dataclass(frozen=True)
class Limits:
    memory_bytes: int = 2048 << 20
    cpu: float = 1.0  # cores
    pids: int = 64
    disk_bytes: int = 1024 << 20
    nofile: int = 1024
    tmp_bytes: int = 256 << 20


@dataclass(frozen=True)
class SandboxSpec:
    sandbox_id: str  # unique, [a-zA-Z0-9_-]; used in cgroup and container names
    workspace: Path  # host directory, becomes WORKSPACE_PATH (read-write, the only writable tree)
    agent_dir: Path | None = None  # host directory, becomes AGENT_PATH (read-only)
    env: Mapping[str, str] = field(default_factory=dict)  # on top of the backend's allowlist
    limits: Limits = field(default_factory=Limits)
    proxy_socket_dir: Path | None = None  # host directory, becomes PROXY_DIR_PATH (read-only)
    labels: Mapping[str, str] = field(default_factory=dict)  # tenant, session... for sweeps


@dataclass
class ExecResult:
    exit_code: int
    stdout: bytes
    stderr: bytes
    timed_out: bool = False
    oom_killed: bool = False
    duration_s: float = 0.0


@dataclass
class SandboxStats:
    memory_bytes: int = 0
    pids: int = 0
    oom_kills: int = 0
    disk_bytes: int = 0
    cpu_seconds: float = 0.0


@runtime_checkable
class SandboxProcess(Protocol):
    """A long-lived process inside a sandbox (the agent runtime), spoken to over its stdio."""

    async def write(self, data: bytes) -> None: ...

    async def readline(self) -> bytes:
        """Next stdout line including b"\\n"; b"" at EOF."""
        ...

    async def read_stderr_line(self) -> bytes: ...

    async def wait(self) -> int: ...

    @property
    def returncode(self) -> int | None: ...

    async def kill(self) -> None: ...


@runtime_checkable
class Sandbox(Protocol):
    id: str
    spec: SandboxSpec

    @property
    def uid(self) -> int | None:
        """Host uid that owns the workspace (None where the backend maps ids itself)."""
        ...


class SandboxBackend(Protocol):
    name: str  # "process" | "docker"
    isolation: Isolation

    async def create(self, spec: SandboxSpec) -> Sandbox: ...

    async def spawn(
        self, sb: Sandbox, argv: Sequence[str], *, env: Mapping[str, str] | None = None
    ) -> SandboxProcess: ...

    async def exec(
        self,
        sb: Sandbox,
        argv: Sequence[str],
        *,
        timeout: float,
        cwd: str = WORKSPACE_PATH,
        env: Mapping[str, str] | None = None,
        stdin: bytes | None = None,
        max_output: int = 10 << 20,
    ) -> ExecResult: ...

    async def pause(self, sb: Sandbox) -> None: ...

    async def resume(self, sb: Sandbox) -> None: ...

    async def snapshot(self, sb: Sandbox) -> AsyncIterator[bytes]:
        """A tar stream (zstd-compressed) of the workspace."""
        ...

    async def restore(self, sb: Sandbox, chunks: AsyncIterator[bytes]) -> None: ...

    async def stats(self, sb: Sandbox) -> SandboxStats: ...

    async def destroy(self, sb: Sandbox, *, keep_workspace: bool = True) -> None: ...

    async def alive(self, sb: Sandbox) -> bool: ...
