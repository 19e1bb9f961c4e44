"""A server restart on the same data dir: active sessions come back paused and resume cold."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest

from tests.e2e.conftest import AshSystem, running_server
from tests.e2e.support import assert_error, reset_script
from tests.fakes.anthropic_server import Reply

pytestmark = pytest.mark.slow


@pytest.fixture
def own_server(fake) -> Iterator[AshSystem]:
    with running_server(fake) as system:
        yield system


def test_restart_pauses_active_sessions_which_resume_cold_with_workspace_and_history(own_server: AshSystem, fake) -> None:
    reset_script(fake)
    api = own_server.api
    assert api is not None
    api.deploy("restartable")
    session = api.create_session("restartable")
    sid = session["id"]
    fake.script([Reply.tool("Bash", {"command": "echo survived > survivor.txt"}), Reply.text("Saved it.")])
    api.turn(sid, "save a file")

    own_server.stop()  # SIGTERM; its sandboxes die with it (checked by stop())
    own_server.start_web()
    api = own_server.api
    assert api is not None

    assert api.session(sid)["status"] == "paused"
    assert_error(api.post(f"/api/sessions/{sid}/messages", {"content": "hi"}), 400, "Session is paused")
    resumed = api.lifecycle(sid, "resume")
    assert resumed["status"] == "active" and resumed["sandboxId"] != session["sandboxId"]
    lifecycle = [json.loads(e["data"]) for e in api.events(sid, type="lifecycle")]
    assert lifecycle[-1]["action"] == "resumed" and lifecycle[-1]["path"] == "cold"
    assert api.exec(sid, "cat survivor.txt")["stdout"] == "survived\n"
    fake.script([Reply.text("Still here.")])
    assert api.turn(sid, "are you there?").messages("result")[0]["result"] == "Still here."
    history = fake.message_requests[-1].body["messages"]
    assert history[0] == {"role": "user", "content": "save a file"} and len(history) >= 4
