"""Runner registry writes: register, heartbeat, deregister, and the liveness sweep."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from ash.core.models import Runner

POOL_KEYS = ("total", "cold", "warming", "warm", "waiting", "running", "maxCapacity", "resumeWarmHits", "resumeColdHits", "preWarmHits")


def clean_pool_stats(stats: Any) -> dict[str, int]:
    if not isinstance(stats, dict):
        return {}
    return {k: int(stats[k]) for k in POOL_KEYS if isinstance(stats.get(k), (int, float)) and not isinstance(stats.get(k), bool)}


def runner_register(*, runner_id: str, host: str, port: int, max_sandboxes: int = 100, isolation: str = "") -> Runner:
    runner, _ = Runner.objects.update_or_create(
        runner_id=runner_id,
        defaults={
            "host": host,
            "port": port,
            "max_sandboxes": max_sandboxes,
            "isolation": isolation,
            "last_heartbeat_at": timezone.now(),
        },
    )
    return runner


def runner_heartbeat(*, runner_id: str, stats: dict[str, Any] | None, active_count: int | None = None) -> bool:
    """Record a heartbeat; False when the runner is unknown (it was swept and must re-register)."""
    pool = clean_pool_stats(stats)
    return bool(
        Runner.objects.filter(runner_id=runner_id).update(
            last_heartbeat_at=timezone.now(),
            active_count=pool.get("running", active_count or 0),
            warming_count=pool.get("warming", 0),
            pool_stats=pool,
        )
    )


def runner_deregister(*, runner_id: str) -> bool:
    """Remove a runner; its live sessions become paused (they resume cold elsewhere)."""
    from sessions_app.services import sessions_pause_for_runner

    with transaction.atomic():
        sessions_pause_for_runner(runner_id=runner_id, reason="runner deregistered")
        deleted, _ = Runner.objects.filter(runner_id=runner_id).delete()
    return bool(deleted)


def runners_sweep_dead(*, now: Any = None) -> list[str]:
    """Deregister every runner whose last heartbeat is older than ASH_RUNNER_DEAD_AFTER_SECONDS."""
    now = now or timezone.now()
    cutoff = now - timedelta(seconds=settings.ASH_RUNNER_DEAD_AFTER_SECONDS)
    dead = list(Runner.objects.filter(last_heartbeat_at__lt=cutoff).values_list("runner_id", flat=True))
    for runner_id in dead:
        runner_deregister(runner_id=runner_id)
    return dead
