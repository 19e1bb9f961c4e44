"""Server-sent events: exact framing (`event:`, one-line `data:`, blank line) and keepalives."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

from django.http import StreamingHttpResponse

KEEPALIVE = b": keepalive\n\n"


def sse_frame(event: str, data: Any, *, event_id: int | None = None) -> bytes:
    # json.dumps never emits raw newlines, so `data:` is always one line.
    line = json.dumps(data, separators=(",", ":"), ensure_ascii=False)
    head = f"id: {event_id}\n" if event_id is not None else ""
    return f"{head}event: {event}\ndata: {line}\n\n".encode()


def sse_response(stream: AsyncIterator[bytes]) -> StreamingHttpResponse:
    response = StreamingHttpResponse(stream, content_type="text/event-stream; charset=utf-8")
    response["Cache-Control"] = "no-cache, no-transform"
    response["X-Accel-Buffering"] = "no"
    return response
