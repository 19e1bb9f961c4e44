"""Core rows: tenants' API keys and the runner registry."""

from __future__ import annotations

import os
import time
import uuid

from django.db import models

TENANT_MAX_LENGTH = 64


def uuid7() -> uuid.UUID:
    """A time-ordered UUID (RFC 9562 version 7: 48 bits of Unix milliseconds, then 74 random
    bits). The primary key of the rows every turn appends (messages, events, turns, usage): new
    keys land at the end of their index instead of on a random page, so a turn's commit writes a
    few index pages rather than one per row."""
    value = (time.time_ns() // 1_000_000) << 80 | int.from_bytes(os.urandom(10), "big")
    value = value & ~(0xF << 76) | 0x7 << 76  # version 7
    value = value & ~(0x3 << 62) | 0x2 << 62  # the RFC's variant
    return uuid.UUID(int=value)


def tenant_field(*, indexed: bool = True) -> models.CharField:
    return models.CharField(max_length=TENANT_MAX_LENGTH, db_index=indexed, default="default")


class ApiKey(models.Model):
    """An API key, stored only as an HMAC-SHA256 under ASH_API_KEY_HMAC_SECRET."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    tenant_id = tenant_field()
    key_hash = models.CharField(max_length=64, unique=True)
    prefix = models.CharField(max_length=16, help_text="First characters, for recognising a key")
    label = models.CharField(max_length=255, blank=True, default="")
    created_at = models.DateTimeField(auto_now_add=True)
    last_used_at = models.DateTimeField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        verbose_name = "API key"
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"{self.prefix}… ({self.tenant_id}{', ' + self.label if self.label else ''})"


class Runner(models.Model):
    """A runner process (a Celery worker that owns sandboxes), kept alive by heartbeats."""

    runner_id = models.CharField(max_length=255, primary_key=True)
    host = models.CharField(max_length=255)
    port = models.PositiveIntegerField(default=0)
    max_sandboxes = models.PositiveIntegerField(default=100)
    active_count = models.PositiveIntegerField(default=0)
    warming_count = models.PositiveIntegerField(default=0)
    pool_stats = models.JSONField(default=dict, blank=True)
    isolation = models.CharField(max_length=32, blank=True, default="")
    registered_at = models.DateTimeField(auto_now_add=True)
    last_heartbeat_at = models.DateTimeField(db_index=True)

    class Meta:
        ordering = ["runner_id"]

    def __str__(self) -> str:
        return self.runner_id
