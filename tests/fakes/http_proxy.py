"""A forward HTTP proxy on loopback for tests: CONNECT tunnels, and absolute-form requests
forwarded to their origin. It records what it saw (request lines, headers, the bytes it tunnelled)
and can demand Proxy-Authorization."""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass, field
from urllib.parse import urlsplit

from tests.fakes.loopback import LoopbackServer


@dataclass
class ProxiedRequest:
    line: str  # "CONNECT host:port HTTP/1.1" or "POST http://host:port/path HTTP/1.1"
    headers: dict[str, str] = field(default_factory=dict)  # lower-cased names


class FakeHttpProxy(LoopbackServer):
    thread_name = "fake-http-proxy"

    def __init__(self, *, require_authorization: str | None = None) -> None:
        super().__init__()
        self.require_authorization = require_authorization  # the exact Proxy-Authorization value
        self.requests: list[ProxiedRequest] = []
        self.tunnelled = bytearray()  # every byte a client sent through a CONNECT tunnel

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def _listen(self) -> asyncio.AbstractServer:
        return await asyncio.start_server(self._handle, "127.0.0.1", 0)

    async def _head(self, reader: asyncio.StreamReader) -> ProxiedRequest | None:
        line = (await reader.readline()).decode("latin-1").rstrip("\r\n")
        if not line:
            return None
        request = ProxiedRequest(line)
        while (raw := await reader.readline()) not in (b"\r\n", b"\n", b""):
            name, _, value = raw.decode("latin-1").partition(":")
            request.headers[name.strip().lower()] = value.strip()
        self.requests.append(request)
        return request

    def _refused(self, request: ProxiedRequest) -> bool:
        return (self.require_authorization is not None
                and request.headers.get("proxy-authorization") != self.require_authorization)

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._writers.add(writer)
        try:
            request = await self._head(reader)
            if request is None:
                return
            if self._refused(request):
                writer.write(b"HTTP/1.1 407 Proxy Authentication Required\r\ncontent-length: 0\r\n"
                             b"connection: close\r\n\r\n")
                await writer.drain()
                return
            method, target, _ = request.line.split(" ", 2)
            if method == "CONNECT":
                host, _, port = target.rpartition(":")
                up_reader, up_writer = await asyncio.open_connection(host.strip("[]"), int(port))
                writer.write(b"HTTP/1.1 200 Connection established\r\n\r\n")
                await asyncio.gather(self._pipe(reader, up_writer, record=True), self._pipe(up_reader, writer))
            else:
                url = urlsplit(target)
                up_reader, up_writer = await asyncio.open_connection(url.hostname, url.port or 80)
                await asyncio.gather(self._forward(reader, up_writer, request), self._pipe(up_reader, writer))
        except (ConnectionError, OSError, ValueError):
            pass
        finally:
            self._writers.discard(writer)
            writer.close()

    async def _forward(self, reader: asyncio.StreamReader, up_writer: asyncio.StreamWriter,
                       request: ProxiedRequest | None) -> None:
        """Absolute-form requests, one after another on the connection, sent on in origin form."""
        try:
            while request is not None:
                method, target, version = request.line.split(" ", 2)
                url = urlsplit(target)
                head = [f"{method} {url.path or '/'}{'?' + url.query if url.query else ''} {version}"]
                head += [f"{k}: {v}" for k, v in request.headers.items() if k != "proxy-authorization"]
                body = await reader.readexactly(int(request.headers.get("content-length", "0")))
                up_writer.write(("\r\n".join(head) + "\r\n\r\n").encode("latin-1") + body)
                await up_writer.drain()
                request = await self._head(reader)
                if request is not None and self._refused(request):
                    return
        finally:
            up_writer.close()

    async def _pipe(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, *, record: bool = False) -> None:
        try:
            while data := await reader.read(65536):
                if record:
                    self.tunnelled += data
                writer.write(data)
                await writer.drain()
        except (ConnectionError, OSError):
            pass
        finally:
            with contextlib.suppress(Exception):
                writer.close()
