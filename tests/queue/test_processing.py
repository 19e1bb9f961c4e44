"""The queue consumer's claim, retry and lease rules (the turn itself is covered end to end)."""

from __future__ import annotations

import threading
from datetime import timedelta

import pytest
from django.db import close_old_connections
from django.utils import timezone

from queue_app.models import QueueItem
from queue_app.processing import (
    queue_backoff_seconds,
    queue_item_claim_next,
    queue_item_fail,
    queue_items_reap_expired,
)


def make_item(**fields) -> QueueItem:
    defaults = {"tenant_id": "t", "agent_name": "a", "prompt": "p"}
    return QueueItem.objects.create(**{**defaults, **fields})


def test_backoff_doubles_from_five_seconds_and_caps_at_five_minutes() -> None:
    assert [queue_backoff_seconds(n) for n in (1, 2, 3, 4, 7, 20)] == [5, 10, 20, 40, 300, 300]


@pytest.mark.django_db
def test_claim_takes_highest_priority_then_oldest() -> None:
    low = make_item(priority=0)
    high_old = make_item(priority=5)
    make_item(priority=5)
    claimed = queue_item_claim_next(runner_id="r1")
    assert claimed is not None and claimed.pk == high_old.pk
    assert claimed.status == QueueItem.Status.PROCESSING
    assert claimed.runner_id == "r1" and claimed.started_at and claimed.lease_expires_at
    assert QueueItem.objects.get(pk=low.pk).status == QueueItem.Status.PENDING


@pytest.mark.django_db
def test_claim_skips_items_waiting_for_their_backoff() -> None:
    make_item(retry_after=timezone.now() + timedelta(minutes=1))
    assert queue_item_claim_next(runner_id="r1") is None
    ready = make_item(retry_after=timezone.now() - timedelta(seconds=1))
    assert queue_item_claim_next(runner_id="r1").pk == ready.pk


@pytest.mark.django_db
def test_failed_attempt_is_retried_with_backoff_until_max_retries_attempts() -> None:
    item = make_item(max_retries=2)
    item = queue_item_claim_next(runner_id="r1")
    item = queue_item_fail(item=item, error="boom")
    assert item.status == QueueItem.Status.PENDING and item.retry_count == 1 and item.error == "boom"
    assert timedelta(seconds=4) < item.retry_after - timezone.now() <= timedelta(seconds=5)
    QueueItem.objects.filter(pk=item.pk).update(retry_after=None)
    item = queue_item_claim_next(runner_id="r1")
    item = queue_item_fail(item=item, error="boom again")
    assert item.status == QueueItem.Status.FAILED and item.retry_count == 2 and item.completed_at


@pytest.mark.django_db
def test_expired_lease_returns_the_item_to_pending_as_a_failed_attempt() -> None:
    make_item()
    item = queue_item_claim_next(runner_id="dead-runner")
    QueueItem.objects.filter(pk=item.pk).update(lease_expires_at=timezone.now() - timedelta(seconds=1))
    assert queue_items_reap_expired() == 1
    item.refresh_from_db()
    assert item.status == QueueItem.Status.PENDING and item.retry_count == 1 and "lease expired" in item.error


@pytest.mark.django_db
def test_live_lease_is_not_reaped() -> None:
    make_item()
    item = queue_item_claim_next(runner_id="r1")
    assert queue_items_reap_expired() == 0
    item.refresh_from_db()
    assert item.status == QueueItem.Status.PROCESSING


@pytest.mark.django_db(transaction=True)
def test_concurrent_consumers_never_claim_the_same_item() -> None:
    for _ in range(12):
        make_item()
    claimed: list[str] = []
    lock = threading.Lock()

    def consume() -> None:
        try:
            while (item := queue_item_claim_next(runner_id=threading.current_thread().name)) is not None:
                with lock:
                    claimed.append(str(item.pk))
        finally:
            close_old_connections()

    threads = [threading.Thread(target=consume) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert sorted(claimed) == sorted(set(claimed)) and len(claimed) == 12
