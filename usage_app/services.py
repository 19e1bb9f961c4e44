"""Usage writes: metered model calls and per-turn counters, committed synchronously."""

from __future__ import annotations

from ash import sql
from usage_app.models import UsageEvent


def usage_events_record(*, tenant_id: str, session_id: str, agent_name: str, model: str = "", values: dict[str, float]) -> int:
    """Insert one row per non-zero VALUES entry (event type → value) in one transaction."""
    rows = [
        UsageEvent(tenant_id=tenant_id, session_id=session_id, agent_name=agent_name, event_type=event_type, value=value, model=model)
        for event_type, value in values.items()
        if value
    ]
    sql.insert(rows)  # one statement: atomic on its own, or queued in the caller's sql.batched()
    return len(rows)


def usage_record_model_call(
    *,
    tenant_id: str,
    session_id: str,
    agent_name: str,
    model: str,
    input_tokens: int,
    output_tokens: int,
    cache_creation_tokens: int,
    cache_read_tokens: int,
    cost_usd: float,
) -> int:
    return usage_events_record(
        tenant_id=tenant_id,
        session_id=session_id,
        agent_name=agent_name,
        model=model,
        values={
            UsageEvent.Type.INPUT_TOKENS: input_tokens,
            UsageEvent.Type.OUTPUT_TOKENS: output_tokens,
            UsageEvent.Type.CACHE_CREATION_TOKENS: cache_creation_tokens,
            UsageEvent.Type.CACHE_READ_TOKENS: cache_read_tokens,
            UsageEvent.Type.COST_USD: cost_usd,
        },
    )
