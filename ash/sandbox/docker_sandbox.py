"""The Docker sandbox record and its workspace-side operations (snapshot, restore, stats, quota).

The workspace is a host directory bind-mounted into the container. Snapshots and restores work
on it from the host with link-safe fd walks (docker_archive), so they also work while the
container is paused or after it died.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import sysconfig
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

import ash
from ash.sandbox import docker_archive
from ash.sandbox.base import (
    RUNTIME_PATH,
    WORKSPACE_PATH,
    SandboxGone,
    SandboxSpec,
    SandboxStats,
)
from ash.sandbox.docker_cgroup import ContainerCgroups
from ash.sandbox.docker_stream import stream_from_thread
from ash.sandbox.quota import DiskGuard, tree_size

log = logging.getLogger(__name__)

AGENT_UID = AGENT_GID = 1000  # `agent` in the image; also the host owner of workspaces

# The whole environment of a sandbox apart from spec.env: nothing is inherited from the host.
BASE_ENV: Mapping[str, str] = {
    "PATH": "/usr/local/bin:/usr/bin:/bin",
    "HOME": WORKSPACE_PATH,
    "USER": "agent",
    "LANG": "C.UTF-8",
    "TMPDIR": "/tmp",
    "PYTHONPATH": f"{RUNTIME_PATH}/src:{RUNTIME_PATH}/site",
    "PYTHONDONTWRITEBYTECODE": "1",
}


def runtime_mounts() -> list[tuple[Path, str]]:
    """(host dir, container dir) pairs for the Ash package and the venv's site-packages."""
    return [
        (Path(ash.__file__).resolve().parent, f"{RUNTIME_PATH}/src/ash"),
        (Path(sysconfig.get_paths()["purelib"]).resolve(), f"{RUNTIME_PATH}/site"),
    ]


@dataclass
class DockerSandbox:
    id: str
    spec: SandboxSpec
    container_id: str
    init_pid: int  # host pid of the container's init: the key to its cgroups
    cgroups: ContainerCgroups | None = field(default=None, repr=False)
    breach: str | None = None  # "disk" once the quota guard killed it
    # Freezing the container while runc is starting an exec deadlocks the engine for this
    # container (`runc init` is frozen inside it, and dockerd waits for runc). So exec starts
    # and freezer transitions (pause, resume, the freeze of a kill) exclude each other.
    gate: asyncio.Condition = field(default_factory=asyncio.Condition, repr=False)
    starting: int = 0  # execs between create and "process running"
    transition: bool = False  # a freezer transition is in progress

    async def begin_start(self) -> None:
        async with self.gate:
            await self.gate.wait_for(lambda: not self.transition)
            self.starting += 1

    async def end_start(self) -> None:
        async with self.gate:
            self.starting -= 1
            self.gate.notify_all()

    @contextlib.asynccontextmanager
    async def freezer_transition(self) -> AsyncIterator[None]:
        async with self.gate:
            await self.gate.wait_for(lambda: self.starting == 0 and not self.transition)
            self.transition = True
        try:
            yield
        finally:
            async with self.gate:
                self.transition = False
                self.gate.notify_all()

    @property
    def uid(self) -> int | None:
        return AGENT_UID


def prepare_workspace(ws: Path) -> None:
    """Create the workspace and hand it to the agent uid (no container runs on it yet)."""
    ws.mkdir(parents=True, exist_ok=True)
    os.chown(ws, AGENT_UID, AGENT_GID, follow_symlinks=False)
    os.chmod(ws, 0o700)
    for _d, dirs, files, dfd in os.fwalk(ws, follow_symlinks=False):
        for name in dirs + files:
            os.chown(name, AGENT_UID, AGENT_GID, dir_fd=dfd, follow_symlinks=False)


class WorkspaceOps(DiskGuard):
    """Mixin of DockerBackend: everything that reads or writes a sandbox's workspace."""

    base_dir: Path
    disk_check_interval: float
    _client: Any
    _sandboxes: dict[str, DockerSandbox]
    _guard: asyncio.Task[None] | None

    async def _call(self, what: str, fn: Any, *args: Any, **kwargs: Any) -> Any: ...
    async def _inspect(self, sb: DockerSandbox) -> dict[str, Any]: ...

    async def snapshot(self, sb: DockerSandbox) -> AsyncIterator[bytes]:  # type: ignore[override]
        """zstd tar of the workspace read on the host without following links (works paused)."""
        ws = Path(sb.spec.workspace)
        async for chunk in stream_from_thread(partial(docker_archive.write_tree_tar, ws)):
            yield chunk

    async def restore(self, sb: DockerSandbox, chunks: AsyncIterator[bytes]) -> None:
        """Replace the workspace by an archive's content, link-safely, owned by the agent uid."""
        self.base_dir.mkdir(parents=True, exist_ok=True)
        spool = self.base_dir / f"restore-{sb.id}-{os.urandom(4).hex()}.tar.zst"
        try:
            with open(spool, "wb") as f:
                async for chunk in chunks:
                    await asyncio.to_thread(f.write, chunk)
            await asyncio.to_thread(self._extract, spool, sb)
        finally:
            spool.unlink(missing_ok=True)

    def _extract(self, spool: Path, sb: DockerSandbox) -> None:
        with open(spool, "rb") as f:
            docker_archive.extract_tree_tar(
                f,
                sb.spec.workspace,
                uid=AGENT_UID,
                gid=AGENT_GID,
                max_bytes=sb.spec.limits.disk_bytes,
            )

    async def stats(self, sb: DockerSandbox) -> SandboxStats:
        info = await self._inspect(sb)
        if info["State"]["Status"] not in ("running", "paused"):
            raise SandboxGone(f"sandbox {sb.id} is not running")
        disk = await asyncio.to_thread(tree_size, Path(sb.spec.workspace))
        if sb.cgroups is not None:
            st = await asyncio.to_thread(sb.cgroups.stats)
        else:  # no local cgroup view: the Engine API (samples for about a second)
            raw = await self._call(
                f"stats {sb.id}", self._client.api.stats, sb.container_id, stream=False
            )
            st = SandboxStats(
                memory_bytes=int(raw.get("memory_stats", {}).get("usage", 0)),
                pids=int(raw.get("pids_stats", {}).get("current", 0)),
            )
        if info["State"].get("OOMKilled"):
            st.oom_kills = max(st.oom_kills, 1)
        st.disk_bytes = disk
        return st

    # ---- disk quota: RLIMIT_FSIZE caps single files, this guard the whole workspace ----

    async def _kill_for_disk(self, sb: DockerSandbox) -> None:
        with contextlib.suppress(SandboxGone):
            # A paused container cannot be killed on dockerd: thaw it first.
            if (await self._inspect(sb))["State"]["Status"] == "paused":
                await self._call(f"resume {sb.id}", self._client.api.unpause, sb.container_id)
            await self._call(f"kill {sb.id}", self._client.api.kill, sb.container_id)
