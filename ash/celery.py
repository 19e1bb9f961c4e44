"""The Celery app. Broker: Redis when REDIS_URL is set, else the in-process memory transport."""

from __future__ import annotations

import os
from typing import Any

from celery import Celery
from kombu.transport import redis as kombu_redis

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "ash.settings")

app = Celery("ash")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()


class _RedisChannel(kombu_redis.Channel):
    """kombu builds a new redis-py client for every command it sends (each publish, each
    delivery's bookkeeping, each ack), and a client costs ~0.1 ms to build: redis-py copies its
    table of ~170 response callbacks into every one. A channel keeps one; redis-py clients are
    thread-safe and take a pooled connection per command, so the pool is shared as before."""

    _sync_client: Any = None

    def _create_client(self, asynchronous: bool = False) -> Any:
        if asynchronous:
            return super()._create_client(asynchronous=True)
        if self._sync_client is None:
            self._sync_client = super()._create_client()
        return self._sync_client


class RedisTransport(kombu_redis.Transport):
    """The redis:// broker transport with `_RedisChannel` (settings.CELERY_BROKER_TRANSPORT)."""

    Channel = _RedisChannel
