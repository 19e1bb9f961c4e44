"""Bearer API keys: hashed at rest, env key, first-start bootstrap, tenant isolation."""

from __future__ import annotations

import hashlib
import hmac
import logging
import stat
import uuid

import pytest
from django.conf import settings
from rest_framework.test import APIClient

from ash.auth import INITIAL_KEY_FILENAME, api_key_bootstrap, api_key_create, hash_api_key
from ash.core.models import ApiKey
from queue_app.models import QueueItem
from tests.conftest import TenantClient, assert_error


def test_missing_authorization_header_is_401(anon):
    body = assert_error(anon.get("/api/agents"), 401)
    assert body["error"] == "Missing Authorization header"


@pytest.mark.parametrize("header", ["Basic abc", "Bearer", "Bearer ", "bearer ash_x", "Bearer a b", "ash_key"])
def test_malformed_authorization_header_is_401(anon, header):
    body = assert_error(anon.get("/api/agents", HTTP_AUTHORIZATION=header), 401)
    assert body["error"] == "Invalid Authorization header format"


def test_unknown_key_is_401(db, anon):
    body = assert_error(anon.get("/api/agents", HTTP_AUTHORIZATION="Bearer ash_not-a-real-key"), 401)
    assert body["error"] == "Invalid API key"


def test_revoked_key_is_401(db):
    from django.utils import timezone

    row, key = api_key_create(tenant_id="t1")
    ApiKey.objects.filter(pk=row.pk).update(revoked_at=timezone.now())
    assert_error(TenantClient("t1", key).get("/api/agents"), 401, "Invalid API key")


def test_auth_errors_are_401_on_writes_too(anon, db):
    assert_error(anon.post("/api/agents", {"name": "x"}, format="json"), 401, "Missing Authorization header")


def test_valid_key_reaches_its_tenant(api):
    response = api.get("/api/agents")
    assert response.status_code == 200
    assert response.json() == {"agents": []}


def test_keys_are_stored_only_as_hmac(db):
    row, key = api_key_create(tenant_id="t1", label="ci")
    row.refresh_from_db()
    expected = hmac.new(settings.ASH_API_KEY_HMAC_SECRET.encode(), key.encode(), hashlib.sha256).hexdigest()
    assert row.key_hash == expected == hash_api_key(key)
    assert key.startswith("ash_") and len(key) >= 40
    stored = [str(v) for v in ApiKey.objects.filter(pk=row.pk).values().get().values()]
    assert all(key not in value for value in stored)
    assert row.prefix == key[:8]


def test_env_api_key_authenticates_as_default_tenant(db, settings, make_client):
    settings.ASH_API_KEY = "env-key-for-tests-0123456789"
    env_client = TenantClient("default", settings.ASH_API_KEY)
    assert env_client.post_json("/api/agents", {"name": "from-env"}).status_code == 201
    # Another key of tenant "default" sees the agent; another tenant does not.
    default_names = [a["name"] for a in make_client("default").get("/api/agents").json()["agents"]]
    assert default_names == ["from-env"]
    assert make_client("other").get("/api/agents").json() == {"agents": []}
    agent = env_client.get("/api/agents/from-env").json()["agent"]
    assert agent["tenantId"] == "default"


def test_env_api_key_does_not_match_a_prefix(db, settings):
    settings.ASH_API_KEY = "env-key-for-tests-0123456789"
    assert_error(TenantClient("default", "env-key-for-tests").get("/api/agents"), 401, "Invalid API key")


def test_health_is_public(anon, db):
    response = anon.get("/health")
    assert response.status_code == 200
    assert response.json()["status"] == "ok"


# --- first-start bootstrap ------------------------------------------------------------------------


def test_bootstrap_writes_a_working_key_to_a_private_file_and_never_logs_it(db, tmp_path, settings, caplog, capsys):
    settings.ASH_API_KEY = ""
    caplog.set_level(logging.DEBUG)
    path = api_key_bootstrap(data_dir=tmp_path)
    assert path == tmp_path / INITIAL_KEY_FILENAME
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    key = path.read_text().strip()
    assert key.startswith("ash_")
    row = ApiKey.objects.get()
    assert (row.tenant_id, row.label, row.key_hash) == ("default", "auto-generated", hash_api_key(key))
    captured = capsys.readouterr()
    assert key not in captured.out and key not in captured.err
    assert key not in caplog.text
    assert TenantClient("default", key).get("/api/agents").status_code == 200


def test_bootstrap_second_call_does_not_mint_another_key(db, tmp_path, settings):
    settings.ASH_API_KEY = ""
    first = api_key_bootstrap(data_dir=tmp_path)
    content = first.read_text()
    assert api_key_bootstrap(data_dir=tmp_path) is None
    assert ApiKey.objects.count() == 1
    assert first.read_text() == content


def test_bootstrap_does_nothing_when_env_key_is_set(db, tmp_path, settings):
    settings.ASH_API_KEY = "env-key-for-tests-0123456789"
    assert api_key_bootstrap(data_dir=tmp_path) is None
    assert not ApiKey.objects.exists()
    assert not (tmp_path / INITIAL_KEY_FILENAME).exists()


def test_bootstrap_does_nothing_when_keys_exist(db, tmp_path, settings):
    settings.ASH_API_KEY = ""
    api_key_create(tenant_id="t1")
    assert api_key_bootstrap(data_dir=tmp_path) is None
    assert ApiKey.objects.count() == 1


def test_auth_stays_enforced_after_bootstrap(db, tmp_path, settings):
    settings.ASH_API_KEY = ""
    api_key_bootstrap(data_dir=tmp_path)
    assert_error(APIClient().get("/api/agents"), 401, "Missing Authorization header")


# --- tenant isolation ---------------------------------------------------------------------------


def test_other_tenants_agent_is_404_not_403(api, other_api, deploy):
    deploy("private")
    for response in (
        other_api.get("/api/agents/private"),
        other_api.get("/api/agents/private/files"),
        other_api.get("/api/agents/private/files/CLAUDE.md"),
        other_api.delete("/api/agents/private"),
    ):
        assert_error(response, 404, "Agent not found")
    assert api.get("/api/agents/private").status_code == 200


def test_other_tenants_credential_is_404(api, other_api):
    credential_id = api.post_json("/api/credentials", {"type": "anthropic", "key": "sk-a"}).json()["credential"]["id"]
    assert other_api.get("/api/credentials").json() == {"credentials": []}
    assert_error(other_api.delete(f"/api/credentials/{credential_id}"), 404, "Credential not found")
    assert api.delete(f"/api/credentials/{credential_id}").status_code == 204


def test_other_tenants_queue_item_is_404(api, other_api, deploy):
    deploy("worker")
    item_id = api.post_json("/api/queue", {"agentName": "worker", "prompt": "go"}).json()["item"]["id"]
    assert_error(other_api.get(f"/api/queue/{item_id}"), 404, "Queue item not found")
    assert_error(other_api.delete(f"/api/queue/{item_id}"), 404, "Queue item not found")
    assert other_api.get("/api/queue").json() == {"items": []}
    assert QueueItem.objects.get(pk=uuid.UUID(item_id)).status == "pending"


def test_other_tenant_cannot_enqueue_for_my_agent(other_api, deploy):
    deploy("worker")
    assert_error(other_api.post_json("/api/queue", {"agentName": "worker", "prompt": "go"}), 400, 'agentName: agent "worker" not found')


def test_a_used_key_records_when_it_was_last_used(make_client):
    from ash.core.models import ApiKey

    client = make_client("tenant-last-used")
    row = ApiKey.objects.get(tenant_id="tenant-last-used")
    assert row.last_used_at is None
    assert client.get("/api/agents").status_code == 200
    row.refresh_from_db()
    first = row.last_used_at
    assert first is not None
    assert client.get("/api/agents").status_code == 200
    row.refresh_from_db()
    assert row.last_used_at == first  # at most one write per minute


@pytest.mark.django_db(transaction=True)  # the streaming view reads on its own thread's connection
@pytest.mark.parametrize("session_id", ["not-a-uuid", str(uuid.uuid4())])
def test_starting_a_turn_checks_the_key_before_the_session(db, anon, session_id):
    """The key and the session are read together; a bad key is still a 401, whatever the id."""
    path = f"/api/sessions/{session_id}/messages"
    assert_error(anon.post(path, {"content": "hi"}, format="json", HTTP_AUTHORIZATION="Bearer ash_nope"), 401,
                 "Invalid API key")
    assert_error(anon.post(path, {"content": "hi"}, format="json"), 401, "Missing Authorization header")


@pytest.mark.django_db(transaction=True)
def test_starting_a_turn_on_a_missing_or_foreign_session_is_404_after_the_body_is_checked(api, other_api):
    from agents_app.models import Agent
    from sessions_app.models import Session

    agent = Agent.objects.create(tenant_id=api.tenant_id, name="turn-agent", path="/nonexistent")
    mine = Session.objects.create(tenant_id=api.tenant_id, agent=agent, agent_name=agent.name, status="paused")
    missing = f"/api/sessions/{uuid.uuid4()}/messages"
    assert_error(api.post(missing, {"content": 5}, format="json"), 400)
    assert_error(api.post(missing, {"content": "hi"}, format="json"), 404, "Session not found")
    assert_error(api.post("/api/sessions/nope/messages", {"content": "hi"}, format="json"), 400, "Invalid id")
    # Another tenant's session is a 404, not a 403; the owner gets past the read (a paused session: 400).
    assert_error(other_api.post(f"/api/sessions/{mine.pk}/messages", {"content": "hi"}, format="json"), 404,
                 "Session not found")
    assert_error(api.post(f"/api/sessions/{mine.pk}/messages", {"content": "hi"}, format="json"), 400,
                 "Session is paused")
