"""Bridge a blocking writer (run in a thread) to an async byte-chunk iterator, with backpressure."""

from __future__ import annotations

import asyncio
import contextlib
import queue
import threading
from collections.abc import AsyncIterator, Callable
from typing import BinaryIO

CHUNK = 256 << 10
_DONE = object()


class _Aborted(Exception):
    """The consumer went away; the producer thread unwinds."""


class _QueueWriter:
    """A write-only file whose bytes are handed to the consumer in CHUNK-sized pieces."""

    def __init__(self, q: queue.Queue[object], stop: threading.Event) -> None:
        self._q, self._stop = q, stop
        self._buf = bytearray()

    def write(self, data: bytes) -> int:
        self._buf += data
        while len(self._buf) >= CHUNK:
            self._put(bytes(self._buf[:CHUNK]))
            del self._buf[:CHUNK]
        return len(data)

    def flush(self) -> None:  # zstandard calls it; chunking is ours
        pass

    def finish(self) -> None:
        if self._buf:
            self._put(bytes(self._buf))
            self._buf.clear()

    def _put(self, item: object) -> None:
        while True:  # bounded queue: block while the consumer is slow, bail out if it left
            if self._stop.is_set():
                raise _Aborted
            try:
                self._q.put(item, timeout=0.1)
                return
            except queue.Full:
                continue


async def stream_from_thread(produce: Callable[[BinaryIO], None]) -> AsyncIterator[bytes]:
    """Run `produce(out)` in a thread and yield what it writes to `out`; re-raise its errors."""
    q: queue.Queue[object] = queue.Queue(maxsize=8)
    stop = threading.Event()
    writer = _QueueWriter(q, stop)

    def run() -> None:
        try:
            produce(writer)  # type: ignore[arg-type]
            writer.finish()
            writer._put(_DONE)
        except _Aborted:
            pass
        except BaseException as e:  # handed to the consumer, which re-raises it
            with contextlib.suppress(_Aborted):
                writer._put(e)

    thread = threading.Thread(target=run, name="ash-snapshot", daemon=True)
    thread.start()
    try:
        while True:
            item = await asyncio.to_thread(q.get)
            if item is _DONE:
                break
            if isinstance(item, BaseException):
                raise item
            yield item  # type: ignore[misc]
    finally:
        stop.set()
        await asyncio.to_thread(thread.join)
