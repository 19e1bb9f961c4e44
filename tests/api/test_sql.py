"""ash.sql: the hot path's statements read and write exactly what the ORM does (SQLite and PostgreSQL)."""

from __future__ import annotations

import datetime as dt
import uuid

import pytest
from django.db import transaction
from django.utils import timezone

from agents_app.models import Agent
from ash import sql
from sessions_app.models import Message, Session, Turn
from usage_app.models import UsageEvent

pytestmark = pytest.mark.django_db


def _session(**extra) -> Session:
    agent = Agent.objects.create(tenant_id="t1", name="sql-agent", path="/nonexistent")
    return Session.objects.create(tenant_id="t1", agent=agent, agent_name="sql-agent", status="active",
                                  config={"extraEnv": {"A": "1"}, "nested": [1, {"b": None}]}, **extra)


def _values(obj, names):
    return {name: getattr(obj, name) for name in names}


def test_select_one_gives_the_orm_instance_field_for_field() -> None:
    session = _session()
    turn = Turn.objects.create(tenant_id="t1", session=session, prompt=[{"type": "text", "text": "hi"}],
                               options={"maxTurns": 3}, interrupt_requested=True)
    Session.objects.filter(pk=session.pk).update(active_turn=turn, last_active_at=timezone.now())
    for model, pk in ((Session, session.pk), (Turn, turn.pk)):
        fast = sql.select_one(model, where={"id": pk})
        orm = model.objects.get(pk=pk)
        names = [f.attname for f in model._meta.concrete_fields]
        assert _values(fast, names) == _values(orm, names)
        assert isinstance(fast.pk, uuid.UUID) and fast._state.adding is False
    fast_turn = sql.select_one(Turn, where={"id": turn.pk})
    assert fast_turn.interrupt_requested is True and isinstance(fast_turn.created_at, dt.datetime)
    assert fast_turn.created_at.tzinfo is not None


def test_select_one_filters_on_every_condition_and_none_is_is_null() -> None:
    session = _session()
    assert sql.select_one(Session, where={"tenant_id": "t1", "id": session.pk}) is not None
    assert sql.select_one(Session, where={"tenant_id": "other", "id": session.pk}) is None  # another tenant
    assert sql.select_one(Session, where={"id": uuid.uuid4()}) is None
    assert sql.select_one(Session, where={"id": session.pk, "active_turn": None}) is not None
    # Only the fields asked for are loaded; the rest is deferred and loads on access.
    partial = sql.select_one(Session, where={"id": session.pk}, fields=("id", "status"))
    assert partial.get_deferred_fields() >= {"config", "tenant_id"}
    assert partial.config == session.config


def test_update_counts_rows_and_if_true_decides_in_the_statement() -> None:
    session = _session()
    flagged = Turn.objects.create(tenant_id="t1", session=session, prompt="a", interrupt_requested=True)
    plain = Turn.objects.create(tenant_id="t1", session=session, prompt="b")
    now = timezone.now()
    for turn in (flagged, plain):
        changed = sql.update(Turn, where={"id": turn.pk}, values={
            "status": sql.IfTrue("interrupt_requested", Turn.Status.INTERRUPTED, Turn.Status.COMPLETED),
            "error": None, "finished_at": now})
        assert changed == 1
    assert Turn.objects.get(pk=flagged.pk).status == Turn.Status.INTERRUPTED
    assert Turn.objects.get(pk=plain.pk).status == Turn.Status.COMPLETED
    assert Turn.objects.get(pk=plain.pk).finished_at == now
    # A condition that does not hold changes nothing (the claim in turn_start relies on it).
    assert sql.update(Session, where={"id": session.pk, "active_turn": flagged.pk}, values={"active_turn": None}) == 0
    assert sql.update(Session, where={"id": session.pk, "active_turn": None}, values={"active_turn": flagged.pk}) == 1
    assert Session.objects.get(pk=session.pk).active_turn_id == flagged.pk


def test_insert_writes_what_bulk_create_would_in_one_statement() -> None:
    session = _session()
    before = timezone.now()
    messages = [Message(session_id=session.pk, tenant_id="t1", role="assistant", content=f'{{"i":{i}}}', sequence=i)
                for i in range(1, 4)]
    with transaction.atomic():
        sql.insert(messages)
    stored = list(Message.objects.filter(session=session).order_by("sequence"))
    assert [(m.pk, m.content, m.sequence, m.role) for m in stored] == [
        (m.pk, m.content, m.sequence, m.role) for m in messages]
    assert all(m.created_at >= before for m in stored)  # auto_now_add, as the ORM sets it
    assert all(not m._state.adding for m in messages)
    sql.insert([UsageEvent(tenant_id="t1", session_id=session.pk, agent_name="a", event_type="cost_usd", value=0.25)])
    assert UsageEvent.objects.get(session_id=session.pk).value == 0.25
    sql.insert([])  # nothing to do
    with pytest.raises(TypeError):
        sql.insert([messages[0], UsageEvent()])


def test_insert_prepares_values_that_are_not_plain_strings_as_the_orm_does() -> None:
    from django.utils.functional import lazy

    session = _session()
    lazy_text = lazy(lambda: "assistant", str)()  # a lazy string: Django's preparation makes it a str
    event = UsageEvent(tenant_id="t1", session_id=str(session.pk), agent_name=lazy_text, event_type="tool_call",
                       value=3, model=7)  # a UUID as text, a number in a text column
    sql.insert([event])
    stored = UsageEvent.objects.get(pk=event.pk)
    assert (stored.session_id, stored.agent_name, stored.model, stored.value) == (session.pk, "assistant", "7", 3.0)


def test_update_returning_changes_one_row_and_reads_it_back_in_one_statement() -> None:
    session = _session(message_seq=4)
    claimed = sql.update_returning(Session, where={"id": session.pk, "active_turn": None},
                                   values={"status": "paused", "message_seq": sql.Add(2)}, fields=("id", "message_seq"))
    assert claimed.message_seq == 6 and claimed.pk == session.pk
    assert claimed.get_deferred_fields() >= {"status"}
    assert Session.objects.get(pk=session.pk).status == "paused"
    # No match: nothing changes, None.
    assert sql.update_returning(Session, where={"id": session.pk, "status": "active"}, values={"message_seq": sql.Add(1)}) is None
    assert Session.objects.get(pk=session.pk).message_seq == 6
    whole = sql.update_returning(Session, where={"id": session.pk}, values={"status": "active"})
    assert whole.status == "active" and whole.config == session.config
    with pytest.raises(ValueError):  # only by primary key: one row
        sql.update_returning(Session, where={"tenant_id": "t1"}, values={"status": "paused"})


@pytest.mark.django_db(transaction=True)
def test_batched_writes_go_out_together_at_the_end_and_not_at_all_on_error() -> None:
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    session = _session()
    turn = Turn.objects.create(tenant_id="t1", session=session, prompt="p")
    with CaptureQueriesContext(connection) as seen, transaction.atomic(), sql.batched():
        sql.insert([Message(session_id=session.pk, tenant_id="t1", role="user", content="{}", sequence=1)])
        assert sql.update(Turn, where={"id": turn.pk}, values={"status": "completed"}, batch=True) is None
        assert not Message.objects.filter(session=session).exists()  # queued, not sent yet
        assert sql.update(Session, where={"id": session.pk}, values={"status": "paused"}) == 1  # not batched: now
    writes = [q["sql"] for q in seen.captured_queries if q["sql"].startswith(("INSERT", "UPDATE"))]
    if connection.vendor == "postgresql":
        # The session update first (it ran at once), then the two queued writes in one statement.
        assert len(writes) == 2 and "INSERT" in writes[1] and "UPDATE" in writes[1]
    else:
        assert len(writes) == 3
    assert Message.objects.filter(session=session).count() == 1
    assert Turn.objects.get(pk=turn.pk).status == "completed"
    with pytest.raises(RuntimeError), transaction.atomic(), sql.batched():
        sql.insert([Message(session_id=session.pk, tenant_id="t1", role="user", content="{}", sequence=2)])
        raise RuntimeError("nothing queued is sent")
    assert Message.objects.filter(session=session).count() == 1


def test_fields_asked_for_in_any_order_land_on_their_own_attributes() -> None:
    session = _session(message_seq=3, event_seq=7)
    read = sql.select_one(Session, where={"id": session.pk}, fields=("event_seq", "status", "message_seq"))
    assert (read.event_seq, read.status, read.message_seq) == (7, "active", 3)
    bumped = sql.update_returning(Session, where={"id": session.pk},
                                  values={"event_seq": sql.Add(1), "message_seq": sql.Add(2)}, fields=("event_seq", "message_seq"))
    assert (bumped.event_seq, bumped.message_seq) == (8, 5)


@pytest.mark.django_db(transaction=True)
def test_a_batch_outside_a_transaction_is_one_transaction_and_on_postgresql_one_statement() -> None:
    from django.db import IntegrityError, connection
    from django.test.utils import CaptureQueriesContext

    session = _session()
    turn = Turn.objects.create(tenant_id="t1", session=session, prompt="p")
    with CaptureQueriesContext(connection) as seen, sql.batched() as batch:
        sql.insert([Message(session_id=session.pk, tenant_id="t1", role="user", content="{}", sequence=1)])
        sql.update(Turn, where={"id": turn.pk}, values={"status": "completed"}, batch=True)
        sql.update(Turn, where={"id": uuid.uuid4()}, values={"status": "failed"}, batch=True)
    assert batch.rowcounts == [1, 1, 0]  # each statement's rows, in order
    writes = [q["sql"] for q in seen.captured_queries if "INSERT" in q["sql"] or "UPDATE" in q["sql"]]
    assert len(writes) == (1 if connection.vendor == "postgresql" else 3)
    assert Turn.objects.get(pk=turn.pk).status == "completed"
    # All or nothing: the second insert breaks the (session, sequence) key, so the turn update
    # before it is undone too.
    with pytest.raises(IntegrityError), sql.batched():
        sql.update(Turn, where={"id": turn.pk}, values={"status": "failed"}, batch=True)
        sql.insert([Message(session_id=session.pk, tenant_id="t1", role="user", content="{}", sequence=1)])
    assert Turn.objects.get(pk=turn.pk).status == "completed"
    assert Message.objects.filter(session=session).count() == 1
    assert Turn.objects.filter(session=session).count() == 1  # the connection works on afterwards


@pytest.mark.django_db(transaction=True)
def test_counters_read_the_numbers_an_earlier_update_of_the_batch_reserved() -> None:
    session = _session(message_seq=4)
    first = sql.Counter(Session, "message_seq", session.pk, offset=1 - 3)
    with sql.batched():
        sql.update(Session, where={"id": session.pk}, values={"message_seq": sql.Add(3)}, batch=True)
        sql.insert([Message(session_id=session.pk, tenant_id="t1", role="assistant", content=f'"{i}"', sequence=first + i)
                    for i in range(3)])
    rows = list(Message.objects.filter(session=session).order_by("sequence").values_list("sequence", "content"))
    assert rows == [(5, '"0"'), (6, '"1"'), (7, '"2"')]
    assert Session.objects.get(pk=session.pk).message_seq == 7


@pytest.mark.django_db(transaction=True)
def test_a_conditional_insert_writes_only_when_its_row_matches() -> None:
    session = _session()
    prompt, options = [{"type": "text", "text": "hi ✓"}], {"maxTurns": 2, "nested": {"a": [1, None]}}
    kept = Turn(tenant_id="t1", session=session, prompt=prompt, options=options, source="queue")
    skipped = Turn(tenant_id="t1", session=session, prompt="no")
    with sql.batched() as batch:
        sql.insert([kept], when=sql.Exists(Session, {"id": session.pk, "status": "active"}))
        sql.insert([skipped], when=sql.Exists(Session, {"id": session.pk, "status": "paused"}))
    assert batch.rowcounts == [1, 0]
    stored = Turn.objects.get(session=session)
    assert (stored.pk, stored.prompt, stored.options, stored.source, stored.status) == (
        kept.pk, prompt, options, "queue", "pending")
    assert stored.created_at is not None
    with pytest.raises(ValueError):
        sql.insert([kept, skipped], when=sql.Exists(Session, {"id": session.pk}))


@pytest.mark.django_db(transaction=True)
def test_fetch_runs_its_queries_in_order_in_one_statement_on_postgresql() -> None:
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    session = _session()
    turn = Turn.objects.create(tenant_id="t1", session=session, prompt="p")
    with CaptureQueriesContext(connection) as seen:
        claimed, read = sql.fetch(
            sql.update_and_read(Turn, where={"id": turn.pk, "status": "pending"}, values={"status": "running"}),
            sql.select(Session, where={"id": sql.Ref(Turn, "session", {"id": turn.pk})}))
    assert len(seen.captured_queries) == (1 if connection.vendor == "postgresql" else 2)
    assert claimed.status == "running" and claimed.pk == turn.pk
    assert read.pk == session.pk and read.config == session.config
    # The claim is not repeated; a Ref to no row matches nothing.
    again, read = sql.fetch(
        sql.update_and_read(Turn, where={"id": turn.pk, "status": "pending"}, values={"status": "running"}),
        sql.select(Session, where={"id": sql.Ref(Turn, "session", {"id": uuid.uuid4()})}))
    assert again is None and read is None


@pytest.mark.django_db(transaction=True)
def test_values_written_as_literals_in_big_batches_come_back_unchanged() -> None:
    """Past psycopg's own parse cache (over 50 values) the values are merged into the SQL text
    by ash.sql: quotes, backslashes, placeholders and JSON inside values must survive."""
    session = _session()
    tricky = ["it's", 'say "%s"', "back\\slash \\x00", "%(name)s %% 100%", "ünïcødé ✓ 🙂", "'); DROP TABLE x; --", ""]
    turn = Turn(tenant_id="t1", session=session, prompt=[{"type": "text", "text": t} for t in tricky],
                options={"k'": tricky})
    messages = [Message(session_id=session.pk, tenant_id="t1", role="assistant", content=text, sequence=i + 1)
                for i, text in enumerate(tricky * 3)]
    with sql.batched():
        sql.insert([turn])
        sql.insert(messages)
        sql.update(Turn, where={"id": turn.pk}, values={"error": tricky[1], "finished_at": None}, batch=True)
    stored = Turn.objects.get(pk=turn.pk)
    assert stored.prompt == turn.prompt and stored.options == turn.options and stored.error == tricky[1]
    assert list(Message.objects.filter(session=session).order_by("sequence").values_list("content", flat=True)) == tricky * 3
    read = sql.select_one(Turn, where={"id": turn.pk, "error": tricky[1]})
    assert read is not None and read.prompt == turn.prompt


@pytest.mark.django_db(transaction=True)
def test_consecutive_inserts_into_one_table_are_one_statement() -> None:
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    session = _session()
    turn = Turn.objects.create(tenant_id="t1", session=session, prompt="p")
    usage = lambda kind, value: UsageEvent(tenant_id="t1", session_id=str(session.pk), agent_name="a",  # noqa: E731
                                           event_type=kind, value=value)
    with CaptureQueriesContext(connection) as seen, sql.batched() as batch:
        sql.insert([usage("input_tokens", 10), usage("output_tokens", 2)])
        sql.insert([usage("message", 1)])  # joins the one before
        sql.update(Turn, where={"id": turn.pk}, values={"status": "completed"}, batch=True)
        sql.insert([usage("tool_call", 3)])  # not consecutive: a statement of its own
        sql.insert([Message(session_id=session.pk, tenant_id="t1", role="user", content="{}", sequence=1)])
    assert batch.rowcounts == [3, 1, 1, 1]
    inserts = [q["sql"] for q in seen.captured_queries if q["sql"].startswith("INSERT")]
    if connection.vendor == "sqlite":
        assert len(inserts) == 3
    kinds = sorted(UsageEvent.objects.filter(session_id=str(session.pk)).values_list("event_type", "value"))
    assert kinds == [("input_tokens", 10), ("message", 1), ("output_tokens", 2), ("tool_call", 3)]


def test_if_equal_sets_a_column_only_where_it_holds_the_value() -> None:
    session = _session()
    mine = Turn.objects.create(tenant_id="t1", session=session, prompt="a")
    other = Turn.objects.create(tenant_id="t1", session=session, prompt="b")
    Session.objects.filter(pk=session.pk).update(active_turn=mine)
    assert sql.update(Session, where={"id": session.pk}, values={"active_turn": sql.IfEqual(other.pk, None), "message_seq": sql.Add(1)}) == 1
    after = Session.objects.get(pk=session.pk)
    assert (after.active_turn_id, after.message_seq) == (mine.pk, 1)  # not that turn: kept, the rest set
    sql.update(Session, where={"id": session.pk}, values={"active_turn": sql.IfEqual(mine.pk, None)})
    assert Session.objects.get(pk=session.pk).active_turn_id is None


@pytest.mark.django_db(transaction=True)
def test_on_postgresql_a_batch_of_one_statement_is_still_one_execute_without_a_commit_of_its_own(monkeypatch) -> None:
    from django.db import connection

    session = _session()
    if connection.vendor == "postgresql":
        # No transaction.atomic (a BEGIN … COMMIT round trip more): the statement is its own transaction.
        monkeypatch.setattr(sql.transaction, "atomic", lambda *a, **k: pytest.fail("atomic entered"))
    with sql.batched() as batch:
        sql.update(Session, where={"id": session.pk}, values={"status": "paused"}, batch=True)
    assert batch.rowcounts == [1]
    assert Session.objects.get(pk=session.pk).status == "paused"


def test_uuid7_is_a_time_ordered_rfc_uuid_and_rows_get_one() -> None:
    import time

    from ash.core.models import uuid7

    first = uuid7()
    time.sleep(0.002)
    ids = [uuid7() for _ in range(5000)]
    assert len(set(ids)) == 5000
    assert all(i.version == 7 and i.variant == uuid.RFC_4122 for i in ids)
    assert first.int >> 80 < ids[0].int >> 80 <= int(time.time() * 1000)  # milliseconds first: later sorts later
    session = _session()
    message = Message(session_id=session.pk, tenant_id="t1", role="user", content="{}", sequence=1)
    assert message.pk.version == 7


def test_the_rows_a_turn_writes_carry_no_index_another_one_covers() -> None:
    """Each index is written for every row of every turn: none that another index already serves
    (the unique (session, sequence) ones, the (session, created) and (tenant, …) composites), and
    none on the session's turn references, which change every turn."""
    from django.db import connection

    redundant = {
        "sessions_app_message": [["session_id"], ["tenant_id"]],
        "sessions_app_sessionevent": [["session_id"], ["tenant_id"]],
        "sessions_app_turn": [["session_id"], ["tenant_id"]],
        "usage_app_usageevent": [["session_id"], ["tenant_id"]],
        "sessions_app_session": [["active_turn_id"], ["last_turn_id"]],
    }
    with connection.cursor() as cursor:
        for table, columns in redundant.items():
            constraints = connection.introspection.get_constraints(cursor, table).values()
            indexed = [c["columns"] for c in constraints if (c["index"] or c["unique"]) and not c["primary_key"]]
            assert not [cols for cols in indexed if cols in columns], table
            # What serves the lookups instead: an index or unique constraint led by the same column.
            assert any(cols[0] in ("tenant_id", "session_id") and len(cols) > 1 for cols in indexed), table
