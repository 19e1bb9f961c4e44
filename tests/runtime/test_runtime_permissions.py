"""Permission modes, rules and prompts across the bridge."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from ash.runtime import protocol as p
from tests.fakes.anthropic_server import FakeAnthropic, Reply, tool_use
from tests.runtime.conftest import messages, result_of

# Each test starts the runtime as a real subprocess (about 1.5 s of imports alone).
pytestmark = pytest.mark.slow


def _write_call(workspace: Path) -> Reply:
    return Reply([tool_use("Write", {"file_path": str(workspace / "out.txt"),
                                     "content": "hello\n"}, "toolu_w")])


async def _answering(client, prompt, options, answer):
    """Run a query, answering each permission_request with `answer(ev)`."""
    events = []
    async for ev in client.query(prompt, options):
        events.append(ev)
        if isinstance(ev, p.PermissionRequestEv):
            reply = answer(ev)
            if reply is not None:
                await client.permission_response(ev.qid, ev.request_id, **reply)
    return events


async def test_permission_allow(start_runtime, fake_anthropic: FakeAnthropic,
                                workspace: Path) -> None:
    fake_anthropic.script([_write_call(workspace), Reply.text("written")])
    client = await start_runtime()
    events = await _answering(client, "w", {"permissionMode": "default"},
                              lambda ev: {"behavior": "allow"})
    req = next(e for e in events if isinstance(e, p.PermissionRequestEv))
    assert req.tool_name == "Write" and req.tool_use_id == "toolu_w"
    assert req.input == {"file_path": str(workspace / "out.txt"), "content": "hello\n"}
    assert req.request_id.startswith("perm_") and req.timeout_ms == 300_000
    assert (workspace / "out.txt").read_text() == "hello\n"
    assert result_of(events)["permission_denials"] == []


async def test_permission_allow_with_updated_input(start_runtime, fake_anthropic: FakeAnthropic,
                                                   workspace: Path) -> None:
    fake_anthropic.script([_write_call(workspace), Reply.text("written")])
    client = await start_runtime()
    changed = {"file_path": str(workspace / "other.txt"), "content": "edited\n"}
    await _answering(client, "w", {"permissionMode": "default"},
                     lambda ev: {"behavior": "allow", "updated_input": changed})
    assert (workspace / "other.txt").read_text() == "edited\n"
    assert not (workspace / "out.txt").exists()


async def test_permission_deny(start_runtime, fake_anthropic: FakeAnthropic,
                               workspace: Path) -> None:
    fake_anthropic.script([_write_call(workspace), Reply.text("ok, not writing")])
    client = await start_runtime()
    events = await _answering(client, "w", {"permissionMode": "default"},
                              lambda ev: {"behavior": "deny", "message": "denied by test"})
    assert not (workspace / "out.txt").exists()
    user = messages(events, "user")[0]
    assert user["message"]["content"][0] == {"type": "tool_result", "tool_use_id": "toolu_w",
                                             "content": "denied by test", "is_error": True}
    assert user["tool_use_result"] == "Error: denied by test"
    res = result_of(events)
    assert res["permission_denials"] == [{"tool_name": "Write", "tool_use_id": "toolu_w",
                                          "tool_input": {"file_path": str(workspace / "out.txt"),
                                                         "content": "hello\n"}}]
    assert [m["subtype"] for m in messages(events, "system")] == ["init"]


async def test_permission_timeout_denies(start_runtime, fake_anthropic: FakeAnthropic,
                                         workspace: Path) -> None:
    fake_anthropic.script([_write_call(workspace), Reply.text("timed out")])
    client = await start_runtime()
    events = await _answering(client, "w", {"permissionMode": "default",
                                            "permissionTimeoutMs": 300}, lambda ev: None)
    assert not (workspace / "out.txt").exists()
    denied = [m for m in messages(events, "system") if m["subtype"] == "permission_denied"]
    assert denied and denied[0]["tool_use_id"] == "toolu_w"
    block = messages(events, "user")[0]["message"]["content"][0]
    assert block["is_error"] is True and block["content"] == "Permission request timed out"
    assert len(result_of(events)["permission_denials"]) == 1
    # A late answer is refused: the request is gone.
    await client.permission_response("q1", "perm_gone", "allow")
    late = await client.unrouted.get()
    assert isinstance(late, p.ErrorEv) and late.code == "unknown_request"


async def test_no_prompt_handler_denies_like_claude_p(start_runtime,
                                                      fake_anthropic: FakeAnthropic,
                                                      workspace: Path) -> None:
    fake_anthropic.script([_write_call(workspace), Reply.text("cannot")])
    client = await start_runtime()
    events = await _answering(client, "w", {"permissionMode": "default",
                                            "permissionPrompts": "none"}, lambda ev: None)
    assert not any(isinstance(e, p.PermissionRequestEv) for e in events)
    expected = (f"Claude requested permissions to write to {workspace / 'out.txt'}, but you "
                "haven't granted it yet.")
    denied = [m for m in messages(events, "system") if m["subtype"] == "permission_denied"][0]
    assert denied["message"] == expected and denied["tool_name"] == "Write"
    block = messages(events, "user")[0]["message"]["content"][0]
    assert block == {"type": "tool_result", "tool_use_id": "toolu_w", "content": expected,
                     "is_error": True}


async def test_rules_allow_and_remove_tools(start_runtime, fake_anthropic: FakeAnthropic,
                                            workspace: Path) -> None:
    fake_anthropic.script([Reply([tool_use("Bash", {"command": "echo ok"}, "t1"),
                                  tool_use("Bash", {"command": "touch bad"}, "t2")]),
                           Reply.text("done")])
    client = await start_runtime()
    events = await _answering(client, "x", {
        "permissionMode": "default", "permissionPrompts": "none",
        "allowedTools": ["Bash(echo:*)"], "disallowedTools": ["WebFetch", "Bash(touch:*)"]},
        lambda ev: None)
    results = [m["message"]["content"][0] for m in messages(events, "user")]
    assert results[0]["content"] == "ok" and results[0]["is_error"] is False
    assert results[1]["is_error"] is True and "Bash(touch:*)" in results[1]["content"]
    assert not (workspace / "bad").exists()
    names = [t["name"] for t in fake_anthropic.message_requests[0].body["tools"]]
    assert "WebFetch" not in names and "Bash" in names


async def test_permissions_by_agent_settings(start_runtime, fake_anthropic: FakeAnthropic,
                                             workspace: Path, agent_dir: Path) -> None:
    (agent_dir / ".claude" / "settings.json").write_text(json.dumps({"permissions": {
        "allow": ["Bash(echo:*)"], "deny": ["Write"], "defaultMode": "default"}}))
    fake_anthropic.script([Reply([tool_use("Bash", {"command": "echo yes"}, "t1"),
                                  tool_use("Bash", {"command": "rm -rf x"}, "t2")]),
                           Reply.text("done")])
    client = await start_runtime()
    events = await _answering(client, "x", {"permissionMode": "permissionsByAgent",
                                            "permissionPrompts": "none"}, lambda ev: None)
    init = messages(events, "system")[0]
    assert init["permissionMode"] == "default" and "Write" not in init["tools"]
    results = [m["message"]["content"][0] for m in messages(events, "user")]
    assert results[0]["content"] == "yes"
    assert results[1]["is_error"] is True and "haven't granted" in results[1]["content"]
