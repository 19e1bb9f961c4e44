"""Session lifecycle: create, pause, resume (warm or cold), stop, end, fork, config.

Every transition is a conditional UPDATE on the status (so concurrent calls cannot both win)
and writes a `lifecycle` SessionEvent.
"""

from __future__ import annotations

import logging
import uuid
from typing import Any

from django.core.files.storage import default_storage
from django.db import transaction
from django.utils import timezone

from agents_app.models import Agent
from ash.errors import BadRequest, Gone, NotFound, ServiceUnavailable
from credentials_app.services import credential_use
from sessions_app.models import Message, Session, SessionEvent
from sessions_app.runner_client import runner_call
from sessions_app.services import (
    session_event_record,
    session_sequence_allocate,
    session_snapshot_record,
)

log = logging.getLogger("ash.sessions")

CONFIG_KEYS = ("model", "allowedTools", "disallowedTools", "betas", "subagents", "initialAgent")
CREATE_KEYS = (*CONFIG_KEYS, "extraEnv", "mcpServers", "systemPrompt", "permissionMode")


def _lifecycle(session: Session, action: str, **data: Any) -> None:
    session_event_record(session=session, type=SessionEvent.Type.LIFECYCLE, data={"action": action, **data})


def _transition(session: Session, *, from_statuses: tuple[str, ...], to: str, **fields: Any) -> bool:
    updated = Session.objects.filter(pk=session.pk, status__in=from_statuses).update(
        status=to, last_active_at=timezone.now(), **fields
    )
    session.refresh_from_db()
    return bool(updated)


def choose_runner() -> str:
    """The live runner with the most free slots (this process's own in embedded mode)."""
    from ash import dispatch
    from ash.core.health import live_runners
    from sessions_app.runner import get_host

    if dispatch.embedded():
        return get_host().runner_id
    best = None
    for runner in live_runners():
        free = runner.max_sandboxes - runner.active_count - runner.warming_count
        if free > 0 and (best is None or free > best[0]):
            best = (free, runner.runner_id)
    if best is None:
        raise ServiceUnavailable("No runner with free capacity is available")
    return best[1]


def session_create(*, tenant_id: str, agent_name: str, options: dict[str, Any]) -> Session:
    agent = Agent.objects.filter(tenant_id=tenant_id, name=agent_name).first()
    if agent is None:
        raise NotFound(f'Agent "{agent_name}" not found')
    credential = None
    if options.get("credentialId"):
        credential, _ = credential_use(tenant_id=tenant_id, credential_id=options["credentialId"])
    config = {k: options[k] for k in CREATE_KEYS if k in options}
    runner_id = choose_runner()
    session = Session.objects.create(
        tenant_id=tenant_id,
        agent=agent,
        agent_name=agent.name,
        agent_version=agent.version,
        credential=credential,
        model=options.get("model", ""),
        config=config,
        runner_id=runner_id,
        status=Session.Status.STARTING,
    )
    try:
        placed = runner_call(session, "place", timeout=300)
    except Exception as exc:
        Session.objects.filter(pk=session.pk).update(status=Session.Status.ERROR)
        session.refresh_from_db()
        _lifecycle(session, "error", error=str(exc)[:500])
        raise
    _transition(session, from_statuses=(Session.Status.STARTING,), to=Session.Status.ACTIVE, sandbox_id=placed["sandboxId"])
    _lifecycle(session, "created", agentName=agent.name, agentVersion=agent.version, sandboxId=placed["sandboxId"],
               runnerId=runner_id, path=placed["path"])
    return session


def session_config_update(*, session: Session, changes: dict[str, Any]) -> Session:
    if session.status == Session.Status.ENDED:
        raise BadRequest("Session is ended")
    config = {**session.config, **{k: v for k, v in changes.items() if k in CONFIG_KEYS}}
    fields: dict[str, Any] = {"config": config}
    if "model" in changes:
        fields["model"] = changes["model"]
    Session.objects.filter(pk=session.pk).update(**fields)
    session.refresh_from_db()
    _lifecycle(session, "config_updated", keys=sorted(changes))
    return session


def session_pause(*, session: Session) -> Session:
    if session.status != Session.Status.ACTIVE:
        raise BadRequest(f'Cannot pause session with status "{session.status}"')
    if session.active_turn_id:
        raise BadRequest("Cannot pause a session while a turn is running; interrupt it first")
    if not _transition(session, from_statuses=(Session.Status.ACTIVE,), to=Session.Status.PAUSED):
        raise BadRequest(f'Cannot pause session with status "{session.status}"')
    try:
        runner_call(session, "pause", timeout=30)
    except ServiceUnavailable:
        log.warning("runner of session %s did not confirm the pause", session.pk)
    _lifecycle(session, "paused")
    return session


def _release_sandbox(session: Session) -> str | None:
    """Snapshot the workspace and destroy the sandbox; returns the new snapshot key, if any."""
    if not session.runner_id or not session.sandbox_id:
        return None
    try:
        return runner_call(session, "release", timeout=600)
    except ServiceUnavailable:
        log.warning("runner of session %s unreachable; its sandbox is reaped with the runner", session.pk)
        return None


def session_stop(*, session: Session) -> Session:
    if session.status not in (Session.Status.ACTIVE, Session.Status.PAUSED, Session.Status.STARTING, Session.Status.ERROR):
        raise BadRequest(f'Cannot stop session with status "{session.status}"')
    key = _release_sandbox(session)
    if key:
        session_snapshot_record(session_id=session.pk, key=key)
    fields: dict[str, Any] = {"runner": None, "active_turn": None}
    if not _transition(session, from_statuses=(Session.Status.ACTIVE, Session.Status.PAUSED, Session.Status.STARTING, Session.Status.ERROR),
                       to=Session.Status.STOPPED, **fields):
        raise BadRequest(f'Cannot stop session with status "{session.status}"')
    _lifecycle(session, "stopped", snapshot=bool(key))
    return session


def session_end(*, session: Session) -> Session:
    """DELETE: end the session (idempotent), destroy its sandbox, keep its data."""
    if session.status == Session.Status.ENDED:
        return session
    key = _release_sandbox(session) if session.runner_id else None
    if key:
        session_snapshot_record(session_id=session.pk, key=key)
    fields: dict[str, Any] = {"runner": None, "active_turn": None}
    if _transition(session, from_statuses=tuple(s for s in Session.Status.values if s != Session.Status.ENDED),
                   to=Session.Status.ENDED, **fields):
        _lifecycle(session, "ended")
    return session


def session_resume(*, session: Session) -> Session:
    if session.status == Session.Status.ENDED:
        raise Gone("Session has ended — create a new session")
    if session.status == Session.Status.ACTIVE:
        return session
    if session.status == Session.Status.STARTING:
        raise BadRequest("Session is starting")
    warm_runner = session.runner_id
    if warm_runner:
        try:
            alive = runner_call(session, "alive", timeout=10)
        except ServiceUnavailable:
            alive = False
        if not alive:
            warm_runner = None
    runner_id = warm_runner or choose_runner()
    placed = runner_call(session, "resume", runner_id=runner_id, timeout=300)
    if not _transition(session, from_statuses=(Session.Status.PAUSED, Session.Status.STOPPED, Session.Status.ERROR),
                       to=Session.Status.ACTIVE, sandbox_id=placed["sandboxId"], runner_id=runner_id):
        raise BadRequest(f"Session is {session.status}")
    source = "live" if placed["path"] == "warm" else ("snapshot" if session.snapshot_key else "fresh")
    _lifecycle(session, "resumed", path=placed["path"], source=source, sandboxId=placed["sandboxId"], runnerId=runner_id)
    return session


def session_fork(*, session: Session) -> Session:
    """A paused copy: same agent and settings, the parent's workspace (with its conversation) and messages."""
    key = None
    if session.runner_id and session.status in (Session.Status.ACTIVE, Session.Status.PAUSED):
        try:
            key = runner_call(session, "snapshot", timeout=600)
        except ServiceUnavailable:
            key = None
        if key:
            session_snapshot_record(session_id=session.pk, key=key)
    key = key or session.snapshot_key
    child_key = ""
    if key:
        child_key = f"snapshots/{session.tenant_id}/forks/{uuid.uuid4().hex}.tar.zst"
        with default_storage.open(key, "rb") as src:
            child_key = default_storage.save(child_key, src)
    with transaction.atomic():
        child = Session.objects.create(
            tenant_id=session.tenant_id, agent=session.agent, agent_name=session.agent_name,
            agent_version=session.agent_version, credential=session.credential, model=session.model,
            config=session.config, parent=session, status=Session.Status.PAUSED, snapshot_key=child_key,
            runtime_session_id=session.runtime_session_id,
        )
        messages = list(Message.objects.filter(session=session).order_by("sequence"))
        if messages:
            first = session_sequence_allocate(session_id=child.pk, counter="message_seq", count=len(messages))
            Message.objects.bulk_create([
                Message(session=child, tenant_id=child.tenant_id, role=m.role, content=m.content, sequence=first + i)
                for i, m in enumerate(messages)
            ])
        _lifecycle(child, "forked", parentSessionId=str(session.pk), messages=len(messages), workspace=bool(child_key))
    child.refresh_from_db()
    return child
