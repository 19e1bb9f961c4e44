"""Async views: the streamed turn (SSE), re-attaching to a turn, interrupting it.

Plain Django async views returning StreamingHttpResponse over async generators (DRF has no
async); a client disconnect cancels only the relay, never the turn.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from typing import Any

from asgiref.sync import sync_to_async
from django.conf import settings
from django.db import close_old_connections
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.views.decorators.csrf import csrf_exempt
from psycopg_pool import PoolTimeout
from rest_framework import serializers as drf_serializers

from ash.auth import key_check, tenant_from_authorization
from ash.errors import (
    ApiError,
    BadRequest,
    ServiceUnavailable,
    envelope,
    error_response,
    parse_uuid,
)
from ash.events import Frame, transport
from ash.sse import KEEPALIVE, sse_frame, sse_response
from sessions_app.models import Session, Turn
from sessions_app.selectors import session_get
from sessions_app.serializers import MAX_CONTENT_CHARS, MessageSendSerializer
from sessions_app.services import turn_abandon
from sessions_app.turns import PER_MESSAGE_OPTIONS, turn_interrupt, turn_start_checked


def in_thread(fn: Callable[..., Any]) -> Callable[..., Awaitable[Any]]:
    """Run FN off the event loop on the loop's shared, long-lived executor threads rather than a
    new thread per request (Django's thread-sensitive default), so SQLite connections are reused.
    Each call is self-contained and gives its connection back when it ends (released_connections)."""

    def run(*args: Any, **kwargs: Any) -> Any:
        with released_connections():
            return fn(*args, **kwargs)

    return sync_to_async(run, thread_sensitive=False)


def _json_body(request: HttpRequest) -> dict[str, Any]:
    if not request.body.strip():
        return {}
    content_type = request.content_type or ""
    if content_type and content_type != "application/json":
        raise ApiError(f'Unsupported media type "{content_type}" in request.', status_code=415)
    try:
        data = json.loads(request.body)
    except (ValueError, UnicodeDecodeError) as exc:
        raise BadRequest(f"Invalid JSON body: {exc}") from None
    if not isinstance(data, dict):
        raise BadRequest("Invalid JSON body: the body must be a JSON object")
    return data


def _validated(data: dict[str, Any]) -> dict[str, Any]:
    from ash.errors import _first_validation_message

    content = data.get("content")
    if isinstance(content, str) and len(content) <= MAX_CONTENT_CHARS and data.keys() == {"content"}:
        # The usual body, a text prompt and nothing else: what the serializer would return,
        # without building one (~0.5 ms a turn on the bench machine).
        return {"content": content, "includePartialMessages": False}
    serializer = MessageSendSerializer(data=data)
    if not serializer.is_valid():
        raise BadRequest(_first_validation_message(drf_serializers.ValidationError(serializer.errors).detail))
    return dict(serializer.validated_data)


def _start(request: HttpRequest, session_id: str) -> Turn:
    key = key_check(request.META.get("HTTP_AUTHORIZATION"))
    try:
        sid = parse_uuid(session_id)
        data = _validated(_json_body(request))
    except ApiError:
        key.alone()  # a bad key is a 401 first
        raise
    options = {k: data[k] for k in PER_MESSAGE_OPTIONS if k in data}
    return turn_start_checked(key=key, session_id=sid, prompt=data["content"], options=options)


@contextlib.contextmanager
def released_connections() -> Iterator[None]:
    """A streaming response lives long: give its database connection back to the pool now,
    not when the stream ends (else only ASH_DB_POOL_MAX turns could stream at once). A pool
    that stays exhausted is a 503, not a 500."""
    try:
        yield
    except PoolTimeout:
        raise ServiceUnavailable("Database connection pool exhausted; retry shortly") from None
    finally:
        close_old_connections()  # pooled (CONN_MAX_AGE 0): back to the pool; persistent: kept


async def relay(turn_id: str, *, after: int = 0, with_ids: bool = False) -> AsyncIterator[bytes]:
    """SSE bytes for a turn's frames after AFTER, keepalives in silences; ends after `done`.

    A turn that no runner picks up within ASH_TURN_START_TIMEOUT is failed (error, done) rather
    than kept alive forever.
    """
    frames = transport().subscribe(turn_id, after=after, wait=settings.ASH_SSE_KEEPALIVE_SECONDS)
    waiting_since = time.monotonic()
    started = after > 0
    try:
        async for batch in frames:
            if not batch:
                if not started and time.monotonic() - waiting_since > settings.ASH_TURN_START_TIMEOUT:
                    started = True  # check once; a runner that did start it will finish it
                    await in_thread(_abandon_unstarted)(turn_id)
                yield KEEPALIVE
                continue
            started = True
            yield b"".join(_encode(frame, with_ids) for frame in batch)  # one write for what came together
            if batch[-1].terminal:
                return
    except asyncio.CancelledError:
        raise  # the client went away: the turn itself goes on and is persisted
    finally:
        await frames.aclose()


def _abandon_unstarted(turn_id: str) -> None:
    turn_abandon(turn_id=turn_id, reason="No runner picked up this turn in time", only_pending=True)


def _encode(frame: Frame, with_ids: bool) -> bytes:
    return sse_frame(frame.event, frame.data_json, event_id=frame.seq if with_ids else None)


AsyncView = Callable[..., Awaitable[HttpResponse]]


def async_api_view(*methods: str) -> Callable[[AsyncView], AsyncView]:
    """For the async views: only METHODS (else 405), and any ApiError becomes the envelope."""

    def decorate(view: AsyncView) -> AsyncView:
        @csrf_exempt
        @functools.wraps(view)
        async def wrapped(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
            if request.method not in methods:
                return error_response(f'Method "{request.method}" not allowed.', 405)
            try:
                return await view(request, *args, **kwargs)
            except ApiError as exc:
                return JsonResponse(envelope(exc.message, exc.status_code), status=exc.status_code)

        return wrapped

    return decorate


@async_api_view("GET", "POST")
async def session_messages(request: HttpRequest, session_id: str) -> HttpResponse:
    """POST streams a new turn; GET lists the history (the DRF view)."""
    if request.method == "GET":
        from sessions_app.views import SessionMessagesView

        def list_messages() -> HttpResponse:
            response = SessionMessagesView.as_view()(request, session_id=session_id)
            return response.render()

        return await in_thread(list_messages)()
    turn = await in_thread(_start)(request, session_id)
    return sse_response(relay(str(turn.id)))


def _attach(request: HttpRequest, session_id: str) -> tuple[str, int]:
    tenant = tenant_from_authorization(request.META.get("HTTP_AUTHORIZATION"))
    session = session_get(tenant_id=tenant.tenant_id, session_id=parse_uuid(session_id))
    raw_after = request.GET.get("after", "0") or "0"
    try:
        after = int(raw_after)
    except ValueError:
        raise BadRequest("after: must be an integer") from None
    if after < 0:
        raise BadRequest("after: must be >= 0")
    turn_id = request.GET.get("turn") or session.active_turn_id or session.last_turn_id
    if not turn_id:
        raise ApiError("This session has no turn to attach to", status_code=404)
    if not Turn.objects.filter(pk=parse_uuid(str(turn_id), what="turn"), session=session).exists():
        raise ApiError("Turn not found", status_code=404)
    return str(turn_id), after


@async_api_view("GET")
async def session_stream(request: HttpRequest, session_id: str) -> HttpResponse:
    """GET: re-attach to the running (or last) turn and replay frames after `after` (with ids)."""
    turn_id, after = await in_thread(_attach)(request, session_id)
    return sse_response(relay(turn_id, after=after, with_ids=True))


def _interrupt(request: HttpRequest, session_id: str) -> dict[str, Any]:
    tenant = tenant_from_authorization(request.META.get("HTTP_AUTHORIZATION"))
    session = session_get(tenant_id=tenant.tenant_id, session_id=parse_uuid(session_id))
    if session.status != Session.Status.ACTIVE:
        raise BadRequest(f"Session is {session.status}")
    return {"interrupted": turn_interrupt(session=session)}


@async_api_view("POST")
async def session_interrupt(request: HttpRequest, session_id: str) -> HttpResponse:
    return JsonResponse(await in_thread(_interrupt)(request, session_id))
