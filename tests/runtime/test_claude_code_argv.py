"""The Claude Code engine's command line and its loopback relay (no CLI needed)."""

from __future__ import annotations

import json
from pathlib import Path

import anthropic

from ash.runtime.config import RuntimeConfig
from ash.runtime.engines.claude_code import ClaudeCodeEngine, _SocketRelay
from ash.runtime.options import QueryOptions
from tests.fakes.anthropic_server import FakeAnthropic, Reply


def test_options_become_cli_flags(tmp_path: Path) -> None:
    agent = tmp_path / "agent"
    agent.mkdir()
    (agent / "CLAUDE.md").write_text("be brief")
    engine = ClaudeCodeEngine(RuntimeConfig(workspace=tmp_path, agent_dir=agent),
                              cli="/opt/claude")
    opts = QueryOptions.from_wire({
        "model": "claude-opus-4-6", "maxTurns": 3, "maxBudgetUsd": 0.5, "effort": "high",
        "permissionMode": "default", "includePartialMessages": True,
        "thinking": {"type": "enabled", "budgetTokens": 2048},
        "outputFormat": {"type": "json_schema", "schema": {"type": "object"}},
        "allowedTools": ["Bash(git:*)", "Read"], "disallowedTools": ["WebFetch"],
        "betas": ["context-1m-2025-08-07"],
        "subagents": {"r": {"description": "d", "prompt": "p"}}, "initialAgent": "r",
        "mcpServers": {"demo": {"command": "srv"}}})
    argv = engine.argv(opts)
    assert argv[0] == "/opt/claude"
    assert "--include-partial-messages" in argv
    assert argv[argv.index("--permission-prompt-tool"):
                                                         argv.index("--permission-prompt-tool") + 2] == ["--permission-prompt-tool", "stdio"]
    assert argv[argv.index("--model") + 1] == "claude-opus-4-6"
    assert argv[argv.index("--max-turns") + 1] == "3"
    assert argv[argv.index("--max-budget-usd") + 1] == "0.5"
    assert argv[argv.index("--max-thinking-tokens") + 1] == "2048"
    assert argv[argv.index("--allowedTools") + 1] == "Bash(git:*),Read"
    assert argv[argv.index("--system-prompt") + 1] == "be brief"
    assert argv[argv.index("--agent") + 1] == "r"
    assert json.loads(argv[argv.index("--mcp-config") + 1]) == {
        "mcpServers": {"demo": {"command": "srv"}}}
    assert "--resume" not in argv


async def test_relay_reaches_a_unix_socket_model_api(tmp_path: Path) -> None:
    sock = str(tmp_path / "llm.sock")
    with FakeAnthropic([Reply.text("relayed")], unix_socket=sock) as fake:
        relay = _SocketRelay(sock)
        base = await relay.start()
        client = anthropic.AsyncAnthropic(base_url=base, api_key="x", max_retries=0)
        msg = await client.messages.create(model="m", max_tokens=5,
                                           messages=[{"role": "user", "content": "x"}])
        assert msg.content[0].text == "relayed" and len(fake.requests) == 1
        await client.close()
        await relay.close()
