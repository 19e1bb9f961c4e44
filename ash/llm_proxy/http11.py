"""A small HTTP/1.1 server connection on asyncio streams, parsed by h11.

Enforces the header and body size caps and the read timeouts itself, so a misbehaving sandbox
can neither grow the runner's memory nor hold a connection open forever.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from http import HTTPStatus

import h11

READ_SIZE = 64 * 1024


def _reason(status: int) -> bytes:
    if status == 529:
        return b"Overloaded"
    try:
        return HTTPStatus(status).phrase.encode()
    except ValueError:
        return b""


@dataclass(frozen=True)
class ProxyLimits:
    """Caps on what a sandbox may send to the proxy."""

    max_body_bytes: int = 32 * 1024 * 1024  # the Messages API's own request limit
    max_header_bytes: int = 64 * 1024
    idle_timeout_s: float = 75.0  # keep-alive connection waiting for its next request
    request_timeout_s: float = 60.0  # from the first byte of a request to its last
    max_connections: int = 64  # concurrent connections per proxy


class RequestRejected(Exception):
    """The request cannot be read; answer `status` and close the connection."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


@dataclass
class IncomingRequest:
    method: str
    target: str  # path and query string
    headers: list[tuple[str, str]]  # lower-cased names
    body: bytes

    @property
    def path(self) -> str:
        return self.target.partition("?")[0]

    def header(self, name: str) -> str | None:
        for key, value in self.headers:
            if key == name:
                return value
        return None


class HttpConnection:
    """One client connection: read requests, write full or streamed responses."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                 limits: ProxyLimits) -> None:
        self._reader = reader
        self._writer = writer
        self._limits = limits
        self._conn = h11.Connection(h11.SERVER, max_incomplete_event_size=limits.max_header_bytes)
        self._held = b""  # a streamed response's head, written with what follows it (`flush_held`)

    async def _event(self, timeout: float) -> h11.Event | type[h11.PAUSED] | type[h11.NEED_DATA]:
        while True:
            try:
                event = self._conn.next_event()
            except h11.RemoteProtocolError as exc:
                raise RequestRejected(exc.error_status_hint, f"malformed request: {exc}") from None
            if event is not h11.NEED_DATA:
                return event
            async with asyncio.timeout(timeout):
                data = await self._reader.read(READ_SIZE)
            self._conn.receive_data(data)

    async def next_request(self) -> IncomingRequest | None:
        """The next complete request, or None when the client closed or went idle."""
        if self._conn.our_state is h11.DONE and self._conn.their_state is h11.DONE:
            self._conn.start_next_cycle()
        if self._conn.their_state is not h11.IDLE:
            return None
        try:
            event = await self._event(self._limits.idle_timeout_s)
        except TimeoutError:
            return None
        if isinstance(event, h11.ConnectionClosed) or event is h11.PAUSED:
            return None
        if not isinstance(event, h11.Request):
            raise RequestRejected(400, "expected a request")
        # h11 caps only an incomplete head; a head that arrives in one read needs this check.
        head_size = len(event.target) + sum(len(k) + len(v) + 4 for k, v in event.headers)
        if head_size > self._limits.max_header_bytes:
            raise RequestRejected(431, "request headers are too large")
        headers = [(k.decode("latin-1").lower(), v.decode("latin-1")) for k, v in event.headers]
        request = IncomingRequest(event.method.decode("ascii"), event.target.decode("latin-1"),
                                  headers, b"")
        declared = request.header("content-length")
        if declared is not None and declared.isdigit() and int(declared) > self._limits.max_body_bytes:
            raise RequestRejected(413, self._too_large())
        try:
            async with asyncio.timeout(self._limits.request_timeout_s):
                request.body = await self._read_body()
        except TimeoutError:
            raise RequestRejected(408, "timed out reading the request body") from None
        return request

    async def _read_body(self) -> bytes:
        parts: list[bytes] = []
        size = 0
        while True:
            event = await self._event(self._limits.request_timeout_s)
            if isinstance(event, h11.Data):
                size += len(event.data)
                if size > self._limits.max_body_bytes:
                    raise RequestRejected(413, self._too_large())
                parts.append(bytes(event.data))
            elif isinstance(event, h11.EndOfMessage):
                return b"".join(parts)
            else:
                raise RequestRejected(400, "connection closed in the middle of the request body")

    def _too_large(self) -> str:
        return f"request body exceeds the proxy limit of {self._limits.max_body_bytes} bytes"

    @property
    def can_respond(self) -> bool:
        return self._conn.our_state in (h11.IDLE, h11.SEND_RESPONSE)

    async def _write(self, *events: h11.Event) -> None:
        """EVENTS (and a held head) in one write: each write wakes the client for a round of work."""
        data = self._held + b"".join(self._conn.send(event) or b"" for event in events)
        self._held = b""
        if data:
            self._writer.write(data)
            await self._writer.drain()

    def flush_held(self) -> None:
        """Write a held response head now."""
        if self._held:
            self._writer.write(self._held)
            self._held = b""

    async def respond(self, status: int, headers: list[tuple[str, str]], body: bytes,
                      *, close: bool = False) -> None:
        extra = [("content-length", str(len(body)))]
        if close:
            extra.append(("connection", "close"))
        head = h11.Response(status_code=status, headers=headers + extra, reason=_reason(status))
        await self._write(head, *([h11.Data(data=body)] if body else []), h11.EndOfMessage())

    async def start_stream(self, status: int, headers: list[tuple[str, str]]) -> None:
        """Start a chunked response (no content-length). The head leaves with the first chunk
        when that is sent before the loop's next round (its bytes were already here), else then."""
        self._held += self._conn.send(h11.Response(status_code=status, headers=headers,
                                                   reason=_reason(status))) or b""
        asyncio.get_running_loop().call_soon(self.flush_held)

    async def send_chunk(self, data: bytes, *, last: bool = False) -> None:
        """A chunk of the body; LAST ends the body in the same write."""
        events: list[h11.Event] = [h11.Data(data=data)] if data else []
        await self._write(*events, *([h11.EndOfMessage()] if last else []))

    async def end_stream(self) -> None:
        if self._conn.our_state is not h11.DONE:  # not ended by a last chunk already
            await self._write(h11.EndOfMessage())

    async def reject(self, status: int, headers: list[tuple[str, str]], body: bytes) -> None:
        """Answer an unreadable request, then drain what the client still sends and close.

        Draining (briefly) lets a client that is still uploading read the answer instead of
        seeing a reset.
        """
        try:
            await self.respond(status, headers, body, close=True)
        except h11.LocalProtocolError:
            # h11 refuses to answer some broken requests; write a minimal response by hand.
            head = f"HTTP/1.1 {status} Error\r\ncontent-length: {len(body)}\r\nconnection: close\r\n"
            head += "".join(f"{k}: {v}\r\n" for k, v in headers)
            self._writer.write(head.encode("latin-1") + b"\r\n" + body)
            await self._writer.drain()
        if self._writer.can_write_eof():
            self._writer.write_eof()
        budget = 2 * self._limits.max_body_bytes
        try:
            async with asyncio.timeout(2.0):
                while budget > 0 and (data := await self._reader.read(READ_SIZE)):
                    budget -= len(data)
        except (TimeoutError, ConnectionError):
            pass

    async def close(self) -> None:
        self._writer.close()
        try:
            async with asyncio.timeout(5.0):
                await self._writer.wait_closed()
        except TimeoutError:
            # A client that never reads would keep the unflushed transport open forever.
            self._writer.transport.abort()
        except (ConnectionError, OSError):
            pass
