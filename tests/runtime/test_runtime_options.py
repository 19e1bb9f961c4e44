"""Query options honoured end to end: partial messages, stops, structured output, thinking,
usage and cost, API errors, model/system/betas/effort on the wire."""

from __future__ import annotations

import pytest

from ash.llm_proxy.pricing import cost_usd
from tests.fakes.anthropic_server import (
    ErrorReply,
    FakeAnthropic,
    Reply,
    structured_output,
    text,
    thinking,
    tool_use,
    usage,
)
from tests.runtime.conftest import messages, result_of, run_query

# Each test starts the runtime as a real subprocess (about 1.5 s of imports alone).
pytestmark = pytest.mark.slow


async def test_partial_messages_stream_events_without_ping(start_runtime,
                                                           fake_anthropic: FakeAnthropic) -> None:
    fake_anthropic.script([Reply.text("abcdefghij", chunk=4)])
    client = await start_runtime()
    events = await run_query(client, "x", {"includePartialMessages": True})
    msgs = messages(events)
    stream = [m["event"] for m in msgs if m["type"] == "stream_event"]
    types = [e["type"] for e in stream]
    assert types == ["message_start", "content_block_start", "content_block_delta",
                     "content_block_delta", "content_block_delta", "content_block_stop",
                     "message_delta", "message_stop"]
    assert [e["delta"]["text"] for e in stream if e["type"] == "content_block_delta"] == \
        ["abcd", "efgh", "ij"]
    assert stream[1] == {"type": "content_block_start", "index": 0,
                         "content_block": {"type": "text", "text": ""}}
    assert stream[5] == {"type": "content_block_stop", "index": 0}
    # The complete assistant message comes after the last delta, before content_block_stop.
    order = [m["type"] if m["type"] != "stream_event" else m["event"]["type"] for m in msgs]
    assert order.index("assistant") == order.index("content_block_stop") - 1
    assert all(m["api_message_id"].startswith("msg_fake") for m in msgs
               if m["type"] == "stream_event")


async def test_max_turns_runs_the_tool_then_stops(start_runtime, fake_anthropic: FakeAnthropic,
                                                  workspace) -> None:
    fake_anthropic.script([Reply.tool("Bash", {"command": "touch ran.txt"})])
    client = await start_runtime()
    res = result_of(await run_query(client, "x", {"maxTurns": 1}))
    assert (workspace / "ran.txt").exists()
    assert res["subtype"] == "error_max_turns" and res["is_error"] is True
    assert res["num_turns"] == 2 and res["terminal_reason"] == "max_turns"
    assert res["errors"] == ["Reached maximum number of turns (1)"] and "result" not in res
    assert len(fake_anthropic.message_requests) == 1


async def test_max_budget_stops_before_the_tool(start_runtime, fake_anthropic: FakeAnthropic,
                                                workspace) -> None:
    fake_anthropic.script([Reply.tool("Bash", {"command": "touch ran.txt"},
                                      usage=usage(1000, 100))])
    client = await start_runtime()
    res = result_of(await run_query(client, "x", {"maxBudgetUsd": 0.0001}))
    assert not (workspace / "ran.txt").exists()
    assert res["subtype"] == "error_max_budget_usd" and res["is_error"] is True
    assert res["errors"] == ["Reached maximum budget ($0.0001)"]
    assert res["terminal_reason"] == "budget_exhausted"
    assert res["total_cost_usd"] == pytest.approx(0.0045)


async def test_structured_output_ends_the_turn(start_runtime,
                                               fake_anthropic: FakeAnthropic) -> None:
    schema = {"type": "object", "properties": {"answer": {"type": "integer"}},
              "required": ["answer"]}
    fake_anthropic.script([Reply([structured_output({"answer": "no"}, "toolu_bad")]),
                           Reply([structured_output({"answer": 42}, "toolu_ok")])])
    client = await start_runtime()
    events = await run_query(client, "x", {"outputFormat": {"type": "json_schema",
                                                            "schema": schema}})
    res = result_of(events)
    assert res["subtype"] == "success" and res["structured_output"] == {"answer": 42}
    assert res["result"] == '{"answer": 42}'
    first = fake_anthropic.message_requests[0].body
    so = [t for t in first["tools"] if t["name"] == "StructuredOutput"]
    assert so and so[0]["input_schema"] == schema
    # The invalid attempt went back to the model as an error; no third call after success.
    retry = fake_anthropic.message_requests[1].body["messages"][-1]["content"][0]
    assert retry["is_error"] is True and "schema" in retry["content"]
    assert len(fake_anthropic.message_requests) == 2


async def test_thinking_signature_round_trips(start_runtime,
                                              fake_anthropic: FakeAnthropic) -> None:
    fake_anthropic.script([
        Reply([thinking("Plan: run ls.", "sig-123"), tool_use("Bash", {"command": "true"})]),
        Reply.text("done"),
    ])
    client = await start_runtime()
    events = await run_query(client, "x", {"thinking": {"type": "enabled",
                                                        "budgetTokens": 2048}})
    blocks = [m["message"]["content"][0] for m in messages(events, "assistant")]
    assert blocks[0] == {"type": "thinking", "thinking": "Plan: run ls.", "signature": "sig-123"}
    first, second = (r.body for r in fake_anthropic.message_requests)
    assert first["thinking"] == {"type": "enabled", "budget_tokens": 2048}
    assert first["max_tokens"] > 2048
    assert second["messages"][1]["content"][0] == blocks[0]


async def test_model_effort_betas_and_system_override(start_runtime, agent_dir,
                                                      fake_anthropic: FakeAnthropic) -> None:
    (agent_dir / "CLAUDE.md").write_text("agent prompt")
    fake_anthropic.script([Reply.text("ok")])
    client = await start_runtime()
    await run_query(client, "x", {"model": "claude-opus-4-6", "effort": "low",
                                  "betas": ["context-1m-2025-08-07"], "systemPrompt": "override"})
    req = fake_anthropic.message_requests[0]
    assert req.body["model"] == "claude-opus-4-6" and req.body["system"] == "override"
    assert req.body["output_config"] == {"effort": "low"}
    assert req.headers["anthropic-beta"] == "context-1m-2025-08-07"


async def test_usage_and_cost_are_exact_with_cache_fields(start_runtime,
                                                          fake_anthropic: FakeAnthropic) -> None:
    u1 = usage(1000, 200, cache_creation=3000, cache_read=5000, cache_creation_1h=100)
    u2 = usage(50, 20, cache_read=9000)
    fake_anthropic.script([Reply.tool("Bash", {"command": "true"}, usage=u1), Reply.text("k",
                                                                                        usage=u2)])
    client = await start_runtime()
    res = result_of(await run_query(client, "x", {"model": "claude-haiku-4-5"}))
    expected = cost_usd("claude-haiku-4-5", u1) + cost_usd("claude-haiku-4-5", u2)
    # 1050*1 + 220*5 + 3000*1.25 + 100*2 + 14000*0.1 per Mtok
    assert expected == pytest.approx(0.0075)
    assert res["total_cost_usd"] == pytest.approx(expected, abs=1e-12)
    assert res["usage"]["input_tokens"] == 1050 and res["usage"]["output_tokens"] == 220
    assert res["usage"]["cache_read_input_tokens"] == 14000
    assert res["usage"]["cache_creation_input_tokens"] == 3100
    assert res["usage"]["cache_creation"] == {"ephemeral_1h_input_tokens": 100,
                                              "ephemeral_5m_input_tokens": 3000}
    mu = res["modelUsage"]["claude-haiku-4-5"]
    assert mu["inputTokens"] == 1050 and mu["costUSD"] == pytest.approx(expected)


@pytest.mark.parametrize(("status", "kind"), [(429, "rate_limit"), (529, "server_error"),
                                              (500, "server_error")])
async def test_api_errors_end_in_an_error_result(start_runtime, fake_anthropic: FakeAnthropic,
                                                 status: int, kind: str) -> None:
    fake_anthropic.script([ErrorReply(status, "try later")])
    client = await start_runtime()
    events = await run_query(client, "x")
    asst = messages(events, "assistant")[0]
    assert asst["message"]["model"] == "<synthetic>" and asst["error"] == kind
    assert asst["message"]["content"] == [{"type": "text",
                                           "text": f"API Error: {status} try later"}]
    res = result_of(events)
    assert res["subtype"] == "success" and res["is_error"] is True
    assert res["terminal_reason"] == "api_error" and res["api_error_status"] == status
    assert res["result"] == f"API Error: {status} try later"
    assert len(fake_anthropic.message_requests) == 1  # retries are 0 in tests
    # The runtime is still usable afterwards.
    fake_anthropic.script([Reply.text("back")])
    assert result_of(await run_query(client, "again"))["result"] == "back"


async def test_mid_stream_error_is_an_api_error(start_runtime,
                                                fake_anthropic: FakeAnthropic) -> None:
    fake_anthropic.script([Reply([text("partial"), text("more")],
                                 stream_error={"type": "overloaded_error",
                                               "message": "Overloaded"})])
    client = await start_runtime()
    res = result_of(await run_query(client, "x"))
    assert res["is_error"] is True and res["terminal_reason"] == "api_error"
    assert "Overloaded" in res["result"]
