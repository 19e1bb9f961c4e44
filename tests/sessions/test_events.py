"""The turn frame transports: ordered replay after a seq, live delivery, keepalive gaps, Redis too."""

from __future__ import annotations

import asyncio
import contextlib
import json
import threading
import uuid

import pytest

from ash.events import Frame, MemoryTransport, RedisTransport
from ash.sse import sse_frame

REDIS_URL = "redis://127.0.0.1:6379/13"


@pytest.fixture(scope="module", autouse=True)
def _clean_redis_db():
    """The turn logs the Redis cases write live for an hour: gone when the module is done."""
    yield
    import redis

    with contextlib.suppress(redis.ConnectionError):  # no Redis: its cases failed already
        redis.Redis.from_url(REDIS_URL).flushdb()


def transports() -> list:
    return [pytest.param(MemoryTransport, id="memory"), pytest.param(lambda: RedisTransport(REDIS_URL), id="redis")]


async def collect(transport, turn_id: str, after: int = 0, wait: float = 0.2, limit: int = 50) -> list:
    """The frames in order, None for each quiet period."""
    out = []
    async for batch in transport.subscribe(turn_id, after=after, wait=wait):
        out.extend(batch or [None])
        if batch and batch[-1].terminal or len(out) >= limit:
            break
    return out


@pytest.mark.parametrize("make", transports())
async def test_frames_published_together_arrive_as_one_batch_ending_at_done(make) -> None:
    transport, turn = make(), str(uuid.uuid4())
    transport.publish(turn, "message", {"i": 0})
    transport.publish_many(turn, [("message", {"i": 1}), ("done", {"sessionId": "s"}), ("message", {"late": True})])
    batches = []
    async for batch in transport.subscribe(turn, after=0, wait=0.2):
        batches.append([(f.seq, f.event) for f in batch])
        if batch and batch[-1].terminal:
            break
    assert batches == [[(1, "message"), (2, "message"), (3, "done")]]  # nothing after the terminal frame


@pytest.mark.parametrize("make", transports())
async def test_frames_replay_in_order_after_a_sequence_number(make) -> None:
    transport, turn = make(), str(uuid.uuid4())
    for i in range(5):
        transport.publish(turn, "message", {"i": i})
    transport.publish(turn, "done", {"sessionId": "s"})
    frames = await collect(transport, turn, after=2)
    assert [(f.seq, f.event) for f in frames] == [(3, "message"), (4, "message"), (5, "message"), (6, "done")]
    assert frames[0].data == {"i": 2}


@pytest.mark.parametrize("make", transports())
async def test_a_batch_is_numbered_in_order_after_earlier_frames(make) -> None:
    transport, turn = make(), str(uuid.uuid4())
    transport.publish(turn, "session_start", {})
    batch = transport.publish_many(turn, [("turn_complete", {"n": 1}), ("message", {"n": 2}), ("done", {})])
    assert [(f.seq, f.event) for f in batch] == [(2, "turn_complete"), (3, "message"), (4, "done")]
    frames = await collect(transport, turn)
    assert [(f.seq, f.event, f.data) for f in frames] == [
        (1, "session_start", {}), (2, "turn_complete", {"n": 1}), (3, "message", {"n": 2}), (4, "done", {})]


@pytest.mark.parametrize("make", transports())
async def test_live_frames_from_another_thread_reach_a_waiting_subscriber(make) -> None:
    transport, turn = make(), str(uuid.uuid4())

    def publish_later() -> None:
        import time

        time.sleep(0.3)
        transport.publish(turn, "message", {"late": True})
        transport.publish(turn, "done", {})

    threading.Thread(target=publish_later).start()
    frames = await asyncio.wait_for(collect(transport, turn, wait=0.1), 10)
    gaps = [f for f in frames if f is None]
    real = [f for f in frames if f is not None]
    assert gaps, "silence must be reported so the relay can send keepalives"
    assert [f.event for f in real] == ["message", "done"] and real[0].data == {"late": True}


@pytest.mark.slow
async def test_redis_waits_longer_than_the_client_socket_timeout() -> None:
    """The 15 s keepalive wait outlasts redis-py's default 5 s socket timeout."""
    transport, turn = RedisTransport(REDIS_URL), str(uuid.uuid4())

    def publish_later() -> None:
        import time

        time.sleep(6.5)
        transport.publish(turn, "done", {})

    threading.Thread(target=publish_later).start()
    frames = await asyncio.wait_for(collect(transport, turn, wait=8.0), 30)
    assert [f.event for f in frames if f is not None] == ["done"]


@pytest.mark.parametrize("make", transports())
async def test_a_frame_relays_the_same_json_whichever_transport_carried_it(make) -> None:
    """Redis frames keep their data's JSON text (relayed without a parse and re-encode); the
    value and the text are the same on both transports, non-ASCII and odd characters included."""
    transport, turn = make(), str(uuid.uuid4())
    data = {"text": "naïve “quotes” \\ \"x\" }\n{", "n": [1, 2.5, None, True], "日本": {"}": "{"}}
    transport.publish_many(turn, [("message", data), ("done", {"sessionId": "s"})])
    frames = await collect(transport, turn)
    assert [(f.seq, f.event, f.data) for f in frames] == [(1, "message", data), (2, "done", {"sessionId": "s"})]
    assert frames[0].data_json == json.dumps(data, separators=(",", ":"), ensure_ascii=False)
    assert "\n" not in frames[0].data_json
    assert sse_frame(frames[0].event, frames[0].data_json, event_id=1).decode() == (
        f"id: 1\nevent: message\ndata: {json.dumps(data, separators=(',', ':'), ensure_ascii=False)}\n\n")


def test_stored_frames_of_another_layout_still_read() -> None:
    """A frame written as any JSON object with seq, event and data (an older publisher's)."""
    spaced = Frame.from_json(b'{"seq": 3, "event": "message", "data": {"a": "\\u00e9"}}')
    assert (spaced.seq, spaced.event, spaced.data, spaced.data_json) == (3, "message", {"a": "é"}, '{"a":"é"}')
    reordered = Frame.from_json('{"event":"done","data":{},"seq":4}')
    assert (reordered.seq, reordered.event, reordered.data, reordered.terminal) == (4, "done", {}, True)
    lazy = Frame.from_json('{"seq":5,"event":"message","data":{"b":[1,2]}}')
    assert lazy.data_json == '{"b":[1,2]}' and lazy.data == {"b": [1, 2]} and lazy == Frame(5, "message", {"b": [1, 2]})
    with pytest.raises(TypeError):
        Frame(1, "message")
