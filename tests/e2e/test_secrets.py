"""No model credential ever enters a sandbox: the proxy adds it on the way out (strict sandbox)."""

from __future__ import annotations

import pytest

from tests.e2e.conftest import AshSystem
from tests.e2e.support import Api
from tests.fakes.anthropic_server import Reply

pytestmark = pytest.mark.slow

SECRET = "sk-ant-e2e-secret-7f3a9c1d"


def test_session_credential_reaches_the_model_api_but_is_invisible_inside_the_sandbox(ash: AshSystem, api: Api, agent: str, fake) -> None:
    created = api.post("/api/credentials", {"type": "anthropic", "key": SECRET, "label": "e2e"})
    assert created.status_code == 201, created.text
    assert SECRET not in created.text
    session = api.create_session(agent, credentialId=created.json()["credential"]["id"])
    assert ash.health()["isolation"] == "strict"

    fake.script([Reply.text("hello from the fake")])
    stream = api.turn(session["id"], "hi")
    assert stream.events[-1] == "done"
    request = fake.message_requests[-1]
    sent = request.headers.get("x-api-key") or request.headers.get("authorization", "")
    assert SECRET in sent, "the proxy must add the session's credential upstream"

    # Environment, every process's environ and cmdline, and every readable file in the sandbox.
    probe = api.exec(
        session["id"],
        "env; cat /proc/*/environ 2>/dev/null | tr '\\0' '\\n'; cat /proc/*/cmdline 2>/dev/null | tr '\\0' ' '; "
        f"grep -rIl -e '{SECRET[:20]}' /workspace /tmp /run /agent /opt /etc /var 2>/dev/null | sed 's/^/FOUND:/'; echo probe-done",
        timeout=120_000,
    )
    assert "probe-done" in probe["stdout"]
    assert SECRET not in probe["stdout"]  # the probe's own command line holds only a prefix
    assert [line for line in probe["stdout"].splitlines() if line.startswith("FOUND:")] == []
    assert "ANTHROPIC_API_KEY" not in probe["stdout"]
