"""Bearer API keys → tenants. Keys are stored only as HMAC-SHA256 under a server secret."""

from __future__ import annotations

import hashlib
import hmac
import logging
import secrets
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

from django.conf import settings
from django.db import transaction
from django.http import HttpRequest
from django.utils import timezone
from rest_framework.authentication import BaseAuthentication
from rest_framework.permissions import BasePermission

from ash import sql
from ash.core.models import ApiKey
from ash.errors import Unauthorized
from ash.secrets import write_private_file

log = logging.getLogger("ash.auth")

KEY_PREFIX = "ash_"
LAST_USED_RESOLUTION = timedelta(minutes=1)
INITIAL_KEY_FILENAME = "initial-api-key"


@dataclass(frozen=True)
class Tenant:
    """The authenticated caller: a tenant, reached through one API key."""

    tenant_id: str
    api_key_id: str | None = None

    # DRF treats request.user as a user object.
    is_authenticated = True


def hash_api_key(key: str) -> str:
    return hmac.new(settings.ASH_API_KEY_HMAC_SECRET.encode(), key.encode(), hashlib.sha256).hexdigest()


def generate_api_key() -> str:
    return KEY_PREFIX + secrets.token_urlsafe(32)


def api_key_create(*, tenant_id: str, label: str = "") -> tuple[ApiKey, str]:
    """Create a key for TENANT_ID; the plaintext is returned once and never stored."""
    key = generate_api_key()
    row = ApiKey.objects.create(tenant_id=tenant_id, key_hash=hash_api_key(key), prefix=key[:8], label=label)
    return row, key


def api_key_bootstrap(*, data_dir: Path) -> Path | None:
    """On a first start with no key at all, write one to a 0600 file; never print or log it."""
    if settings.ASH_API_KEY or ApiKey.objects.exists():
        return None
    path = data_dir / INITIAL_KEY_FILENAME
    with transaction.atomic():
        if ApiKey.objects.select_for_update().exists():
            return None
        key = generate_api_key()
        if not write_private_file(path, key):
            # A file from an earlier data dir generation: honour it rather than mint another.
            key = path.read_text().strip()
        ApiKey.objects.create(tenant_id="default", key_hash=hash_api_key(key), prefix=key[:8], label="auto-generated")
    return path


def tenant_from_authorization(header: str | None) -> Tenant:
    """Resolve an Authorization header to a tenant, or raise Unauthorized (401)."""
    return key_check(header).alone()


@dataclass(frozen=True)
class KeyCheck:
    """An API key to look up together with other statements. `tenant_id` stands for the caller's
    tenant in them: a value, or an `sql.Ref` to the key's row (matching nothing for an unknown
    key). Run `query` with them (when not None) and hand its row to `result`."""

    tenant_id: Any
    query: sql.Query | None
    env_tenant: Tenant | None = None

    def result(self, row: Any) -> Tenant:
        """The caller's tenant, or Unauthorized (401)."""
        if self.env_tenant is not None:
            return self.env_tenant
        if row is None:
            raise Unauthorized("Invalid API key")
        now = timezone.now()
        if row.last_used_at is None or now - row.last_used_at > LAST_USED_RESOLUTION:
            # At most one write per key per minute, not one per request.
            ApiKey.objects.filter(pk=row.pk).update(last_used_at=now)
        return Tenant(tenant_id=row.tenant_id, api_key_id=str(row.id))

    def alone(self) -> Tenant:
        """`result`, looking the key up by itself."""
        return self.result(sql.fetch(self.query)[0] if self.query is not None else None)


def key_check(header: str | None) -> KeyCheck:
    """The check of an Authorization header's key; a missing or malformed header is a 401 now."""
    if not header:
        raise Unauthorized("Missing Authorization header")
    scheme, _, key = header.partition(" ")
    key = key.strip()
    if scheme != "Bearer" or not key or " " in key:
        raise Unauthorized("Invalid Authorization header format")
    if settings.ASH_API_KEY and hmac.compare_digest(key.encode(), settings.ASH_API_KEY.encode()):
        return KeyCheck(tenant_id="default", query=None, env_tenant=Tenant(tenant_id="default", api_key_id="env"))
    where = {"key_hash": hash_api_key(key), "revoked_at": None}
    return KeyCheck(tenant_id=sql.Ref(ApiKey, "tenant_id", where),
                    query=sql.select(ApiKey, where=where, fields=("id", "tenant_id", "last_used_at")))


class ApiKeyAuthentication(BaseAuthentication):
    def authenticate(self, request: HttpRequest) -> tuple[Tenant, str]:
        tenant = tenant_from_authorization(request.META.get("HTTP_AUTHORIZATION"))
        return tenant, tenant.api_key_id or ""

    def authenticate_header(self, request: HttpRequest) -> str:
        return "Bearer"


class IsTenant(BasePermission):
    def has_permission(self, request: HttpRequest, view: object) -> bool:
        return isinstance(getattr(request, "user", None), Tenant)


def internal_secret_ok(request: HttpRequest) -> bool:
    """Constant-time check of the runner secret (`Authorization: Bearer <ASH_INTERNAL_SECRET>`)."""
    header = request.META.get("HTTP_AUTHORIZATION", "")
    scheme, _, given = header.partition(" ")
    return scheme == "Bearer" and hmac.compare_digest(given.strip().encode(), settings.ASH_INTERNAL_SECRET.encode())
