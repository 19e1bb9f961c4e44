"""Queue writes: enqueue (validated against the tenant's agents and sessions), cancel."""

from __future__ import annotations

import uuid

from django.db import transaction
from django.utils import timezone

from agents_app.models import Agent
from ash.errors import BadRequest
from queue_app.models import QueueItem
from queue_app.selectors import queue_item_get
from sessions_app.models import Session


def queue_item_enqueue(
    *,
    tenant_id: str,
    agent_name: str,
    prompt: str,
    session_id: uuid.UUID | None = None,
    priority: int = 0,
    max_retries: int = 3,
) -> QueueItem:
    if not Agent.objects.filter(tenant_id=tenant_id, name=agent_name).exists():
        raise BadRequest(f'agentName: agent "{agent_name}" not found')
    if session_id is not None:
        session = Session.objects.filter(tenant_id=tenant_id, pk=session_id).only("agent_name", "status").first()
        if session is None:
            raise BadRequest("sessionId: session not found")
        if session.agent_name != agent_name:
            raise BadRequest(f'sessionId: session belongs to agent "{session.agent_name}", not "{agent_name}"')
        if session.status == Session.Status.ENDED:
            raise BadRequest("sessionId: session has ended")
    from queue_app.tasks import queue_kick

    with transaction.atomic():
        item = QueueItem.objects.create(
            tenant_id=tenant_id,
            agent_name=agent_name,
            prompt=prompt,
            session_id=session_id,
            priority=priority,
            max_retries=max_retries,
        )
        transaction.on_commit(queue_kick)
    return item


def queue_item_cancel(*, tenant_id: str, item_id: uuid.UUID) -> QueueItem:
    """Cancel a pending item; anything else is a 400. The conditional UPDATE wins races with claims."""
    item = queue_item_get(tenant_id=tenant_id, item_id=item_id)
    with transaction.atomic():
        updated = QueueItem.objects.filter(pk=item.pk, status=QueueItem.Status.PENDING).update(
            status=QueueItem.Status.CANCELLED, completed_at=timezone.now()
        )
    item.refresh_from_db()
    if not updated:
        raise BadRequest(f'Cannot cancel item with status "{item.status}"')
    return item


def queue_items_cancel_for_agent(*, tenant_id: str, agent_name: str, reason: str) -> int:
    return QueueItem.objects.filter(
        tenant_id=tenant_id, agent_name=agent_name, status=QueueItem.Status.PENDING
    ).update(status=QueueItem.Status.CANCELLED, error=reason, completed_at=timezone.now())
