"""Celery tasks of the sessions app. Tasks are transport: they take ids; the rows are the truth."""

from __future__ import annotations

from typing import Any

from celery import shared_task

from ash.errors import ApiError


@shared_task(name="sessions.run_turn", acks_late=True, reject_on_worker_lost=True, ignore_result=True,
             soft_time_limit=6 * 3600, time_limit=6 * 3600 + 60)
def run_turn(turn_id: str) -> str:
    """Run a dispatched turn on this runner (claims it first, so a redelivery is a no-op)."""
    from sessions_app.turns import turn_run

    return turn_run(turn_id=turn_id)


@shared_task(name="sessions.runner_op", acks_late=False, time_limit=900)
def runner_op(op: str, session_id: str, params: dict[str, Any] | None = None) -> Any:
    """One sandbox operation for a session hosted here; API errors come back as data."""
    from sessions_app.runner import ops
    from sessions_app.runner_client import wrap_error

    try:
        return ops.run(op, session_id, params or {})
    except ApiError as exc:
        return wrap_error(exc)
