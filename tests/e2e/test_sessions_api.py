"""Session resource over HTTP: create (options, errors), list filters, get, config, tenancy."""

from __future__ import annotations

import uuid

import pytest

from tests.e2e.support import Api, assert_error
from tests.fakes.anthropic_server import Reply

pytestmark = pytest.mark.slow

ZERO = "00000000-0000-4000-8000-000000000000"
SESSION_KEYS = {"id", "tenantId", "agentName", "sandboxId", "status", "runnerId", "parentSessionId", "createdAt",
                "lastActiveAt"}


def test_create_returns_201_active_session_in_a_sandbox(api: Api, agent: str) -> None:
    r = api.post("/api/sessions", {"agent": agent})
    assert r.status_code == 201, r.text
    session = r.json()["session"]
    assert set(session) >= SESSION_KEYS
    assert session["agentName"] == agent and session["status"] == "active"
    assert session["tenantId"] == "default" and session["parentSessionId"] is None
    assert session["sandboxId"] and session["runnerId"]
    uuid.UUID(session["id"])
    # The workspace is a copy of the agent folder, and the sandbox runs as its own uid.
    out = api.exec(session["id"], "cat notes/hello.txt; id -u; pwd")
    lines = out["stdout"].splitlines()
    assert lines[0] == "hello from the agent" and lines[1] != "0", out


def test_create_accepts_every_option_and_applies_model_and_prompt(api: Api, agent: str, fake) -> None:
    options = {
        "model": "claude-create-option",
        "systemPrompt": "You are configured per session.",
        "extraEnv": {"E2E_FLAG": "on"},
        "permissionMode": "bypassPermissions",
        "allowedTools": ["Bash", "Read"],
        "disallowedTools": ["WebFetch"],
        "betas": ["context-1m-2025-08-07"],
        "subagents": {"helper": {"description": "helps", "prompt": "You help."}},
        "initialAgent": "helper",
        "mcpServers": {"remote": {"url": "http://127.0.0.1:9/mcp"}},
    }
    session = api.create_session(agent, **options)
    assert api.exec(session["id"], "echo $E2E_FLAG")["stdout"] == "on\n"
    fake.script([Reply.text("configured")])
    stream = api.turn(session["id"], "hi")
    assert stream.events[-1] == "done"
    request = fake.message_requests[-1].body
    assert request["model"] == "claude-create-option"
    assert "You are configured per session." in str(request["system"])


def test_create_unknown_agent_is_404(api: Api) -> None:
    assert_error(api.post("/api/sessions", {"agent": "x"}), 404, 'Agent "x" not found')


def test_create_without_agent_is_400(api: Api) -> None:
    assert_error(api.post("/api/sessions", {}), 400)
    assert_error(api.post("/api/sessions", {"agent": ""}), 400)


def test_create_with_unknown_credential_is_400(api: Api, agent: str) -> None:
    r = api.post("/api/sessions", {"agent": agent, "credentialId": ZERO})
    assert_error(r, 400, "Invalid or inaccessible credential")
    assert not [s for s in api.get("/api/sessions", params={"agent": agent}).json()["sessions"]]


def test_session_with_credential_calls_the_model_with_that_key(api: Api, agent: str, fake) -> None:
    r = api.post("/api/credentials", {"type": "anthropic", "key": "sk-ant-from-credential", "label": "e2e"})
    assert r.status_code == 201, r.text
    session = api.create_session(agent, credentialId=r.json()["credential"]["id"])
    # The key never enters the sandbox: the proxy adds it.
    env = api.exec(session["id"], "env")["stdout"]
    assert "sk-ant-from-credential" not in env
    fake.script([Reply.text("keyed")])
    api.turn(session["id"], "hi")
    assert fake.message_requests[-1].headers.get("x-api-key") == "sk-ant-from-credential"


def test_other_tenants_session_is_404(api: Api, other_api: Api, session: dict) -> None:
    sid = session["id"]
    assert_error(other_api.get(f"/api/sessions/{sid}"), 404, "Session not found")
    assert_error(other_api.post(f"/api/sessions/{sid}/exec", {"command": "true"}), 404)
    assert_error(other_api.post(f"/api/sessions/{sid}/messages", {"content": "hi"}), 404)
    assert_error(other_api.post(f"/api/sessions/{sid}/pause"), 404)
    assert_error(other_api.delete(f"/api/sessions/{sid}"), 404)
    assert_error(other_api.get(f"/api/sessions/{sid}/files"), 404)
    assert_error(other_api.get(f"/api/sessions/{sid}/stream"), 404)
    assert_error(other_api.post(f"/api/sessions/{sid}/interrupt"), 404)
    assert_error(other_api.post(f"/api/sessions/{sid}/fork"), 404)
    assert_error(other_api.get(f"/api/sessions/{sid}/workspace"), 404)
    assert_error(other_api.post(f"/api/sessions/{sid}/attachments", {"filename": "a", "content": "YQ=="}), 404)
    assert_error(other_api.patch(f"/api/sessions/{sid}/config", {"model": "x"}), 404)
    assert sid not in {s["id"] for s in other_api.get("/api/sessions").json()["sessions"]}
    # ...and the other tenant cannot use this tenant's agent either.
    assert_error(other_api.post("/api/sessions", {"agent": session["agentName"]}), 404)
    assert api.session(sid)["status"] == "active"


def test_list_filters_by_agent_status_and_limit(api: Api, agent: str) -> None:
    first = api.create_session(agent)
    second = api.create_session(agent)
    api.lifecycle(first["id"], "pause")
    listed = api.get("/api/sessions", params={"agent": agent}).json()["sessions"]
    assert [s["id"] for s in listed] == [second["id"], first["id"]]  # newest first
    paused = api.get("/api/sessions", params={"agent": agent, "status": "paused"}).json()["sessions"]
    assert [s["id"] for s in paused] == [first["id"]]
    limited = api.get("/api/sessions", params={"agent": agent, "limit": 1}).json()["sessions"]
    assert [s["id"] for s in limited] == [second["id"]]
    assert_error(api.get("/api/sessions", params={"status": "sleeping"}), 400)
    assert_error(api.get("/api/sessions", params={"limit": 0}), 400)


def test_get_returns_the_session_and_unknown_is_404(api: Api, session: dict) -> None:
    r = api.get(f"/api/sessions/{session['id']}")
    assert r.status_code == 200
    assert r.json()["session"]["id"] == session["id"]
    assert_error(api.get(f"/api/sessions/{ZERO}"), 404, "Session not found")


@pytest.mark.parametrize("method,suffix", [
    ("GET", ""), ("DELETE", ""), ("POST", "/resume"), ("POST", "/pause"), ("GET", "/messages"),
    ("POST", "/messages"), ("GET", "/files"), ("POST", "/exec"), ("GET", "/events"),
])
def test_non_uuid_session_id_is_400(api: Api, method: str, suffix: str) -> None:
    r = api.http.request(method, f"/api/sessions/not-a-uuid{suffix}",
                         json={"content": "x", "command": "true"} if method == "POST" else None)
    assert_error(r, 400)


def test_patch_config_merges_and_applies_to_the_next_turn(api: Api, session: dict, fake) -> None:
    sid = session["id"]
    r = api.patch(f"/api/sessions/{sid}/config", {"model": "claude-patched", "allowedTools": ["Read"]})
    assert r.status_code == 200, r.text
    assert r.json()["session"]["id"] == sid
    assert r.json()["session"]["model"] == "claude-patched"
    assert_error(api.patch(f"/api/sessions/{sid}/config", {"allowedTools": "Read"}), 400)
    fake.script([Reply.text("patched")])
    api.turn(sid, "hi")
    assert fake.message_requests[-1].body["model"] == "claude-patched"
    lifecycle = [e for e in api.events(sid, type="lifecycle")]
    assert any('"config_updated"' in e["data"] for e in lifecycle)
