"""Starting a turn: the caller's key, the session and the claim are one transaction; on PostgreSQL
one statement round trip. Every refusal writes nothing."""

from __future__ import annotations

import json
import uuid
from typing import Any

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from agents_app.models import Agent
from ash.auth import api_key_create, key_check
from ash.core.models import ApiKey, Runner
from ash.errors import ApiError
from sessions_app import turns
from sessions_app.models import Message, Session, Turn

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def dispatched(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, str]]:
    sent: list[tuple[str, str]] = []
    monkeypatch.setattr(turns, "_dispatch_turn", lambda turn_id, runner_id: sent.append((turn_id, runner_id)))
    return sent


def _setup(tenant: str = "t1", **session: Any) -> tuple[str, Session]:
    _, key = api_key_create(tenant_id=tenant)
    runner = Runner.objects.create(runner_id=f"r-{uuid.uuid4().hex[:6]}", host="h", last_heartbeat_at=timezone.now())
    agent = Agent.objects.create(tenant_id=tenant, name=f"a-{uuid.uuid4().hex[:6]}", path="/nonexistent")
    fields = {"status": "active", "runner": runner, "message_seq": 4, **session}
    return key, Session.objects.create(tenant_id=tenant, agent=agent, agent_name=agent.name, **fields)


def _start(key: str, session_id: Any, prompt: Any = "hi") -> Turn:
    return turns.turn_start_checked(key=key_check(f"Bearer {key}"), session_id=session_id, prompt=prompt,
                                    options={"maxTurns": 2})


def test_a_turn_starts_in_one_round_trip_on_postgresql(dispatched) -> None:
    key, session = _setup()
    with CaptureQueriesContext(connection) as seen:
        turn = _start(key, session.pk, [{"type": "text", "text": "hi ✓"}])
    touching_sessions = [q["sql"] for q in seen.captured_queries if "sessions_app_session" in q["sql"]]
    if connection.vendor == "postgresql":
        # One statement round trip: the key, the session, the claim and both inserts (the key's
        # last use is recorded apart, at most once a minute).
        assert len(touching_sessions) == 1
        assert all(table in touching_sessions[0] for table in ("core_apikey", "sessions_app_turn", "sessions_app_message"))
    else:
        assert len(touching_sessions) == 4  # the session read, the claim, both inserts (checking the claim)
    stored = Turn.objects.get(pk=turn.pk)
    assert (stored.tenant_id, stored.session_id, stored.status, stored.options) == ("t1", session.pk, "pending", {"maxTurns": 2})
    assert turn.tenant_id == "t1"
    message = Message.objects.get(session=session)
    assert (message.tenant_id, message.role, message.sequence) == ("t1", "user", 5)
    assert json.loads(message.content) == {"type": "user", "content": [{"type": "text", "text": "hi ✓"}]}
    after = Session.objects.get(pk=session.pk)
    assert (after.active_turn_id, after.last_turn_id, after.message_seq) == (turn.pk, turn.pk, 5)
    assert dispatched == [(str(turn.pk), session.runner_id)]
    assert ApiKey.objects.get(tenant_id="t1").last_used_at is not None


def _refused(key: str, session_id: Any, status: int, message: str) -> None:
    before = (Turn.objects.count(), Message.objects.count())
    with pytest.raises(ApiError) as err:
        _start(key, session_id)
    assert (err.value.status_code, err.value.message) == (status, message)
    assert (Turn.objects.count(), Message.objects.count()) == before  # nothing written


def test_every_refusal_writes_nothing(dispatched) -> None:
    key, session = _setup()
    other_key, foreign = _setup("t2")
    _refused("ash_not-a-key", session.pk, 401, "Invalid API key")
    _refused(other_key, session.pk, 404, "Session not found")  # another tenant's
    _refused(key, uuid.uuid4(), 404, "Session not found")
    _refused(key, foreign.pk, 404, "Session not found")
    Session.objects.filter(pk=session.pk).update(status="paused")
    _refused(key, session.pk, 400, "Session is paused")
    Session.objects.filter(pk=session.pk).update(status="active", runner=None)
    _refused(key, session.pk, 503, "No runner hosts this session; resume it")
    Session.objects.filter(pk=session.pk).update(runner=foreign.runner)
    first = _start(key, session.pk)
    _refused(key, session.pk, 409, "A turn is already running in this session")
    assert Session.objects.get(pk=session.pk).active_turn_id == first.pk
    assert dispatched == [(str(first.pk), foreign.runner_id)]


def test_the_queue_path_claims_the_same_way(dispatched) -> None:
    _, session = _setup()
    turn = turns.turn_start(session=session, prompt="from the queue", options={}, source="queue")
    assert Turn.objects.get(pk=turn.pk).source == "queue" and turn.tenant_id == "t1"
    with pytest.raises(ApiError) as err:
        turns.turn_start(session=session, prompt="again", options={}, source="queue")
    assert err.value.status_code == 409
    assert Message.objects.filter(session=session).count() == 1
