"""Credentials: validated per type, encrypted at rest under a rotatable key list, never returned."""

from __future__ import annotations

import json
import logging
import uuid

import pytest
from cryptography.fernet import Fernet
from django.db import connection

from credentials_app import crypto
from credentials_app.models import Credential
from tests.conftest import assert_error

SECRET = "sk-ant-super-secret-value-0123456789"
BEDROCK = {"accessKeyId": "AKIAEXAMPLE", "secretAccessKey": "bedrock-secret-xyz", "region": "us-east-1"}


def _create(api, **body):
    response = api.post_json("/api/credentials", body)
    assert response.status_code == 201, response.content
    return response.json()["credential"]


def _stored_column(credential_id: str) -> str:
    # Read the raw column, bypassing the ORM, to see what is really on disk.
    with connection.cursor() as cursor:
        table = Credential._meta.db_table
        cursor.execute(f"SELECT encrypted_key FROM {table} WHERE id = %s", [uuid.UUID(credential_id).hex if connection.vendor == "sqlite" else credential_id])
        return cursor.fetchone()[0]


@pytest.mark.parametrize("type_", ["anthropic", "openai", "custom"])
def test_create_returns_201_without_the_key(api, type_):
    response = api.post_json("/api/credentials", {"type": type_, "key": SECRET, "label": "My Key"})
    assert response.status_code == 201
    credential = response.json()["credential"]
    assert set(response.json()) == {"credential"}
    assert credential["type"] == type_
    assert credential["label"] == "My Key"
    assert credential["active"] is True
    assert credential["lastUsedAt"] is None
    assert uuid.UUID(credential["id"])
    assert SECRET not in response.content.decode()
    assert "key" not in credential and "encryptedKey" not in credential


def test_bedrock_key_with_all_fields_is_accepted(api):
    credential = _create(api, type="bedrock", key=json.dumps({**BEDROCK, "sessionToken": "tok"}))
    assert credential["type"] == "bedrock"


@pytest.mark.parametrize(
    ("key", "message"),
    [
        ("not json", "key: a bedrock key must be JSON with accessKeyId, secretAccessKey and region"),
        ("[1, 2]", "key: a bedrock key must be a JSON object"),
        (json.dumps({"accessKeyId": "a", "region": "r"}), "key: bedrock key is missing secretAccessKey"),
        (json.dumps({**BEDROCK, "region": ""}), "key: bedrock key is missing region"),
        (json.dumps({**BEDROCK, "sessionToken": 5}), "key: bedrock sessionToken must be a string"),
        (json.dumps({**BEDROCK, "extra": "x"}), "key: unknown bedrock field extra"),
    ],
)
def test_bedrock_key_must_be_json_with_required_fields(api, key, message):
    body = assert_error(api.post_json("/api/credentials", {"type": "bedrock", "key": key}), 400)
    assert body["error"] == message
    assert not Credential.objects.exists()


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"type": "bogus", "key": "k"}, 'type: "bogus" is not a valid choice.'),
        ({"type": "anthropic"}, "key: This field is required."),
        ({"type": "anthropic", "key": ""}, "key: This field may not be blank."),
        ({"type": "anthropic", "key": "   "}, "key: must not be blank"),
        ({"type": "anthropic", "key": "a\nb"}, "key: must not contain line breaks or NUL"),
        ({"key": "k"}, "type: This field is required."),
    ],
)
def test_invalid_create_is_400_naming_the_field(api, body, message):
    assert assert_error(api.post_json("/api/credentials", body), 400)["error"] == message


def test_key_is_encrypted_at_rest(api):
    credential = _create(api, type="anthropic", key=SECRET)
    stored = _stored_column(credential["id"])
    assert SECRET not in stored
    assert crypto.decrypt(stored) == SECRET


def test_key_is_never_in_list_or_logs(api, caplog):
    caplog.set_level(logging.DEBUG)
    _create(api, type="anthropic", key=SECRET, label="a")
    _create(api, type="bedrock", key=json.dumps(BEDROCK))
    response = api.get("/api/credentials")
    text = response.content.decode()
    assert SECRET not in text and BEDROCK["secretAccessKey"] not in text
    assert SECRET not in caplog.text and BEDROCK["secretAccessKey"] not in caplog.text


def test_list_is_newest_first_with_last_used_and_active(api):
    from credentials_app.services import credential_use

    first = _create(api, type="anthropic", key="k1", label="first")
    second = _create(api, type="openai", key="k2", label="second")
    credential_use(tenant_id=api.tenant_id, credential_id=uuid.UUID(first["id"]))
    rows = api.get("/api/credentials").json()["credentials"]
    assert [r["id"] for r in rows] == [second["id"], first["id"]]
    assert set(rows[0]) == {"id", "tenantId", "type", "label", "active", "createdAt", "lastUsedAt"}
    assert rows[0]["lastUsedAt"] is None
    assert rows[1]["lastUsedAt"] is not None
    assert all(r["active"] is True for r in rows)
    assert all(r["tenantId"] == api.tenant_id for r in rows)


def test_credential_use_returns_plaintext_and_refuses_other_tenants(api):
    from ash.errors import BadRequest
    from credentials_app.services import credential_use

    credential = _create(api, type="anthropic", key=SECRET)
    _, plaintext = credential_use(tenant_id=api.tenant_id, credential_id=uuid.UUID(credential["id"]))
    assert plaintext == SECRET
    with pytest.raises(BadRequest, match="Invalid or inaccessible credential"):
        credential_use(tenant_id="someone-else", credential_id=uuid.UUID(credential["id"]))


def test_delete_is_204_with_empty_body_then_404(api):
    credential = _create(api, type="custom", key="k")
    response = api.delete(f"/api/credentials/{credential['id']}")
    assert response.status_code == 204
    assert response.content == b""
    assert not Credential.objects.filter(pk=credential["id"]).exists()
    assert_error(api.delete(f"/api/credentials/{credential['id']}"), 404, "Credential not found")


def test_delete_unknown_uuid_is_404(api):
    body = assert_error(api.delete(f"/api/credentials/{uuid.uuid4()}"), 404)
    assert body["error"] == "Credential not found"


def test_rotation_keeps_old_rows_readable_and_reencrypts_under_new_key(api, settings):
    old, new = Fernet.generate_key().decode(), Fernet.generate_key().decode()
    settings.ASH_CREDENTIAL_KEYS = [old]
    credential = _create(api, type="anthropic", key=SECRET)
    before = _stored_column(credential["id"])

    settings.ASH_CREDENTIAL_KEYS = [new, old]
    assert crypto.decrypt(before) == SECRET  # old rows still readable during rotation
    from io import StringIO

    from django.core.management import call_command

    out = StringIO()
    call_command("rotatecredentialkeys", stdout=out)
    assert out.getvalue().strip() == "re-encrypted 1 credential(s)"
    after = _stored_column(credential["id"])
    assert after != before and SECRET not in after

    settings.ASH_CREDENTIAL_KEYS = [new]
    assert crypto.decrypt(after) == SECRET
    with pytest.raises(crypto.CredentialKeyError):
        crypto.decrypt(before)


def test_rows_encrypted_under_a_dropped_key_are_unusable_not_500(api, settings):
    from ash.errors import BadRequest
    from credentials_app.services import credential_use

    settings.ASH_CREDENTIAL_KEYS = [Fernet.generate_key().decode()]
    credential = _create(api, type="anthropic", key=SECRET)
    settings.ASH_CREDENTIAL_KEYS = [Fernet.generate_key().decode()]
    with pytest.raises(BadRequest, match="Invalid or inaccessible credential"):
        credential_use(tenant_id=api.tenant_id, credential_id=uuid.UUID(credential["id"]))


def test_rejected_keys_are_not_echoed_in_errors(api, caplog):
    caplog.set_level(logging.DEBUG)
    response = api.post_json("/api/credentials", {"type": "bedrock", "key": json.dumps({"accessKeyId": "A", "secretAccessKey": SECRET})})
    assert assert_error(response, 400)["error"] == "key: bedrock key is missing region"
    response = api.post_json("/api/credentials", {"type": "openai", "key": SECRET + "\n"})
    assert_error(response, 400)
    assert SECRET not in response.content.decode()
    assert SECRET not in caplog.text
