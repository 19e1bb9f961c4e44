"""Queue tasks: wake a consumer when work arrives; the periodic kick covers retries and leases."""

from __future__ import annotations

from celery import shared_task


@shared_task(name="queue.process_next", acks_late=True, reject_on_worker_lost=True, ignore_result=True, time_limit=3 * 3600)
def process_next() -> str:
    """Claim and process one pending item (no-op when none is ready)."""
    from queue_app.processing import queue_item_claim_next, queue_item_process
    from sessions_app.runner import default_runner_id

    item = queue_item_claim_next(runner_id=default_runner_id())
    if item is None:
        return "idle"
    return queue_item_process(item=item).status


def queue_kick(count: int = 1) -> None:
    """Dispatch COUNT consumers on the shared queue (unless the consumer is switched off)."""
    from django.conf import settings

    from ash import dispatch

    if not settings.ASH_QUEUE_ENABLED:
        return
    for _ in range(count):
        dispatch.send(process_next, queue="ash")
