"""The runner's sandbox pool: states, capacity with LRU eviction, keyed pre-warming, counters."""

from ash.sandbox.pool.pool import SandboxPool
from ash.sandbox.pool.types import (
    DropHook,
    EvictHook,
    PoolEntry,
    PoolExhausted,
    RestoreHook,
    SandboxNotFound,
    SandboxState,
    SandboxUnavailable,
    SpecFactory,
    WarmKey,
)

__all__ = [
    "DropHook",
    "EvictHook",
    "PoolEntry",
    "PoolExhausted",
    "RestoreHook",
    "SandboxNotFound",
    "SandboxPool",
    "SandboxState",
    "SandboxUnavailable",
    "SpecFactory",
    "WarmKey",
]
