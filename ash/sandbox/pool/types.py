"""Pool vocabulary: sandbox states, pre-warm keys, pool entries and pool errors."""

from __future__ import annotations

import enum
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ash.sandbox.base import Sandbox, SandboxError, SandboxSpec


class SandboxState(enum.StrEnum):
    COLD = "cold"  # evicted or swept: a record only, no live process
    WARMING = "warming"  # slot reserved, backend.create() in progress
    WARM = "warm"  # pre-warmed, unclaimed, carries no session env or settings
    WAITING = "waiting"  # claimed by a session, idle between turns
    RUNNING = "running"  # a turn or exec is in progress; never evicted


class PoolExhausted(SandboxError):
    """Capacity reached and every slot is running or being created (the API answers 503)."""


class SandboxNotFound(SandboxError, KeyError):
    """No pool entry has this id."""

    def __str__(self) -> str:  # KeyError would repr() the message
        return str(self.args[0]) if self.args else "sandbox not found"


class SandboxUnavailable(SandboxError):
    """The entry has no live sandbox (cold, warming or being evicted)."""


@dataclass(frozen=True, slots=True)
class WarmKey:
    """What a pre-warmed sandbox is interchangeable over: never across tenants or versions."""

    tenant_id: str
    agent_name: str
    agent_version: str | int


@dataclass(eq=False)
class PoolEntry:
    """One slot of the pool; `sandbox` is None while cold or warming."""

    id: str
    state: SandboxState
    key: WarmKey | None
    sandbox: Sandbox | None = None
    spec: SandboxSpec | None = None  # kept while cold: where the workspace was
    session_id: str | None = None
    # Session env and settings live here, not in the sandbox: they reach processes at spawn time.
    env: Mapping[str, str] = field(default_factory=dict)
    settings: Mapping[str, Any] = field(default_factory=dict)
    created_at: float = 0.0
    last_used_at: float = 0.0
    prewarmed: bool = False
    evicting: bool = False
    busy: int = field(default=0, repr=False)  # nested running() holders (turn + exec)

    @property
    def workspace(self) -> Path | None:
        """The host workspace directory (kept on the record after eviction), or None."""
        return self.spec.workspace if self.spec is not None else None

    @property
    def live(self) -> bool:
        return self.sandbox is not None and not self.evicting


SpecFactory = Callable[[str], SandboxSpec]  # sandbox id -> spec (env must be empty)
EvictHook = Callable[[PoolEntry], Awaitable[None]]  # persist the workspace before destroy
RestoreHook = Callable[[PoolEntry], Awaitable[str | None]]  # cold resume; returns the source
DropHook = Callable[[PoolEntry], Awaitable[None]]  # a cold record is forgotten: clean its files
