"""The Celery app. Broker: Redis when REDIS_URL is set, else the in-process memory transport."""

from __future__ import annotations

import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "ash.settings")

app = Celery("ash")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()
