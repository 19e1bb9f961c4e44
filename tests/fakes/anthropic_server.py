"""A scripted fake of the Anthropic Messages API, served on loopback for tests.

Replies are consumed in order, one per `POST /v1/messages` (query string ignored); each one may
be a `Reply`, an `ErrorReply`, or a callable that builds one from the recorded request. Both
`stream: true` (the exact SSE event sequence) and plain JSON responses are served. The server
runs its own event loop in a thread, so sync and async tests can use it alike.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import ssl
import threading
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from tests.fakes.loopback import LoopbackServer

ERROR_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    402: "billing_error",
    403: "permission_error",
    404: "not_found_error",
    413: "request_too_large",
    429: "rate_limit_error",
    500: "api_error",
    504: "timeout_error",
    529: "overloaded_error",
}
REASONS = {200: "OK", 400: "Bad Request", 401: "Unauthorized", 404: "Not Found",
           413: "Payload Too Large", 429: "Too Many Requests", 500: "Internal Server Error",
           529: "Overloaded"}
_ids = itertools.count(1)


# -- content block helpers ------------------------------------------------------------------

def text(value: str) -> dict[str, Any]:
    return {"type": "text", "text": value}


def thinking(value: str, signature: str = "sig_fake") -> dict[str, Any]:
    return {"type": "thinking", "thinking": value, "signature": signature}


def tool_use(name: str, input: dict[str, Any], id: str | None = None) -> dict[str, Any]:
    return {"type": "tool_use", "id": id or f"toolu_fake{next(_ids):04d}", "name": name,
            "input": input}


def structured_output(data: dict[str, Any], id: str | None = None) -> dict[str, Any]:
    """The synthetic tool call Claude Code uses to return `outputFormat` results."""
    return tool_use("StructuredOutput", data, id)


def usage(input_tokens: int = 10, output_tokens: int = 5, cache_creation: int = 0,
          cache_read: int = 0, cache_creation_1h: int = 0) -> dict[str, Any]:
    """A full Messages API usage object; `cache_creation` counts 5-minute cache writes."""
    return {
        "input_tokens": input_tokens,
        "output_tokens": output_tokens,
        "cache_creation_input_tokens": cache_creation + cache_creation_1h,
        "cache_read_input_tokens": cache_read,
        "cache_creation": {"ephemeral_5m_input_tokens": cache_creation,
                           "ephemeral_1h_input_tokens": cache_creation_1h},
        "service_tier": "standard",
    }


# -- scripted replies --------------------------------------------------------------------------

@dataclass
class Reply:
    """One successful model response."""

    content: list[dict[str, Any]]
    usage: dict[str, Any] = field(default_factory=usage)
    stop_reason: str | None = None  # default: "tool_use" if any tool_use block, else "end_turn"
    model: str | None = None  # default: the requested model
    delay: float = 0.0  # seconds before each SSE event (or before the JSON body)
    end_delay: float = 0.0  # seconds between the last SSE event and the end of the body
    chunk: int = 8  # characters per text/thinking/json delta
    stream_error: dict[str, Any] | None = None  # emitted as `event: error` after the 1st block
    id: str = field(default_factory=lambda: f"msg_fake{uuid.uuid4().hex[:20]}")

    @classmethod
    def text(cls, value: str, **kw: Any) -> Reply:
        return cls([text(value)], **kw)

    @classmethod
    def tool(cls, name: str, input: dict[str, Any], before: str | None = None, **kw: Any) -> Reply:
        blocks = [text(before)] if before else []
        return cls([*blocks, tool_use(name, input)], **kw)

    @classmethod
    def structured(cls, data: dict[str, Any], **kw: Any) -> Reply:
        return cls([structured_output(data)], **kw)

    def final_stop_reason(self) -> str:
        if self.stop_reason:
            return self.stop_reason
        return "tool_use" if any(b["type"] == "tool_use" for b in self.content) else "end_turn"

    def message(self, model: str) -> dict[str, Any]:
        return {"id": self.id, "type": "message", "role": "assistant", "model": self.model or model,
                "content": self.content, "stop_reason": self.final_stop_reason(),
                "stop_sequence": None, "usage": self.usage}


@dataclass
class ErrorReply:
    """An HTTP error with an Anthropic-shaped body."""

    status: int
    message: str = "fake error"
    error_type: str | None = None
    headers: dict[str, str] = field(default_factory=dict)

    def body(self) -> dict[str, Any]:
        kind = self.error_type or ERROR_TYPES.get(self.status, "api_error")
        return {"type": "error", "error": {"type": kind, "message": self.message},
                "request_id": f"req_fake{uuid.uuid4().hex[:12]}"}


Scripted = Reply | ErrorReply | Callable[["RecordedRequest"], "Reply | ErrorReply"]


@dataclass
class RecordedRequest:
    method: str
    path: str  # including the query string
    headers: dict[str, str]  # lower-cased names
    body: Any  # parsed JSON (None when the body is not JSON)


# -- SSE rendering --------------------------------------------------------------------------

def _pieces(value: str, size: int) -> list[str]:
    return [value[i:i + size] for i in range(0, len(value), size)] or [""]


def sse_events(reply: Reply, model: str) -> list[tuple[str, dict[str, Any]]]:
    """The exact event sequence the Messages API streams for `reply`."""
    start_usage = dict(reply.usage)
    start_usage["output_tokens"] = 1
    head = {**reply.message(model), "content": [], "stop_reason": None, "usage": start_usage}
    events: list[tuple[str, dict[str, Any]]] = [
        ("message_start", {"type": "message_start", "message": head}),
        ("ping", {"type": "ping"}),
    ]
    for index, block in enumerate(reply.content):
        events.extend(_block_events(index, block, reply.chunk))
        if index == 0 and reply.stream_error is not None:
            events.append(("error", {"type": "error", "error": reply.stream_error}))
            return events
    final_usage = {k: v for k, v in reply.usage.items() if k != "service_tier"}
    events.append(("message_delta", {
        "type": "message_delta",
        "delta": {"stop_reason": reply.final_stop_reason(), "stop_sequence": None},
        "usage": final_usage,
    }))
    events.append(("message_stop", {"type": "message_stop"}))
    return events


def _block_events(index: int, block: dict[str, Any], size: int) -> list[tuple[str, dict]]:
    kind = block["type"]
    if kind == "text":
        start = {"type": "text", "text": ""}
        deltas = [{"type": "text_delta", "text": p} for p in _pieces(block["text"], size)]
    elif kind == "thinking":
        start = {"type": "thinking", "thinking": "", "signature": ""}
        deltas = [{"type": "thinking_delta", "thinking": p}
                  for p in _pieces(block["thinking"], size)]
        deltas.append({"type": "signature_delta", "signature": block["signature"]})
    elif kind == "tool_use":
        start = {"type": "tool_use", "id": block["id"], "name": block["name"], "input": {}}
        raw = json.dumps(block["input"])
        deltas = [{"type": "input_json_delta", "partial_json": p} for p in _pieces(raw, size)]
    else:
        raise ValueError(f"unsupported block type for streaming: {kind}")
    out: list[tuple[str, dict]] = [("content_block_start", {
        "type": "content_block_start", "index": index, "content_block": start})]
    out += [("content_block_delta", {"type": "content_block_delta", "index": index, "delta": d})
            for d in deltas]
    out.append(("content_block_stop", {"type": "content_block_stop", "index": index}))
    return out


# -- the server -------------------------------------------------------------------------------

class FakeAnthropic(LoopbackServer):
    """Loopback Messages API serving scripted replies; see the module docstring."""

    thread_name = "fake-anthropic"

    def __init__(self, script: Iterable[Scripted] = (), host: str = "127.0.0.1",
                 unix_socket: str | None = None, tls: ssl.SSLContext | None = None) -> None:
        super().__init__()
        self._script: list[Scripted] = list(script)
        self.unix_socket = unix_socket  # serve on this unix socket instead of TCP
        self.tls = tls  # serve HTTPS with this server context
        self._lock = threading.Lock()
        self.host = host
        self.requests: list[RecordedRequest] = []

    # lifecycle
    @property
    def base_url(self) -> str:
        return f"{'https' if self.tls else 'http'}://{self.host}:{self.port}"

    async def _listen(self) -> asyncio.AbstractServer:
        if self.unix_socket:
            return await asyncio.start_unix_server(self._handle, self.unix_socket)
        return await asyncio.start_server(self._handle, self.host, 0, ssl=self.tls)

    async def astart(self) -> FakeAnthropic:
        return await asyncio.to_thread(self.start)

    async def astop(self) -> None:
        await asyncio.to_thread(self.stop)

    def __enter__(self) -> FakeAnthropic:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    async def __aenter__(self) -> FakeAnthropic:
        return await self.astart()

    async def __aexit__(self, *exc: object) -> None:
        await self.astop()

    # scripting
    def script(self, items: Iterable[Scripted]) -> FakeAnthropic:
        """Append replies to the queue."""
        with self._lock:
            self._script.extend(items)
        return self

    @property
    def remaining(self) -> int:
        with self._lock:
            return len(self._script)

    @property
    def message_requests(self) -> list[RecordedRequest]:
        return [r for r in self.requests if r.path.split("?")[0] == "/v1/messages"]

    def _next(self, req: RecordedRequest) -> Reply | ErrorReply:
        with self._lock:
            item = self._script.pop(0) if self._script else None
        if item is None:
            return ErrorReply(500, "fake script exhausted")
        if callable(item) and not isinstance(item, (Reply, ErrorReply)):
            return item(req)
        return item

    # HTTP/1.1
    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._writers.add(writer)
        try:
            while await self._serve_one(reader, writer):
                pass
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            self._writers.discard(writer)
            writer.close()

    async def _serve_one(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> bool:
        line = await reader.readline()
        if not line:
            return False
        method, target, _ = line.decode("latin-1").split(" ", 2)
        headers: dict[str, str] = {}
        while (h := await reader.readline()) not in (b"\r\n", b"\n", b""):
            name, _, value = h.decode("latin-1").partition(":")
            headers[name.strip().lower()] = value.strip()
        raw = await reader.readexactly(int(headers.get("content-length", "0")))
        try:
            body = json.loads(raw) if raw else None
        except ValueError:
            body = None
        req = RecordedRequest(method, target, headers, body)
        self.requests.append(req)
        path = target.split("?")[0]
        if method == "POST" and path == "/v1/messages/count_tokens":
            tokens = max(1, len(raw) // 4)
            await self._send_json(writer, 200, {"input_tokens": tokens})
        elif method == "POST" and path == "/v1/messages" and isinstance(body, dict):
            await self._messages(writer, req, body)
        else:
            await self._send_error(writer, ErrorReply(404, f"no route {method} {path}"))
        return headers.get("connection", "").lower() != "close"

    async def _messages(self, writer: asyncio.StreamWriter, req: RecordedRequest,
                        body: dict[str, Any]) -> None:
        reply = self._next(req)
        if isinstance(reply, ErrorReply):
            await self._send_error(writer, reply)
            return
        model = str(body.get("model", "claude-fake"))
        if not body.get("stream"):
            if reply.delay:
                await asyncio.sleep(reply.delay)
            await self._send_json(writer, 200, reply.message(model))
            return
        writer.write(self._head(200, {"content-type": "text/event-stream",
                                      "cache-control": "no-cache",
                                      "transfer-encoding": "chunked",
                                      "request-id": "req_fake"}))
        for name, data in sse_events(reply, model):
            if reply.delay:
                await asyncio.sleep(reply.delay)
            frame = f"event: {name}\ndata: {json.dumps(data)}\n\n".encode()
            writer.write(b"%x\r\n%s\r\n" % (len(frame), frame))
            await writer.drain()
        if reply.end_delay:
            await asyncio.sleep(reply.end_delay)
        writer.write(b"0\r\n\r\n")
        await writer.drain()

    @staticmethod
    def _head(status: int, headers: dict[str, str]) -> bytes:
        lines = [f"HTTP/1.1 {status} {REASONS.get(status, 'Error')}"]
        lines += [f"{k}: {v}" for k, v in headers.items()]
        return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")

    async def _send_json(self, writer: asyncio.StreamWriter, status: int, payload: Any,
                         extra: dict[str, str] | None = None) -> None:
        data = json.dumps(payload).encode()
        headers = {"content-type": "application/json", "content-length": str(len(data)),
                   "request-id": "req_fake", **(extra or {})}
        writer.write(self._head(status, headers) + data)
        await writer.drain()

    async def _send_error(self, writer: asyncio.StreamWriter, reply: ErrorReply) -> None:
        await self._send_json(writer, reply.status, reply.body(), reply.headers)
