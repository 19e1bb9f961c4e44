"""ASGI entry point (Daphne). HTTP only; bodies over the limit are refused with 413 while streaming in.

Two Django handlers: the API (`/api/`, `/health`) with only `ASH_API_MIDDLEWARE`, all async-native,
so a streamed turn never leaves the event loop for middleware; and the site (admin, docs, static
files) with the full `MIDDLEWARE`.
"""

from __future__ import annotations

import concurrent.futures
import os
import re
from typing import Any

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "ash.settings")

import django  # noqa: E402
from asgiref.sync import ThreadSensitiveContext  # noqa: E402

django.setup()

from django.conf import settings  # noqa: E402
from django.core.asgi import get_asgi_application  # noqa: E402
from django.core.handlers.asgi import ASGIHandler  # noqa: E402
from django.core.handlers.exception import convert_exception_to_response  # noqa: E402
from django.core.signals import request_started  # noqa: E402
from django.db import close_old_connections, reset_queries  # noqa: E402
from django.utils.module_loading import import_string  # noqa: E402

from ash.asgi_limits import BodyLimitASGI  # noqa: E402

API_PREFIX = "/api/"


class ApiHandler(ASGIHandler):
    """Django's ASGI handler with the API's middleware list instead of MIDDLEWARE."""

    def load_middleware(self, is_async: bool = False) -> None:
        self._view_middleware: list[Any] = []
        self._template_response_middleware: list[Any] = []
        self._exception_middleware: list[Any] = []
        handler = convert_exception_to_response(self._get_response_async)
        for path in reversed(settings.ASH_API_MIDDLEWARE):
            middleware = import_string(path)
            if not getattr(middleware, "async_capable", False):
                raise RuntimeError(f"ASH_API_MIDDLEWARE must be async capable: {path}")
            handler = convert_exception_to_response(middleware(handler))
        self._middleware_chain = handler


def is_api_path(path: str) -> bool:
    return path.startswith(API_PREFIX) or path == "/health"


_site = get_asgi_application()
_api = ApiHandler()

# Under ASGI, Django's own `request_started` receivers only touch the calling thread's database
# connections, and they are called on a new per-request thread that has none: all they did was
# start that thread (~0.5 ms a request here). `request_finished` keeps them: it runs on the thread
# a sync view used, and returns its connection to the pool.
request_started.disconnect(close_old_connections)
request_started.disconnect(reset_queries)


# The async session views (sessions_app.streaming) do their database work on their own
# executor. The one thread-sensitive call Django makes for them, closing the response, would start
# a thread per request (and another to join it); a shared thread serves them all.
ASYNC_VIEW_PATH = re.compile(r"/api/sessions/[^/]+/(messages|stream|interrupt)")
_async_view_close = concurrent.futures.ThreadPoolExecutor(max_workers=1, thread_name_prefix="ash-response-close")


async def _route(scope: dict[str, Any], receive: Any, send: Any) -> None:
    path = scope.get("path", "")
    if scope["type"] != "http" or not is_api_path(path):
        await _site(scope, receive, send)
    elif ASYNC_VIEW_PATH.fullmatch(path):
        async with ThreadSensitiveContext(executor=_async_view_close):
            await _api(scope, receive, send)
    else:
        await _api(scope, receive, send)


application = BodyLimitASGI(_route)
