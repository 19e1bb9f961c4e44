"""Claude Code permission rule syntax and the deny > ask > allow > mode order."""

from __future__ import annotations

from pathlib import Path

import pytest

from ash.runtime.permissions import PermissionPolicy, Rule

CWD = Path("/workspace")


@pytest.mark.parametrize(("rule", "tool", "tool_input", "expected"), [
    ("Bash", "Bash", {"command": "anything"}, True),
    ("Bash(git:*)", "Bash", {"command": "git status"}, True),
    ("Bash(git:*)", "Bash", {"command": "git"}, True),
    ("Bash(git:*)", "Bash", {"command": "gitk"}, False),
    ("Bash(npm run test:*)", "Bash", {"command": "npm run test -- -x"}, True),
    ("Bash(npm run test:*)", "Bash", {"command": "npm run build"}, False),
    ("Bash(git *)", "Bash", {"command": "git log -1"}, True),
    ("Bash(git *)", "Bash", {"command": "git"}, True),
    ("Bash(ls -la)", "Bash", {"command": "ls -la"}, True),
    ("Bash(ls -la)", "Bash", {"command": "ls -la /"}, False),
    ("Edit(src/**)", "Edit", {"file_path": "/workspace/src/a/b.py"}, True),
    ("Edit(src/**)", "Write", {"file_path": "/workspace/src/x.py"}, True),
    ("Edit(src/**)", "Edit", {"file_path": "/workspace/lib/x.py"}, False),
    ("Read(./secrets/**)", "Read", {"file_path": "/workspace/secrets/k"}, True),
    ("Read(*.env)", "Read", {"file_path": "/workspace/deep/dir/.env"}, True),
    ("Read(*.env)", "Read", {"file_path": "/workspace/deep/env.txt"}, False),
    ("Read(*.env)", "Read", {"file_path": "/workspace/deep/prod.env"}, True),
    ("Read(//etc/**)", "Read", {"file_path": "/etc/passwd"}, True),
    ("Read(/docs/*.md)", "Read", {"file_path": "/workspace/docs/a.md"}, True),
    ("Read(/docs/*.md)", "Read", {"file_path": "/workspace/docs/x/a.md"}, False),
    ("mcp__demo", "mcp__demo__add", {}, True),
    ("mcp__demo__*", "mcp__demo__add", {}, True),
    ("mcp__demo__add", "mcp__demo__add", {}, True),
    ("mcp__demo__add", "mcp__demo__sub", {}, False),
    ("mcp__demo", "mcp__demolish__x", {}, False),
    ("Task", "Agent", {}, True),
    ("WebFetch(domain:example.com)", "WebFetch", {"url": "https://api.example.com/x"}, True),
    ("WebFetch(domain:example.com)", "WebFetch", {"url": "https://example.org/"}, False),
])
def test_rule_matching(rule: str, tool: str, tool_input: dict, expected: bool) -> None:
    assert Rule.parse(rule).matches(tool, tool_input, CWD) is expected


def test_order_is_deny_ask_allow_mode() -> None:
    policy = PermissionPolicy.build("default", allow=["Bash"], deny=["Bash(rm:*)"],
                                    ask=["Bash(git push:*)"], cwd=CWD)
    assert policy.decide("Bash", {"command": "rm -rf /"}).behavior == "deny"
    assert policy.decide("Bash", {"command": "git push"}).behavior == "ask"
    assert policy.decide("Bash", {"command": "ls"}).behavior == "allow"
    assert policy.decide("Write", {"file_path": "/workspace/a"}).behavior == "ask"
    assert policy.decide("Read", {"file_path": "/workspace/a"}).behavior == "allow"
    assert not policy.removed("Bash")  # a restricted deny keeps the tool in context


@pytest.mark.parametrize(("mode", "tool", "path", "expected"), [
    ("bypassPermissions", "Bash", None, "allow"),
    ("acceptEdits", "Write", "/workspace/x", "allow"),
    ("acceptEdits", "Write", "/etc/x", "ask"),
    ("acceptEdits", "Bash", None, "ask"),
    ("plan", "Edit", "/workspace/x", "deny"),
    ("plan", "Glob", None, "allow"),
    ("dontAsk", "Bash", None, "deny"),
    ("default", "mcp__demo__add", None, "ask"),
])
def test_modes(mode: str, tool: str, path: str | None, expected: str) -> None:
    policy = PermissionPolicy.build(mode, [], [], [], CWD)
    tool_input = {"file_path": path} if path else {"command": "x"}
    assert policy.decide(tool, tool_input).behavior == expected


def test_whole_tool_deny_removes_it() -> None:
    policy = PermissionPolicy.build("bypassPermissions", [], ["WebFetch", "mcp__demo"], [], CWD)
    assert policy.removed("WebFetch") and policy.removed("mcp__demo__add")
    assert not policy.removed("Bash")
