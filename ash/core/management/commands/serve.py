from __future__ import annotations

import logging
import time
from typing import Any

from django.conf import settings
from django.core.management import call_command
from django.core.management.base import BaseCommand, CommandParser

from ash import dispatch, heap
from ash.core.bootstrap import bootstrap_embedded
from sessions_app.runner import start_embedded_runner, stop_host

log = logging.getLogger("ash.serve")

LISTEN_BACKLOG = 1024  # the kernel caps it at net.core.somaxconn


class Command(BaseCommand):
    help = "Start Ash (Daphne: API, SSE, admin) on the embedded default: migrate, bootstrap, serve."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--host", default="127.0.0.1")
        parser.add_argument("--port", type=int, default=4100)
        parser.add_argument("--no-migrate", action="store_true")

    def handle(self, *args: Any, host: str, port: int, no_migrate: bool, **options: Any) -> None:
        started = time.monotonic()
        if not no_migrate:
            call_command("migrate", interactive=False, verbosity=0)
        boot = bootstrap_embedded(data_dir=settings.ASH_DATA_DIR) if settings.ASH_EMBEDDED else None
        runner = None
        if dispatch.embedded():
            # One process hosts everything: sessions of earlier runs lost their sandboxes.
            runner = start_embedded_runner()

        from daphne.endpoints import build_endpoint_description_strings
        from daphne.server import Server
        from twisted.internet import reactor

        from ash.asgi import application

        base = f"http://{host if ':' not in host else f'[{host}]'}:{port}"
        lines = [f"Ash {settings.ASH_MODE} on {base}  (data: {settings.ASH_DATA_DIR})", f"  API:    {base}/api  docs: {base}/docs  health: {base}/health", f"  admin:  {base}/admin/"]
        if boot and boot.admin_password_file:
            lines.append(f"          user 'admin', password in {boot.admin_password_file}")
        if boot and boot.key_file:
            lines.append(f"  API key file: {boot.key_file}")
        if runner is not None:
            lines.append(f"  runner: {runner.runner_id} (in-process, sandbox isolation: {runner.isolation})")
        lines.append(f"  event loop: {type(reactor._asyncioEventloop).__module__.split('.')[0]}")  # manage.py chose it
        heap.settle()  # after everything startup loads: full GC collections stay short
        lines.append(f"  ready in {time.monotonic() - started:.2f}s")
        self.stdout.write("\n".join(lines))
        self.stdout.flush()
        try:
            Server(
                application=application,
                # Twisted listens with a backlog of 50: a burst of new clients (200 turns started
                # at once) overflowed it, and the kernel's SYN retries cost them seconds or a reset.
                endpoints=[f"{e}:backlog={LISTEN_BACKLOG}" for e in build_endpoint_description_strings(host=host, port=port)],
                http_timeout=None,
                websocket_timeout=None,
                application_close_timeout=10,
            ).run()
        finally:
            if runner is not None:
                stop_host()
