"""The Celery app. Broker: Redis when REDIS_URL is set, else the in-process memory transport."""

from __future__ import annotations

import os
from typing import Any

from celery import Celery
from kombu.transport import redis as kombu_redis

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "ash.settings")


def _settings_for_celery() -> dict[str, Any]:
    """The `CELERY_*` Django settings under Celery's own names, read once.

    Celery looks a dozen settings up for every publish and every task it runs, trying two or three
    spellings of each in every source; against Django's lazy settings object each miss raised and
    caught an AttributeError: ~0.2 ms a publish on the bench machine. A dict answers at once."""
    from django.conf import settings

    prefix = "CELERY_"
    return {name[len(prefix):].lower(): getattr(settings, name) for name in dir(settings) if name.startswith(prefix)}


app = Celery("ash")
app.config_from_object(_settings_for_celery())
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
