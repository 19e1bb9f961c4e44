"""The queue consumer: claim (conditional UPDATE + lease), run the prompt as a turn, retry with backoff.

Unlike the original, results are persisted (the turn's messages and events, the session id
written back), a crashed consumer's lease expires and the item is retried, and several items
run at once (one worker thread each).
"""

from __future__ import annotations

import logging
import time
from datetime import timedelta

from django.conf import settings
from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from ash.errors import ApiError
from queue_app.models import QueueItem

log = logging.getLogger("ash.queue")

BACKOFF_BASE_SECONDS = 5
BACKOFF_MAX_SECONDS = 300
POLL_SECONDS = 0.05


def queue_backoff_seconds(retry_count: int) -> int:
    """5 s, 10 s, 20 s … capped at 5 minutes (retry_count counts failed attempts so far, ≥ 1)."""
    return min(BACKOFF_BASE_SECONDS * 2 ** max(retry_count - 1, 0), BACKOFF_MAX_SECONDS)


def queue_item_claim_next(*, runner_id: str) -> QueueItem | None:
    """Take the best pending item (priority desc, then oldest); the conditional UPDATE wins races."""
    now = timezone.now()
    ready = QueueItem.objects.filter(status=QueueItem.Status.PENDING).filter(Q(retry_after__isnull=True) | Q(retry_after__lte=now))
    for item_id in ready.order_by("-priority", "created_at").values_list("pk", flat=True)[:20]:
        claimed = QueueItem.objects.filter(pk=item_id, status=QueueItem.Status.PENDING).update(
            status=QueueItem.Status.PROCESSING,
            started_at=now,
            runner_id=runner_id,
            lease_expires_at=now + timedelta(seconds=settings.ASH_QUEUE_LEASE_SECONDS),
        )
        if claimed:
            return QueueItem.objects.get(pk=item_id)
    return None


def queue_item_fail(*, item: QueueItem, error: str) -> QueueItem:
    """One failed attempt: retry later with backoff, or fail for good after max_retries attempts."""
    attempts = item.retry_count + 1
    now = timezone.now()
    if attempts >= item.max_retries:
        fields = {"status": QueueItem.Status.FAILED, "completed_at": now}
    else:
        fields = {"status": QueueItem.Status.PENDING, "retry_after": now + timedelta(seconds=queue_backoff_seconds(attempts))}
    QueueItem.objects.filter(pk=item.pk, status=QueueItem.Status.PROCESSING).update(
        retry_count=attempts, error=error[:2000], lease_expires_at=None, **fields
    )
    item.refresh_from_db()
    return item


def queue_items_reap_expired(*, now: object = None) -> int:
    """Items whose consumer died (lease expired) count a failed attempt and go back to pending."""
    now = now or timezone.now()
    reaped = 0
    for item in QueueItem.objects.filter(status=QueueItem.Status.PROCESSING, lease_expires_at__lt=now):
        queue_item_fail(item=item, error="lease expired: the runner processing this item stopped")
        reaped += 1
    return reaped


def queue_item_process(*, item: QueueItem) -> QueueItem:
    """Run ITEM's prompt in its session (creating one when it has none) and wait for the turn."""
    from sessions_app import lifecycle
    from sessions_app.models import Session, Turn
    from sessions_app.turns import turn_start

    try:
        if item.session_id is None:
            session = lifecycle.session_create(tenant_id=item.tenant_id, agent_name=item.agent_name, options={})
            QueueItem.objects.filter(pk=item.pk).update(session=session)
        else:
            session = Session.objects.get(pk=item.session_id, tenant_id=item.tenant_id)
            if session.status in (Session.Status.PAUSED, Session.Status.STOPPED):
                session = lifecycle.session_resume(session=session)
        turn = turn_start(session=session, prompt=item.prompt, options={}, source="queue")
        deadline = time.monotonic() + settings.ASH_QUEUE_LEASE_SECONDS
        while time.monotonic() < deadline:
            turn.refresh_from_db(fields=["status", "error"])
            if turn.status not in (Turn.Status.PENDING, Turn.Status.RUNNING):
                break
            time.sleep(POLL_SECONDS)
        else:
            return queue_item_fail(item=item, error="turn did not finish within the lease")
        if turn.status != Turn.Status.COMPLETED:
            return queue_item_fail(item=item, error=turn.error or f"turn {turn.status}")
    except ApiError as exc:
        return queue_item_fail(item=item, error=exc.message)
    except Exception as exc:  # noqa: BLE001 - any failure is one failed attempt, never a stuck item
        log.exception("queue item %s failed", item.pk)
        return queue_item_fail(item=item, error=str(exc) or type(exc).__name__)
    with transaction.atomic():
        QueueItem.objects.filter(pk=item.pk, status=QueueItem.Status.PROCESSING).update(
            status=QueueItem.Status.COMPLETED, completed_at=timezone.now(), lease_expires_at=None, error=None
        )
    item.refresh_from_db()
    return item
