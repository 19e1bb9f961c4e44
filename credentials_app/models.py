"""Model-provider credentials, encrypted at rest (never returned, logged or shown)."""

from __future__ import annotations

import uuid

from django.db import models

from ash.core.models import tenant_field


class Credential(models.Model):
    class Type(models.TextChoices):
        ANTHROPIC = "anthropic"
        OPENAI = "openai"
        CUSTOM = "custom"
        BEDROCK = "bedrock"

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    tenant_id = tenant_field()
    type = models.CharField(max_length=16, choices=Type.choices)
    label = models.CharField(max_length=255, blank=True, default="")
    encrypted_key = models.TextField(editable=False)
    active = models.BooleanField(default=True)
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)
    last_used_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"{self.type}: {self.label or self.id}"
