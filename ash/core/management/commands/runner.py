from __future__ import annotations

import os
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser

from ash import heap


class Command(BaseCommand):
    help = (
        "Start a runner: a Celery worker that hosts sandboxes, consuming the shared queue and its own "
        "runner.<id> queue (production mode: needs REDIS_URL and a shared DATABASE_URL)."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--id", dest="runner_id", default="", help="Runner id (default: hostname-pid)")
        parser.add_argument("--concurrency", type=int, default=int(os.environ.get("ASH_RUNNER_CONCURRENCY", "64")),
                            help="Task threads (each running turn holds one)")
        parser.add_argument("--loglevel", default="WARNING")

    def handle(self, *args: Any, runner_id: str, concurrency: int, loglevel: str, **options: Any) -> None:
        if not settings.REDIS_URL:
            raise CommandError("A separate runner needs REDIS_URL (embedded mode runs the runner inside `serve`)")
        if runner_id:
            settings.ASH_RUNNER_ID = runner_id
        from ash.celery import app
        from sessions_app.runner import default_runner_id, get_host, runner_queue, stop_host

        host = get_host()
        rid = default_runner_id()
        self.stdout.write(f"runner {rid} ready (isolation {host.isolation}); queues: ash, {runner_queue(rid)}")
        self.stdout.flush()
        try:
            worker = app.Worker(
                queues=["ash", runner_queue(rid)],
                pool="threads",
                concurrency=concurrency,
                loglevel=loglevel,
                hostname=f"{rid}@%h",
                without_mingle=True,
                without_gossip=True,
            )
            heap.settle()  # after everything startup loads: full GC collections stay short
            worker.start()
        finally:
            stop_host()
