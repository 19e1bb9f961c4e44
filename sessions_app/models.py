"""Sessions and what they record: messages, events, attachments."""

from __future__ import annotations

import uuid

from django.db import models

from ash.core.models import tenant_field, uuid7


class Session(models.Model):
    class Status(models.TextChoices):
        STARTING = "starting"
        ACTIVE = "active"
        PAUSED = "paused"
        STOPPED = "stopped"
        ENDED = "ended"
        ERROR = "error"

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    tenant_id = tenant_field()
    agent = models.ForeignKey("agents_app.Agent", on_delete=models.CASCADE, related_name="sessions")
    agent_name = models.CharField(max_length=255)
    agent_version = models.PositiveIntegerField(default=1)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.STARTING)
    sandbox_id = models.CharField(max_length=64, blank=True, default="")
    runner = models.ForeignKey(
        "core.Runner", null=True, blank=True, on_delete=models.SET_NULL, related_name="sessions", db_constraint=False
    )
    parent = models.ForeignKey("self", null=True, blank=True, on_delete=models.SET_NULL, related_name="forks")
    credential = models.ForeignKey(
        "credentials_app.Credential", null=True, blank=True, on_delete=models.SET_NULL, related_name="sessions"
    )
    model = models.CharField(max_length=255, blank=True, default="")
    config = models.JSONField(default=dict, blank=True)
    runtime_session_id = models.CharField(max_length=64, blank=True, default="", help_text="The agent runtime's own session id")
    snapshot_key = models.CharField(max_length=1024, blank=True, default="")
    # The running turn; a conditional UPDATE on NULL refuses a second concurrent turn (409).
    # Both point at this session's own turns, which are deleted only with it (CASCADE below), so
    # there is nothing to set to NULL. And no index: nothing looks a session up by its turn, and
    # an indexed column changing on every turn would make each of the turn's session updates
    # rewrite every index of the session (no HOT update on PostgreSQL).
    active_turn = models.ForeignKey("Turn", null=True, blank=True, on_delete=models.DO_NOTHING, related_name="+",
                                    db_index=False)
    last_turn = models.ForeignKey("Turn", null=True, blank=True, on_delete=models.DO_NOTHING, related_name="+",
                                  db_index=False)
    # Atomic per-session counters (UPDATE ... + 1 inside the inserting transaction): gapless, never MAX+1.
    message_seq = models.PositiveBigIntegerField(default=0)
    event_seq = models.PositiveBigIntegerField(default=0)
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)
    last_active_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at"]
        indexes = [
            models.Index(fields=["tenant_id", "-created_at"], name="session_tenant_created"),
            models.Index(fields=["tenant_id", "agent_name", "-created_at"], name="session_tenant_agent"),
            models.Index(fields=["tenant_id", "status"], name="session_tenant_status"),
        ]

    def __str__(self) -> str:
        return f"{self.agent_name} {self.id} ({self.status})"


class Message(models.Model):
    class Role(models.TextChoices):
        USER = "user"
        ASSISTANT = "assistant"

    id = models.UUIDField(primary_key=True, default=uuid7, editable=False)
    tenant_id = tenant_field(indexed=False)  # read only through its session: no index of its own
    # No index of its own: the unique (session, sequence) index serves every lookup by session.
    session = models.ForeignKey(Session, on_delete=models.CASCADE, related_name="messages", db_index=False)
    role = models.CharField(max_length=16, choices=Role.choices)
    content = models.TextField(help_text="JSON-encoded SDK message")
    sequence = models.PositiveBigIntegerField()
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["session", "sequence"]
        constraints = [models.UniqueConstraint(fields=["session", "sequence"], name="message_unique_sequence")]

    def __str__(self) -> str:
        return f"{self.session_id}#{self.sequence} {self.role}"


class SessionEvent(models.Model):
    class Type(models.TextChoices):
        TEXT = "text"
        TOOL_START = "tool_start"
        TOOL_RESULT = "tool_result"
        REASONING = "reasoning"
        ERROR = "error"
        TURN_COMPLETE = "turn_complete"
        LIFECYCLE = "lifecycle"

    id = models.UUIDField(primary_key=True, default=uuid7, editable=False)
    tenant_id = tenant_field(indexed=False)  # read only through its session: no index of its own
    # No index of its own: the unique (session, sequence) index serves every lookup by session.
    session = models.ForeignKey(Session, on_delete=models.CASCADE, related_name="events", db_index=False)
    type = models.CharField(max_length=16, choices=Type.choices)
    data = models.TextField(null=True, blank=True, help_text="JSON-encoded payload")
    sequence = models.PositiveBigIntegerField()
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["session", "sequence"]
        constraints = [models.UniqueConstraint(fields=["session", "sequence"], name="event_unique_sequence")]
        indexes = [models.Index(fields=["session", "type", "sequence"], name="event_session_type_seq")]

    def __str__(self) -> str:
        return f"{self.session_id}#{self.sequence} {self.type}"


def attachment_upload_to(instance: Attachment, filename: str) -> str:
    return f"attachments/{instance.tenant_id}/{instance.session_id}/{instance.id}"


class Attachment(models.Model):
    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    tenant_id = tenant_field()
    session = models.ForeignKey(Session, on_delete=models.CASCADE, related_name="attachments")
    message_id = models.CharField(max_length=64, blank=True, default="unlinked")
    filename = models.CharField(max_length=255)
    mime_type = models.CharField(max_length=255)
    size = models.PositiveBigIntegerField()
    file = models.FileField(upload_to=attachment_upload_to, max_length=1024)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at"]
        indexes = [models.Index(fields=["session", "-created_at"], name="attachment_session_created")]

    def __str__(self) -> str:
        return self.filename


class Turn(models.Model):
    """One prompt and everything the agent did for it; its frames are relayed over SSE."""

    class Status(models.TextChoices):
        PENDING = "pending"
        RUNNING = "running"
        COMPLETED = "completed"
        FAILED = "failed"
        INTERRUPTED = "interrupted"

    id = models.UUIDField(primary_key=True, default=uuid7, editable=False)
    tenant_id = tenant_field(indexed=False)  # read only through its session: no index of its own
    # No index of its own: turn_session_created (session, -created_at) serves lookups by session.
    session = models.ForeignKey(Session, on_delete=models.CASCADE, related_name="turns", db_index=False)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.PENDING)
    prompt = models.JSONField(help_text="The user content: a string or content blocks")
    options = models.JSONField(default=dict, blank=True)
    source = models.CharField(max_length=16, default="api", help_text="api or queue")
    error = models.TextField(null=True, blank=True)
    interrupt_requested = models.BooleanField(default=False)
    created_at = models.DateTimeField(auto_now_add=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]
        indexes = [models.Index(fields=["session", "-created_at"], name="turn_session_created")]

    def __str__(self) -> str:
        return f"turn {self.id} ({self.status})"
