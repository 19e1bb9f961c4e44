"""The official Python client (`ash-ai-sdk` 0.0.22, package `ash_sdk`), unchanged, against a real server."""

from __future__ import annotations

import json
import uuid

import pytest
from ash_sdk import AshClient, AuthenticatedClient
from ash_sdk.api.agents import get_api_agents
from ash_sdk.api.credentials import get_api_credentials, post_api_credentials
from ash_sdk.api.health import get_health
from ash_sdk.api.queue import get_api_queue, get_api_queue_stats
from ash_sdk.api.sessions import (
    get_api_sessions_id_events,
    get_api_sessions_id_files,
    get_api_sessions_id_messages,
    post_api_sessions_id_exec,
)
from ash_sdk.api.usage import get_api_usage, get_api_usage_stats
from ash_sdk.models.api_error import ApiError
from ash_sdk.models.post_api_credentials_body import PostApiCredentialsBody
from ash_sdk.models.post_api_sessions_id_exec_body import PostApiSessionsIdExecBody
from ash_sdk.streaming import (
    DoneEvent,
    MessageEvent,
    SessionStartEvent,
    ToolResultEvent,
    ToolUseEvent,
    TurnCompleteEvent,
)

from tests.e2e.conftest import SDK_AGENT, AshSystem
from tests.e2e.support import reset_script
from tests.fakes.anthropic_server import Reply

pytestmark = pytest.mark.slow


@pytest.fixture
def clients(ash: AshSystem, fake) -> tuple[AshClient, AuthenticatedClient]:
    reset_script(fake)
    return AshClient(ash.base_url, ash.key, timeout=120), AuthenticatedClient(base_url=ash.base_url, token=ash.key, timeout=120)


def test_official_client_drives_a_whole_session(ash: AshSystem, clients, fake) -> None:
    client, low = clients
    name = f"{SDK_AGENT}-{uuid.uuid4().hex[:6]}"
    agent = client.deploy_agent(name, str(ash.agents_root / SDK_AGENT))
    assert agent.name == name and agent.version >= 1
    assert name in [a.name for a in client.list_agents()]

    session = client.create_session(name)
    assert session.status == "active" and session.agent_name == name
    sid = session.id

    fake.script([Reply.tool("Bash", {"command": "echo sdk > sdk.txt && echo wrote"}), Reply.text("SDK turn done")])
    events = list(client.send_message_stream(sid, "hello from the sdk"))
    assert isinstance(events[0], SessionStartEvent) and events[0].session_id == str(sid)
    assert isinstance(events[-1], DoneEvent) and events[-1].session_id == str(sid)
    assert any(isinstance(e, ToolUseEvent) and e.name == "Bash" for e in events)
    assert any(isinstance(e, ToolResultEvent) and "wrote" in str(e.content) for e in events)
    assert any(isinstance(e, TurnCompleteEvent) and e.result == "SDK turn done" for e in events)
    messages = [e.data for e in events if isinstance(e, MessageEvent)]
    assert [m["type"] for m in messages][-1] == "result"
    assert fake.message_requests[-1].body["system"]  # the CLAUDE.md from the server path

    listed = get_api_sessions_id_messages.sync(sid, client=low)
    assert listed is not None and not isinstance(listed, ApiError)
    assert [m.sequence for m in listed.messages] == list(range(1, len(listed.messages) + 1))
    assert listed.messages[0].role == "user"
    assert json.loads(listed.messages[0].content) == {"type": "user", "content": "hello from the sdk"}
    evs = get_api_sessions_id_events.sync(sid, client=low)
    assert evs is not None and not isinstance(evs, ApiError) and {e.type_ for e in evs.events} >= {"lifecycle", "tool_start"}

    files = get_api_sessions_id_files.sync(sid, client=low)
    assert files is not None and not isinstance(files, ApiError)
    assert {"CLAUDE.md", "sdk.txt"} <= {f.path for f in files.files}

    out = post_api_sessions_id_exec.sync(sid, client=low, body=PostApiSessionsIdExecBody(command="cat sdk.txt"))
    assert out is not None and not isinstance(out, ApiError)
    assert (out.exit_code, out.stdout) == (0, "sdk\n")

    assert client.pause_session(sid).status == "paused"
    assert client.resume_session(sid).status == "active"
    fork = client.fork_session(sid)
    assert fork.status == "paused" and str(fork.parent_session_id) == str(sid)
    assert client.stop_session(sid).status == "stopped"
    assert client.end_session(sid).status == "ended"
    assert client.end_session(fork.id).status == "ended"
    assert client.get_session(sid).status == "ended"

    client.delete_agent(name)
    assert name not in [a.name for a in client.list_agents()]


def test_generated_models_parse_every_read_endpoint(clients) -> None:
    client, low = clients
    health = get_health.sync(client=low)
    assert health is not None and health.status == "ok" and health.pool.max_capacity > 0
    assert client.health()["status"] == "ok"
    agents = get_api_agents.sync(client=low)
    assert agents is not None and "demo" in [a.name for a in agents.agents]

    created = post_api_credentials.sync(client=low, body=PostApiCredentialsBody(
        type_="anthropic", key="sk-ant-sdk-test", label="sdk"))
    assert created is not None and not isinstance(created, ApiError)
    credentials = get_api_credentials.sync(client=low)
    assert credentials is not None and any(c.label == "sdk" for c in credentials.credentials)

    queue = get_api_queue.sync(client=low)
    assert queue is not None and isinstance(queue.items, list)
    stats = get_api_queue_stats.sync(client=low)
    assert stats is not None and stats.stats.pending >= 0

    usage = get_api_usage.sync(client=low)
    assert usage is not None and isinstance(usage.events, list)
    usage_stats = get_api_usage_stats.sync(client=low)
    assert usage_stats is not None and usage_stats.stats.total_input_tokens >= 0
