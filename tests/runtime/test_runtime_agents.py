"""Subagents and MCP tools through the real runtime process."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from tests.fakes.anthropic_server import FakeAnthropic, Reply, text, tool_use
from tests.runtime.conftest import messages, result_of, run_query

# Each test starts the runtime as a real subprocess (about 1.5 s of imports alone).
pytestmark = pytest.mark.slow

MCP_SERVER = Path(__file__).parent / "fixtures" / "mcp_demo_server.py"
SUBAGENTS = {"reviewer": {"description": "Reviews things", "prompt": "You review.",
                          "tools": ["Bash"], "model": "claude-haiku-4-5"}}


async def test_subagent_messages_carry_parent_tool_use_id(start_runtime,
                                                          fake_anthropic: FakeAnthropic) -> None:
    fake_anthropic.script([
        Reply([tool_use("Agent", {"description": "Review it", "prompt": "check x",
                                  "subagent_type": "reviewer"}, "toolu_agent")]),
        Reply([tool_use("Bash", {"command": "echo sub"}, "toolu_sub")]),
        Reply.text("Reviewed: fine."),
        Reply.text("The reviewer says fine."),
    ])
    client = await start_runtime()
    events = await run_query(client, "review", {"subagents": SUBAGENTS})
    msgs = messages(events)
    sub = [m for m in msgs if m.get("parent_tool_use_id") == "toolu_agent"]
    assert [m["type"] for m in sub] == ["user", "assistant", "user", "assistant"]
    assert sub[0]["message"]["content"] == [{"type": "text", "text": "check x"}]
    assert sub[2]["tool_use_result"]["stdout"] == "sub"
    agent_result = [m for m in msgs if m["type"] == "user" and m["parent_tool_use_id"] is None][0]
    block = agent_result["message"]["content"][0]
    assert block["tool_use_id"] == "toolu_agent" and block["content"] == "Reviewed: fine."
    assert agent_result["tool_use_result"]["status"] == "completed"
    subtypes = [m["subtype"] for m in msgs if m["type"] == "system"]
    assert subtypes == ["init", "task_started", "task_notification"]
    res = result_of(events)
    assert res["result"] == "The reviewer says fine." and res["num_turns"] == 2
    assert set(res["modelUsage"]) == {"claude-sonnet-4-6", "claude-haiku-4-5"}
    reqs = [r.body for r in fake_anthropic.message_requests]
    assert reqs[1]["model"] == "claude-haiku-4-5" and reqs[1]["system"] == "You review."
    assert [t["name"] for t in reqs[1]["tools"]] == ["Bash"]
    assert reqs[1]["messages"] == [{"role": "user", "content": "check x"}]
    assert "Agent" in [t["name"] for t in reqs[0]["tools"]]


async def test_initial_agent_drives_the_main_thread(start_runtime,
                                                    fake_anthropic: FakeAnthropic) -> None:
    fake_anthropic.script([Reply.text("hi")])
    client = await start_runtime()
    await run_query(client, "x", {"subagents": SUBAGENTS, "initialAgent": "reviewer"})
    body = fake_anthropic.message_requests[0].body
    assert body["model"] == "claude-haiku-4-5" and body["system"] == "You review."
    assert [t["name"] for t in body["tools"]] == ["Bash"]


async def test_mcp_stdio_tool_round_trips(start_runtime, fake_anthropic: FakeAnthropic) -> None:
    fake_anthropic.script([
        Reply([text("Adding."), tool_use("mcp__demo__add", {"a": 2, "b": 3}, "toolu_m")]),
        Reply.text("5"),
    ])
    client = await start_runtime()
    servers = {"demo": {"command": sys.executable, "args": [str(MCP_SERVER)]},
               "broken": {"command": "/nonexistent/mcp-server"}}
    events = await run_query(client, "add", {"mcpServers": servers})
    init = messages(events, "system")[0]
    assert {"name": "demo", "status": "connected"} in init["mcp_servers"]
    assert {"name": "broken", "status": "failed"} in init["mcp_servers"]
    assert "mcp__demo__add" in init["tools"] and "mcp__demo__fail" in init["tools"]
    tools = {t["name"]: t for t in fake_anthropic.message_requests[0].body["tools"]}
    assert tools["mcp__demo__add"]["input_schema"]["required"] == ["a", "b"]
    user = messages(events, "user")[0]
    block = user["message"]["content"][0]
    assert block["tool_use_id"] == "toolu_m" and block["is_error"] is False
    assert json.loads(block["content"]) == 5 or block["content"] == "5"
    assert result_of(events)["result"] == "5"


async def test_agent_mcp_json_is_loaded(start_runtime, agent_dir: Path,
                                        fake_anthropic: FakeAnthropic) -> None:
    (agent_dir / ".mcp.json").write_text(json.dumps({"mcpServers": {
        "demo": {"command": sys.executable, "args": [str(MCP_SERVER)]}}}))
    fake_anthropic.script([Reply([tool_use("mcp__demo__fail", {"reason": "boom"}, "toolu_f")]),
                           Reply.text("failed as expected")])
    client = await start_runtime()
    events = await run_query(client, "x")
    block = messages(events, "user")[0]["message"]["content"][0]
    assert block["is_error"] is True and "fail" in block["content"]
