"""The proxy's HTTP/1.1 server connection: how a response goes out on the wire (each write wakes
the sandbox's client for a round of work, so what is ready together leaves together)."""

from __future__ import annotations

import asyncio

from ash.llm_proxy.http11 import HttpConnection, ProxyLimits


class _RecordingWriter:
    def __init__(self) -> None:
        self.writes: list[bytes] = []

    def write(self, data: bytes) -> None:
        self.writes.append(bytes(data))

    async def drain(self) -> None:
        pass


async def _connection() -> tuple[HttpConnection, _RecordingWriter]:
    reader = asyncio.StreamReader()
    reader.feed_data(b"POST /v1/messages HTTP/1.1\r\nhost: proxy\r\ncontent-length: 2\r\n\r\n{}")
    writer = _RecordingWriter()
    conn = HttpConnection(reader, writer, ProxyLimits())  # type: ignore[arg-type]
    request = await conn.next_request()
    assert request is not None and request.body == b"{}"
    return conn, writer


async def test_a_stream_whose_body_is_at_hand_goes_out_in_one_write() -> None:
    conn, writer = await _connection()
    await conn.start_stream(200, [("content-type", "text/event-stream")])
    await conn.send_chunk(b"event: a\n\n", last=True)
    await conn.end_stream()  # already ended: writes nothing more
    await asyncio.sleep(0)  # the held head's scheduled flush finds nothing left
    [wire] = writer.writes
    assert wire.startswith(b"HTTP/1.1 200 OK\r\n") and b"transfer-encoding: chunked\r\n" in wire.lower()
    assert wire.endswith(b"\r\n\r\na\r\nevent: a\n\n\r\n0\r\n\r\n")


async def test_a_head_is_not_held_while_the_body_is_awaited() -> None:
    conn, writer = await _connection()
    await conn.start_stream(200, [("content-type", "text/event-stream")])
    await asyncio.sleep(0)  # the loop's next round: the body has not come, the head goes now
    assert len(writer.writes) == 1 and writer.writes[0].startswith(b"HTTP/1.1 200 OK")
    await conn.send_chunk(b"x")
    await conn.send_chunk(b"y")
    await conn.end_stream()
    assert writer.writes[1:] == [b"1\r\nx\r\n", b"1\r\ny\r\n", b"0\r\n\r\n"]


async def test_a_whole_response_is_one_write() -> None:
    conn, writer = await _connection()
    await conn.respond(200, [("content-type", "application/json")], b'{"ok":true}')
    [wire] = writer.writes
    assert wire.startswith(b"HTTP/1.1 200 OK\r\n") and wire.endswith(b'\r\n\r\n{"ok":true}')
    assert b"content-length: 11\r\n" in wire.lower()
