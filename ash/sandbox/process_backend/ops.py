"""Pause/resume, snapshot/restore, stats and the disk-quota guard of ProcessBackend.

Disk quota, as chosen for this kind of host: RLIMIT_FSIZE caps any single file at the
quota (hard ENOSPC-like failure, EFBIG), and a periodic fd-based walk kills a sandbox whose
workspace outgrows the quota. A loop-mounted ext4 image per workspace would give a hard
ENOSPC, but it turns the workspace into a mount that must stay mounted for the file APIs
and snapshots, needs mount privileges and a loop device per session, and loses the plain
"workspace is a directory" contract that cold resume relies on; tmpfs `size=` costs RAM
and vanishes with the sandbox. /tmp inside the sandbox is a size-limited tmpfs whose pages
are charged to the memory cgroup.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import secrets
import shutil
import signal
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import TYPE_CHECKING

from ..base import FREEZE_RETRY_SECONDS, SandboxError, SandboxStats
from ..quota import DiskGuard, tree_size
from . import archive
from .sandbox import ProcessSandbox

if TYPE_CHECKING:
    from ..cgroups import CgroupDriver

log = logging.getLogger(__name__)

FREEZE_TIMEOUT = 5.0


class StateOps(DiskGuard):
    _sandboxes: dict[str, ProcessSandbox]
    _guard: asyncio.Task[None] | None
    disk_check_interval: float
    driver: CgroupDriver | None

    def _live(self, sb: ProcessSandbox) -> None: ...

    def become(self, sb: ProcessSandbox, *, pdeathsig: bool) -> list[str]: ...

    # ---- pause / resume --------------------------------------------------------------

    async def pause(self, sb: ProcessSandbox) -> None:  # type: ignore[override]
        self._live(sb)
        if sb.paused:
            return
        if sb.group is None:
            # No freezer: stop each process of the uid. Racy against fork, hence degraded.
            sb.signal_all(signal.SIGSTOP)
            sb.paused = True
            return
        sb.group.freeze()
        sb.paused = True
        deadline = time.monotonic() + FREEZE_TIMEOUT
        next_ask = time.monotonic() + FREEZE_RETRY_SECONDS
        while not sb.group.is_frozen():
            now = time.monotonic()
            if now > deadline:
                sb.group.thaw()
                sb.paused = False
                raise SandboxError(f"sandbox {sb.id} did not freeze within {FREEZE_TIMEOUT}s")
            if now > next_ask:
                sb.group.freeze()
                next_ask = now + FREEZE_RETRY_SECONDS
            await asyncio.sleep(0.001)

    async def resume(self, sb: ProcessSandbox) -> None:  # type: ignore[override]
        self._live(sb)
        if not sb.paused:
            return
        if sb.group is None:
            sb.signal_all(signal.SIGCONT)
        else:
            sb.group.thaw()
        sb.paused = False

    # ---- snapshot / restore ----------------------------------------------------------

    async def snapshot(self, sb: ProcessSandbox) -> AsyncIterator[bytes]:  # type: ignore[override]
        """A tar.zst stream of the workspace, made as the sandbox uid (works while paused)."""
        self._live(sb)
        argv = self.become(sb, pdeathsig=True) + archive.snapshot_argv(Path(sb.spec.workspace))
        proc = await asyncio.create_subprocess_exec(
            *argv,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            env={"PATH": "/usr/bin:/bin", "LC_ALL": "C"},
            cwd="/",
        )
        assert proc.stdout is not None and proc.stderr is not None
        err_task = asyncio.ensure_future(proc.stderr.read())
        finished = False
        try:
            while chunk := await proc.stdout.read(archive.SNAPSHOT_CHUNK):
                yield chunk
            code = await proc.wait()
            err = await err_task
            finished = True
        finally:
            if not finished:
                with contextlib.suppress(ProcessLookupError):
                    proc.kill()
                await proc.wait()
                err_task.cancel()
        # GNU tar: 1 = files changed while read (a live workspace), 2 = some unreadable.
        if code == 1 or code == 2:
            log.warning("snapshot of %s incomplete (tar %s): %s", sb.id, code, err[-500:])
        elif code != 0:
            raise SandboxError(f"snapshot of {sb.id} failed (tar {code}): {err[-500:]!r}")

    async def restore(self, sb: ProcessSandbox, chunks: AsyncIterator[bytes]) -> None:  # type: ignore[override]
        """Replace the workspace with the archive's content; nothing can land outside it."""
        self._live(sb)
        ws = Path(sb.spec.workspace)
        token = secrets.token_hex(4)
        tmp_archive = sb.state_dir / f"restore-{token}.tar.zst"
        # Staging sits next to the workspace (same filesystem, so entries can be renamed
        # in) in a root-owned directory the sandbox cannot reach.
        staging = ws.parent / f".{ws.name}.restore-{token}"
        try:
            with open(tmp_archive, "wb") as f:
                async for chunk in chunks:
                    await asyncio.to_thread(f.write, chunk)
            staging.mkdir(mode=0o700)
            if sb.own_uid:
                os.chown(staging, sb.host_uid, sb.host_uid)
            limit = sb.spec.limits.disk_bytes
            await asyncio.to_thread(archive.scan_archive, tmp_archive, limit=limit)
            await self._extract_as_uid(sb, tmp_archive, staging)
            await asyncio.to_thread(archive.replace_contents, ws, staging)
        finally:
            with contextlib.suppress(FileNotFoundError):
                tmp_archive.unlink()
            shutil.rmtree(staging, ignore_errors=True)

    async def _extract_as_uid(self, sb: ProcessSandbox, tar_zst: Path, staging: Path) -> None:
        argv = self.become(sb, pdeathsig=True) + archive.extract_argv(staging)
        with open(tar_zst, "rb") as src:  # opened by us: the uid never sees the state dir
            proc = await asyncio.create_subprocess_exec(
                *argv,
                stdin=src,
                stdout=asyncio.subprocess.DEVNULL,
                stderr=asyncio.subprocess.PIPE,
                env={"PATH": "/usr/bin:/bin", "LC_ALL": "C"},
                cwd="/",
            )
            _, err = await proc.communicate()
        if proc.returncode != 0:
            raise SandboxError(f"restore of {sb.id} failed (tar {proc.returncode}): {err[-500:]!r}")

    # ---- stats and the disk guard ----------------------------------------------------

    async def stats(self, sb: ProcessSandbox) -> SandboxStats:  # type: ignore[override]
        self._live(sb)
        disk = await asyncio.to_thread(tree_size, Path(sb.spec.workspace))
        g = sb.group
        if g is None:
            return SandboxStats(disk_bytes=disk, pids=len(sb.host_pids()))
        return SandboxStats(
            memory_bytes=g.memory_bytes(),
            pids=g.pid_count(),
            oom_kills=g.oom_kills(),
            disk_bytes=disk,
            cpu_seconds=g.cpu_seconds(),
        )

    async def _kill_for_disk(self, sb: ProcessSandbox) -> None:
        if sb.group is not None:
            sb.group.kill_all()
            if sb.paused:
                sb.group.thaw()
        sb.signal_all(signal.SIGKILL)
        for proc in list(sb.procs):
            proc.signal(signal.SIGKILL)
