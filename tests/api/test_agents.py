"""Agents: deploy/redeploy, folders per tenant, path deploys under ASH_AGENTS_ROOT, files, delete."""

from __future__ import annotations

import os
import uuid
from pathlib import Path

import pytest

from agents_app.models import Agent, AgentVersion
from queue_app.models import QueueItem
from sessions_app.models import Message, Session, SessionEvent, Turn
from sessions_app.services import session_event_record, session_message_record
from tests.conftest import assert_error, b64


@pytest.fixture
def agents_root(tmp_path: Path, settings) -> Path:
    root = tmp_path / "agents-root"
    root.mkdir()
    settings.ASH_AGENTS_ROOT = str(root)
    return root


def _read(api, name: str, path: str, **query) -> dict:
    response = api.get(f"/api/agents/{name}/files/{path}", query)
    assert response.status_code == 200, response.content
    return response.json()


# --- deploy ---------------------------------------------------------------------------------------


def test_deploy_creates_agent_201(api):
    response = api.post_json("/api/agents", {"name": "helper", "systemPrompt": "You help."})
    assert response.status_code == 201
    assert set(response.json()) == {"agent"}
    agent = response.json()["agent"]
    assert set(agent) == {"id", "name", "tenantId", "version", "path", "createdAt", "updatedAt"}
    assert (agent["name"], agent["version"], agent["tenantId"]) == ("helper", 1, api.tenant_id)
    assert uuid.UUID(agent["id"])
    assert _read(api, "helper", "CLAUDE.md")["content"] == "You help."


def test_redeploy_bumps_version_and_keeps_id(api, deploy):
    first = deploy("helper", systemPrompt="v1")
    second = deploy("helper", systemPrompt="v2")
    assert second["id"] == first["id"]
    assert second["version"] == 2
    assert second["path"] != first["path"]
    assert _read(api, "helper", "CLAUDE.md")["content"] == "v2"
    assert list(AgentVersion.objects.filter(agent_id=first["id"]).values_list("version", "source")) == [
        (2, "systemPrompt"),
        (1, "systemPrompt"),
    ]
    assert Agent.objects.count() == 1


def test_files_are_base64_and_claude_md_from_files_wins(api, deploy):
    deploy(
        "helper",
        systemPrompt="ignored",
        files=[
            {"path": "CLAUDE.md", "content": b64("# From files\n")},
            {"path": "notes/hello.txt", "content": b64("hi there")},
        ],
    )
    assert _read(api, "helper", "CLAUDE.md")["content"] == "# From files\n"
    assert _read(api, "helper", "notes/hello.txt") == {"path": "notes/hello.txt", "content": "hi there", "size": 8}


def test_system_prompt_becomes_claude_md_when_files_lack_it(api, deploy):
    deploy("helper", systemPrompt="Be brief.", files=[{"path": "data.txt", "content": b64("x")}])
    assert _read(api, "helper", "CLAUDE.md")["content"] == "Be brief."


def test_placeholder_claude_md_without_prompt_or_files(api, deploy):
    deploy("bare")
    assert _read(api, "bare", "CLAUDE.md")["content"] == "# bare\n"


def test_invalid_base64_is_400_naming_the_file(api):
    body = assert_error(
        api.post_json("/api/agents", {"name": "x", "files": [{"path": "a", "content": b64("ok")}, {"path": "b", "content": "!!notb64"}]}),
        400,
    )
    assert body["error"] == "files[1].content: not valid base64"
    assert not Agent.objects.exists()


@pytest.mark.parametrize("path", ["../escape.txt", "/etc/passwd", "a/../../b", "a\\b"])
def test_unsafe_file_paths_in_deploy_are_400(api, path):
    body = assert_error(api.post_json("/api/agents", {"name": "x", "files": [{"path": path, "content": b64("x")}]}), 400)
    assert body["error"].startswith("files[0].path: invalid file path")


def test_duplicate_file_path_is_400(api):
    files = [{"path": "a.txt", "content": b64("1")}, {"path": "./a.txt", "content": b64("2")}]
    assert_error(api.post_json("/api/agents", {"name": "x", "files": files}), 400, "files[1].path: duplicate path")


@pytest.mark.parametrize("name", ["bad name!", "", "a/b", "x" * 256, "dots.not.allowed"])
def test_invalid_names_are_400(api, name):
    body = assert_error(api.post_json("/api/agents", {"name": name}), 400)
    assert body["error"].startswith("name: ")


def test_name_of_255_allowed_characters_is_accepted(deploy):
    name = "A-z_9" * 51
    assert deploy(name)["name"] == name


def test_agent_folders_are_per_tenant(api, other_api, deploy):
    mine = deploy("same", systemPrompt="tenant a")
    theirs = deploy("same", client=other_api, systemPrompt="tenant b")
    assert mine["id"] != theirs["id"]
    assert mine["path"] != theirs["path"]
    assert _read(api, "same", "CLAUDE.md")["content"] == "tenant a"
    assert _read(other_api, "same", "CLAUDE.md")["content"] == "tenant b"
    # Deleting one tenant's agent leaves the other's files.
    assert api.delete("/api/agents/same").status_code == 200
    assert _read(other_api, "same", "CLAUDE.md")["content"] == "tenant b"
    assert Path(theirs["path"], "CLAUDE.md").is_file()


# --- deploy from a server path --------------------------------------------------------------------


def test_path_deploy_copies_folder_under_agents_root(api, agents_root):
    folder = agents_root / "researcher"
    (folder / ".claude").mkdir(parents=True)
    (folder / "CLAUDE.md").write_text("# Researcher\n")
    (folder / ".claude" / "settings.json").write_text("{}")
    response = api.post_json("/api/agents", {"name": "researcher", "path": "researcher"})
    assert response.status_code == 201, response.content
    files = sorted(f["path"] for f in api.get("/api/agents/researcher/files").json()["files"])
    assert files == [".claude/settings.json", "CLAUDE.md"]
    # A copy: later edits to the source do not change the deployed version.
    (folder / "CLAUDE.md").write_text("changed")
    assert _read(api, "researcher", "CLAUDE.md")["content"] == "# Researcher\n"


def test_path_deploy_accepts_absolute_path_inside_root(api, agents_root):
    (agents_root / "abs").mkdir()
    (agents_root / "abs" / "CLAUDE.md").write_text("abs")
    assert api.post_json("/api/agents", {"name": "abs", "path": str(agents_root / "abs")}).status_code == 201


def test_path_without_claude_md_is_400(api, agents_root):
    (agents_root / "empty").mkdir()
    body = assert_error(api.post_json("/api/agents", {"name": "e", "path": "empty"}), 400)
    assert body["error"] == "Agent directory must contain CLAUDE.md"


def test_path_outside_root_is_400(api, agents_root, tmp_path):
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "CLAUDE.md").write_text("x")
    (agents_root / "link").symlink_to(outside)
    for raw in (str(outside), "../outside", "link", "/etc"):
        body = assert_error(api.post_json("/api/agents", {"name": "o", "path": raw}), 400)
        assert body["error"] == "path: must be inside ASH_AGENTS_ROOT", raw
    assert not Agent.objects.exists()


def test_symlinks_inside_a_path_deploy_are_refused(api, agents_root, tmp_path):
    folder = agents_root / "linky"
    folder.mkdir()
    (folder / "CLAUDE.md").write_text("x")
    (tmp_path / "secret.txt").write_text("secret")
    os.symlink(tmp_path / "secret.txt", folder / "leak.txt")
    assert_error(api.post_json("/api/agents", {"name": "l", "path": "linky"}), 400, "symbolic links are not allowed")


def test_path_deploy_is_disabled_without_agents_root(api, settings):
    settings.ASH_AGENTS_ROOT = ""
    assert_error(api.post_json("/api/agents", {"name": "p", "path": "/tmp"}), 400, "ASH_AGENTS_ROOT is not set")


def test_path_with_files_is_400(api, agents_root):
    body = assert_error(api.post_json("/api/agents", {"name": "p", "path": "x", "systemPrompt": "y"}), 400)
    assert body["error"] == "path: give either path, or files/systemPrompt, not both"


# --- reads ----------------------------------------------------------------------------------------


def test_list_is_sorted_by_name(api, deploy):
    # Lower-case letters only: case and punctuation order depend on the database collation.
    for name in ("zeta", "gamma", "beta", "alpha"):
        deploy(name)
    names = [a["name"] for a in api.get("/api/agents").json()["agents"]]
    assert names == ["alpha", "beta", "gamma", "zeta"]


def test_get_agent_and_unknown_is_404(api, deploy):
    created = deploy("helper")
    assert api.get("/api/agents/helper").json() == {"agent": created}
    assert_error(api.get("/api/agents/nope"), 404, "Agent not found")


def test_files_list_has_path_size_and_modified_at(api, deploy):
    deploy("helper", files=[{"path": "CLAUDE.md", "content": b64("# hi\n")}, {"path": "a/b.txt", "content": b64("abc")}])
    files = api.get("/api/agents/helper/files").json()["files"]
    assert sorted((f["path"], f["size"]) for f in files) == [("CLAUDE.md", 5), ("a/b.txt", 3)]
    assert all(f["modifiedAt"] for f in files)


def test_file_read_json_is_default(api, deploy):
    deploy("helper", systemPrompt="# Hi\n")
    default = _read(api, "helper", "CLAUDE.md")
    assert default == {"path": "CLAUDE.md", "content": "# Hi\n", "size": 5}
    assert _read(api, "helper", "CLAUDE.md", format="json") == default


def test_file_read_raw_has_content_type_and_disposition(api, deploy):
    deploy("helper", files=[{"path": "CLAUDE.md", "content": b64("# Hi\n")}, {"path": "d/n.txt", "content": b64("text")}])
    response = api.get("/api/agents/helper/files/CLAUDE.md", {"format": "raw"})
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/markdown")
    assert response["Content-Disposition"].startswith('attachment; filename="CLAUDE.md"')
    assert b"".join(response.streaming_content) == b"# Hi\n"
    txt = api.get("/api/agents/helper/files/d/n.txt", {"format": "raw"})
    assert txt["Content-Type"].startswith("text/plain")
    assert b"".join(txt.streaming_content) == b"text"


def test_invalid_format_is_400(api, deploy):
    deploy("helper")
    assert_error(api.get("/api/agents/helper/files/CLAUDE.md", {"format": "xml"}), 400, "format: must be one of json, raw")


def test_json_read_over_one_megabyte_is_413(api, deploy):
    deploy("helper", files=[{"path": "big.txt", "content": b64(b"a" * ((1 << 20) + 1))}])
    assert_error(api.get("/api/agents/helper/files/big.txt"), 413, "use format=raw")
    raw = api.get("/api/agents/helper/files/big.txt", {"format": "raw"})
    assert raw.status_code == 200
    assert int(raw["Content-Length"]) == (1 << 20) + 1


def test_binary_file_in_json_is_400(api, deploy):
    deploy("helper", files=[{"path": "img.bin", "content": b64(b"\xff\xfe\x00")}])
    assert_error(api.get("/api/agents/helper/files/img.bin"), 400, "not UTF-8")


@pytest.mark.parametrize(
    "path",
    ["../../../etc/passwd", "%2e%2e/%2e%2e/etc/passwd", "..%2F..%2Fetc%2Fpasswd", "/etc/passwd", "a/../../x"],
)
def test_file_read_traversal_is_400(api, deploy, path):
    deploy("helper")
    body = assert_error(api.get(f"/api/agents/helper/files/{path}"), 400)
    assert body["error"].startswith("Invalid file path")


def test_unknown_file_is_404(api, deploy):
    deploy("helper")
    assert_error(api.get("/api/agents/helper/files/nope.txt"), 404)
    assert_error(api.get("/api/agents/helper/files/dir/nope.txt"), 404)


def test_file_read_of_unknown_agent_is_404(api):
    assert_error(api.get("/api/agents/ghost/files/CLAUDE.md"), 404, "Agent not found")


# --- delete ---------------------------------------------------------------------------------------


def test_delete_returns_ok_then_404(api, deploy, django_capture_on_commit_callbacks):
    created = deploy("helper")
    with django_capture_on_commit_callbacks(execute=True):
        response = api.delete("/api/agents/helper")
    assert response.status_code == 200
    assert response.json() == {"ok": True}
    assert_error(api.get("/api/agents/helper"), 404, "Agent not found")
    assert_error(api.delete("/api/agents/helper"), 404, "Agent not found")
    assert not Path(created["path"]).exists()
    assert not AgentVersion.objects.exists()


def test_delete_removes_sessions_messages_events_and_cancels_pending_queue(api, deploy):
    created = deploy("helper")
    agent = Agent.objects.get(pk=created["id"])
    sessions = [
        Session.objects.create(tenant_id=api.tenant_id, agent=agent, agent_name="helper", status=status)
        for status in (Session.Status.ACTIVE, Session.Status.PAUSED, Session.Status.ENDED)
    ]
    for session in sessions:
        session_message_record(session=session, role="user", content={"type": "user", "content": "hi"})
        session_event_record(session=session, type="text", data={"text": "hello"})
    pending = api.post_json("/api/queue", {"agentName": "helper", "prompt": "later"}).json()["item"]
    done = QueueItem.objects.create(tenant_id=api.tenant_id, agent_name="helper", prompt="x", status="completed")
    deploy("other")
    other_item = api.post_json("/api/queue", {"agentName": "other", "prompt": "keep"}).json()["item"]

    assert api.delete("/api/agents/helper").json() == {"ok": True}
    assert not Session.objects.filter(agent_name="helper").exists()
    assert not Message.objects.exists()
    assert not SessionEvent.objects.exists()
    cancelled = QueueItem.objects.get(pk=pending["id"])
    assert cancelled.status == "cancelled"
    assert cancelled.error == 'Agent "helper" was deleted'
    assert QueueItem.objects.get(pk=done.pk).status == "completed"
    assert QueueItem.objects.get(pk=other_item["id"]).status == "pending"


@pytest.mark.django_db(transaction=True)  # the deferred foreign keys are checked at a real commit
def test_delete_removes_sessions_with_the_turns_they_point_at(api, deploy):
    agent = Agent.objects.get(pk=deploy("helper")["id"])
    for running in (True, False):
        session = Session.objects.create(tenant_id=api.tenant_id, agent=agent, agent_name="helper",
                                         status=Session.Status.ACTIVE)
        turn = Turn.objects.create(tenant_id=api.tenant_id, session=session, prompt="hi")
        Session.objects.filter(pk=session.pk).update(active_turn=turn if running else None, last_turn=turn)
    assert api.delete("/api/agents/helper").json() == {"ok": True}
    assert not Session.objects.filter(agent_name="helper").exists()
    assert not Turn.objects.exists()


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_concurrent_deploys_of_one_name_keep_every_version_intact(make_client):
    import threading

    from django.db import connection

    client = make_client("racers")
    threads_count = 6
    start = threading.Barrier(threads_count)
    statuses: list[int] = []

    def deploy_one(n: int) -> None:
        try:
            start.wait(timeout=10)
            statuses.append(client.post_json("/api/agents", {"name": "raced", "systemPrompt": f"thread {n}"}).status_code)
        finally:
            connection.close()

    threads = [threading.Thread(target=deploy_one, args=(n,)) for n in range(threads_count)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert statuses == [201] * threads_count
    agent = Agent.objects.get(tenant_id="racers", name="raced")
    versions = list(AgentVersion.objects.filter(agent=agent).order_by("version"))
    assert [v.version for v in versions] == list(range(1, threads_count + 1))
    assert agent.version == threads_count
    # Each version's folder holds the prompt it was deployed with: none was overwritten.
    prompts = [Path(v.path, "CLAUDE.md").read_text() for v in versions]
    assert sorted(prompts) == sorted(f"thread {n}" for n in range(threads_count))
    assert len({v.path for v in versions}) == threads_count


def test_failed_deploy_leaves_no_folder_behind(api, deploy, monkeypatch, caplog):
    first = deploy("helper")
    base = Path(first["path"]).parent
    before = sorted(base.iterdir())  # earlier tests' folders may share this tenant/name

    def fail(**kwargs):
        raise RuntimeError("database went away")

    monkeypatch.setattr("agents_app.services.AgentVersion.objects.create", fail)
    assert_error(api.post_json("/api/agents", {"name": "helper", "systemPrompt": "v2"}), 500)
    assert sorted(base.iterdir()) == before
    assert api.get("/api/agents/helper").json()["agent"]["version"] == 1
