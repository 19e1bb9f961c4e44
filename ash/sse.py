"""Server-sent events: exact framing (`event:`, one-line `data:`, blank line) and keepalives."""

from __future__ import annotations

from collections.abc import AsyncIterator

from django.http import StreamingHttpResponse

KEEPALIVE = b": keepalive\n\n"


def sse_frame(event: str, data_json: str, *, event_id: int | None = None) -> bytes:
    """A frame whose data is already one line of JSON (as `Frame.data_json` gives it)."""
    head = f"id: {event_id}\n" if event_id is not None else ""
    return f"{head}event: {event}\ndata: {data_json}\n\n".encode()


def sse_response(stream: AsyncIterator[bytes]) -> StreamingHttpResponse:
    response = StreamingHttpResponse(stream, content_type="text/event-stream; charset=utf-8")
    response["Cache-Control"] = "no-cache, no-transform"
    response["X-Accel-Buffering"] = "no"
    return response
