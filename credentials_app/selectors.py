"""Credential reads, tenant-scoped. Plaintext keys leave only through credential_env_for_session."""

from __future__ import annotations

import uuid

from django.db.models import QuerySet

from ash.errors import NotFound
from credentials_app.models import Credential


def credential_list(*, tenant_id: str) -> QuerySet[Credential]:
    return Credential.objects.filter(tenant_id=tenant_id).order_by("-created_at")


def credential_get(*, tenant_id: str, credential_id: uuid.UUID) -> Credential:
    credential = Credential.objects.filter(tenant_id=tenant_id, pk=credential_id).first()
    if credential is None:
        raise NotFound("Credential not found")
    return credential
