"""The shared HTTP/1.1 response reader's chunked bodies (the runtime's model client and the
proxy's upstream client both read streamed answers with it)."""

from __future__ import annotations

import asyncio

import pytest

from ash.runtime.model_client.errors import ModelConnectionError
from ash.runtime.model_client.http11 import Response


class _Writer:
    def is_closing(self) -> bool:
        return False

    def close(self) -> None:
        pass


def _response(reader: asyncio.StreamReader) -> Response:
    return Response(reader, _Writer(), 200, {"transfer-encoding": "chunked"}, True, 2.0)  # type: ignore[arg-type]


def chunk(data: bytes) -> bytes:
    return b"%x\r\n%s\r\n" % (len(data), data)


async def test_chunks_that_arrived_together_go_out_together() -> None:
    reader = asyncio.StreamReader()
    reader.feed_data(chunk(b"event: a\n\n") + chunk(b"event: b\n\n") + chunk(b"event: c\n\n") + b"0\r\n\r\n")
    response = _response(reader)
    assert [part async for part in response.body()] == [b"event: a\n\nevent: b\n\nevent: c\n\n"]
    assert response.complete and response.reusable


async def test_the_last_part_is_known_as_last_when_the_end_came_with_it() -> None:
    """`ending` is set with the body's last part when its end is already here (the proxy then
    ends its relayed body in the same write); not when the end is still to come."""
    reader = asyncio.StreamReader()
    response = _response(reader)
    parts = response.body()
    reader.feed_data(chunk(b"first"))
    assert await asyncio.wait_for(anext(parts), 1) == b"first"
    assert not response.ending
    reader.feed_data(chunk(b"last") + b"0\r\n\r\n")
    assert await asyncio.wait_for(anext(parts), 1) == b"last"
    assert response.ending and not response.complete  # complete once the body is consumed
    with pytest.raises(StopAsyncIteration):
        await anext(parts)
    assert response.complete

    sized = Response(asyncio.StreamReader(), _Writer(), 200, {"content-length": "6"}, True, 2.0)  # type: ignore[arg-type]
    sized.reader.feed_data(b"abc")
    sized_parts = sized.body()
    assert (await anext(sized_parts), sized.ending) == (b"abc", False)
    sized.reader.feed_data(b"def")
    assert (await anext(sized_parts), sized.ending) == (b"def", True)


async def test_a_complete_chunk_is_not_held_back_waiting_for_the_next() -> None:
    reader = asyncio.StreamReader()
    response = _response(reader)
    parts = response.body()
    # The first chunk and half of the second: the first goes out at once.
    reader.feed_data(chunk(b"first") + b"6\r\nsec")
    assert await asyncio.wait_for(anext(parts), 1) == b"first"
    pending = asyncio.ensure_future(anext(parts))
    await asyncio.sleep(0.01)
    assert not pending.done()  # the second is not whole yet
    reader.feed_data(b"ond\r\n" + chunk(b"third"))
    assert await asyncio.wait_for(pending, 1) == b"secondthird"
    reader.feed_data(b"0\r\n\r\n")
    with pytest.raises(StopAsyncIteration):
        await asyncio.wait_for(anext(parts), 1)
    assert response.complete


async def test_chunk_sizes_with_extensions_and_a_cut_stream() -> None:
    reader = asyncio.StreamReader()
    reader.feed_data(b"5;name=value\r\nhello\r\n" + b"3\r\nab")
    reader.feed_eof()
    response = _response(reader)
    got = []
    with pytest.raises(ModelConnectionError):
        async for part in response.body():
            got.append(part)
    assert got == [b"hello"]
    assert not response.complete


async def test_a_bad_chunk_size_is_a_connection_error() -> None:
    for head in (b"zz\r\n", b"-5\r\n"):
        reader = asyncio.StreamReader()
        reader.feed_data(head + b"hello\r\n0\r\n\r\n")
        with pytest.raises(ModelConnectionError):
            _ = [part async for part in _response(reader).body()]
