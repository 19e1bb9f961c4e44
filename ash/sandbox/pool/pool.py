"""SandboxPool: creating, claiming (keyed pre-warm), resuming and running sandboxes."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator, Mapping, Sequence
from typing import Any

from ash.sandbox.base import ExecResult, SandboxError, SandboxProcess
from ash.sandbox.pool.core import ALL_EVICTABLE, PoolCore
from ash.sandbox.pool.types import (
    PoolEntry,
    PoolExhausted,
    RestoreHook,
    SandboxState,
    SandboxUnavailable,
    SpecFactory,
    WarmKey,
)

log = logging.getLogger(__name__)


class SandboxPool(PoolCore):
    """Owns every sandbox of one runner process (see PoolCore for capacity and eviction)."""

    def stats(self) -> dict[str, int]:
        """Exactly the API's PoolStats object."""
        counts = dict.fromkeys(SandboxState, 0)
        for entry in self._entries.values():
            counts[entry.state] += 1
        return {
            "total": len(self._entries),
            "cold": counts[SandboxState.COLD],
            "warming": counts[SandboxState.WARMING],
            "warm": counts[SandboxState.WARM],
            "waiting": counts[SandboxState.WAITING],
            "running": counts[SandboxState.RUNNING],
            "maxCapacity": self.max_sandboxes,
            "resumeWarmHits": self.resume_warm_hits,
            "resumeColdHits": self.resume_cold_hits,
            "preWarmHits": self.pre_warm_hits,
        }

    # -- creating, claiming, resuming ----------------------------------------------------------

    async def create(
        self,
        spec_factory: SpecFactory,
        *,
        session_id: str,
        key: WarmKey | None = None,
        env: Mapping[str, str] | None = None,
        settings: Mapping[str, Any] | None = None,
    ) -> PoolEntry:
        """A new sandbox for `session_id` (state waiting); evicts to make room if full."""
        self._check_session_free(session_id)
        entry = await self._reserve(key, ALL_EVICTABLE)
        await self._build(entry, spec_factory)
        self._assign(entry, session_id, env, settings)
        return entry

    async def claim(
        self,
        key: WarmKey,
        session_id: str,
        *,
        spec_factory: SpecFactory,
        env: Mapping[str, str] | None = None,
        settings: Mapping[str, Any] | None = None,
        replenish: bool = True,
    ) -> PoolEntry:
        """A pre-warmed sandbox of exactly `key` if one is free, else a new one.

        The session's env/settings are attached now; the warm sandbox never had any."""
        self._check_session_free(session_id)
        entry = self._take_warm(key)
        if entry is None:
            return await self.create(
                spec_factory, session_id=session_id, key=key, env=env, settings=settings
            )
        self.pre_warm_hits += 1
        self._assign(entry, session_id, env, settings)
        if replenish:
            self._background(self.prewarm(key, 1, spec_factory))
        return entry

    async def prewarm(self, key: WarmKey, count: int, spec_factory: SpecFactory) -> list[PoolEntry]:
        """Create up to `count` warm sandboxes for `key` using free (or cold) slots only."""
        made: list[PoolEntry] = []
        for _ in range(count):
            try:
                entry = await self._reserve(key, frozenset({SandboxState.COLD}))
            except PoolExhausted:
                break  # pre-warming never displaces live sandboxes
            try:
                await self._build(entry, spec_factory)
            except (SandboxError, OSError):
                log.exception("pre-warm of %s failed", key)
                break
            entry.state = SandboxState.WARM
            entry.prewarmed = True
            self._warm.setdefault(key, {})[entry.id] = entry
            made.append(entry)
        return made

    async def resume(
        self,
        session_id: str,
        *,
        spec_factory: SpecFactory,
        key: WarmKey | None = None,
        env: Mapping[str, str] | None = None,
        settings: Mapping[str, Any] | None = None,
        restore: RestoreHook | None = None,
    ) -> tuple[PoolEntry, bool]:
        """(entry, warm). Warm when the session's sandbox is still live; otherwise a NEW
        sandbox (never a pre-warmed one: it must get the session's own workspace) + `restore`."""
        current = self.for_session(session_id)
        if current is not None and current.live:
            self.resume_warm_hits += 1
            current.env = dict(env or {})
            current.settings = dict(settings or {})
            current.last_used_at = self._clock()
            return current, True
        entry = await self.create(
            spec_factory, session_id=session_id, key=key, env=env, settings=settings
        )
        if restore is not None:
            try:
                source = await restore(entry)
            except BaseException:
                await self.destroy(entry.id, keep_workspace=False)
                raise
            if source:
                self.cold_resume_sources[source] = self.cold_resume_sources.get(source, 0) + 1
        self.resume_cold_hits += 1
        return entry, False

    # -- turn state ----------------------------------------------------------------------------

    def mark_running(self, sandbox_id: str) -> PoolEntry:
        entry = self.get(sandbox_id)
        if not entry.live or entry.state not in (SandboxState.WAITING, SandboxState.RUNNING):
            raise SandboxUnavailable(f"sandbox {sandbox_id} is {entry.state}, not claimed and live")
        entry.busy += 1
        entry.state = SandboxState.RUNNING
        entry.last_used_at = self._clock()
        return entry

    def mark_waiting(self, sandbox_id: str) -> PoolEntry:
        entry = self.get(sandbox_id)
        if entry.state is SandboxState.RUNNING:
            entry.busy = max(0, entry.busy - 1)
            if entry.busy == 0:
                entry.state = SandboxState.WAITING
        entry.last_used_at = self._clock()
        return entry

    @contextlib.asynccontextmanager
    async def running(self, sandbox_id: str) -> AsyncIterator[PoolEntry]:
        """Hold the sandbox in `running` (unevictable) for the duration of a turn or exec."""
        entry = self.mark_running(sandbox_id)
        try:
            yield entry
        finally:
            if self._entries.get(sandbox_id) is entry:
                self.mark_waiting(sandbox_id)

    def touch(self, sandbox_id: str) -> None:
        self.get(sandbox_id).last_used_at = self._clock()

    # -- processes (env is the session's own, given at spawn time) -----------------------------

    async def spawn(
        self, sandbox_id: str, argv: Sequence[str], *, env: Mapping[str, str] | None = None
    ) -> SandboxProcess:
        entry = self._live(sandbox_id)
        return await self.backend.spawn(entry.sandbox, argv, env={**entry.env, **(env or {})})

    async def exec(
        self, sandbox_id: str, argv: Sequence[str], *, timeout: float, **kwargs: Any
    ) -> ExecResult:
        env = kwargs.pop("env", None) or {}
        async with self.running(sandbox_id) as entry:
            return await self.backend.exec(
                entry.sandbox, argv, timeout=timeout, env={**entry.env, **env}, **kwargs
            )

    # -- internals -----------------------------------------------------------------------------

    async def _build(self, entry: PoolEntry, spec_factory: SpecFactory) -> None:
        try:
            spec = spec_factory(entry.id)
            if spec.sandbox_id != entry.id:
                raise ValueError("spec_factory must use the sandbox id it is given")
            if spec.env:
                # Env given to create() is baked into the sandbox for every later process;
                # session env must go through spawn() instead, so a sandbox never carries it.
                raise ValueError("pool sandboxes must be created without env")
            entry.spec = spec
            sandbox = await self.backend.create(spec)
        except BaseException:
            self._forget(entry)
            raise
        if self._entries.get(entry.id) is not entry:
            # destroy() was called while the sandbox was being created.
            await self.backend.destroy(sandbox, keep_workspace=False)
            raise SandboxUnavailable(f"sandbox {entry.id} was destroyed while warming")
        entry.sandbox = sandbox
        entry.last_used_at = self._clock()

    def _take_warm(self, key: WarmKey) -> PoolEntry | None:
        bucket = self._warm.get(key)
        while bucket:
            entry = bucket.pop(next(iter(bucket)))
            if entry.state is SandboxState.WARM and entry.live:
                if not bucket:
                    del self._warm[key]
                return entry
        self._warm.pop(key, None)
        return None

    def _check_session_free(self, session_id: str) -> None:
        current = self.for_session(session_id)
        if current is not None and current.state is not SandboxState.COLD:
            raise ValueError(f"session {session_id} already has sandbox {current.id}")

    def _assign(
        self,
        entry: PoolEntry,
        session_id: str,
        env: Mapping[str, str] | None,
        settings: Mapping[str, Any] | None,
    ) -> None:
        old = self.for_session(session_id)
        if old is not None and old is not entry:
            if old.sandbox is not None:
                # Two concurrent creates for one session (a caller bug): keep the newest.
                log.error("session %s had live sandbox %s; destroying it", session_id, old.id)
                self._background(self.destroy(old.id))
            else:
                self._forget(old)  # a superseded cold record; its snapshot is the session's
        entry.session_id = session_id
        entry.env = dict(env or {})
        entry.settings = dict(settings or {})
        entry.state = SandboxState.WAITING
        entry.last_used_at = self._clock()
        self._by_session[session_id] = entry.id

    def _live(self, sandbox_id: str) -> PoolEntry:
        entry = self.get(sandbox_id)
        if not entry.live or entry.state not in (SandboxState.WAITING, SandboxState.RUNNING):
            raise SandboxUnavailable(f"sandbox {sandbox_id} is {entry.state}")
        return entry
