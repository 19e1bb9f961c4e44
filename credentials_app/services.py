"""Credential writes: create (validated, encrypted), delete, rotate all to the newest key."""

from __future__ import annotations

import json
import uuid

from django.db import transaction
from django.utils import timezone

from ash.errors import BadRequest
from credentials_app import crypto
from credentials_app.models import Credential
from credentials_app.selectors import credential_get

BEDROCK_REQUIRED = ("accessKeyId", "secretAccessKey", "region")
BEDROCK_OPTIONAL = ("sessionToken",)
KEY_MAX_LENGTH = 16 << 10


def credential_validate_key(*, type: str, key: str) -> None:
    """Reject keys that cannot work for their type, with a message naming the problem."""
    if not key.strip():
        raise BadRequest("key: must not be blank")
    if len(key) > KEY_MAX_LENGTH:
        raise BadRequest(f"key: longer than {KEY_MAX_LENGTH} characters")
    if type != Credential.Type.BEDROCK:
        if any(c in key for c in "\r\n\x00"):
            raise BadRequest("key: must not contain line breaks or NUL")
        return
    try:
        parsed = json.loads(key)
    except ValueError:
        raise BadRequest("key: a bedrock key must be JSON with accessKeyId, secretAccessKey and region") from None
    if not isinstance(parsed, dict):
        raise BadRequest("key: a bedrock key must be a JSON object")
    for field in BEDROCK_REQUIRED:
        if not isinstance(parsed.get(field), str) or not parsed[field].strip():
            raise BadRequest(f"key: bedrock key is missing {field}")
    for field in BEDROCK_OPTIONAL:
        if field in parsed and not isinstance(parsed[field], str):
            raise BadRequest(f"key: bedrock {field} must be a string")
    unknown = set(parsed) - set(BEDROCK_REQUIRED) - set(BEDROCK_OPTIONAL)
    if unknown:
        raise BadRequest(f"key: unknown bedrock field {sorted(unknown)[0]}")


def credential_create(*, tenant_id: str, type: str, key: str, label: str = "") -> Credential:
    credential_validate_key(type=type, key=key)
    return Credential.objects.create(tenant_id=tenant_id, type=type, label=label, encrypted_key=crypto.encrypt(key))


def credential_delete(*, tenant_id: str, credential_id: uuid.UUID) -> None:
    credential_get(tenant_id=tenant_id, credential_id=credential_id).delete()


def credential_use(*, tenant_id: str, credential_id: uuid.UUID) -> tuple[Credential, str]:
    """The credential and its plaintext for a session, marking it used; 400 if unusable."""
    credential = Credential.objects.filter(tenant_id=tenant_id, pk=credential_id, active=True).first()
    if credential is None:
        raise BadRequest("Invalid or inaccessible credential")
    try:
        plaintext = crypto.decrypt(credential.encrypted_key)
    except crypto.CredentialKeyError:
        raise BadRequest("Invalid or inaccessible credential") from None
    Credential.objects.filter(pk=credential.pk).update(last_used_at=timezone.now())
    return credential, plaintext


def credentials_rotate() -> int:
    """Re-encrypt every credential under the newest key; returns how many rows changed."""
    changed = 0
    for credential_id in Credential.objects.values_list("pk", flat=True).iterator():
        with transaction.atomic():
            row = Credential.objects.select_for_update().get(pk=credential_id)
            rotated = crypto.rotate(row.encrypted_key)
            if rotated != row.encrypted_key:
                row.encrypted_key = rotated
                row.save(update_fields=["encrypted_key"])
                changed += 1
    return changed


def credential_plaintext(*, tenant_id: str, credential_id: uuid.UUID) -> tuple[str, str]:
    """(type, plaintext) for the runner's model proxy; 400 when deleted, inactive or undecryptable."""
    credential, plaintext = credential_use(tenant_id=tenant_id, credential_id=credential_id)
    return credential.type, plaintext
