"""Per-session sequence numbers: an atomic counter, gapless and unique under concurrent writers."""

from __future__ import annotations

import threading
import uuid
from collections.abc import Callable

import pytest
from django.db import connection, transaction

from agents_app.models import Agent
from ash import sql
from sessions_app.models import Message, Session, SessionEvent
from sessions_app.services import (
    session_event_record,
    session_message_record,
    session_sequence_allocate,
    session_sequences_allocate,
    session_sequences_reserve,
)

THREADS = 8
EVENTS_PER_THREAD = 6


def _session(tenant_id: str = "seq") -> Session:
    agent = Agent.objects.create(tenant_id=tenant_id, name="seq-agent", path="/nonexistent")
    return Session.objects.create(tenant_id=tenant_id, agent=agent, agent_name="seq-agent", status="active")


def _concurrently(write: Callable[[int, int], None]) -> None:
    """WRITE(thread, i) for i < EVENTS_PER_THREAD on THREADS threads started together; no errors."""
    start = threading.Barrier(THREADS)
    errors: list[BaseException] = []

    def worker(index: int) -> None:
        try:
            start.wait(timeout=10)
            for i in range(EVENTS_PER_THREAD):
                write(index, i)
        except BaseException as exc:  # surfaced by the assertion below
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(THREADS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert not any(t.is_alive() for t in threads)
    assert errors == []


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_concurrent_event_records_get_exactly_1_to_n():
    session = _session()

    def write(index: int, i: int) -> None:
        session_event_record(session=session, type="text", data={"thread": index, "i": i})

    _concurrently(write)

    total = THREADS * EVENTS_PER_THREAD
    sequences = list(SessionEvent.objects.filter(session=session).order_by("sequence").values_list("sequence", flat=True))
    assert sequences == list(range(1, total + 1))
    session.refresh_from_db()
    assert session.event_seq == total
    # Each thread's own events keep their order.
    for n in range(THREADS):
        mine = [e for e in SessionEvent.objects.filter(session=session).order_by("sequence") if f'"thread":{n},' in e.data]
        assert [int(e.data.split('"i":')[1].rstrip("}")) for e in mine] == list(range(EVENTS_PER_THREAD))


@pytest.mark.django_db
def test_messages_and_events_have_separate_counters():
    session = _session()
    session_event_record(session=session, type="lifecycle", data={"action": "created"})
    first = session_message_record(session=session, role="user", content={"type": "user", "content": "hi"})
    second = session_event_record(session=session, type="text", data=None)
    assert (first.sequence, second.sequence) == (1, 2)
    assert second.data is None


@pytest.mark.django_db
def test_counters_are_per_session():
    one, two = _session("t1"), _session("t2")
    session_event_record(session=one, type="text", data={})
    session_event_record(session=one, type="text", data={})
    assert session_event_record(session=two, type="text", data={}).sequence == 1


@pytest.mark.django_db
def test_rolled_back_allocation_leaves_no_gap():
    session = _session()
    with pytest.raises(RuntimeError, match="boom"), transaction.atomic():
        session_event_record(session=session, type="text", data={})
        raise RuntimeError("boom")
    assert session_event_record(session=session, type="text", data={}).sequence == 1


@pytest.mark.django_db
def test_allocating_a_block_returns_its_first_number():
    session = _session()
    with transaction.atomic():
        assert session_sequence_allocate(session_id=session.pk, counter="message_seq", count=3) == 1
        assert session_sequence_allocate(session_id=session.pk, counter="message_seq") == 4


@pytest.mark.django_db
def test_allocating_both_counters_in_one_statement():
    session = _session()
    with transaction.atomic():
        assert session_sequences_allocate(session_id=session.pk, message_seq=1, event_seq=3) == {
            "message_seq": 1, "event_seq": 1}
        assert session_sequences_allocate(session_id=session.pk, event_seq=2, message_seq=2) == {
            "message_seq": 2, "event_seq": 4}
    session.refresh_from_db()
    assert (session.message_seq, session.event_seq) == (3, 5)


@pytest.mark.django_db
def test_allocating_for_a_missing_session_fails():
    with pytest.raises(Session.DoesNotExist), transaction.atomic():
        session_sequences_allocate(session_id=uuid.uuid4(), message_seq=1)


@pytest.mark.django_db
def test_allocation_refuses_unknown_counter():
    session = _session()
    with pytest.raises(ValueError), transaction.atomic():
        session_sequence_allocate(session_id=session.pk, counter="id")


@pytest.mark.django_db(transaction=True)
def test_allocation_outside_a_transaction_is_refused():
    session = _session()
    with pytest.raises(RuntimeError, match="inside transaction.atomic"):
        session_sequence_allocate(session_id=session.pk, counter="event_seq")
    assert not Message.objects.exists()


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_concurrent_reservations_in_batches_are_gapless_and_keep_each_batchs_order():
    """The turn's way: the counter update and the rows numbered from it in one batch (one round
    trip on PostgreSQL), many writers at once."""
    session = _session()

    def write(index: int, i: int) -> None:
        with sql.batched():
            first = session_sequences_reserve(session_id=session.pk, event_seq=2, message_seq=1)
            sql.insert([SessionEvent(session_id=session.pk, tenant_id="seq", type="text", data=f"{index}:{i}:{k}",
                                     sequence=first["event_seq"] + k) for k in range(2)])
            sql.insert([Message(session_id=session.pk, tenant_id="seq", role="assistant", content="{}",
                                sequence=first["message_seq"])])

    _concurrently(write)
    total = THREADS * EVENTS_PER_THREAD
    events = list(SessionEvent.objects.filter(session=session).order_by("sequence").values_list("sequence", "data"))
    assert [seq for seq, _ in events] == list(range(1, 2 * total + 1))
    for (_, a), (_, b) in zip(events[::2], events[1::2], strict=True):  # a batch's two rows are adjacent
        assert a.endswith(":0") and b == a[:-1] + "1"
    assert sorted(Message.objects.filter(session=session).values_list("sequence", flat=True)) == list(range(1, total + 1))
    session.refresh_from_db()
    assert (session.event_seq, session.message_seq) == (2 * total, total)


@pytest.mark.django_db
def test_reserving_needs_a_batch():
    session = _session()
    with pytest.raises(RuntimeError, match="sql.batched"):
        session_sequences_reserve(session_id=session.pk, event_seq=1)
