"""Usage reads: filtered lists and per-type sums, tenant-scoped."""

from __future__ import annotations

import uuid
from datetime import datetime

from django.db.models import QuerySet, Sum

from usage_app.models import UsageEvent

STATS_KEYS = {
    UsageEvent.Type.INPUT_TOKENS: "totalInputTokens",
    UsageEvent.Type.OUTPUT_TOKENS: "totalOutputTokens",
    UsageEvent.Type.CACHE_CREATION_TOKENS: "totalCacheCreationTokens",
    UsageEvent.Type.CACHE_READ_TOKENS: "totalCacheReadTokens",
    UsageEvent.Type.TOOL_CALL: "totalToolCalls",
    UsageEvent.Type.MESSAGE: "totalMessages",
    UsageEvent.Type.COMPUTE_SECONDS: "totalComputeSeconds",
    UsageEvent.Type.COST_USD: "totalCostUsd",
}
# A sum of floats carries binary noise (three 0.012 s rows add up to 0.036000000000000004). Ten
# decimals drop the noise and nothing else: compute time is recorded to the ms, and a token's cost
# is a multiple of 1e-10 USD (the finest, $0.125 per million tokens with the 1.1 US multiplier).
STATS_DECIMALS = 10


def usage_events_filter(
    *,
    tenant_id: str,
    session_id: uuid.UUID | None = None,
    agent_name: str | None = None,
    after: datetime | None = None,
    before: datetime | None = None,
) -> QuerySet[UsageEvent]:
    events = UsageEvent.objects.filter(tenant_id=tenant_id)
    if session_id is not None:
        events = events.filter(session_id=session_id)
    if agent_name:
        events = events.filter(agent_name=agent_name)
    if after is not None:
        events = events.filter(created_at__gte=after)
    if before is not None:
        events = events.filter(created_at__lte=before)
    return events


def usage_event_list(*, limit: int = 100, **filters: object) -> QuerySet[UsageEvent]:
    return usage_events_filter(**filters).order_by("-created_at", "-id")[:limit]  # type: ignore[arg-type]


def usage_stats(**filters: object) -> dict[str, float]:
    stats = dict.fromkeys(STATS_KEYS.values(), 0)
    rows = usage_events_filter(**filters).values("event_type").annotate(total=Sum("value")).order_by()  # type: ignore[arg-type]
    for row in rows:
        key = STATS_KEYS.get(row["event_type"])
        if key:
            stats[key] = round(row["total"] or 0, STATS_DECIMALS)
    return stats
