"""Streamed turns against the scripted fake model: frames, options, concurrency, re-attach, history."""

from __future__ import annotations

import json
import threading
import time
import uuid

import httpx
import pytest

from tests.e2e.conftest import AshSystem
from tests.e2e.support import (
    Api,
    SseStream,
    assert_error,
    iter_sse_blocks,
    read_db,
    reset_script,
    wait_until,
)
from tests.fakes.anthropic_server import ErrorReply, Reply, usage

pytestmark = pytest.mark.slow


def _turn_finished(api: Api, sid: str) -> bool:
    return any(e["type"] == "turn_complete" for e in api.events(sid, type="turn_complete"))


def _json(message: dict) -> dict:
    return json.loads(message["content"])


def test_text_turn_streams_session_start_messages_done_and_closes(api: Api, session: dict, fake) -> None:
    fake.script([Reply.text("Hello from the fake model")])
    stream = api.turn(session["id"], "say hello")
    assert stream.events[0] == "session_start"
    assert stream.frames[0].data["sessionId"] == session["id"] and stream.frames[0].data["version"]
    assert stream.events[-1] == "done" and stream.frames[-1].data == {"sessionId": session["id"]}
    assert "error" not in stream.events
    kinds = [m["type"] for m in stream.messages()]
    assert kinds == ["system", "assistant", "result"], kinds
    assistant = stream.messages("assistant")[0]
    assert assistant["message"]["content"] == [{"type": "text", "text": "Hello from the fake model"}]
    # turn_complete comes right before the result message.
    i = stream.events.index("turn_complete")
    assert stream.frames[i + 1].event == "message" and stream.frames[i + 1].data["type"] == "result"
    assert stream.frames[i].data == {"numTurns": 1, "result": "Hello from the fake model"}
    assert fake.message_requests[-1].body["messages"][-1] == {"role": "user", "content": "say hello"}


def test_tool_loop_runs_bash_in_the_sandbox_and_streams_in_order(api: Api, session: dict, fake) -> None:
    fake.script([
        Reply.tool("Bash", {"command": "echo made-by-tool > tool.txt && cat tool.txt"}, before="I'll run it."),
        Reply.text("The file is written."),
    ])
    stream = api.turn(session["id"], "write a file")
    names = stream.events
    assert names[0] == "session_start" and names[-1] == "done"
    order = [n for n in names if n in ("tool_use", "tool_result", "turn_complete", "done")]
    assert order == ["tool_use", "tool_result", "turn_complete", "done"]
    assert stream.of("tool_use")[0]["name"] == "Bash"
    result = stream.of("tool_result")[0]
    assert result["content"].strip() == "made-by-tool" and result["is_error"] is False
    assert result["tool_use_id"] == stream.of("tool_use")[0]["id"]
    # The tool really ran in the workspace; the second model call carried the tool result.
    assert api.exec(session["id"], "cat tool.txt")["stdout"] == "made-by-tool\n"
    second = fake.message_requests[-1].body["messages"]
    assert second[-1]["content"][0]["type"] == "tool_result"
    assert stream.messages("result")[0]["num_turns"] == 2


def test_include_partial_messages_streams_text_deltas(api: Api, session: dict, fake) -> None:
    fake.script([Reply.text("abcdefghijklmnopqrstuvwxyz", chunk=5)])
    stream = api.turn(session["id"], "spell", includePartialMessages=True)
    deltas = [d["delta"] for d in stream.of("text_delta")]
    assert "".join(deltas) == "abcdefghijklmnopqrstuvwxyz" and len(deltas) == 6
    partial = stream.messages("stream_event")
    assert partial and {"message_start", "content_block_delta", "message_stop"} <= {m["event"]["type"] for m in partial}
    # Each text_delta frame is followed by its raw stream_event message.
    first = stream.events.index("text_delta")
    assert stream.frames[first + 1].data["type"] == "stream_event"
    # Partials are not persisted.
    assert all(_json(m)["type"] != "stream_event" for m in api.messages(session["id"], limit=1000))


def test_per_message_model_reaches_the_model_api(api: Api, session: dict, fake) -> None:
    fake.script([Reply.text("ok")])
    api.turn(session["id"], "hi", model="claude-per-message")
    assert fake.message_requests[-1].body["model"] == "claude-per-message"


def test_max_turns_stops_the_tool_loop(api: Api, session: dict, fake) -> None:
    fake.script([Reply.tool("Bash", {"command": "true"}), Reply.tool("Bash", {"command": "true"}), Reply.text("never")])
    before = len(fake.message_requests)
    stream = api.turn(session["id"], "loop", maxTurns=1)
    assert stream.events[-1] == "done"
    result = stream.messages("result")[0]
    assert result["subtype"] == "error_max_turns", result
    assert len(fake.message_requests) - before == 1
    reset_script(fake)


def test_second_concurrent_turn_is_409_while_the_first_runs(api: Api, session: dict, fake) -> None:
    sid = session["id"]
    fake.script([Reply.text("slow reply", delay=0.3)])
    with api.http.stream("POST", f"/api/sessions/{sid}/messages", json={"content": "slow"}) as first:
        blocks = iter_sse_blocks(first)
        assert next(blocks).startswith("event: session_start")
        assert_error(api.post(f"/api/sessions/{sid}/messages", {"content": "again"}), 409)
        rest = SseStream.parse("\n\n".join(blocks) + "\n\n")
    assert rest.events[-1] == "done"
    fake.script([Reply.text("after")])
    assert api.turn(sid, "now").events[-1] == "done"


def test_client_disconnect_loses_nothing_and_stream_replays_with_ids(api: Api, session: dict, fake) -> None:
    sid = session["id"]
    fake.script([Reply.text("finished without a listener", delay=0.1)])
    with api.http.stream("POST", f"/api/sessions/{sid}/messages", json={"content": "go"}) as r:
        assert next(iter_sse_blocks(r)).startswith("event: session_start")
    # Disconnected: the turn still completes and is persisted.
    wait_until(lambda: api.session(sid) and _turn_finished(api, sid), timeout=30, what="turn to finish")
    texts = [_json(m) for m in api.messages(sid) if m["role"] == "assistant"]
    assert any(m.get("result") == "finished without a listener" for m in texts)
    with api.http.stream("GET", f"/api/sessions/{sid}/stream", params={"after": 0}) as r:
        assert r.status_code == 200
        replay = SseStream.parse(b"".join(r.iter_bytes()).decode())
    assert replay.events[0] == "session_start" and replay.events[-1] == "done"
    ids = [f.id for f in replay.frames]
    assert ids == list(range(1, len(ids) + 1))
    assert replay.messages("result")[0]["result"] == "finished without a listener"
    # Replaying after a given frame id gives only the rest.
    with api.http.stream("GET", f"/api/sessions/{sid}/stream", params={"after": ids[-2]}) as r:
        tail = SseStream.parse(b"".join(r.iter_bytes()).decode())
    assert [f.id for f in tail.frames] == [ids[-1]] and tail.events == ["done"]


def test_interrupt_stops_a_running_turn(ash: AshSystem, api: Api, session: dict, fake) -> None:
    sid = session["id"]
    fake.script([Reply.text("x" * 400, delay=0.2, chunk=4)])  # about 20 s if left alone
    with api.http.stream("POST", f"/api/sessions/{sid}/messages", json={"content": "long"},
                         timeout=httpx.Timeout(60, read=30)) as r:
        blocks = iter_sse_blocks(r)
        assert next(blocks).startswith("event: session_start")
        result: dict = {}
        t = threading.Thread(target=lambda: result.update(r=api.post(f"/api/sessions/{sid}/interrupt")))
        t.start()
        rest = SseStream.parse("\n\n".join(blocks) + "\n\n")
        t.join(30)
    assert result["r"].status_code == 200 and result["r"].json() == {"interrupted": True}
    assert rest.events[-1] == "done"
    assert not any(m.get("subtype") == "success" for m in rest.messages("result"))
    turns = read_db(ash.data_dir, "SELECT status, finished_at FROM sessions_app_turn WHERE session_id = ?",
                    uuid.UUID(sid).hex)
    assert [t[0] for t in turns] == ["interrupted"] and turns[0][1] is not None
    # The session is usable again right away.
    reset_script(fake)
    fake.script([Reply.text("back")])
    assert api.turn(sid, "again").messages("result")[0]["result"] == "back"
    assert api.post(f"/api/sessions/{sid}/interrupt").json() == {"interrupted": False}


def test_keepalive_comments_fill_a_long_silence(api: Api, session: dict, fake) -> None:
    fake.script([Reply.text("late answer", delay=0.35)])  # ~3 s before the assistant message
    stream = api.turn(session["id"], "wait")
    assert stream.keepalives >= 1
    assert ": keepalive\n\n" in stream.raw
    assert stream.events[-1] == "done"


def test_messages_and_events_are_persisted_with_gapless_sequences(api: Api, agent: str, fake) -> None:
    sid = api.create_session(agent)["id"]
    fake.script([Reply.tool("Bash", {"command": "echo persisted"}, before="Running."), Reply.text("Done one."),
                 Reply.text("Done two.")])
    api.turn(sid, "first")
    api.turn(sid, [{"type": "text", "text": "second"}])
    messages = api.messages(sid)
    assert [m["sequence"] for m in messages] == list(range(1, len(messages) + 1))
    roles = [m["role"] for m in messages]
    assert roles[0] == "user" and set(roles) == {"user", "assistant"}
    contents = [_json(m) for m in messages]  # every content is a JSON string
    assert contents[0] == {"type": "user", "content": "first"}
    users = [c for c in contents if c["type"] == "user"]
    assert users[1]["content"] == [{"type": "text", "text": "second"}]
    assert [c["type"] for c in contents].count("result") == 2
    assert [m["sequence"] for m in api.messages(sid, after=2)] == list(range(3, len(messages) + 1))
    assert [m["sequence"] for m in api.messages(sid, after=1, limit=2)] == [2, 3]

    events = api.events(sid)
    assert [e["sequence"] for e in events] == list(range(1, len(events) + 1))
    types = {e["type"] for e in events}
    assert {"lifecycle", "text", "tool_start", "tool_result", "turn_complete"} <= types
    tool_start = json.loads(api.events(sid, type="tool_start")[0]["data"])
    assert tool_start["name"] == "Bash" and tool_start["input"] == {"command": "echo persisted"}
    tool_result = json.loads(api.events(sid, type="tool_result")[0]["data"])
    assert tool_result["content"].strip() == "persisted"
    assert json.loads(api.events(sid, type="lifecycle")[0]["data"])["action"] == "created"
    assert len(api.events(sid, type="turn_complete")) == 2
    assert [e["sequence"] for e in api.events(sid, after=3, limit=2)] == [4, 5]
    assert_error(api.get(f"/api/sessions/{sid}/events", params={"type": "bogus"}), 400)
    assert_error(api.get(f"/api/sessions/{sid}/messages", params={"limit": 0}), 400)


def test_usage_rows_sum_exactly_what_the_model_reported(api: Api, agent: str, fake) -> None:
    sid = api.create_session(agent)["id"]
    fake.script([
        Reply.tool("Bash", {"command": "true"}, usage=usage(input_tokens=120, output_tokens=30, cache_read=7)),
        Reply.text("counted", usage=usage(input_tokens=200, output_tokens=45, cache_creation=11)),
    ])
    api.turn(sid, "count")
    events = api.get("/api/usage", params={"sessionId": sid}).json()["events"]
    kinds = {e["eventType"] for e in events}
    assert {"input_tokens", "output_tokens", "message", "tool_call", "compute_seconds", "cost_usd"} <= kinds
    assert all(e["sessionId"] == sid and e["agentName"] == agent for e in events)
    stats = api.get("/api/usage/stats", params={"sessionId": sid}).json()["stats"]
    assert stats["totalInputTokens"] == 320 and stats["totalOutputTokens"] == 75
    assert stats["totalCacheReadTokens"] == 7 and stats["totalCacheCreationTokens"] == 11
    assert stats["totalToolCalls"] == 1 and stats["totalMessages"] == 1
    assert 0 < stats["totalComputeSeconds"] < 60 and stats["totalCostUsd"] > 0
    assert stats["totalCostUsd"] == pytest.approx(sum(e["value"] for e in events if e["eventType"] == "cost_usd"))


def test_turn_on_paused_or_ended_session_is_400(api: Api, agent: str) -> None:
    sid = api.create_session(agent)["id"]
    api.lifecycle(sid, "pause")
    assert_error(api.post(f"/api/sessions/{sid}/messages", {"content": "hi"}), 400, "Session is paused")
    assert api.delete(f"/api/sessions/{sid}").status_code == 200
    assert_error(api.post(f"/api/sessions/{sid}/messages", {"content": "hi"}), 400, "Session is ended")


def test_turn_request_validation(api: Api, session: dict) -> None:
    sid = session["id"]
    assert_error(api.post(f"/api/sessions/{sid}/messages", {}), 400)
    assert_error(api.post(f"/api/sessions/{sid}/messages", {"content": "x", "effort": "extreme"}), 400)
    assert_error(api.post(f"/api/sessions/{sid}/messages", {"content": "x", "maxTurns": 0}), 400)
    assert_error(api.post("/api/sessions/00000000-0000-4000-8000-000000000000/messages", {"content": "x"}), 404)


def test_reattach_to_a_running_turn_receives_the_rest_live(api: Api, session: dict, fake) -> None:
    sid = session["id"]
    fake.script([Reply.text("streamed to the second listener", delay=0.15)])
    with api.http.stream("POST", f"/api/sessions/{sid}/messages", json={"content": "go"}) as r:
        assert next(iter_sse_blocks(r)).startswith("event: session_start")
    assert api.session(sid)["status"] == "active"
    with api.http.stream("GET", f"/api/sessions/{sid}/stream", params={"after": 1}) as r:
        assert r.status_code == 200
        live = SseStream.parse(b"".join(r.iter_bytes()).decode())
    assert live.frames[0].id == 2 and live.events[-1] == "done"
    assert live.messages("result")[0]["result"] == "streamed to the second listener"


def test_turns_in_different_sessions_run_concurrently(api: Api, agent: str, fake) -> None:
    first, second = api.create_session(agent)["id"], api.create_session(agent)["id"]
    # 7 SSE events x 0.5 s: each reply takes >= 3.5 s, so two turns in series take >= 7 s.
    fake.script([Reply.text("one", delay=0.5), Reply.text("two", delay=0.5)])
    results: dict[str, SseStream] = {}
    threads = [threading.Thread(target=lambda s=s: results.update({s: api.turn(s, "parallel")})) for s in (first, second)]
    started = time.monotonic()
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    elapsed = time.monotonic() - started
    assert {results[s].messages("result")[0]["result"] for s in (first, second)} == {"one", "two"}
    assert all(results[s].frames[0].data["sessionId"] == s for s in (first, second))
    assert 3.5 <= elapsed < 6.5, elapsed  # not serialised behind one another


def test_model_api_error_ends_the_turn_with_an_error_frame_and_the_session_survives(api: Api, session: dict, fake) -> None:
    sid = session["id"]
    fake.script([ErrorReply(400, "fake says the request is invalid")])
    stream = api.turn(sid, "fail please")
    assert stream.events[-1] == "done"
    # Like Claude Code: the API error surfaces as an `error` frame or as an is_error result.
    results = stream.messages("result")
    assert stream.of("error") or (results and results[0]["is_error"] is True), stream.raw[-1500:]
    assert "fake says the request is invalid" in json.dumps(stream.of("error") + results + stream.messages("assistant"))
    assert api.session(sid)["status"] == "active"
    fake.script([Reply.text("recovered")])
    assert api.turn(sid, "again").messages("result")[0]["result"] == "recovered"


def test_interrupt_on_a_paused_session_is_400(api: Api, agent: str) -> None:
    sid = api.create_session(agent)["id"]
    api.lifecycle(sid, "pause")
    assert_error(api.post(f"/api/sessions/{sid}/interrupt"), 400, "Session is paused")
