"""Turns: start one (web side), run it on the session's runner, persist and publish everything.

Every SDK message is persisted synchronously (Message / SessionEvent rows, sequences from the
session counters) before its SSE frames are published; the turn finishes and is stored even
when nobody is listening.
"""

from __future__ import annotations

import json
import logging
import time
from typing import Any, NoReturn

from django.conf import settings
from django.db import close_old_connections, transaction
from django.utils import timezone

from ash import dispatch, sql
from ash.auth import KeyCheck
from ash.errors import BadRequest, Conflict, NotFound, ServiceUnavailable
from ash.events import transport
from sessions_app.derive import derive
from sessions_app.models import Message, Session, SessionEvent, Turn
from sessions_app.selectors import session_found, session_select
from sessions_app.services import (
    session_event_record,
    session_options,
    session_runner_id,
    session_sequences_reserve,
)
from usage_app.models import UsageEvent
from usage_app.services import usage_events_record

log = logging.getLogger("ash.turns")

PER_MESSAGE_OPTIONS = ("model", "maxTurns", "maxBudgetUsd", "effort", "thinking", "outputFormat", "includePartialMessages")


def turn_start(*, session: Session, prompt: Any, options: dict[str, Any], source: str = "api") -> Turn:
    """Claim SESSION for a new turn (409 if one runs), store the user message, dispatch."""
    with sql.batched() as batch:
        turn = _claim(session_id=session.pk, tenant_id=session.tenant_id, prompt=prompt, options=options, source=source)
    if not batch.rowcounts[0]:
        _refused(Session.objects.filter(pk=session.pk).first())
    turn.tenant_id = session.tenant_id
    transaction.on_commit(lambda: _dispatch_turn(str(turn.id), session.runner_id))  # at once unless in a caller's transaction
    return turn


def turn_start_checked(*, key: KeyCheck, session_id: Any, prompt: Any, options: dict[str, Any]) -> Turn:
    """`turn_start` from the API: the caller's key, the session and the claim in one transaction
    and one round trip (on PostgreSQL). 401 for a bad key, 404 for a session it cannot see."""
    with sql.batched() as batch:
        if key.query is not None:
            batch.read(key.query)
        batch.read(session_select(tenant_id=key.tenant_id, session_id=session_id))  # as it was before the claim
        turn = _claim(session_id=session_id, tenant_id=key.tenant_id, prompt=prompt, options=options, source="api")
    *key_row, session = batch.rows
    tenant = key.result(key_row[0] if key_row else None)
    session = session_found(session)
    if not batch.rowcounts[0]:
        _refused(session)
    turn.tenant_id = tenant.tenant_id
    transaction.on_commit(lambda: _dispatch_turn(str(turn.id), session.runner_id))
    return turn


def _claim(*, session_id: Any, tenant_id: Any, prompt: Any, options: dict[str, Any], source: str) -> Turn:
    """Queue the claim of an active, runner-hosted session with no turn running (TENANT_ID's: a
    value or an `sql.Ref`), numbering the user message; the turn and the message are written only
    if the claim took (the session's reference to the turn is checked at commit: a deferred
    foreign key). The claim's row count is the batch's first."""
    turn = Turn(tenant_id=sql.Read(Session, "tenant_id", session_id), session_id=session_id, prompt=prompt,
                options=options, source=source)
    claimed = sql.Exists(Session, {"id": session_id, "active_turn": turn.pk})
    sql.update(Session, where={"id": session_id, "tenant_id": tenant_id, "status": Session.Status.ACTIVE,
                               "active_turn": None, "runner": sql.NOT_NULL},
               values={"active_turn": turn.pk, "last_turn": turn.pk, "last_active_at": timezone.now(),
                       "message_seq": sql.Add(1)}, batch=True)
    sql.insert([turn], when=claimed)
    sql.insert([Message(session_id=session_id, tenant_id=sql.Read(Session, "tenant_id", session_id), role=Message.Role.USER,
                        content=json.dumps({"type": "user", "content": prompt}, separators=(",", ":")),
                        sequence=sql.Counter(Session, "message_seq", session_id))], when=claimed)
    return turn


def _refused(session: Session | None) -> NoReturn:
    """Why a claim did not take (SESSION as it was): not active, not hosted, or a turn running."""
    if session is None:
        raise NotFound("Session not found")
    if session.status != Session.Status.ACTIVE:
        raise BadRequest(f"Session is {session.status}")
    session_runner_id(session)  # 503 when no runner hosts it
    raise Conflict("A turn is already running in this session")


def _dispatch_turn(turn_id: str, runner_id: str) -> None:
    from sessions_app.runner import runner_queue
    from sessions_app.tasks import run_turn

    dispatch.send(run_turn, args=(turn_id,), queue=runner_queue(runner_id))


def turn_run(*, turn_id: str) -> str:
    """Runner side: run a dispatched turn to completion. Idempotent: only a pending turn runs."""
    from sessions_app.runner import get_host

    turn, session = sql.fetch(  # the claim and the session: one round trip
        sql.update_and_read(Turn, where={"id": turn_id, "status": Turn.Status.PENDING},
                            values={"status": Turn.Status.RUNNING, "started_at": timezone.now()}),
        sql.select(Session, where={"id": sql.Ref(Turn, "session", {"id": turn_id})}))
    if turn is None:
        return "skipped"
    turn.session = session
    host = get_host()
    publisher = _Publisher(turn, host)
    # Goes out with the turn's first frames, one publish (and one SSE write) fewer per turn: the
    # runtime's init message follows at once (after its MCP servers connect, if it has new ones).
    publisher.opening = [("session_start", {"sessionId": str(session.id), "version": _version()})]
    started = time.monotonic()
    status, error, tool_calls, results = Turn.Status.COMPLETED, None, 0, 0
    interruptible = False
    pending: list[dict[str, Any]] = []  # SDK messages that arrived together: stored in one transaction
    held_result: dict[str, Any] | None = None
    options = {**session_options(session), **{k: v for k, v in turn.options.items() if v is not None}}
    options["permissionPrompts"] = "host"
    try:
        if host.get(str(session.id)) is None:
            raise LookupError("sandbox is not running")
        query = host.query(str(session.id), turn.prompt, options, budget_usd=options.get("maxBudgetUsd"))
        for batch in host.stream(query):
            for event in batch:
                kind = getattr(event, "ev", "")
                if held_result is not None and kind in ("message", "permission_request", "error"):
                    pending.append(held_result)  # not the turn's last message after all
                    held_result = None
                if kind == "message" and event.data.get("type") == "result":
                    held_result = event.data
                    results += 1
                    if event.data.get("is_error"):
                        # The agent ended in error (API error, max turns, budget): the turn failed.
                        status = Turn.Status.FAILED
                        error = str(event.data.get("result") or event.data.get("subtype") or "error")[:2000]
                elif kind == "message":
                    pending.append(event.data)
                elif kind == "permission_request":
                    tool_calls += publisher.flush(pending)
                    publisher.frame("permission_request", {
                        "requestId": event.request_id, "toolUseId": event.tool_use_id, "toolName": event.tool_name,
                        "input": event.input, "description": event.description, "answered": "denied",
                    })
                elif kind == "error":
                    tool_calls += publisher.flush(pending)
                    status, error = Turn.Status.FAILED, event.error
                    publisher.error(event.error)
                elif kind == "done" and event.sessionId and event.sessionId != session.runtime_session_id:
                    Session.objects.filter(pk=session.pk).update(runtime_session_id=event.sessionId)
            if held_result is None:
                tool_calls += publisher.flush(pending)  # mid-turn messages go out now
            # else: the result is in; `done` follows at once, and the turn's end stores them all
        interruptible = True  # an interrupt requested meanwhile makes the finished turn "interrupted"
    except Exception as exc:  # noqa: BLE001 - any failure ends the turn with an error, never a hang
        status, error = Turn.Status.FAILED, _describe(exc)
        if held_result is not None:  # keep the frames in order: the result came first
            pending.append(held_result)
            held_result = None
        tool_calls += publisher.flush(pending)
        publisher.error(error)
        _after_sandbox_failure(session, host, error)
    finally:
        final: Any = sql.IfTrue("interrupt_requested", Turn.Status.INTERRUPTED, status) if interruptible else status
        with sql.batched():  # the turn's end: one transaction, sent together
            # The last messages (with the result, for a turn that ended normally) and the usage of
            # model calls no message has stored yet.
            now = timezone.now()
            frames, calls = publisher.store([*pending, *([held_result] if held_result is not None else [])],
                                            session_values={"active_turn": sql.IfEqual(turn_id, None), "last_active_at": now})
            tool_calls += calls
            usage_events_record(
                tenant_id=session.tenant_id, session_id=str(session.id), agent_name=session.agent_name,
                values={
                    UsageEvent.Type.TOOL_CALL: tool_calls,
                    UsageEvent.Type.MESSAGE: results,
                    UsageEvent.Type.COMPUTE_SECONDS: round(time.monotonic() - started, 3),
                },
            )
            sql.update(Turn, where={"id": turn_id}, values={"status": final, "error": error, "finished_at": now}, batch=True)
        publisher.publish([*frames, ("done", {"sessionId": str(session.id)})])
        close_old_connections()
        if settings.ASH_SNAPSHOT_AFTER_TURN and host.get(str(session.id)) is not None:
            host.snapshot_after_turn(str(session.id), _snapshot_recorder(session.pk), delay=settings.ASH_SNAPSHOT_DELAY,
                                     max_delay=settings.ASH_SNAPSHOT_MAX_DELAY)
    return status


def _snapshot_recorder(session_pk: Any) -> Any:
    from sessions_app.runner.persistence import in_db_thread
    from sessions_app.services import session_snapshot_record

    async def record(key: str) -> None:
        await in_db_thread(session_snapshot_record, session_id=session_pk, key=key)

    return record


def _version() -> str:
    import ash

    return ash.__version__


def _describe(exc: Exception) -> str:
    text = str(exc) or type(exc).__name__
    return text.splitlines()[0][:500]


def _after_sandbox_failure(session: Session, host: Any, error: str) -> None:
    """The runtime or sandbox died mid-turn: OOM pauses the session, anything else is an error."""
    from sessions_app.services import session_mark_lost

    try:
        oom = host.call(host.oom_killed(str(session.id)), timeout=10)
    except Exception:  # noqa: BLE001
        oom = False
    session_mark_lost(session_id=session.pk, oom=oom, detail=error)


class _Publisher:
    """Persist, then publish: rows are committed before their frames leave."""

    def __init__(self, turn: Turn, host: Any) -> None:
        self.turn = turn
        self.session = turn.session
        self.turn_id = str(turn.id)
        self.transport = transport()
        self.host = host
        self.opening: list[tuple[str, Any]] = []  # frames that go out with the first publish

    def frame(self, event: str, data: dict[str, Any]) -> None:
        self.publish([(event, data)])

    def publish(self, frames: list[tuple[str, Any]]) -> None:
        """Publish FRAMES in one batch, after the opening frames if they have not gone out yet."""
        if self.opening:
            frames, self.opening = [*self.opening, *frames], []
        self.transport.publish_many(self.turn_id, frames)

    def flush(self, messages: list[dict[str, Any]]) -> int:
        """Store MESSAGES in one transaction, then publish their frames in one batch; empties the
        list. Returns the tool calls they made."""
        if not messages:
            return 0
        frames, tool_calls = self.store(messages)
        messages.clear()
        self.publish(frames)
        return tool_calls

    def store(self, messages: list[dict[str, Any]], *,
              session_values: dict[str, Any] | None = None) -> tuple[list[tuple[str, Any]], int]:
        """Persist MESSAGES, in order, and the pending model-call usage, in one transaction (or
        the caller's `sql.batched()`), setting SESSION_VALUES on the session in the statement
        that numbers them; their frames, for the caller to publish, and the tool calls they made.
        The usage waits for a batch that writes something else (the turn's end always does)."""
        session = self.session
        derived = [derive(message) for message in messages]
        rows = [message for message, d in zip(messages, derived, strict=True) if d.store_message]
        events = [event for d in derived for event in d.events]
        with sql.batched():
            counts = {name: n for name, n in (("message_seq", len(rows)), ("event_seq", len(events))) if n}
            if not counts and session_values:
                sql.update(Session, where={"id": session.pk}, values=session_values, batch=True)
            if counts:
                first = session_sequences_reserve(session_id=session.pk, also=session_values, **counts)
                sql.insert([
                    Message(session_id=session.pk, tenant_id=session.tenant_id, role=Message.Role.ASSISTANT,
                            content=json.dumps(message, separators=(",", ":")), sequence=first["message_seq"] + i)
                    for i, message in enumerate(rows)
                ])
                sql.insert([
                    SessionEvent(session_id=session.pk, tenant_id=session.tenant_id, type=etype,
                                 data=json.dumps(data, separators=(",", ":")), sequence=first["event_seq"] + i)
                    for i, (etype, data) in enumerate(events)
                ])
            if counts or session_values:
                # Last: the turn's end adds its own usage rows to the same insert. A batch that
                # writes nothing else (the runtime's init message) leaves the usage for the next:
                # alone it cost a transaction of its own in over a third of the bench's turns.
                self.store_usage()
        frames = [frame for message, d in zip(messages, derived, strict=True) for frame in (*d.frames, ("message", message))]
        return frames, sum(d.tool_calls for d in derived)

    def store_usage(self) -> None:
        """UsageEvent rows for the model calls the proxy metered since the last message."""
        from sessions_app.runner.persistence import store_model_call_usage

        session = self.session
        for record in self.host.take_usage(str(session.id)):
            store_model_call_usage(tenant_id=session.tenant_id, session_id=str(session.id),
                                   agent_name=session.agent_name, record=record)

    def error(self, text: str) -> None:
        session_event_record(session=self.session, type=SessionEvent.Type.ERROR, data={"error": text})
        self.frame("error", {"error": text})


def turn_interrupt(*, session: Session) -> bool:
    """Ask the runner to stop the running turn; False when no turn runs."""
    turn_id = Session.objects.filter(pk=session.pk).values_list("active_turn_id", flat=True).first()
    if not turn_id:
        return False
    Turn.objects.filter(pk=turn_id).update(interrupt_requested=True)
    from sessions_app.runner_client import runner_call

    try:
        return bool(runner_call(session, "interrupt", timeout=10))
    except ServiceUnavailable:
        return False
