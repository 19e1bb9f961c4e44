"""Session writes. Sequence numbers come from atomic per-session counters, never MAX+1."""

from __future__ import annotations

import json
import logging
from typing import Any

from django.db import transaction

from agents_app.models import Agent
from ash import sql
from sessions_app.models import Attachment, Message, Session, SessionEvent

log = logging.getLogger("ash.sessions")

LIVE_STATUSES = (Session.Status.STARTING, Session.Status.ACTIVE, Session.Status.PAUSED, Session.Status.ERROR)


SEQUENCE_COUNTERS = ("message_seq", "event_seq")


def session_sequences_allocate(*, session_id: Any, **counts: int) -> dict[str, int]:
    """Reserve numbers of several counters at once (`message_seq=1, event_seq=3`); returns the
    first number reserved of each.

    Must run inside the transaction that inserts the rows: the UPDATE takes the session's row
    lock until commit (PostgreSQL) or the write lock (SQLite), so numbers are unique and a
    rollback returns them — gapless.
    """
    if not counts or any(name not in SEQUENCE_COUNTERS for name in counts):
        raise ValueError(f"counters must be among {SEQUENCE_COUNTERS}: {list(counts)}")
    conn = transaction.get_connection()
    if not conn.in_atomic_block:
        raise RuntimeError("sequence allocation must happen inside transaction.atomic()")
    # One statement (UPDATE … RETURNING) instead of an UPDATE and a SELECT per counter: this runs
    # for every stored message and event.
    row = sql.update_returning(Session, where={"id": session_id},
                               values={name: sql.Add(count) for name, count in counts.items()}, fields=tuple(counts))
    if row is None:
        raise Session.DoesNotExist(f"session {session_id} not found")
    return {name: getattr(row, name) - count + 1 for name, count in counts.items()}


def session_sequences_reserve(*, session_id: Any, also: dict[str, Any] | None = None, **counts: int) -> dict[str, sql.Counter]:
    """`session_sequences_allocate` for writes queued in `sql.batched()`: the counters' UPDATE
    is queued (with the session values ALSO to set), and the first number reserved of each comes
    back as a `sql.Counter` the inserts after it read in their own statements (add `i` to its
    offset for the i-th row). Nothing is read back, so the whole batch stays one round trip;
    gapless as above (one transaction)."""
    if not counts or any(name not in SEQUENCE_COUNTERS for name in counts):
        raise ValueError(f"counters must be among {SEQUENCE_COUNTERS}: {list(counts)}")
    if not sql.in_batch():
        raise RuntimeError("sequence reservation must happen inside sql.batched()")
    sql.update(Session, where={"id": session_id},
               values={**(also or {}), **{name: sql.Add(count) for name, count in counts.items()}}, batch=True)
    return {name: sql.Counter(Session, name, session_id, offset=1 - count) for name, count in counts.items()}


def session_sequence_allocate(*, session_id: Any, counter: str, count: int = 1) -> int:
    """Reserve COUNT numbers of COUNTER ('message_seq' or 'event_seq'); returns the first."""
    return session_sequences_allocate(session_id=session_id, **{counter: count})[counter]


def session_event_record(*, session: Session, type: str, data: dict[str, Any] | None) -> SessionEvent:
    event = SessionEvent(session_id=session.pk, tenant_id=session.tenant_id, type=type,
                         data=None if data is None else json.dumps(data, separators=(",", ":")))
    with transaction.atomic(savepoint=False):  # a caller's transaction: part of it, no savepoint
        event.sequence = session_sequence_allocate(session_id=session.pk, counter="event_seq")
        sql.insert([event])
    return event


def session_message_record(*, session: Session, role: str, content: dict[str, Any]) -> Message:
    message = Message(session_id=session.pk, tenant_id=session.tenant_id, role=role,
                      content=json.dumps(content, separators=(",", ":")))
    with transaction.atomic(savepoint=False):  # a caller's transaction: part of it, no savepoint
        message.sequence = session_sequence_allocate(session_id=session.pk, counter="message_seq")
        sql.insert([message])
    return message


def attachment_files_delete(*, sessions: Any) -> None:
    """Remove stored attachment blobs of SESSIONS (rows go with the session's cascade)."""
    for attachment in Attachment.objects.filter(session__in=sessions).only("file"):
        attachment.file.delete(save=False)


def sessions_end_for_agent(*, agent: Agent) -> None:
    """Before an agent is deleted: destroy its sessions' sandboxes, end them, drop stored blobs."""
    from django.core.files.storage import default_storage

    from ash.errors import ApiError
    from sessions_app.runner_client import runner_call

    sessions = Session.objects.filter(agent=agent)
    for session in sessions.filter(status__in=LIVE_STATUSES, runner_id__isnull=False):
        try:
            runner_call(session, "release", timeout=120, snapshot=False)
        except ApiError as exc:
            log.warning("could not release the sandbox of session %s: %s", session.pk, exc.message)
    for session in sessions.filter(status__in=LIVE_STATUSES):
        with transaction.atomic():
            updated = Session.objects.filter(pk=session.pk, status__in=LIVE_STATUSES).update(status=Session.Status.ENDED, runner=None)
            if updated:
                session_event_record(session=session, type=SessionEvent.Type.LIFECYCLE, data={"action": "ended", "reason": "agent deleted"})
    attachment_files_delete(sessions=sessions)
    for key in sessions.exclude(snapshot_key="").values_list("snapshot_key", flat=True):
        default_storage.delete(key)


def sessions_pause_for_runner(*, runner_id: str, reason: str) -> int:
    """A runner is gone: its active or starting sessions become paused, each with a lifecycle event."""
    paused = 0
    affected = Session.objects.filter(runner_id=runner_id, status__in=(Session.Status.ACTIVE, Session.Status.STARTING))
    for session in affected:
        with transaction.atomic():
            if Session.objects.filter(pk=session.pk, status=session.status).update(status=Session.Status.PAUSED, runner=None):
                session_event_record(session=session, type=SessionEvent.Type.LIFECYCLE, data={"action": "paused", "reason": reason})
                paused += 1
        if session.active_turn_id:
            turn_abandon(turn_id=session.active_turn_id, reason=f"the runner hosting this session is gone ({reason})")
    return paused


def turn_abandon(*, turn_id: Any, reason: str, only_pending: bool = False) -> bool:
    """End a turn nobody will finish (its runner died, or it was never picked up): failed, the
    session freed for the next turn, and listeners told (error, then done). False if it had ended."""
    from django.utils import timezone

    from ash.events import transport
    from sessions_app.models import Turn

    statuses = (Turn.Status.PENDING,) if only_pending else (Turn.Status.PENDING, Turn.Status.RUNNING)
    with transaction.atomic():
        ended = Turn.objects.filter(pk=turn_id, status__in=statuses).update(
            status=Turn.Status.FAILED, error=reason, finished_at=timezone.now()
        )
        if not ended:
            return False
        turn = Turn.objects.select_related("session").get(pk=turn_id)
        Session.objects.filter(pk=turn.session_id, active_turn_id=turn_id).update(active_turn=None)
        session_event_record(session=turn.session, type=SessionEvent.Type.ERROR, data={"error": reason})
    events = transport()
    events.publish(str(turn_id), "error", {"error": reason})
    events.publish(str(turn_id), "done", {"sessionId": str(turn.session_id)})
    return True


def session_options(session: Session) -> dict[str, Any]:
    """The runtime query options a session's config implies (per-message options go on top)."""
    config = session.config or {}
    options: dict[str, Any] = {k: config[k] for k in (
        "allowedTools", "disallowedTools", "betas", "subagents", "initialAgent", "mcpServers", "systemPrompt", "permissionMode",
    ) if config.get(k) not in (None, "", [], {})}
    if session.model:
        options["model"] = session.model
    return options


def session_runner_id(session: Session) -> str:
    from ash.errors import ServiceUnavailable

    if not session.runner_id:
        raise ServiceUnavailable("No runner hosts this session; resume it")
    return session.runner_id


def session_mark_lost(*, session_id: Any, oom: bool, detail: str) -> None:
    """The sandbox died under a turn: OOM → paused (resume restores the last snapshot); else error."""
    session = Session.objects.get(pk=session_id)
    target = Session.Status.PAUSED if oom else Session.Status.ERROR
    with transaction.atomic():
        if Session.objects.filter(pk=session.pk, status=Session.Status.ACTIVE).update(status=target):
            reason = "out of memory" if oom else "sandbox lost"
            session_event_record(session=session, type=SessionEvent.Type.ERROR, data={"error": f"{reason}: {detail}"})
            session_event_record(session=session, type=SessionEvent.Type.LIFECYCLE, data={"action": target, "reason": reason})


def session_snapshot_record(*, session_id: Any, key: str) -> None:
    """Point the session at its newest workspace snapshot; the blob it replaces is deleted."""
    from django.core.files.storage import default_storage

    old = Session.objects.filter(pk=session_id).values_list("snapshot_key", flat=True).first()
    Session.objects.filter(pk=session_id).update(snapshot_key=key)
    if old and old != key:
        transaction.on_commit(lambda: default_storage.delete(old))


def session_snapshot_taken(*, session_id: Any, key: str, pause: bool, reason: str) -> None:
    """Record a snapshot; when the sandbox is going away (eviction, idle), the session becomes paused."""
    session = Session.objects.get(pk=session_id)
    with transaction.atomic():
        session_snapshot_record(session_id=session.pk, key=key)
        if pause and Session.objects.filter(pk=session.pk, status=Session.Status.ACTIVE).update(status=Session.Status.PAUSED):
            session_event_record(session=session, type=SessionEvent.Type.LIFECYCLE, data={"action": "paused", "reason": reason})


def sessions_sweep_idle(*, host: Any) -> list[str]:
    """Idle sandboxes are snapshotted (the pool's evict hook) and destroyed; sessions become paused."""
    return host.call(host.sweep_idle(), timeout=600)
