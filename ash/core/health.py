"""The /health payload: real counts from the database and the sandbox pools."""

from __future__ import annotations

import os
import socket
import time
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.utils import timezone

import ash
from ash.core import local
from ash.core.models import Runner
from ash.core.services import POOL_KEYS

STARTED_AT = time.monotonic()
COORDINATOR_ID = f"{socket.gethostname()}-{os.getpid()}"


def pool_stats_total() -> dict[str, int]:
    """This process's pool (embedded) plus every live remote runner's last reported pool."""
    total = dict.fromkeys(POOL_KEYS, 0)
    local_pool = local.local_pool_stats()
    if local_pool:
        for key in POOL_KEYS:
            total[key] += int(local_pool.get(key, 0))
    for stats in live_runners().exclude(runner_id=local.local_runner_id() or "").values_list("pool_stats", flat=True):
        for key in POOL_KEYS:
            total[key] += int((stats or {}).get(key, 0))
    if not total["maxCapacity"]:
        total["maxCapacity"] = settings.ASH_MAX_SANDBOXES
    return total


def live_runners() -> Any:
    cutoff = timezone.now() - timedelta(seconds=settings.ASH_RUNNER_DEAD_AFTER_SECONDS)
    return Runner.objects.filter(last_heartbeat_at__gte=cutoff)


def health_payload() -> dict[str, Any]:
    from sessions_app.models import Session

    pool = pool_stats_total()
    return {
        "status": "ok",
        "version": ash.__version__,
        "coordinatorId": COORDINATOR_ID,
        "activeSessions": Session.objects.filter(status=Session.Status.ACTIVE).count(),
        "activeSandboxes": pool["total"] - pool["cold"],
        "remoteRunners": live_runners().exclude(runner_id=local.local_runner_id() or "").count(),
        "uptime": int(time.monotonic() - STARTED_AT),
        "pool": pool,
        "isolation": local.isolation_level(),
    }
