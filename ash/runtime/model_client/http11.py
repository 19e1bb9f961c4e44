"""HTTP/1.1 responses on asyncio streams: the status line, headers and a framed body."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass
from urllib.parse import urlsplit

from ash.runtime.model_client.errors import CONNECTION_ERROR, TIMED_OUT, ModelConnectionError

READ_SIZE = 64 * 1024


@dataclass(frozen=True)
class Endpoint:
    authority: str  # the Host header
    hostname: str
    port: int
    tls: bool
    path: str  # of the Messages API, under the base URL's path
    unix_socket: str | None = None  # when set, the connection goes here instead

    @classmethod
    def parse(cls, base_url: str, unix_socket: str | None = None) -> Endpoint:
        url = urlsplit(base_url)
        if url.scheme not in ("http", "https") or not url.hostname:
            raise ValueError(f"unsupported model base URL: {base_url!r}")
        tls = url.scheme == "https"
        return cls(authority=url.netloc.rpartition("@")[2], hostname=url.hostname,
                   port=url.port or (443 if tls else 80), tls=tls,
                   path=url.path.rstrip("/") + "/v1/messages", unix_socket=unix_socket)


class Response:
    """One HTTP response: status line, headers, and a body read with the framing it announced."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, status: int,
                 headers: dict[str, str], keep_alive: bool, read_timeout_s: float) -> None:
        self.reader = reader
        self.writer = writer
        self.status = status
        self.headers = headers
        self.complete = False  # the whole body was read: the connection may serve another request
        self.ending = False  # the part `body()` yields now is the body's last (known before it ends)
        self._keep_alive = keep_alive and headers.get("connection", "").lower() != "close"
        self._read_timeout_s = read_timeout_s

    @property
    def reusable(self) -> bool:
        return self.complete and self._keep_alive and not self.writer.is_closing()

    async def body(self) -> AsyncIterator[bytes]:
        """The body's bytes as they arrive; network failures become ModelConnectionError."""
        try:
            if "chunked" in self.headers.get("transfer-encoding", "").lower():
                parts = self._chunked()
            elif "content-length" in self.headers:
                parts = self._sized(int(self.headers["content-length"]))
            else:
                self._keep_alive = False  # the end of the connection ends the body
                parts = self._until_eof()
            async with contextlib.aclosing(parts):
                async for part in parts:
                    yield part
        except TimeoutError:
            raise ModelConnectionError(TIMED_OUT) from None
        except (OSError, EOFError, ValueError) as exc:
            raise ModelConnectionError(CONNECTION_ERROR) from exc
        self.complete = True

    async def read_all(self, limit: int) -> bytes:
        data = b""
        async with contextlib.aclosing(self.body()) as parts:
            async for part in parts:
                data += part
                if len(data) > limit:
                    break
        return data[:limit]

    async def _read(self, size: int = READ_SIZE) -> bytes:
        async with asyncio.timeout(self._read_timeout_s):
            return await self.reader.read(size)

    async def _read_more(self, size: int = READ_SIZE) -> bytes:
        if data := await self._read(size):
            return data
        raise EOFError("the connection closed before the response ended")

    async def _chunked(self) -> AsyncIterator[bytes]:
        """The chunks' data. Chunks that are already here when one is complete go out together:
        a streamed answer's frames usually arrive several to a read, and each part handed on
        costs its reader (the proxy's relay, the runtime's SSE parser) a round of work."""
        buf = bytearray()
        ready: list[bytes] = []
        while True:
            end = buf.find(b"\r\n")
            if end >= 0:
                size = int(bytes(buf[:end]).partition(b";")[0], 16)
                if size < 0:
                    raise ValueError("negative chunk size")
                if size == 0:
                    del buf[:end + 2]
                    break
                if len(buf) >= end + size + 4:  # the whole chunk and its CRLF
                    ready.append(bytes(buf[end + 2:end + 2 + size]))
                    del buf[:end + size + 4]
                    continue
            if ready:  # the next chunk is not all here: hand over what is, then wait
                yield b"".join(ready)
                ready = []
            buf += await self._read_more()
        while not (buf.startswith(b"\r\n") or b"\r\n\r\n" in buf):  # optional trailers
            buf += await self._read_more()
        if ready:
            self.ending = True
            yield b"".join(ready)

    async def _sized(self, remaining: int) -> AsyncIterator[bytes]:
        while remaining > 0:
            data = await self._read_more(min(remaining, READ_SIZE))
            remaining -= len(data)
            self.ending = remaining <= 0
            yield data

    async def _until_eof(self) -> AsyncIterator[bytes]:
        while data := await self._read():
            yield data

    def close(self) -> None:
        self.writer.close()


async def read_head(reader: asyncio.StreamReader) -> tuple[int, dict[str, str], bool]:
    """Status, lower-cased headers, and whether HTTP/1.1 keep-alive applies."""
    version, _, rest = (await reader.readline()).decode("latin-1").partition(" ")
    if not version.startswith("HTTP/1."):
        raise ValueError(f"not an HTTP/1.x response: {version!r}")
    status = int(rest[:3])
    headers: dict[str, str] = {}
    while (line := await reader.readline()) not in (b"\r\n", b"\n"):
        if not line:
            raise EOFError("the connection closed in the response headers")
        name, _, value = line.decode("latin-1").partition(":")
        headers[name.strip().lower()] = value.strip()
    return status, headers, version == "HTTP/1.1"
