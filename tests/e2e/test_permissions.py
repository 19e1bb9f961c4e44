"""permissionMode "default": a tool that needs approval reaches the client as `permission_request`
and, with no answering endpoint on the Ash API, is denied the way `claude -p` denies it."""

from __future__ import annotations

import pytest

from tests.e2e.support import Api
from tests.fakes.anthropic_server import Reply

pytestmark = pytest.mark.slow


def test_tool_needing_approval_is_announced_then_denied(api: Api, agent: str, fake) -> None:
    session = api.create_session(agent, permissionMode="default")
    fake.script([
        Reply.tool("Write", {"file_path": "/workspace/denied.txt", "content": "nope"}),
        Reply.text("I could not write it."),
    ])
    stream = api.turn(session["id"], "write a file")
    assert stream.events[-1] == "done"
    requests = stream.of("permission_request")
    assert len(requests) == 1, stream.events
    assert requests[0]["toolName"] == "Write" and requests[0]["input"]["file_path"] == "/workspace/denied.txt"
    results = stream.of("tool_result")
    assert results and results[0]["is_error"]
    final = stream.messages("result")[-1]
    assert [d["tool_name"] for d in final["permission_denials"]] == ["Write"]
    # Denied for real: the file does not exist in the sandbox.
    assert api.exec(session["id"], "test -e denied.txt && echo exists || echo absent")["stdout"] == "absent\n"


def test_bypass_permissions_runs_the_same_tool_without_asking(api: Api, agent: str, fake) -> None:
    session = api.create_session(agent)
    fake.script([Reply.tool("Write", {"file_path": "/workspace/allowed.txt", "content": "yes"}), Reply.text("Done.")])
    stream = api.turn(session["id"], "write a file")
    assert "permission_request" not in stream.events
    assert api.exec(session["id"], "cat allowed.txt")["stdout"] == "yes"
