"""The queue consumer against a real server: prompts run as persisted turns, failures retry."""

from __future__ import annotations

import pytest

from tests.e2e.support import Api, wait_until
from tests.fakes.anthropic_server import ErrorReply, Reply

pytestmark = pytest.mark.slow


def _item(api: Api, item_id: str) -> dict:
    response = api.get(f"/api/queue/{item_id}")
    assert response.status_code == 200, response.text
    return response.json()["item"]


def _finished(api: Api, item_id: str) -> dict:
    return wait_until(
        lambda: (item := _item(api, item_id))["status"] in ("completed", "failed") and item,
        timeout=90, interval=0.2, what=f"queue item {item_id} to finish",
    )


def test_queued_prompt_runs_in_a_new_session_whose_id_is_written_back(api: Api, agent: str, fake) -> None:
    fake.script([Reply.text("queued answer")])
    created = api.post("/api/queue", {"agentName": agent, "prompt": "do the queued thing"})
    assert created.status_code == 201, created.text
    item = _finished(api, created.json()["item"]["id"])
    assert item["status"] == "completed", item
    assert item["sessionId"] and item["startedAt"] and item["completedAt"] and item["error"] is None
    messages = api.messages(item["sessionId"])
    assert [m["role"] for m in messages][0] == "user"
    assert "do the queued thing" in messages[0]["content"]
    assert any('"type":"result"' in m["content"] and "queued answer" in m["content"] for m in messages)


def test_queued_prompt_runs_in_the_given_session(api: Api, session: dict, fake) -> None:
    fake.script([Reply.text("second answer")])
    created = api.post("/api/queue", {"agentName": session["agentName"], "prompt": "into my session", "sessionId": session["id"]})
    assert created.status_code == 201, created.text
    item = _finished(api, created.json()["item"]["id"])
    assert item["status"] == "completed" and item["sessionId"] == session["id"]
    assert any("into my session" in m["content"] for m in api.messages(session["id"]))


def test_a_failing_prompt_is_retried_then_fails_with_the_error(api: Api, agent: str, fake) -> None:
    fake.script([ErrorReply(400, "the fake refuses this prompt")] * 2)
    created = api.post("/api/queue", {"agentName": agent, "prompt": "fail please", "maxRetries": 1})
    assert created.status_code == 201
    item = _finished(api, created.json()["item"]["id"])
    assert item["status"] == "failed", item
    assert item["retryCount"] == 1 and item["completedAt"]
    assert item["error"]
    stats = api.get("/api/queue/stats").json()["stats"]
    assert stats["failed"] >= 1 and stats["completed"] >= 0


def test_queue_items_of_other_tenants_are_invisible(api: Api, other_api: Api, agent: str, fake) -> None:
    fake.script([Reply.text("x")])
    created = api.post("/api/queue", {"agentName": agent, "prompt": "mine"}).json()["item"]
    response = other_api.get(f"/api/queue/{created['id']}")
    assert response.status_code == 404 and response.json() == {"error": "Queue item not found", "statusCode": 404}
    _finished(api, created["id"])
