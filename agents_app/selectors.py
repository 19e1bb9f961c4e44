"""Agent reads, always tenant-scoped."""

from __future__ import annotations

from django.db.models import QuerySet

from agents_app.models import Agent
from ash.errors import NotFound


def agent_list(*, tenant_id: str) -> QuerySet[Agent]:
    return Agent.objects.filter(tenant_id=tenant_id).order_by("name")


def agent_get(*, tenant_id: str, name: str) -> Agent:
    agent = Agent.objects.filter(tenant_id=tenant_id, name=name).first()
    if agent is None:
        raise NotFound("Agent not found")
    return agent
