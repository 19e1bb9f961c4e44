"""Queued prompts, processed by runners (claim with a conditional UPDATE, lease, retries)."""

from __future__ import annotations

import uuid

from django.db import models

from ash.core.models import tenant_field


class QueueItem(models.Model):
    class Status(models.TextChoices):
        PENDING = "pending"
        PROCESSING = "processing"
        COMPLETED = "completed"
        FAILED = "failed"
        CANCELLED = "cancelled"

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    tenant_id = tenant_field()
    session = models.ForeignKey(
        "sessions_app.Session", null=True, blank=True, on_delete=models.SET_NULL, related_name="queue_items"
    )
    agent_name = models.CharField(max_length=255)
    prompt = models.TextField()
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.PENDING)
    priority = models.IntegerField(default=0)
    retry_count = models.PositiveIntegerField(default=0)
    max_retries = models.PositiveIntegerField(default=3)
    error = models.TextField(null=True, blank=True)
    retry_after = models.DateTimeField(null=True, blank=True)
    lease_expires_at = models.DateTimeField(null=True, blank=True)
    runner_id = models.CharField(max_length=255, blank=True, default="")
    created_at = models.DateTimeField(auto_now_add=True)
    started_at = models.DateTimeField(null=True, blank=True)
    completed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]
        indexes = [
            models.Index(fields=["tenant_id", "-created_at"], name="queue_tenant_created"),
            models.Index(fields=["tenant_id", "status", "-created_at"], name="queue_tenant_status"),
            models.Index(fields=["status", "-priority", "created_at"], name="queue_claim_order"),
        ]

    def __str__(self) -> str:
        return f"{self.agent_name}: {self.prompt[:40]}"
