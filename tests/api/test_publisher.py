"""The turn's publisher stores each batch of SDK messages with the model calls' usage, in one
transaction, and never opens one for the usage alone (SQLite and PostgreSQL)."""

from __future__ import annotations

import collections

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from agents_app.models import Agent
from ash.llm_proxy.metering import UsageRecord
from sessions_app.models import Message, Session, Turn
from sessions_app.turns import _Publisher
from usage_app.models import UsageEvent

pytestmark = pytest.mark.django_db

SYSTEM_INIT = {"type": "system", "subtype": "init", "session_id": "rt", "tools": [], "model": "m"}
ASSISTANT = {"type": "assistant", "message": {"role": "assistant", "content": [{"type": "text", "text": "hi"}]},
             "parent_tool_use_id": None, "session_id": "rt"}


class _Host:
    """The runner host's usage queue, as the publisher sees it."""

    def __init__(self, records: list[UsageRecord]) -> None:
        self.pending = collections.deque(records)

    def take_usage(self, session_id: str) -> list[UsageRecord]:
        taken = list(self.pending)
        self.pending.clear()
        return taken


def _publisher(records: list[UsageRecord]) -> tuple[_Publisher, _Host, Session]:
    agent = Agent.objects.create(tenant_id="t1", name="pub-agent", path="/nonexistent")
    session = Session.objects.create(tenant_id="t1", agent=agent, agent_name="pub-agent", status="active")
    turn = Turn.objects.create(tenant_id="t1", session=session, prompt="hi")
    host = _Host(records)
    return _Publisher(turn, host), host, session


def _record() -> UsageRecord:
    return UsageRecord(sandbox_id="sb", model="claude-sonnet-4-6", input_tokens=10, output_tokens=5,
                       cache_creation_tokens=0, cache_read_tokens=0, cost_usd=0.0001, request_id="req_1",
                       duration_ms=3, local=False, stream=True, price_known=True, complete=True)


def test_a_batch_with_nothing_to_store_leaves_the_usage_for_the_next_one() -> None:
    publisher, host, session = _publisher([_record()])
    with CaptureQueriesContext(connection) as queries:
        frames, tool_calls = publisher.store([SYSTEM_INIT])
    assert [event for event, _ in frames] == ["message"] and tool_calls == 0
    assert len(queries) == 0  # no transaction for the usage alone
    assert len(host.pending) == 1 and not UsageEvent.objects.exists()

    publisher.store([ASSISTANT])  # the next batch that writes rows takes it
    assert not host.pending
    rows = {e.event_type: e.value for e in UsageEvent.objects.filter(session_id=session.pk)}
    assert rows["input_tokens"] == 10 and rows["output_tokens"] == 5
    assert Message.objects.filter(session=session, role="assistant").count() == 1


def test_the_turns_end_stores_the_usage_even_with_no_message_left() -> None:
    publisher, host, session = _publisher([_record()])
    publisher.store([], session_values={"active_turn": None})
    assert not host.pending
    assert UsageEvent.objects.filter(session_id=session.pk, event_type="input_tokens").count() == 1
