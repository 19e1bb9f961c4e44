"""The Celery broker transport on Redis: kombu's, keeping one redis-py client per channel."""

from __future__ import annotations

import uuid

import pytest
from kombu import Connection, Consumer, Exchange, Producer, Queue

from ash.celery import RedisTransport

REDIS_URL = "redis://127.0.0.1:6379/12"


@pytest.fixture
def connection():
    conn = Connection(REDIS_URL, transport=RedisTransport)
    yield conn
    import redis

    redis.Redis.from_url(REDIS_URL).flushdb()
    conn.release()


def test_a_channel_keeps_one_client_for_its_commands(connection) -> None:
    channel = connection.channel()
    first = channel._create_client()
    assert channel._create_client() is first
    assert channel._create_client(asynchronous=True) is not first  # the consumer's BRPOP client: its own
    assert connection.channel()._create_client() is not first  # another channel, another client


def test_publish_deliver_ack_and_requeue_through_it(connection) -> None:
    """Messages go out, come in, and an unacknowledged one comes back: the acks_late path."""
    queue = Queue(f"test-{uuid.uuid4().hex}", Exchange("test-broker", type="direct"), routing_key="k")
    got: list = []
    with connection.channel() as channel:
        producer = Producer(channel)
        for n in range(3):
            producer.publish({"n": n}, exchange=queue.exchange, routing_key="k", declare=[queue])
        consumer = Consumer(channel, [queue], callbacks=[lambda body, message: got.append((body, message))])
        with consumer:
            while len(got) < 3:
                connection.drain_events(timeout=5)
        assert [body["n"] for body, _ in got] == [0, 1, 2]
        for _, message in got[:2]:
            message.ack()
        got[2][1].requeue()  # what a worker lost mid-task leads to
    with connection.channel() as channel:
        again: list = []
        with Consumer(channel, [queue], callbacks=[lambda body, message: again.append(message) or message.ack()]):
            connection.drain_events(timeout=5)
        assert [m.payload["n"] for m in again] == [2]


def test_celery_reads_every_celery_setting_under_its_own_name() -> None:
    """The app's configuration is a snapshot of the CELERY_* settings (Celery's lookups against
    Django's lazy settings object were ~0.2 ms a publish)."""
    from django.conf import settings

    from ash.celery import _settings_for_celery, app

    names = [name for name in dir(settings) if name.startswith("CELERY_")]
    assert len(names) >= 10
    snapshot = _settings_for_celery()
    for name in names:
        key = name.removeprefix("CELERY_").lower()
        assert snapshot[key] == getattr(settings, name)
        assert app.conf[key] == getattr(settings, name), key
    assert app.conf.task_acks_late is True and app.conf.worker_prefetch_multiplier == 1
    assert app.conf.task_serializer == "json" and app.conf.accept_content == ["json"]


def test_redis_replies_are_parsed_by_hiredis() -> None:
    """redis-py (the event streams, Celery's broker) picks its C parser when hiredis is installed:
    ~0.5 ms less CPU a distributed turn than its Python parser."""
    import redis
    from redis.connection import DefaultParser
    from redis.utils import HIREDIS_AVAILABLE

    assert HIREDIS_AVAILABLE and DefaultParser.__name__ == "_HiredisParser"
    client = redis.Redis.from_url(REDIS_URL)
    try:
        assert client.ping() is True
        conn = client.connection_pool.get_connection()
        try:
            assert type(conn._parser).__name__ == "_HiredisParser"
        finally:
            client.connection_pool.release(conn)
    finally:
        client.close()
