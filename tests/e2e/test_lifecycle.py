"""Lifecycle over HTTP: pause/resume (warm), stop + cold resume, fork, delete, health counters."""

from __future__ import annotations

import json

import pytest

from tests.e2e.support import Api, assert_error
from tests.fakes.anthropic_server import Reply

pytestmark = pytest.mark.slow

ZERO = "00000000-0000-4000-8000-000000000000"


def _actions(api: Api, sid: str) -> list[dict]:
    return [json.loads(e["data"]) for e in api.events(sid, type="lifecycle")]


def _contents(api: Api, sid: str) -> list[dict]:
    return [json.loads(m["content"]) for m in api.messages(sid)]


def test_pause_then_warm_resume_keeps_the_sandbox(api: Api, session: dict) -> None:
    sid = session["id"]
    api.exec(sid, "echo warm > state.txt")
    paused = api.lifecycle(sid, "pause")
    assert paused["status"] == "paused"
    assert_error(api.post(f"/api/sessions/{sid}/pause"), 400, 'Cannot pause session with status "paused"')
    resumed = api.lifecycle(sid, "resume")
    assert resumed["status"] == "active" and resumed["sandboxId"] == session["sandboxId"]
    assert api.exec(sid, "cat state.txt")["stdout"] == "warm\n"
    # Resuming an active session answers it unchanged.
    assert api.lifecycle(sid, "resume")["sandboxId"] == session["sandboxId"]
    actions = _actions(api, sid)
    assert [a["action"] for a in actions][-2:] == ["paused", "resumed"]
    assert actions[-1]["path"] == "warm"


def test_stop_keeps_a_snapshot_and_cold_resume_restores_files_and_conversation(api: Api, session: dict, fake) -> None:
    sid = session["id"]
    fake.script([Reply.tool("Bash", {"command": "echo remembered > memo.txt"}), Reply.text("First turn done.")])
    api.turn(sid, "remember this: purple")
    stopped = api.lifecycle(sid, "stop")
    assert stopped["status"] == "stopped"
    assert_error(api.post(f"/api/sessions/{sid}/stop"), 400, 'Cannot stop session with status "stopped"')
    assert_error(api.post(f"/api/sessions/{sid}/exec", {"command": "true"}), 400)
    files = api.get(f"/api/sessions/{sid}/files").json()
    assert files["source"] == "snapshot"
    assert "memo.txt" in {f["path"] for f in files["files"]}
    snap = api.get(f"/api/sessions/{sid}/files/memo.txt", params={"format": "json"}).json()
    assert snap["content"] == "remembered\n" and snap["source"] == "snapshot"

    resumed = api.lifecycle(sid, "resume")
    assert resumed["status"] == "active" and resumed["sandboxId"] != session["sandboxId"]
    assert api.exec(sid, "cat memo.txt")["stdout"] == "remembered\n"
    assert _actions(api, sid)[-1]["path"] == "cold"
    fake.script([Reply.text("I remember purple.")])
    api.turn(sid, "what did I say?")
    history = fake.message_requests[-1].body["messages"]
    assert history[0] == {"role": "user", "content": "remember this: purple"}
    assert history[-1] == {"role": "user", "content": "what did I say?"}
    assert any(m["role"] == "assistant" for m in history[1:-1])


def test_fork_copies_messages_and_workspace_into_a_paused_session(api: Api, session: dict, fake) -> None:
    sid = session["id"]
    fake.script([Reply.text("parent reply")])
    api.turn(sid, "parent turn")
    api.exec(sid, "echo from-parent > parent.txt")
    r = api.post(f"/api/sessions/{sid}/fork")
    assert r.status_code == 201, r.text
    child = r.json()["session"]
    assert child["status"] == "paused" and child["parentSessionId"] == sid and child["id"] != sid
    parent_msgs = [(m["role"], m["content"], m["sequence"]) for m in api.messages(sid)]
    assert [(m["role"], m["content"], m["sequence"]) for m in api.messages(child["id"])] == parent_msgs
    assert _actions(api, child["id"])[-1] == {**_actions(api, child["id"])[-1], "action": "forked", "parentSessionId": sid}
    resumed = api.lifecycle(child["id"], "resume")
    assert resumed["status"] == "active"
    assert api.exec(child["id"], "cat parent.txt")["stdout"] == "from-parent\n"
    # Parent and child are independent from here on.
    api.exec(child["id"], "echo child-only > child.txt")
    assert api.exec(sid, "test -e child.txt")["exitCode"] != 0
    fake.script([Reply.text("child reply")])
    assert api.turn(child["id"], "child turn").messages("result")[0]["result"] == "child reply"
    assert fake.message_requests[-1].body["messages"][0] == {"role": "user", "content": "parent turn"}
    assert_error(api.post(f"/api/sessions/{ZERO}/fork"), 404)


def test_delete_ends_the_session_but_keeps_its_data(api: Api, session: dict, fake) -> None:
    sid = session["id"]
    fake.script([Reply.text("before the end")])
    api.turn(sid, "last words")
    api.exec(sid, "echo kept > kept.txt")
    r = api.delete(f"/api/sessions/{sid}")
    assert r.status_code == 200 and r.json()["session"]["status"] == "ended"
    again = api.delete(f"/api/sessions/{sid}")
    assert again.status_code == 200 and again.json()["session"]["status"] == "ended"
    assert_error(api.post(f"/api/sessions/{sid}/resume"), 410, "Session has ended")
    assert_error(api.post(f"/api/sessions/{sid}/pause"), 400, 'Cannot pause session with status "ended"')
    assert_error(api.post(f"/api/sessions/{sid}/stop"), 400, 'Cannot stop session with status "ended"')
    contents = _contents(api, sid)
    assert contents[0] == {"type": "user", "content": "last words"}
    assert any(c.get("result") == "before the end" for c in contents)
    files = api.get(f"/api/sessions/{sid}/files").json()
    assert files["source"] == "snapshot" and "kept.txt" in {f["path"] for f in files["files"]}
    assert _actions(api, sid)[-1]["action"] == "ended"
    assert_error(api.delete(f"/api/sessions/{ZERO}"), 404)
    # An ended session can still be forked.
    assert api.post(f"/api/sessions/{sid}/fork").status_code == 201


def test_health_counts_sessions_and_sandboxes(api: Api, ash, agent: str) -> None:
    before = ash.health()
    assert before["status"] == "ok" and before["remoteRunners"] == 0
    pool_keys = {"total", "cold", "warming", "warm", "waiting", "running", "maxCapacity", "resumeWarmHits",
                 "resumeColdHits", "preWarmHits"}
    assert pool_keys <= set(before["pool"])
    sid = api.create_session(agent)["id"]
    after = ash.health()
    assert after["activeSessions"] == before["activeSessions"] + 1
    assert after["activeSandboxes"] == before["activeSandboxes"] + 1
    assert after["pool"]["total"] == before["pool"]["total"] + 1
    api.lifecycle(sid, "pause")
    api.lifecycle(sid, "resume")
    assert ash.health()["pool"]["resumeWarmHits"] == before["pool"]["resumeWarmHits"] + 1
    api.lifecycle(sid, "stop")
    stopped = ash.health()
    assert stopped["activeSessions"] == before["activeSessions"]
    assert stopped["activeSandboxes"] == before["activeSandboxes"]
    api.lifecycle(sid, "resume")
    assert ash.health()["pool"]["resumeColdHits"] == before["pool"]["resumeColdHits"] + 1
    api.delete(f"/api/sessions/{sid}")
    assert ash.health()["activeSandboxes"] == before["activeSandboxes"]


def test_stop_and_fork_of_a_paused_session_keep_its_workspace(api: Api, session: dict) -> None:
    sid = session["id"]
    api.exec(sid, "echo paused-state > p.txt")
    api.lifecycle(sid, "pause")
    r = api.post(f"/api/sessions/{sid}/fork")
    assert r.status_code == 201, r.text
    child = r.json()["session"]["id"]
    assert api.lifecycle(sid, "stop")["status"] == "stopped"
    assert api.get(f"/api/sessions/{sid}/files/p.txt").content == b"paused-state\n"
    assert api.lifecycle(sid, "resume")["status"] == "active"
    assert api.exec(sid, "cat p.txt")["stdout"] == "paused-state\n"
    assert api.lifecycle(child, "resume")["status"] == "active"
    assert api.exec(child, "cat p.txt")["stdout"] == "paused-state\n"


def test_fork_of_an_ended_session_resumes_with_its_workspace(api: Api, session: dict) -> None:
    sid = session["id"]
    api.exec(sid, "echo final > final.txt")
    api.delete(f"/api/sessions/{sid}")
    child = api.post(f"/api/sessions/{sid}/fork").json()["session"]
    assert child["status"] == "paused" and child["parentSessionId"] == sid
    assert api.lifecycle(child["id"], "resume")["status"] == "active"
    assert api.exec(child["id"], "cat final.txt")["stdout"] == "final\n"
