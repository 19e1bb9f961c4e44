"""Sessions on the Docker backend: the same API, sandboxes are containers on the private engine."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.e2e.conftest import AshSystem, running_server
from tests.e2e.support import Api
from tests.fakes.anthropic_server import Reply
from tests.sandbox.docker_env import docker_environment

pytestmark = [pytest.mark.slow, pytest.mark.docker]


@pytest.fixture(scope="module")
def docker_ash(fake) -> Iterator[AshSystem]:
    host, image = docker_environment()
    with running_server(fake, ASH_SANDBOX_BACKEND="docker", ASH_DOCKER_HOST=host, ASH_DOCKER_IMAGE=image) as system:
        yield system


def test_docker_session_runs_turns_exec_and_resumes_cold_with_its_workspace(docker_ash: AshSystem, fake) -> None:
    api: Api = docker_ash.api
    api.deploy("docker-agent")
    session = api.create_session("docker-agent")
    assert docker_ash.health()["isolation"] == "strict"

    fake._script.clear()
    fake.script([Reply.tool("Bash", {"command": "echo from-docker > note.txt && id -u"}), Reply.text("done")])
    stream = api.turn(session["id"], "write a note")
    assert stream.events[-1] == "done"
    results = stream.of("tool_result")
    assert results and results[0]["content"].strip().endswith("1000") and not results[0]["is_error"]

    probe = api.exec(session["id"], "cat note.txt; id -u; python3 -c 'import socket; "
                     "socket.create_connection((\"127.0.0.1\", 22), 2)' 2>/dev/null || echo no-network")
    assert probe["stdout"].startswith("from-docker\n1000\n")
    assert "no-network" in probe["stdout"]

    assert api.lifecycle(session["id"], "stop")["status"] == "stopped"
    resumed = api.lifecycle(session["id"], "resume")
    assert resumed["status"] == "active" and resumed["sandboxId"] != session["sandboxId"]
    assert api.exec(session["id"], "cat note.txt")["stdout"] == "from-docker\n"
    assert api.delete(f"/api/sessions/{session['id']}").json()["session"]["status"] == "ended"
