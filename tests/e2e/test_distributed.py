"""The distributed topology: PostgreSQL, Redis, a web process and a separate runner process."""

from __future__ import annotations

import json

import pytest

from tests.e2e.conftest import AshSystem
from tests.e2e.support import Api, SseStream, assert_error, iter_sse_blocks, reset_script
from tests.fakes.anthropic_server import Reply

pytestmark = [pytest.mark.slow, pytest.mark.postgres]


@pytest.fixture(scope="module")
def dapi(distributed: AshSystem) -> Api:
    assert distributed.api is not None
    distributed.api.deploy("dist-agent", files={"CLAUDE.md": "# Distributed agent\n"})
    return distributed.api


@pytest.fixture
def dsession(dapi: Api, fake) -> dict:
    reset_script(fake)
    return dapi.create_session("dist-agent")


def test_web_hosts_no_runner_and_health_reports_the_remote_one(distributed: AshSystem, dapi: Api) -> None:
    health = distributed.health()
    assert health["remoteRunners"] == 1
    web_log = distributed.processes[0].log()
    assert "runner:" not in web_log  # `serve` with REDIS_URL starts no in-process runner


def test_create_places_the_session_on_runner_r1(dsession: dict, distributed: AshSystem) -> None:
    assert dsession["status"] == "active" and dsession["runnerId"] == "r1"
    assert distributed.health()["activeSessions"] >= 1


def test_streamed_turn_with_tool_use_crosses_processes(dapi: Api, dsession: dict, fake) -> None:
    sid = dsession["id"]
    fake.script([Reply.tool("Bash", {"command": "echo distributed > d.txt && cat d.txt"}), Reply.text("done remotely")])
    stream = dapi.turn(sid, "go")
    assert stream.events[0] == "session_start" and stream.events[-1] == "done"
    assert stream.of("tool_result")[0]["content"].strip() == "distributed"
    assert stream.messages("result")[0]["result"] == "done remotely"
    messages = dapi.messages(sid)
    assert [m["sequence"] for m in messages] == list(range(1, len(messages) + 1))
    assert json.loads(messages[0]["content"]) == {"type": "user", "content": "go"}
    stats = dapi.get("/api/usage/stats", params={"sessionId": sid}).json()["stats"]
    assert stats["totalInputTokens"] == 20 and stats["totalToolCalls"] == 1


def test_exec_and_files_reach_the_remote_sandbox(dapi: Api, dsession: dict) -> None:
    sid = dsession["id"]
    out = dapi.exec(sid, "echo out; echo err >&2; exit 4")
    assert (out["exitCode"], out["stdout"], out["stderr"]) == (4, "out\n", "err\n")
    listed = dapi.get(f"/api/sessions/{sid}/files").json()
    assert listed["source"] == "sandbox" and "CLAUDE.md" in {f["path"] for f in listed["files"]}
    assert dapi.get(f"/api/sessions/{sid}/files/CLAUDE.md").content == b"# Distributed agent\n"


def test_pause_and_warm_resume(dapi: Api, dsession: dict) -> None:
    sid = dsession["id"]
    assert dapi.lifecycle(sid, "pause")["status"] == "paused"
    assert_error(dapi.post(f"/api/sessions/{sid}/messages", {"content": "hi"}), 400, "Session is paused")
    resumed = dapi.lifecycle(sid, "resume")
    assert resumed["status"] == "active" and resumed["sandboxId"] == dsession["sandboxId"]


def test_stop_then_cold_resume_keeps_files_and_conversation(dapi: Api, dsession: dict, fake) -> None:
    sid = dsession["id"]
    fake.script([Reply.text("first")])
    dapi.turn(sid, "remember me")
    dapi.exec(sid, "echo kept > kept.txt")
    assert dapi.lifecycle(sid, "stop")["status"] == "stopped"
    snap = dapi.get(f"/api/sessions/{sid}/files").json()
    assert snap["source"] == "snapshot" and "kept.txt" in {f["path"] for f in snap["files"]}
    resumed = dapi.lifecycle(sid, "resume")
    assert resumed["status"] == "active" and resumed["sandboxId"] != dsession["sandboxId"]
    assert resumed["runnerId"] == "r1"
    assert dapi.exec(sid, "cat kept.txt")["stdout"] == "kept\n"
    fake.script([Reply.text("second")])
    dapi.turn(sid, "again")
    assert fake.message_requests[-1].body["messages"][0] == {"role": "user", "content": "remember me"}


def test_keepalive_disconnect_and_replay_over_redis(dapi: Api, dsession: dict, fake) -> None:
    sid = dsession["id"]
    fake.script([Reply.text("slow remote answer", delay=0.3)])  # ~2.5 s of silence
    stream = dapi.turn(sid, "wait")
    assert stream.keepalives >= 1 and stream.events[-1] == "done"
    fake.script([Reply.text("nobody listened", delay=0.1)])
    with dapi.http.stream("POST", f"/api/sessions/{sid}/messages", json={"content": "go"}) as r:
        assert next(iter_sse_blocks(r)).startswith("event: session_start")
    with dapi.http.stream("GET", f"/api/sessions/{sid}/stream", params={"after": 0}) as r:
        replay = SseStream.parse(b"".join(r.iter_bytes()).decode())
    assert [f.id for f in replay.frames] == list(range(1, len(replay.frames) + 1))
    assert replay.messages("result")[0]["result"] == "nobody listened" and replay.events[-1] == "done"
    # `done` is published after the turn is finalised, so the next turn is accepted right away.
    fake.script([Reply.text("next")])
    assert dapi.turn(sid, "next").events[-1] == "done"
    results = [json.loads(m["content"]).get("result") for m in dapi.messages(sid)]
    assert "nobody listened" in results


def test_a_turn_no_runner_picks_up_fails_and_frees_the_session(distributed: AshSystem, dapi: Api, dsession: dict, fake) -> None:
    """Runs last: it freezes runner r1 (SIGSTOP) so the dispatched turn sits in its queue."""
    import os
    import signal

    runner = next(p for p in distributed.processes if p.name == "runner-r1")
    os.kill(runner.proc.pid, signal.SIGSTOP)
    try:
        stream = dapi.turn(dsession["id"], "anyone there?")
    finally:
        os.kill(runner.proc.pid, signal.SIGCONT)
    assert stream.events[-2:] == ["error", "done"], stream.events
    assert "No runner picked up this turn" in stream.of("error")[0]["error"]
    # The session is free again and the thawed runner does not run the abandoned turn.
    fake.script([Reply.text("back")])
    again = dapi.turn(dsession["id"], "hello again")
    assert again.events[-1] == "done" and "error" not in again.events
    assert [m["message"]["content"][0]["text"] for m in again.messages("assistant")] == ["back"]
