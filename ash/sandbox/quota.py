"""Workspace disk quota, shared by the backends: RLIMIT_FSIZE caps single files, the periodic
guard here caps the whole workspace (a sandbox over quota is killed by its backend)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from typing import Any

log = logging.getLogger("ash.sandbox")


def tree_size(root: os.PathLike[str] | str) -> int:
    """Bytes allocated below ROOT, walked by directory fds without following links."""
    total = 0
    with contextlib.suppress(FileNotFoundError):
        for _d, _dirs, files, dirfd in os.fwalk(root, follow_symlinks=False):
            total += os.fstat(dirfd).st_blocks * 512
            for name in files:
                with contextlib.suppress(FileNotFoundError):
                    total += os.stat(name, dir_fd=dirfd, follow_symlinks=False).st_blocks * 512
    return total


class DiskGuard:
    """Mixin: every `disk_check_interval` seconds, `check_disk(sb)` each live sandbox.

    The backend provides `_sandboxes` (id → sandbox), `_kill_for_disk(sb)` and sets `_guard = None`.
    """

    disk_check_interval: float
    _guard: asyncio.Task[None] | None
    _sandboxes: dict[str, Any]

    def _ensure_guard(self) -> None:
        if self.disk_check_interval <= 0:
            return
        loop = asyncio.get_running_loop()
        if self._guard is not None and not self._guard.done() and self._guard.get_loop() is loop:
            return
        self._guard = loop.create_task(self._disk_guard(), name=f"ash-disk-guard-{type(self).__name__}")

    async def _disk_guard(self) -> None:
        while self._sandboxes:
            await asyncio.sleep(self.disk_check_interval)
            for sb in list(self._sandboxes.values()):
                with contextlib.suppress(Exception):
                    await self.check_disk(sb)

    async def check_disk(self, sb: Any) -> bool:
        """Enforce the quota now; True if the sandbox was killed for outgrowing it."""
        if getattr(sb, "destroyed", False) or sb.breach is not None:
            return False
        used = await asyncio.to_thread(tree_size, sb.spec.workspace)
        if used <= sb.spec.limits.disk_bytes:
            return False
        log.warning("sandbox %s: workspace uses %d bytes > quota; killing it", sb.id, used)
        sb.breach = "disk"
        await self._kill_for_disk(sb)  # type: ignore[attr-defined]
        return True
