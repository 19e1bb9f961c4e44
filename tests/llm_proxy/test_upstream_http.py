"""The proxy's upstream HTTP client against a real loopback server: keep-alive, stale
connections, framing, bodiless statuses, the base URL's path, refused headers."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

import pytest

from ash.llm_proxy.server import _tls_context
from ash.llm_proxy.upstream_http import Timeouts, UpstreamError, UpstreamHttp

TIMEOUTS = Timeouts(connect_s=2, read_s=2, write_s=2)


class Server:
    """Answers each request with the next scripted raw response; records requests and connections."""

    def __init__(self, responses: list[bytes], close_after: bool = False) -> None:
        self.responses = responses
        self.close_after = close_after
        self.requests: list[bytes] = []
        self.connections = 0
        self.port = 0

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                length = next((int(line.split(b":")[1]) for line in head.split(b"\r\n")
                               if line.lower().startswith(b"content-length:")), 0)
                body = await reader.readexactly(length)
                self.requests.append(head + body)
                writer.write(self.responses.pop(0))
                await writer.drain()
                if self.close_after:
                    break
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()


@contextlib.asynccontextmanager
async def serving(server: Server) -> AsyncIterator[str]:
    srv = await asyncio.start_server(server.handle, "127.0.0.1", 0)
    server.port = srv.sockets[0].getsockname()[1]
    try:
        yield f"http://127.0.0.1:{server.port}/base"
    finally:
        srv.close()


def ok(body: bytes, extra: bytes = b"") -> bytes:
    return b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: %d\r\n%s\r\n%s" % (
        len(body), extra, body)


async def test_requests_reuse_one_connection_and_carry_the_base_path() -> None:
    server = Server([ok(b'{"a":1}'), ok(b'{"b":2}', b"request-id: r2\r\n")])
    client = UpstreamHttp(_tls_context)
    async with serving(server) as url:
        for expected in (b'{"a":1}', b'{"b":2}'):
            response = await client.send(url, "POST", "/v1/messages", [("x-api-key", "k")], b"{}", TIMEOUTS)
            assert response.status == 200
            assert await response.read_all(1 << 20) == expected
            client.release(response)
        await client.aclose()
    assert server.connections == 1
    assert response.headers["request-id"] == "r2"
    first = server.requests[0]
    assert first.startswith(b"POST /base/v1/messages HTTP/1.1\r\n")
    assert b"host: 127.0.0.1:%d\r\n" % server.port in first
    assert b"x-api-key: k\r\n" in first and b"content-length: 2\r\n" in first
    assert b"accept-encoding" not in first.lower()  # bodies are relayed as produced


async def test_a_connection_the_server_closed_is_not_reused() -> None:
    server = Server([ok(b"1"), ok(b"2")], close_after=True)
    client = UpstreamHttp(_tls_context)
    async with serving(server) as url:
        for _ in range(2):
            response = await client.send(url, "GET", "/v1/models", [], None, TIMEOUTS)
            await response.read_all(1024)
            client.release(response)
            await asyncio.sleep(0.05)  # the close reaches the idle connection
        await client.aclose()
    assert server.connections == 2


async def test_an_unfinished_body_closes_its_connection() -> None:
    server = Server([ok(b"0123456789"), ok(b"again")])
    client = UpstreamHttp(_tls_context)
    async with serving(server) as url:
        response = await client.send(url, "GET", "/v1/models", [], None, TIMEOUTS)
        client.release(response)  # body never read: the connection cannot serve another request
        response = await client.send(url, "GET", "/v1/models", [], None, TIMEOUTS)
        assert await response.read_all(1024) == b"again"
        client.release(response)
        await client.aclose()
    assert server.connections == 2


@pytest.mark.parametrize("status", [204, 304])
async def test_bodiless_statuses_do_not_wait_for_a_body(status: int) -> None:
    server = Server([b"HTTP/1.1 %d No Content\r\n\r\n" % status, ok(b"next")])
    client = UpstreamHttp(_tls_context)
    async with serving(server) as url:
        response = await client.send(url, "GET", "/v1/models", [], None, TIMEOUTS)
        assert await asyncio.wait_for(response.read_all(1024), 1) == b""
        client.release(response)
        response = await client.send(url, "GET", "/v1/models", [], None, TIMEOUTS)
        assert await response.read_all(1024) == b"next"
        client.release(response)
        await client.aclose()
    assert server.connections == 1


async def test_chunked_bodies_are_unframed() -> None:
    server = Server([b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n"])
    client = UpstreamHttp(_tls_context)
    async with serving(server) as url:
        response = await client.send(url, "POST", "/v1/messages", [], b"{}", TIMEOUTS)
        # Both chunks were there at once: they are handed on together.
        assert b"".join([part async for part in response.body()]) == b"hello world"
        assert response.reusable
        client.release(response)
        await client.aclose()


async def test_header_injection_and_dead_upstreams_are_errors_not_requests() -> None:
    client = UpstreamHttp(_tls_context)
    with pytest.raises(UpstreamError):
        await client.send("http://127.0.0.1:9/", "POST", "/v1/messages", [("x-evil", "a\r\nhost: b")], b"", TIMEOUTS)
    with pytest.raises(UpstreamError) as caught:
        await client.send("http://127.0.0.1:9/", "POST", "/v1/messages", [], b"", TIMEOUTS)  # nothing listens
    assert not caught.value.timed_out
    silent = Server([])

    async def never_answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.read(1 << 16)
        await asyncio.sleep(5)

    silent.handle = never_answer  # type: ignore[method-assign]
    async with serving(silent) as url:
        with pytest.raises(UpstreamError) as caught:
            await client.send(url, "POST", "/v1/messages", [], b"{}", Timeouts(connect_s=2, read_s=0.2, write_s=2))
    assert caught.value.timed_out
    await client.aclose()
