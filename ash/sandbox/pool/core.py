"""Pool state and the ways sandboxes leave it: eviction for room, idle sweep, destroy."""

from __future__ import annotations

import asyncio
import logging
import secrets
import time
from collections.abc import Callable
from typing import Any

from ash.sandbox.base import SandboxBackend
from ash.sandbox.pool.types import (
    DropHook,
    EvictHook,
    PoolEntry,
    PoolExhausted,
    SandboxNotFound,
    SandboxState,
    SandboxUnavailable,
    WarmKey,
)

log = logging.getLogger(__name__)

# Eviction order when the pool is full: cold records first, then warm, then waiting; never running.
_EVICT_RANK = {SandboxState.COLD: 0, SandboxState.WARM: 1, SandboxState.WAITING: 2}
ALL_EVICTABLE = frozenset(_EVICT_RANK)


class PoolCore:
    """Entries, capacity and eviction. State changes are synchronous (atomic under asyncio);
    only making room is serialised, by one lock, because eviction awaits snapshots."""

    def __init__(
        self,
        backend: SandboxBackend,
        *,
        max_sandboxes: int = 1000,
        idle_timeout: float = 1800.0,
        on_evict: EvictHook | None = None,
        on_drop: DropHook | None = None,
        clock: Callable[[], float] = time.monotonic,
        id_prefix: str = "sb",
    ) -> None:
        if max_sandboxes < 1:
            raise ValueError("max_sandboxes must be >= 1")
        self.backend = backend
        self.max_sandboxes = max_sandboxes
        self.idle_timeout = idle_timeout
        self._on_evict = on_evict
        self._on_drop = on_drop
        self._clock = clock
        self._id_prefix = id_prefix
        self._entries: dict[str, PoolEntry] = {}
        self._warm: dict[WarmKey, dict[str, PoolEntry]] = {}  # insertion order = claim order
        self._by_session: dict[str, str] = {}
        self._room_lock = asyncio.Lock()
        self._tasks: set[asyncio.Task[Any]] = set()
        self.resume_warm_hits = 0
        self.resume_cold_hits = 0
        self.pre_warm_hits = 0
        self.cold_resume_sources: dict[str, int] = {}

    # -- lookups -------------------------------------------------------------------------------

    def get(self, sandbox_id: str) -> PoolEntry:
        try:
            return self._entries[sandbox_id]
        except KeyError:
            raise SandboxNotFound(f"no sandbox {sandbox_id!r} in the pool") from None

    def for_session(self, session_id: str) -> PoolEntry | None:
        """The session's entry (live or cold), if the pool knows it."""
        sid = self._by_session.get(session_id)
        return self._entries.get(sid) if sid else None

    def entries(self) -> list[PoolEntry]:
        return list(self._entries.values())

    # -- eviction, sweeps, teardown ------------------------------------------------------------

    async def evict(self, sandbox_id: str) -> None:
        """Persist (on_evict) then destroy a waiting sandbox; its record becomes cold."""
        entry = self.get(sandbox_id)
        if entry.state is not SandboxState.WAITING or entry.evicting:
            raise SandboxUnavailable(f"sandbox {sandbox_id} is {entry.state}; only waiting ones")
        await self._to_cold(entry)

    async def sweep_idle(self, now: float | None = None) -> list[str]:
        """Send waiting sandboxes idle longer than idle_timeout to cold; warm ones are kept."""
        now = self._clock() if now is None else now
        idle = [
            e
            for e in self._entries.values()
            if e.state is SandboxState.WAITING
            and not e.evicting
            and now - e.last_used_at > self.idle_timeout
        ]
        swept: list[str] = []
        for entry in idle:
            # Re-check: a turn may have started while an earlier entry was being persisted.
            if entry.state is not SandboxState.WAITING or entry.evicting:
                continue
            try:
                await self._to_cold(entry)
            except Exception:
                log.exception("idle sweep could not persist sandbox %s; kept", entry.id)
                continue
            swept.append(entry.id)
        return swept

    async def drop_cold(self, older_than: float, now: float | None = None) -> list[str]:
        """Forget cold records untouched for `older_than` seconds (on_drop cleans files)."""
        now = self._clock() if now is None else now
        old = [
            e
            for e in self._entries.values()
            if e.state is SandboxState.COLD and now - e.last_used_at > older_than
        ]
        for entry in old:
            await self._drop_record(entry)
        return [e.id for e in old]

    async def destroy(self, sandbox_id: str, *, keep_workspace: bool = True) -> None:
        """Remove the entry for good (session stopped or deleted), whatever its state."""
        entry = self._entries.get(sandbox_id)
        if entry is None:
            return
        self._forget(entry)
        if entry.sandbox is not None:
            await self._destroy_sandbox(entry, keep_workspace=keep_workspace)

    async def close(self, *, persist: bool = False) -> None:
        """Shut down: cancel pre-warming, optionally persist claimed sandboxes, destroy all."""
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        for entry in list(self._entries.values()):
            if persist and entry.state in (SandboxState.WAITING, SandboxState.RUNNING):
                try:
                    await self._to_cold(entry)
                except Exception:
                    log.exception("could not persist sandbox %s at shutdown", entry.id)
            await self.destroy(entry.id)

    # -- internals -----------------------------------------------------------------------------

    async def _reserve(self, key: WarmKey | None, evictable: frozenset[SandboxState]) -> PoolEntry:
        async with self._room_lock:
            failed: set[str] = set()
            while len(self._entries) >= self.max_sandboxes:
                victim = self._pick_victim(evictable, failed)
                if victim is None:
                    raise PoolExhausted(
                        "Sandbox capacity reached and no evictable sandboxes (all running)"
                    )
                try:
                    await self._evict_for_room(victim)
                except Exception:
                    log.exception("eviction of sandbox %s failed; trying another", victim.id)
                    failed.add(victim.id)
            now = self._clock()
            entry = PoolEntry(
                id=f"{self._id_prefix}-{secrets.token_hex(8)}",
                state=SandboxState.WARMING,
                key=key,
                created_at=now,
                last_used_at=now,
            )
            self._entries[entry.id] = entry
            return entry

    def _pick_victim(
        self, evictable: frozenset[SandboxState], failed: set[str]
    ) -> PoolEntry | None:
        candidates = [
            e
            for e in self._entries.values()
            if e.state in evictable and not e.evicting and e.id not in failed
        ]
        if not candidates:
            return None
        return min(candidates, key=lambda e: (_EVICT_RANK[e.state], e.last_used_at))

    async def _evict_for_room(self, victim: PoolEntry) -> None:
        if victim.state is SandboxState.COLD:
            await self._drop_record(victim)
        elif victim.state is SandboxState.WARM:
            # A pre-warmed sandbox holds nothing of a session: discard it entirely.
            await self.destroy(victim.id, keep_workspace=False)
        else:
            await self._to_cold(victim)

    async def _to_cold(self, entry: PoolEntry) -> None:
        entry.evicting = True
        try:
            if self._on_evict is not None:
                await self._on_evict(entry)
        except BaseException:
            entry.evicting = False
            raise
        if entry.sandbox is not None:
            await self._destroy_sandbox(entry, keep_workspace=True)
        entry.sandbox = None
        entry.state = SandboxState.COLD
        entry.env = {}
        entry.busy = 0
        entry.evicting = False
        entry.last_used_at = self._clock()

    async def _destroy_sandbox(self, entry: PoolEntry, *, keep_workspace: bool) -> None:
        sandbox, entry.sandbox = entry.sandbox, None
        if sandbox is None:
            return
        try:
            await self.backend.destroy(sandbox, keep_workspace=keep_workspace)
        except Exception:
            log.exception("backend could not destroy sandbox %s", entry.id)

    async def _drop_record(self, entry: PoolEntry) -> None:
        self._forget(entry)
        if self._on_drop is not None:
            try:
                await self._on_drop(entry)
            except Exception:
                log.exception("on_drop failed for cold sandbox %s", entry.id)

    def _forget(self, entry: PoolEntry) -> None:
        entry.evicting = True
        if self._entries.get(entry.id) is entry:
            del self._entries[entry.id]
        if entry.key is not None and entry.key in self._warm:
            self._warm[entry.key].pop(entry.id, None)
        if entry.session_id and self._by_session.get(entry.session_id) == entry.id:
            del self._by_session[entry.session_id]

    def _background(self, coro: Any) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._background_done)

    def _background_done(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("background pre-warm failed", exc_info=task.exception())
