"""Agents: a named folder (CLAUDE.md, .claude/, .mcp.json, scripts) with version history."""

from __future__ import annotations

import uuid

from django.db import models

from ash.core.models import tenant_field

AGENT_NAME_PATTERN = r"^[a-zA-Z0-9_-]{1,255}$"


class Agent(models.Model):
    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    tenant_id = tenant_field()
    name = models.CharField(max_length=255)
    version = models.PositiveIntegerField(default=1)
    path = models.CharField(max_length=4096, help_text="Folder of the current version")
    config = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["tenant_id", "name"], name="agent_unique_name_per_tenant")]
        ordering = ["name"]

    def __str__(self) -> str:
        return f"{self.name} v{self.version}"


class AgentVersion(models.Model):
    agent = models.ForeignKey(Agent, on_delete=models.CASCADE, related_name="versions")
    tenant_id = tenant_field()
    version = models.PositiveIntegerField()
    path = models.CharField(max_length=4096)
    source = models.CharField(max_length=16, help_text="files, systemPrompt, placeholder or path")
    file_count = models.PositiveIntegerField(default=0)
    total_bytes = models.BigIntegerField(default=0)
    sha256 = models.CharField(max_length=64, help_text="Digest over every file's path and content")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["agent", "version"], name="agent_version_unique")]
        ordering = ["-version"]

    def __str__(self) -> str:
        return f"{self.agent.name} v{self.version}"
