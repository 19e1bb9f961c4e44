"""What this process hosts: the in-process runner's pool (embedded mode) and its isolation level."""

from __future__ import annotations

from typing import Any, Protocol


class _PoolLike(Protocol):
    def stats(self) -> dict[str, int]: ...


_state: dict[str, Any] = {"pool": None, "runner_id": None, "isolation": None}


def register_local_runner(*, runner_id: str, pool: _PoolLike, isolation: str) -> None:
    _state.update(pool=pool, runner_id=runner_id, isolation=isolation)


def unregister_local_runner() -> None:
    _state.update(pool=None, runner_id=None, isolation=None)


def local_pool_stats() -> dict[str, int] | None:
    pool = _state["pool"]
    return pool.stats() if pool is not None else None


def local_runner_id() -> str | None:
    return _state["runner_id"]


def isolation_level() -> str | None:
    """The local runner's isolation, else the weakest any live runner reported."""
    if _state["isolation"]:
        return _state["isolation"]
    from ash.core.health import live_runners

    levels = set(live_runners().exclude(isolation="").values_list("isolation", flat=True))
    if not levels:
        return None
    return "degraded" if "degraded" in levels else sorted(levels)[0]
