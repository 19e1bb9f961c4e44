"""Web side of the runner RPC: run an operation on the runner that hosts a session."""

from __future__ import annotations

import logging
from typing import Any

from celery.exceptions import TimeoutError as CeleryTimeout

from ash import dispatch
from ash.errors import ApiError, ServiceUnavailable

log = logging.getLogger("ash.runner_client")

# Errors raised on the runner travel back as (status, message) so the API answers the same.
RUNNER_ERROR_PREFIX = "ash-api-error:"


def runner_call(session: Any, op: str, *, timeout: float = 60.0, runner_id: str | None = None, **kwargs: Any) -> Any:
    """Run OP for SESSION on its runner (or RUNNER_ID) and return the result."""
    from sessions_app.runner import runner_queue
    from sessions_app.tasks import runner_op

    target = runner_id or session.runner_id
    if not target:
        raise ServiceUnavailable("No runner hosts this session")
    pending = dispatch.send(runner_op, args=(op, str(session.pk)), kwargs={"params": kwargs}, queue=runner_queue(target))
    try:
        result = pending.get(timeout=timeout)
    except (TimeoutError, CeleryTimeout):
        raise ServiceUnavailable(f"Runner {target} did not answer in {timeout:.0f}s") from None
    return unwrap(result)


def wrap_error(exc: ApiError) -> dict[str, Any]:
    return {RUNNER_ERROR_PREFIX: [exc.status_code, exc.message]}


def unwrap(result: Any) -> Any:
    if isinstance(result, dict) and RUNNER_ERROR_PREFIX in result:
        status, message = result[RUNNER_ERROR_PREFIX]
        raise ApiError(message, status_code=status)
    return result
