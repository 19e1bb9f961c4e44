"""The optional Claude Code CLI engine (only where claude_agent_sdk is installed)."""

from __future__ import annotations

import pytest

from tests.fakes.anthropic_server import FakeAnthropic, Reply, tool_use
from tests.runtime.conftest import messages, result_of, run_query

pytest.importorskip("claude_agent_sdk")


@pytest.mark.slow
async def test_cli_engine_relays_sdk_messages(start_runtime, fake_anthropic: FakeAnthropic,
                                              tmp_path) -> None:
    fake_anthropic.script([Reply([tool_use("Bash", {"command": "echo hi"})]),
                           Reply.text("printed hi")])
    client = await start_runtime(ASH_ENGINE="claude-code", HOME=str(tmp_path))
    assert client.engine == "claude-code"
    events = await run_query(client, "run echo")
    kinds = [m["type"] for m in messages(events)]
    assert kinds[0] == "system" and kinds[-1] == "result"
    assert messages(events, "user")[0]["tool_use_result"]["stdout"] == "hi"
    assert result_of(events)["result"] == "printed hi"
