"""Session reads, always tenant-scoped (another tenant's session is a 404)."""

from __future__ import annotations

import uuid
from typing import Any

from django.db.models import QuerySet

from ash import sql
from ash.errors import NotFound
from sessions_app.models import Attachment, Message, Session, SessionEvent


def session_list(*, tenant_id: str, agent_name: str | None = None, status: str | None = None, limit: int = 100) -> QuerySet[Session]:
    sessions = Session.objects.filter(tenant_id=tenant_id)
    if agent_name:
        sessions = sessions.filter(agent_name=agent_name)
    if status:
        sessions = sessions.filter(status=status)
    return sessions.order_by("-created_at", "-id")[:limit]


def session_get(*, tenant_id: str, session_id: uuid.UUID) -> Session:
    return session_found(sql.fetch(session_select(tenant_id=tenant_id, session_id=session_id))[0])  # on every session call


def session_select(*, tenant_id: Any, session_id: uuid.UUID) -> sql.Query:
    """The read of `session_get`, to run with others (TENANT_ID may be an `sql.Ref`)."""
    return sql.select(Session, where={"tenant_id": tenant_id, "id": session_id})


def session_found(session: Session | None) -> Session:
    if session is None:
        raise NotFound("Session not found")
    return session


def message_list(*, session: Session, after: int = 0, limit: int = 100) -> QuerySet[Message]:
    return Message.objects.filter(session=session, sequence__gt=after).order_by("sequence")[:limit]


def event_list(*, session: Session, after: int = 0, limit: int = 200, type: str | None = None) -> QuerySet[SessionEvent]:
    events = SessionEvent.objects.filter(session=session, sequence__gt=after)
    if type:
        events = events.filter(type=type)
    return events.order_by("sequence")[:limit]


def attachment_list(*, session: Session) -> QuerySet[Attachment]:
    return Attachment.objects.filter(session=session).order_by("created_at", "id")


def attachment_get(*, tenant_id: str, attachment_id: uuid.UUID) -> Attachment:
    attachment = Attachment.objects.filter(tenant_id=tenant_id, pk=attachment_id).first()
    if attachment is None:
        raise NotFound("Attachment not found")
    return attachment
