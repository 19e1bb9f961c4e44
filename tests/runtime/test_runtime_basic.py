"""A text turn and a Bash tool loop through the real runtime process."""

from __future__ import annotations

from pathlib import Path

import pytest

from ash.runtime import protocol as p
from tests.fakes.anthropic_server import FakeAnthropic, Reply, text, tool_use, usage
from tests.runtime.conftest import messages, run_query

# Each test starts the runtime as a real subprocess (about 1.5 s of imports alone).
pytestmark = pytest.mark.slow


async def test_text_turn_emits_init_assistant_result(start_runtime, fake_anthropic: FakeAnthropic,
                                                     workspace: Path, agent_dir: Path) -> None:
    (agent_dir / "CLAUDE.md").write_text("You are a terse agent.")
    fake_anthropic.script([Reply.text("Hello there.", usage=usage(200, 40))])
    client = await start_runtime()
    events = await run_query(client, "hi")
    assert isinstance(events[-1], p.DoneEv) and events[-1].qid == "q1"
    kinds = [m["type"] for m in messages(events)]
    assert kinds == ["system", "assistant", "result"]
    init, asst, res = messages(events)
    assert init["subtype"] == "init" and init["cwd"] == str(workspace)
    assert init["permissionMode"] == "bypassPermissions" and init["model"] == "claude-sonnet-4-6"
    assert "Task" in init["tools"] and "Bash" in init["tools"]
    assert asst["message"]["content"] == [{"type": "text", "text": "Hello there."}]
    assert asst["parent_tool_use_id"] is None and asst["message"]["stop_reason"] is None
    assert res["subtype"] == "success" and res["is_error"] is False
    assert res["result"] == "Hello there." and res["num_turns"] == 1
    assert res["total_cost_usd"] == 0.0012  # 200 in + 40 out at 3/15 per Mtok
    assert res["session_id"] == init["session_id"] == events[-1].sessionId
    req = fake_anthropic.message_requests[0]
    assert req.body["system"] == "You are a terse agent."
    assert req.body["messages"] == [{"role": "user", "content": "hi"}]
    assert req.body["stream"] is True
    assert req.headers["authorization"] == "Bearer ash-sandbox-no-credential"


async def test_bash_tool_loop_shapes(start_runtime, fake_anthropic: FakeAnthropic) -> None:
    fake_anthropic.script([
        Reply([text("Running."), tool_use("Bash", {"command": "echo hi", "description": "Say"},
                                          "toolu_1")]),
        Reply.text("It printed hi."),
    ])
    client = await start_runtime()
    events = await run_query(client, "run echo")
    msgs = messages(events)
    assert [m["type"] for m in msgs] == ["system", "assistant", "assistant", "user", "assistant",
                                         "result"]
    first, second = msgs[1], msgs[2]
    assert first["message"]["id"] == second["message"]["id"]
    assert second["message"]["content"][0] == {"type": "tool_use", "id": "toolu_1",
                                               "name": "Bash",
                                               "input": {"command": "echo hi",
                                                         "description": "Say"}}
    user = msgs[3]
    assert user["message"] == {"role": "user", "content": [
        {"type": "tool_result", "tool_use_id": "toolu_1", "content": "hi", "is_error": False}]}
    assert user["tool_use_result"] == {"stdout": "hi", "stderr": "", "interrupted": False,
                                       "isImage": False, "noOutputExpected": False}
    res = msgs[-1]
    assert res["num_turns"] == 2 and res["result"] == "It printed hi."
    assert res["usage"]["input_tokens"] == 20 and res["usage"]["output_tokens"] == 10
    second_req = fake_anthropic.message_requests[1].body["messages"]
    assert second_req[1]["content"][1]["type"] == "tool_use"
    assert second_req[2] == user["message"]


async def test_model_traffic_goes_over_the_proxy_socket(start_runtime, tmp_path: Path) -> None:
    sock = str(tmp_path / "llm.sock")
    with FakeAnthropic([Reply.text("via socket")], unix_socket=sock) as proxy:
        client = await start_runtime(ASH_MODEL_BASE_URL="", ASH_PROXY_SOCKET=sock)
        events = await run_query(client, "x")
        assert messages(events, "result")[0]["result"] == "via socket"
        req = proxy.message_requests[0]
        assert req.headers["authorization"] == "Bearer ash-sandbox-no-credential"
        assert req.headers["host"] == "ash-proxy"
