"""Turn event transport: the runner publishes SSE frames, web processes relay and replay them.

Each turn has an ordered, bounded log of frames (`seq` from 1). Subscribers get every frame
after a given `seq`, then live frames, until a terminal frame (`done`). Two transports with
one interface: in-memory (embedded: one process) and Redis streams (production).
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
import threading
import time
from collections.abc import AsyncIterator
from typing import Any

from django.conf import settings

log = logging.getLogger("ash.events")

TERMINAL_EVENTS = frozenset({"done"})
MAX_FRAMES_PER_TURN = 20_000
TURN_LOG_TTL_SECONDS = 3600  # Redis: re-attach and replay a finished turn for an hour
MEMORY_TURN_LOG_TTL_SECONDS = 900  # in-process: bounded memory on long-running embedded servers
MEMORY_EXPIRY_SWEEP_SECONDS = 5.0


_UNSET: Any = object()
# How RedisTransport.publish_many lays a frame out (an event name needs no escaping in JSON).
_STORED = re.compile(r'\{"seq":(\d+),"event":"([A-Za-z0-9_.:-]+)","data":(.*)\}', re.DOTALL)


class Frame:
    """One frame of a turn: SSE event name, data, and its place in the turn's log (`seq`).

    The data is kept as the value it was published with or, read back from Redis, as its JSON
    text until something asks for the value: a relay writes that text out as it came, with no
    parse and re-encode per frame. Both forms give the same `data_json`."""

    __slots__ = ("seq", "event", "_data", "_data_json")

    def __init__(self, seq: int, event: str, data: Any = _UNSET, *, data_json: str | None = None) -> None:
        if data is _UNSET and data_json is None:
            raise TypeError("Frame needs its data or its data's JSON")
        self.seq, self.event, self._data, self._data_json = seq, event, data, data_json

    @property
    def data(self) -> Any:
        if self._data is _UNSET:
            self._data = json.loads(self._data_json)  # type: ignore[arg-type]
        return self._data

    @property
    def data_json(self) -> str:
        """The data as one line of compact JSON (json.dumps never emits a raw newline)."""
        if self._data_json is None:
            self._data_json = _dumps(self._data)
        return self._data_json

    @property
    def terminal(self) -> bool:
        return self.event in TERMINAL_EVENTS

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Frame):
            return NotImplemented
        return (self.seq, self.event, self.data) == (other.seq, other.event, other.data)

    def __repr__(self) -> str:
        return f"Frame(seq={self.seq}, event={self.event!r}, data={self.data_json})"

    @classmethod
    def from_json(cls, raw: str | bytes) -> Frame:
        text = raw.decode() if isinstance(raw, bytes) else raw
        stored = _STORED.fullmatch(text)
        if stored is not None:
            return cls(int(stored.group(1)), stored.group(2), data_json=stored.group(3))
        obj = json.loads(text)  # any other layout of the same object
        return cls(seq=int(obj["seq"]), event=str(obj["event"]), data=obj["data"])


def _dumps(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


class _MemoryTurnLog:
    def __init__(self) -> None:
        self.frames: list[Frame] = []
        self.waiters: set[tuple[asyncio.AbstractEventLoop, asyncio.Event]] = set()
        self.finished_at: float | None = None


class MemoryTransport:
    """Frames in this process's memory; publishers may be threads, subscribers event loops."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._turns: dict[str, _MemoryTurnLog] = {}
        self._next_expiry = 0.0

    def publish(self, turn_id: str, event: str, data: Any) -> Frame:
        return self.publish_many(turn_id, [(event, data)])[-1]

    def publish_many(self, turn_id: str, items: list[tuple[str, Any]]) -> list[Frame]:
        """Append ITEMS (event, data) in order; subscribers are woken once for all of them."""
        out = []
        with self._lock:
            log = self._turns.setdefault(turn_id, _MemoryTurnLog())
            for event, data in items:
                frame = Frame(seq=len(log.frames) + 1, event=event, data=data)
                if len(log.frames) < MAX_FRAMES_PER_TURN or frame.terminal:
                    log.frames.append(frame)
                if frame.terminal:
                    log.finished_at = time.monotonic()
                out.append(frame)
            waiters = list(log.waiters)
            self._expire_locked()
        for loop, ev in waiters:
            loop.call_soon_threadsafe(ev.set)
        return out

    def _expire_locked(self) -> None:
        """Drop logs finished over the TTL ago; a sweep over all turns, so at most every few seconds."""
        now = time.monotonic()
        if now < self._next_expiry:
            return
        self._next_expiry = now + MEMORY_EXPIRY_SWEEP_SECONDS
        cutoff = now - MEMORY_TURN_LOG_TTL_SECONDS
        for turn_id in [t for t, log in self._turns.items() if log.finished_at and log.finished_at < cutoff]:
            del self._turns[turn_id]

    async def subscribe(self, turn_id: str, *, after: int = 0, wait: float = 15.0) -> AsyncIterator[list[Frame]]:
        """Frames after AFTER, in batches of what was published meanwhile (so a relay writes them
        at once), up to the terminal frame; an empty batch when WAIT seconds pass with nothing new."""
        loop = asyncio.get_running_loop()
        ev = asyncio.Event()
        with self._lock:
            log = self._turns.setdefault(turn_id, _MemoryTurnLog())
            log.waiters.add((loop, ev))
        try:
            while True:
                ev.clear()
                with self._lock:
                    batch = _through_terminal(log.frames[after:])
                if batch:
                    after = batch[-1].seq
                    yield batch
                    if batch[-1].terminal:
                        return
                    continue
                try:
                    async with asyncio.timeout(wait):  # no task per wait, as wait_for makes on 3.11
                        await ev.wait()
                except TimeoutError:
                    yield []
        finally:
            with self._lock:
                log.waiters.discard((loop, ev))

    def frames(self, turn_id: str) -> list[Frame]:
        with self._lock:
            log = self._turns.get(turn_id)
            return list(log.frames) if log else []


class RedisTransport:
    """A Redis stream per turn (`ash:turn:<id>`), capped and expiring; XREAD BLOCK for live frames."""

    def __init__(self, url: str, *, max_connections: int = 10_000) -> None:
        import redis
        import redis.asyncio as aioredis

        self._url = url
        self._max_connections = max_connections
        self._sync = redis.Redis.from_url(url, max_connections=max_connections)
        self._async_clients: dict[int, Any] = {}
        self._aioredis = aioredis
        self._redis = redis
        self._seq_script = self._sync.register_script(
            """
            local n = #ARGV - 2
            local first = redis.call('INCRBY', KEYS[2], n) - n + 1
            for i = 1, n do
                redis.call('XADD', KEYS[1], 'MAXLEN', '~', ARGV[2], '*', 'f',
                           string.format('{"seq":%d,%s', first + i - 1, ARGV[i + 2]))
            end
            redis.call('EXPIRE', KEYS[1], ARGV[1])
            redis.call('EXPIRE', KEYS[2], ARGV[1])
            return first
            """
        )

    @staticmethod
    def _key(turn_id: str) -> str:
        return f"ash:turn:{turn_id}"

    def publish(self, turn_id: str, event: str, data: Any) -> Frame:
        return self.publish_many(turn_id, [(event, data)])[-1]

    def publish_many(self, turn_id: str, items: list[tuple[str, Any]]) -> list[Frame]:
        """Append ITEMS (event, data) in order, in one round trip."""
        # The Lua script numbers and appends atomically, so concurrent publishers cannot reorder.
        bodies = [_dumps({"event": event, "data": data})[1:] for event, data in items]  # the layout _STORED reads
        key = self._key(turn_id)
        first = int(self._seq_script(keys=[key, key + ":seq"], args=[TURN_LOG_TTL_SECONDS, MAX_FRAMES_PER_TURN, *bodies]))
        return [Frame(seq=first + i, event=event, data=data) for i, (event, data) in enumerate(items)]

    def _client(self) -> Any:
        loop = asyncio.get_running_loop()
        client = self._async_clients.get(id(loop))
        if client is None:
            # Every live SSE stream blocks in XREAD on a connection of its own; redis-py's async
            # pool allows only 100 by default, which capped concurrent streams.
            # No socket timeout: XREAD BLOCK bounds every wait itself, and redis-py's default of
            # 5 s would cut the 15 s keepalive waits.
            client = self._aioredis.Redis.from_url(self._url, max_connections=self._max_connections, socket_timeout=None)
            self._async_clients[id(loop)] = client
        return client

    async def subscribe(self, turn_id: str, *, after: int = 0, wait: float = 15.0) -> AsyncIterator[list[Frame]]:
        """As MemoryTransport.subscribe: batches (one XREAD's worth), [] on a quiet WAIT."""
        client = self._client()
        key = self._key(turn_id)
        last_id = "0-0"
        while True:
            try:
                result = await client.xread({key: last_id}, block=int(wait * 1000), count=500)
            except (self._redis.ConnectionError, self._redis.TimeoutError):
                # A dropped connection is not the end of the turn: read on from the last entry.
                log.warning("event stream read for turn %s failed; retrying", turn_id, exc_info=True)
                await asyncio.sleep(0.5)
                yield []
                continue
            if not result:
                yield []
                continue
            entries = result[0][1]
            last_id = entries[-1][0]
            batch = _through_terminal([f for f in (Frame.from_json(fields[b"f"]) for _, fields in entries) if f.seq > after])
            if batch:
                yield batch
                if batch[-1].terminal:
                    return

    def frames(self, turn_id: str) -> list[Frame]:
        return [Frame.from_json(fields[b"f"]) for _, fields in self._sync.xrange(self._key(turn_id))]


def _through_terminal(frames: list[Frame]) -> list[Frame]:
    """FRAMES up to and including the first terminal one."""
    for i, frame in enumerate(frames):
        if frame.terminal:
            return frames[: i + 1]
    return frames


_transport: MemoryTransport | RedisTransport | None = None
_transport_lock = threading.Lock()


def transport() -> MemoryTransport | RedisTransport:
    global _transport
    if _transport is None:
        with _transport_lock:
            if _transport is None:
                _transport = (
                    RedisTransport(settings.REDIS_URL, max_connections=settings.ASH_REDIS_MAX_CONNECTIONS)
                    if settings.ASH_EVENT_TRANSPORT == "redis"
                    else MemoryTransport()
                )
    return _transport
