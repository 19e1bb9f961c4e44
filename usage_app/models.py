"""Metered usage: tokens, tool calls, messages, compute time and cost, per session."""

from __future__ import annotations

from django.db import models

from ash.core.models import tenant_field, uuid7


class UsageEvent(models.Model):
    class Type(models.TextChoices):
        INPUT_TOKENS = "input_tokens"
        OUTPUT_TOKENS = "output_tokens"
        CACHE_CREATION_TOKENS = "cache_creation_tokens"
        CACHE_READ_TOKENS = "cache_read_tokens"
        TOOL_CALL = "tool_call"
        MESSAGE = "message"
        COMPUTE_SECONDS = "compute_seconds"
        COST_USD = "cost_usd"

    id = models.UUIDField(primary_key=True, default=uuid7, editable=False)
    # Neither id has an index of its own: the three (tenant_id, …, created_at) indexes below serve
    # every query (all are per tenant), and each index more is written for every row of every turn.
    tenant_id = tenant_field(indexed=False)
    # Plain ids, not foreign keys: usage is billing history and outlives deleted sessions.
    session_id = models.UUIDField()
    agent_name = models.CharField(max_length=255)
    event_type = models.CharField(max_length=32, choices=Type.choices)
    value = models.FloatField()
    model = models.CharField(max_length=255, blank=True, default="")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at"]
        indexes = [
            models.Index(fields=["tenant_id", "-created_at"], name="usage_tenant_created"),
            models.Index(fields=["tenant_id", "session_id", "-created_at"], name="usage_tenant_session"),
            models.Index(fields=["tenant_id", "agent_name", "-created_at"], name="usage_tenant_agent"),
        ]

    def __str__(self) -> str:
        return f"{self.event_type}={self.value}"
