"""Running tasks: Celery over Redis in production; an in-process worker pool in embedded mode.

The same task functions run either way. Embedded mode has no broker at all: tasks execute on a
bounded thread pool in this process (Celery's memory transport polls once a second, which
would dominate the turn overhead).
"""

from __future__ import annotations

import concurrent.futures
import threading
from typing import Any

from django.conf import settings
from django.db import close_old_connections

_executor: concurrent.futures.ThreadPoolExecutor | None = None
_lock = threading.Lock()


def embedded() -> bool:
    return not settings.REDIS_URL


def _pool() -> concurrent.futures.ThreadPoolExecutor:
    global _executor
    if _executor is None:
        with _lock:
            if _executor is None:
                _executor = concurrent.futures.ThreadPoolExecutor(
                    max_workers=settings.ASH_EMBEDDED_WORKER_THREADS, thread_name_prefix="ash-worker"
                )
    return _executor


def _run_in_worker(task: Any, args: tuple, kwargs: dict) -> Any:
    close_old_connections()
    try:
        # The task's function itself: Celery's eager `apply` (request context, tracer, result
        # object) costs ~0.5 ms a turn here and adds nothing in-process.
        return task.run(*args, **kwargs)
    finally:
        close_old_connections()


class Pending:
    """A dispatched task: `.get(timeout)` returns its value or raises its exception."""

    def __init__(self, future: concurrent.futures.Future | None = None, async_result: Any = None) -> None:
        self._future = future
        self._async_result = async_result

    def get(self, timeout: float | None = None) -> Any:
        if self._future is not None:
            return self._future.result(timeout=timeout)
        return self._async_result.get(timeout=timeout, disable_sync_subtasks=False, propagate=True)


def send(task: Any, *, args: tuple = (), kwargs: dict | None = None, queue: str | None = None) -> Pending:
    kwargs = kwargs or {}
    if embedded():
        return Pending(future=_pool().submit(_run_in_worker, task, args, kwargs))
    return Pending(async_result=task.apply_async(args=args, kwargs=kwargs, queue=queue))
