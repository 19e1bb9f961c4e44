"""ASGI entry point (Daphne). HTTP only; bodies over the limit are refused with 413 while streaming in."""

from __future__ import annotations

import os

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "ash.settings")

import django  # noqa: E402

django.setup()

from django.core.asgi import get_asgi_application  # noqa: E402

from ash.asgi_limits import BodyLimitASGI  # noqa: E402

application = BodyLimitASGI(get_asgi_application())
