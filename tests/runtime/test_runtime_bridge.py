"""The bridge process: strict frames, one query at a time, interrupt, shutdown, restart."""

from __future__ import annotations

import asyncio
import os
import signal
from pathlib import Path

import pytest

from ash.runtime import protocol as p
from ash.runtime.state import Conversation
from tests.fakes.anthropic_server import FakeAnthropic, Reply, tool_use
from tests.runtime.conftest import messages, result_of, run_query

# Each test starts the runtime as a real subprocess (about 1.5 s of imports alone).
pytestmark = pytest.mark.slow


async def _next_unrouted(client) -> p.Event:
    return await asyncio.wait_for(client.unrouted.get(), 10)


async def test_bad_frames_are_rejected_and_the_runtime_lives_on(
        start_runtime, fake_anthropic: FakeAnthropic) -> None:
    client = await start_runtime()
    bad = [b"not json\n", b'["a list"]\n', b'{"cmd":"launch","qid":"x1"}\n',
           b'{"cmd":"query","qid":"x2","prompt":"hi","extra":1}\n',
           b'{"cmd":"interrupt","qid":7}\n', b'{"ev":"ready","qid":""}\n',
           b'{"cmd":"permission_response","qid":"x3","request_id":"r","behavior":"maybe"}\n']
    for line in bad:
        await client.proc.write(line)
    errors = [await _next_unrouted(client) for _ in bad]
    assert all(isinstance(e, p.ErrorEv) and e.code == "bad_frame" for e in errors)
    assert [e.qid for e in errors] == ["", "", "x1", "x2", "", "", "x3"]
    assert "unknown cmd 'launch'" in errors[2].error
    assert "extra" in errors[3].error
    # 17 MiB without a newline, then the end of that frame, then a valid query.
    await client.proc.write(b"{" + b"x" * (17 << 20) + b"}\n")
    oversize = await _next_unrouted(client)
    assert isinstance(oversize, p.ErrorEv) and "exceeds" in oversize.error
    fake_anthropic.script([Reply.text("still here")])
    assert result_of(await run_query(client, "x"))["result"] == "still here"
    assert client.unrouted.empty()


async def test_bad_options_end_the_query(start_runtime) -> None:
    client = await start_runtime()
    events = await run_query(client, "x", {"maxTurns": "three"})
    assert isinstance(events[0], p.ErrorEv) and events[0].code == "bad_options"
    assert isinstance(events[1], p.DoneEv) and len(events) == 2


async def test_second_concurrent_query_is_refused(start_runtime,
                                                  fake_anthropic: FakeAnthropic) -> None:
    fake_anthropic.script([Reply.text("slow answer", delay=0.1)])
    client = await start_runtime()
    first = asyncio.create_task(run_query(client, "one"))
    await asyncio.sleep(0.3)
    second = await run_query(client, "two")
    assert [type(e) for e in second] == [p.ErrorEv, p.DoneEv]
    assert second[0].code == "busy" and second[0].qid == "q2"
    events = await first
    assert result_of(events)["result"] == "slow answer"
    assert all(e.qid == "q1" for e in events)


async def test_interrupt_kills_the_tool_and_keeps_history_valid(
        start_runtime, fake_anthropic: FakeAnthropic, workspace: Path) -> None:
    fake_anthropic.script([Reply([tool_use("Bash", {"command": "echo $$ > pid; sleep 30"},
                                           "toolu_s")])])
    client = await start_runtime()
    events = []
    async for ev in client.query("sleep"):
        events.append(ev)
        if isinstance(ev, p.MessageEv) and ev.data["type"] == "assistant":
            for _ in range(50):
                if (workspace / "pid").exists():
                    break
                await asyncio.sleep(0.1)
            await client.interrupt(ev.qid)
    res = result_of(events)
    assert res["subtype"] == "error_during_execution" and res["is_error"] is True
    assert res["terminal_reason"] == "interrupted"
    assert isinstance(events[-1], p.DoneEv)
    pid = int((workspace / "pid").read_text())
    await asyncio.sleep(0.2)
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)
    fake_anthropic.script([Reply.text("after")])
    assert result_of(await run_query(client, "next"))["result"] == "after"
    history = fake_anthropic.message_requests[-1].body["messages"]
    assert history[-1]["role"] == "user"
    assert history[-1]["content"] == [
        {"type": "tool_result", "tool_use_id": "toolu_s",
         "content": "[Request interrupted by user for tool use]", "is_error": True},
        {"type": "text", "text": "[Request interrupted by user]"},
        {"type": "text", "text": "next"}]


async def test_interrupt_while_streaming(start_runtime, fake_anthropic: FakeAnthropic) -> None:
    fake_anthropic.script([Reply.text("a very slow reply indeed", delay=0.2, chunk=2)])
    client = await start_runtime()
    events = []
    async for ev in client.query("x", {"includePartialMessages": True}):
        events.append(ev)
        if (isinstance(ev, p.MessageEv) and ev.data["type"] == "stream_event"
                and ev.data["event"]["type"] == "content_block_delta"):
            await client.interrupt("q1")
    res = result_of(events)
    assert res["terminal_reason"] == "interrupted"
    assert messages(events, "assistant") == []


async def test_interrupt_of_unknown_query_is_an_error(start_runtime) -> None:
    client = await start_runtime()
    await client.interrupt("nope")
    err = await _next_unrouted(client)
    assert isinstance(err, p.ErrorEv) and err.code == "unknown_query" and err.qid == "nope"


async def test_restart_keeps_the_conversation(start_runtime, fake_anthropic: FakeAnthropic,
                                              workspace: Path) -> None:
    fake_anthropic.script([Reply.tool("Bash", {"command": "mkdir sub && cd sub"}),
                           Reply.text("first answer"), Reply.text("second answer")])
    first = await start_runtime()
    events = await run_query(first, "first question")
    session = result_of(events)["session_id"]
    assert await first.shutdown() == 0
    state = Conversation.load(workspace / ".ash" / "conversation.json")
    assert state.session_id == session and len(state.messages) == 4
    second = await start_runtime()
    assert second.session_id == session  # announced in `ready`
    events = await run_query(second, "second question")
    assert result_of(events)["session_id"] == session
    sent = fake_anthropic.message_requests[-1].body["messages"]
    assert [m["role"] for m in sent] == ["user", "assistant", "user", "assistant", "user"]
    assert sent[0]["content"] == "first question" and sent[-1]["content"] == "second question"
    assert sent[3]["content"] == [{"type": "text", "text": "first answer"}]
    assert state.shell_cwd == str((workspace / "sub").resolve())


async def test_killed_runtime_resumes_and_client_sees_closure(
        start_runtime, fake_anthropic: FakeAnthropic) -> None:
    fake_anthropic.script([Reply.text("one", delay=0.5)])
    client = await start_runtime()
    from ash.runtime.client import RuntimeClosed

    async def consume():
        return await run_query(client, "x")
    task = asyncio.create_task(consume())
    await asyncio.sleep(0.5)
    os.killpg(client.proc.pid, signal.SIGKILL)
    with pytest.raises(RuntimeClosed):
        await task
    again = await start_runtime()
    fake_anthropic.script([Reply.text("two")])
    assert result_of(await run_query(again, "y"))["result"] == "two"
    sent = fake_anthropic.message_requests[-1].body["messages"]
    # The killed query's prompt was persisted; the new one is merged into that user turn.
    assert sent == [{"role": "user", "content": [{"type": "text", "text": "x"},
                                                 {"type": "text", "text": "y"}]}]


async def _timed_query(client, prompt: str) -> list[tuple[float, p.Event]]:
    loop = asyncio.get_running_loop()
    return [(loop.time(), ev) async for ev in client.query(prompt, {})]


async def test_the_final_answer_leaves_with_its_result_earlier_blocks_at_once(
        start_runtime, fake_anthropic: FakeAnthropic) -> None:
    """The last block of a final answer is written with the result (the host stores them in one
    transaction); blocks before it, and answers that call tools, are not held back."""
    delay = 0.15  # before every SSE event of the fake's answer
    fake_anthropic.script([
        Reply.tool("Bash", {"command": "true"}, before="first I run a tool", delay=delay),
        Reply([{"type": "text", "text": "block one"}, {"type": "text", "text": "block two"}], delay=delay),
    ])
    client = await start_runtime()
    events = await _timed_query(client, "go")
    stamped = [(t, e.data) for t, e in events if isinstance(e, p.MessageEv)]
    assistant = [(t, m) for t, m in stamped if m["type"] == "assistant"]
    blocks = [m["message"]["content"][0].get("text") or m["message"]["content"][0]["type"] for _, m in assistant]
    assert blocks == ["first I run a tool", "tool_use", "block one", "block two"]
    result_at = next(t for t, m in stamped if m["type"] == "result")
    # A block is sent when the next one starts, not when the answer ends...
    assert assistant[0][0] < assistant[1][0] - delay
    assert assistant[2][0] < assistant[3][0] - delay
    # ...the tool call before the tool runs (its result comes after)...
    tool_result_at = next(t for t, m in stamped if m["type"] == "user")
    assert assistant[1][0] <= tool_result_at
    # ...and the final block together with the result, though the stream went on for two
    # more events (message_delta, message_stop) after it.
    assert result_at - assistant[3][0] < delay / 2
