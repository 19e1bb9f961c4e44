"""This process's runner: the RunnerHost singleton, its registration and heartbeat.

In embedded mode the web process is also the runner (started by `serve`); in production each
Celery worker started with `-Q ash,runner.<id>` is one (see sessions_app/signals.py).
"""

from __future__ import annotations

import functools
import logging
import os
import socket
import threading
from pathlib import Path
from typing import Any

from django.conf import settings
from django.db import close_old_connections

log = logging.getLogger("ash.runner")

_host: Any = None
_lock = threading.Lock()
_heartbeat_stop = threading.Event()


def runner_queue(runner_id: str) -> str:
    return f"runner.{runner_id}"


def default_runner_id() -> str:
    return settings.ASH_RUNNER_ID or f"{socket.gethostname()}-{os.getpid()}"


def make_backend() -> tuple[Any, str]:
    """The configured sandbox backend and its isolation level (refuses to degrade under strict)."""
    from ash.sandbox.probe import choose_isolation

    base = base_dir()
    if settings.ASH_SANDBOX_BACKEND == "docker":
        from ash.sandbox.docker_backend import DockerBackend
        from ash.sandbox.image import image_tag

        # The image is built locally by scripts/build-sandbox-image.sh (no registry is needed).
        backend = DockerBackend(base_dir=base, image=settings.ASH_DOCKER_IMAGE or image_tag(),
                                docker_host=settings.ASH_DOCKER_HOST or None)
        return backend, str(backend.isolation)
    from ash.sandbox.process_backend import ProcessBackend

    isolation = choose_isolation(settings.ASH_ISOLATION or None)
    backend = ProcessBackend(base_dir=base, strict=isolation == "strict")
    return backend, str(backend.isolation)


def get_host() -> Any:
    """This process's RunnerHost (created and registered on first use)."""
    global _host
    if _host is None:
        with _lock:
            if _host is None:
                _host = _start_host()
    return _host


def _start_host() -> Any:
    from ash.core import local
    from ash.core.services import runner_register
    from sessions_app.runner.host import RunnerHost
    from sessions_app.runner.persistence import persist_workspace_snapshot, record_proxy_usage

    runner_id = default_runner_id()
    backend, isolation = make_backend()
    if isolation != "strict":
        log.warning(
            "SANDBOX ISOLATION IS DEGRADED: agent code runs without filesystem, pid or network "
            "isolation (separate uid and rlimits only). Set ASH_ISOLATION=strict to refuse this."
        )
    host = RunnerHost(
        runner_id=runner_id,
        base_dir=base_dir(),
        backend=backend,
        max_sandboxes=settings.ASH_MAX_SANDBOXES,
        idle_timeout=settings.ASH_IDLE_TIMEOUT,
        on_usage=record_proxy_usage,
        persist_workspace=functools.partial(persist_workspace_snapshot, backend=backend),
    )
    host.isolation = isolation
    runner_register(
        runner_id=runner_id, host=socket.gethostname(), port=0, max_sandboxes=settings.ASH_MAX_SANDBOXES, isolation=isolation
    )
    local.register_local_runner(runner_id=runner_id, pool=host.pool, isolation=isolation)
    _recover_sessions_of_previous_runs(runner_id)
    threading.Thread(target=_heartbeat_loop, args=(host,), name="runner-heartbeat", daemon=True).start()
    log.info("runner %s started (%s, isolation %s)", runner_id, type(backend).__name__, isolation)
    return host


def start_embedded_runner() -> Any:
    """Embedded mode: this process is the only runner; earlier processes' runners are gone."""
    from ash.core.models import Runner
    from ash.core.services import runner_deregister

    for stale in Runner.objects.exclude(runner_id=default_runner_id()).values_list("runner_id", flat=True):
        runner_deregister(runner_id=stale)
    return get_host()


def _recover_sessions_of_previous_runs(runner_id: str) -> None:
    """Sessions left active by a previous run of this runner id lost their sandboxes: pause them."""
    from sessions_app.services import sessions_pause_for_runner

    sessions_pause_for_runner(runner_id=runner_id, reason="runner restarted")


def _heartbeat_loop(host: Any) -> None:
    from ash.core.services import runner_heartbeat, runner_register, runners_sweep_dead
    from sessions_app.services import sessions_sweep_idle

    interval = settings.ASH_RUNNER_HEARTBEAT_SECONDS
    while not _heartbeat_stop.wait(interval):
        try:
            close_old_connections()
            if not runner_heartbeat(runner_id=host.runner_id, stats=host.stats()):
                runner_register(runner_id=host.runner_id, host=socket.gethostname(), port=0,
                                max_sandboxes=settings.ASH_MAX_SANDBOXES, isolation=host.isolation)
            runners_sweep_dead()
            sessions_sweep_idle(host=host)
            _queue_tick()
        except Exception:  # noqa: BLE001 - the heartbeat must survive a database hiccup
            log.exception("runner heartbeat failed")
        finally:
            close_old_connections()


def _queue_tick() -> None:
    """Retries whose backoff ran out and leases that expired: wake consumers for them."""
    from django.db.models import Q
    from django.utils import timezone

    from queue_app.models import QueueItem
    from queue_app.processing import queue_items_reap_expired
    from queue_app.tasks import queue_kick

    if not settings.ASH_QUEUE_ENABLED:
        return
    queue_items_reap_expired()
    ready = QueueItem.objects.filter(status=QueueItem.Status.PENDING).filter(
        Q(retry_after__isnull=True) | Q(retry_after__lte=timezone.now())
    ).count()
    if ready:
        queue_kick(min(ready, 16))


def stop_host() -> None:
    global _host
    from ash.core import local
    from ash.core.services import runner_deregister

    _heartbeat_stop.set()
    with _lock:
        host, _host = _host, None
    if host is None:
        return
    local.unregister_local_runner()
    try:
        runner_deregister(runner_id=host.runner_id)
    except Exception:  # noqa: BLE001
        log.exception("deregistering runner %s failed", host.runner_id)
    host.close()


def base_dir() -> Path:
    """Where this runner keeps workspaces, proxy sockets and sandbox state."""
    return settings.ASH_DATA_DIR / "runner"
