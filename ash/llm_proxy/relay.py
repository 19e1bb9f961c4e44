"""Forward one request to the upstream model API and relay its answer, metering usage."""

from __future__ import annotations

import json
import time
from typing import TYPE_CHECKING

from ash.llm_proxy.errors import error_body, error_bytes, is_anthropic_error, new_request_id
from ash.llm_proxy.http11 import HttpConnection, IncomingRequest
from ash.llm_proxy.metering import CallMeter, UsageMeter
from ash.llm_proxy.upstream_http import Timeouts, UpstreamError, UpstreamResponse, is_timeout
from ash.runtime.model_client.errors import ModelConnectionError

if TYPE_CHECKING:
    from ash.llm_proxy.server import ModelProxy

# Only these client headers reach the model API: never the client's auth, cookies or host.
FORWARDED_REQUEST_HEADERS = frozenset(
    {"content-type", "accept", "anthropic-version", "anthropic-beta", "user-agent"})
RELAYED_RESPONSE_HEADERS = frozenset(
    {"content-type", "request-id", "retry-after", "x-should-retry", "cache-control"})
RELAYED_RESPONSE_PREFIXES = ("anthropic-ratelimit-",)
MAX_ERROR_BODY = 64 * 1024


def _relayed_headers(response: UpstreamResponse) -> list[tuple[str, str]]:
    return [(k, v) for k, v in response.headers.items()
            if k in RELAYED_RESPONSE_HEADERS or k.startswith(RELAYED_RESPONSE_PREFIXES)]


async def _send_error(conn: HttpConnection, status: int, message: str,
                      error_type: str | None = None) -> int:
    request_id = new_request_id()
    body = error_bytes(status, message, error_type=error_type, request_id=request_id)
    await conn.respond(status, [("content-type", "application/json"), ("request-id", request_id)],
                       body)
    return status


async def relay_upstream(proxy: ModelProxy, conn: HttpConnection, request: IncomingRequest,
                         is_messages: bool) -> int:
    """Send `request` upstream with the credential; returns the status given to the client."""
    upstream = proxy.upstream
    headers = [(k, v) for k, v in request.headers if k in FORWARDED_REQUEST_HEADERS]
    headers += list(upstream.auth_headers().items())
    client = proxy.upstream_client()
    # Per-request timeouts: the upstream (and its timeouts) can change while the client is shared.
    timeouts = Timeouts(connect_s=upstream.connect_timeout_s, read_s=upstream.read_timeout_s,
                        write_s=upstream.write_timeout_s)
    started = time.monotonic()
    try:
        response = await client.send(upstream.url, request.method, request.target, headers,
                                     request.body if request.method == "POST" else None, timeouts)
    except UpstreamError as exc:
        if exc.timed_out:
            return await _send_error(conn, 504, "the model API did not respond in time",
                                     "timeout_error")
        # The exception text can carry the upstream address; the kind of failure is enough.
        return await _send_error(conn, 502, f"the model API is unreachable ({exc})")
    try:
        if response.status >= 400:
            return await _relay_error(conn, response)
        content_type = response.headers.get("content-type", "")
        if is_messages and content_type.startswith("text/event-stream"):
            return await _relay_stream(proxy, conn, response, started)
        body = await response.read_all(proxy.limits.max_body_bytes)
        if not response.complete:
            return await _send_error(conn, 502, "the model API's response is too large")
        if is_messages:
            call = CallMeter(proxy, UsageMeter(), response.headers.get("request-id"), started, local=False,
                             stream=False)
            await call.feed_json(body)
            await conn.respond(response.status, _relayed_headers(response), body)
        else:
            await conn.respond(response.status, _relayed_headers(response), body)
        return response.status
    except ModelConnectionError as exc:
        if is_timeout(exc):
            return await _send_error(conn, 504, "the model API timed out", "timeout_error")
        return await _send_error(conn, 502, "the model API failed (connection lost)")
    finally:
        client.release(response)


async def _relay_error(conn: HttpConnection, response: UpstreamResponse) -> int:
    status = response.status
    body = await response.read_all(MAX_ERROR_BODY)
    try:
        payload = json.loads(body)
    except ValueError:
        payload = None
    headers = _relayed_headers(response)
    if not is_anthropic_error(payload):
        # A gateway's HTML page or a truncated body: keep the status, give the SDK its shape.
        request_id = response.headers.get("request-id")
        body = json.dumps(error_body(status, f"the model API answered HTTP {status}",
                                     request_id=request_id)).encode()
        headers = [(k, v) for k, v in headers if k != "content-type"]
        headers.append(("content-type", "application/json"))
    await conn.respond(status, headers, body)
    return status


async def _relay_stream(proxy: ModelProxy, conn: HttpConnection, response: UpstreamResponse,
                        started: float) -> int:
    call = CallMeter(proxy, UsageMeter(), response.headers.get("request-id"), started, local=False, stream=True)
    try:
        await conn.start_stream(response.status, _relayed_headers(response))
        try:
            async for chunk in response.body():
                await call.feed(chunk)
                await conn.send_chunk(chunk, last=response.ending)  # the last chunk ends the body too
        except ModelConnectionError as exc:
            # Headers are gone already: end the stream with an SSE error the SDK raises.
            kind, reason = ("timeout_error", "timed out") if is_timeout(exc) else ("api_error", "connection lost")
            event = {"type": "error", "error": {
                "type": kind, "message": f"the model API stream failed ({reason})"}}
            await conn.send_chunk(f"event: error\ndata: {json.dumps(event)}\n\n".encode())
        await conn.end_stream()
    finally:
        await call.finish()
    return response.status
