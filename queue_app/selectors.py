"""Queue reads, tenant-scoped."""

from __future__ import annotations

import uuid

from django.db.models import Count, QuerySet

from ash.errors import NotFound
from queue_app.models import QueueItem


def queue_item_list(*, tenant_id: str, status: str | None = None, limit: int = 50) -> QuerySet[QueueItem]:
    items = QueueItem.objects.filter(tenant_id=tenant_id)
    if status:
        items = items.filter(status=status)
    return items.order_by("-created_at", "-id")[:limit]


def queue_item_get(*, tenant_id: str, item_id: uuid.UUID) -> QueueItem:
    item = QueueItem.objects.filter(tenant_id=tenant_id, pk=item_id).first()
    if item is None:
        raise NotFound("Queue item not found")
    return item


def queue_stats(*, tenant_id: str) -> dict[str, int]:
    counts = dict.fromkeys(QueueItem.Status.values, 0)
    rows = QueueItem.objects.filter(tenant_id=tenant_id).values("status").annotate(n=Count("id")).order_by()
    for row in rows:
        counts[row["status"]] = row["n"]
    return counts
