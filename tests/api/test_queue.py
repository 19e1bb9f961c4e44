"""Queue: validated enqueue, newest-first lists, stats, get, cancel only pending."""

from __future__ import annotations

import uuid
from datetime import timedelta

import pytest
from django.utils import timezone

from agents_app.models import Agent
from queue_app.models import QueueItem
from sessions_app.models import Session
from tests.conftest import assert_error

ITEM_KEYS = {
    "id", "tenantId", "sessionId", "agentName", "prompt", "status", "priority",
    "retryCount", "maxRetries", "error", "createdAt", "startedAt", "completedAt",
}


@pytest.fixture
def worker(deploy) -> dict:
    return deploy("worker")


def _session(tenant_id: str, agent_name: str, status: str = Session.Status.ACTIVE) -> Session:
    agent = Agent.objects.get(tenant_id=tenant_id, name=agent_name)
    return Session.objects.create(tenant_id=tenant_id, agent=agent, agent_name=agent_name, status=status)


def _enqueue(api, **body) -> dict:
    response = api.post_json("/api/queue", {"agentName": "worker", "prompt": "do it", **body})
    assert response.status_code == 201, response.content
    return response.json()["item"]


def test_enqueue_is_201_pending_with_defaults(api, worker):
    response = api.post_json("/api/queue", {"agentName": "worker", "prompt": "queued job"})
    assert response.status_code == 201
    assert set(response.json()) == {"item"}
    item = response.json()["item"]
    assert set(item) == ITEM_KEYS
    assert item["status"] == "pending"
    assert (item["priority"], item["retryCount"], item["maxRetries"]) == (0, 0, 3)
    assert (item["sessionId"], item["error"], item["startedAt"], item["completedAt"]) == (None, None, None, None)
    assert (item["tenantId"], item["agentName"], item["prompt"]) == (api.tenant_id, "worker", "queued job")


def test_enqueue_with_own_session(api, worker):
    session = _session(api.tenant_id, "worker")
    item = _enqueue(api, sessionId=str(session.id), priority=5, maxRetries=0)
    assert (item["sessionId"], item["priority"], item["maxRetries"]) == (str(session.id), 5, 0)


def test_enqueue_unknown_agent_is_400(api):
    assert_error(api.post_json("/api/queue", {"agentName": "ghost", "prompt": "x"}), 400, 'agentName: agent "ghost" not found')


def test_enqueue_with_another_tenants_session_is_400(api, other_api, worker, deploy):
    deploy("worker", client=other_api)
    foreign = _session(other_api.tenant_id, "worker")
    body = assert_error(api.post_json("/api/queue", {"agentName": "worker", "prompt": "x", "sessionId": str(foreign.id)}), 400)
    assert body["error"] == "sessionId: session not found"


def test_enqueue_with_unknown_session_is_400(api, worker):
    assert_error(api.post_json("/api/queue", {"agentName": "worker", "prompt": "x", "sessionId": str(uuid.uuid4())}), 400, "sessionId: session not found")


def test_enqueue_with_session_of_another_agent_is_400(api, worker, deploy):
    deploy("other")
    session = _session(api.tenant_id, "other")
    assert_error(api.post_json("/api/queue", {"agentName": "worker", "prompt": "x", "sessionId": str(session.id)}), 400, 'session belongs to agent "other"')


def test_enqueue_with_ended_session_is_400(api, worker):
    session = _session(api.tenant_id, "worker", Session.Status.ENDED)
    assert_error(api.post_json("/api/queue", {"agentName": "worker", "prompt": "x", "sessionId": str(session.id)}), 400, "sessionId: session has ended")


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"agentName": "worker", "prompt": "x", "sessionId": "not-a-uuid"}, "sessionId: must be a UUID"),
        ({"agentName": "worker", "prompt": ""}, "prompt: This field may not be blank."),
        ({"agentName": "worker"}, "prompt: This field is required."),
        ({"prompt": "x"}, "agentName: This field is required."),
        ({"agentName": "worker", "prompt": "x", "priority": -1}, "priority: Ensure this value is greater than or equal to 0."),
        ({"agentName": "worker", "prompt": "x", "maxRetries": -1}, "maxRetries: Ensure this value is greater than or equal to 0."),
        ({"agentName": "worker", "prompt": "x", "priority": "high"}, "priority: A valid integer is required."),
    ],
)
def test_enqueue_validation_is_400_naming_the_field(api, worker, body, message):
    assert assert_error(api.post_json("/api/queue", body), 400)["error"] == message
    assert not QueueItem.objects.exists()


def test_list_is_newest_first_with_status_and_limit(api, worker):
    ids = [_enqueue(api, prompt=f"p{i}")["id"] for i in range(4)]
    # Spread creation times so ordering does not depend on clock resolution.
    now = timezone.now()
    for offset, item_id in enumerate(ids):
        QueueItem.objects.filter(pk=item_id).update(created_at=now - timedelta(minutes=10 - offset))
    QueueItem.objects.filter(pk=ids[1]).update(status="completed")

    assert [i["id"] for i in api.get("/api/queue").json()["items"]] == list(reversed(ids))
    assert [i["id"] for i in api.get("/api/queue", {"limit": 2}).json()["items"]] == [ids[3], ids[2]]
    assert [i["id"] for i in api.get("/api/queue", {"status": "completed"}).json()["items"]] == [ids[1]]
    assert [i["id"] for i in api.get("/api/queue", {"status": "pending", "limit": 1}).json()["items"]] == [ids[3]]


@pytest.mark.parametrize(
    ("query", "message"),
    [
        ({"limit": 0}, "limit: must be between 1 and 500"),
        ({"limit": 501}, "limit: must be between 1 and 500"),
        ({"limit": "ten"}, "limit: must be an integer"),
        ({"status": "bogus"}, "status: must be one of pending, processing, completed, failed, cancelled"),
    ],
)
def test_list_bad_query_is_400(api, query, message):
    assert assert_error(api.get("/api/queue", query), 400)["error"] == message


def test_list_limit_bounds_are_inclusive(api, worker):
    _enqueue(api)
    assert len(api.get("/api/queue", {"limit": 1}).json()["items"]) == 1
    assert len(api.get("/api/queue", {"limit": 500}).json()["items"]) == 1


def test_stats_count_all_five_statuses(api, other_api, worker):
    for status, n in (("pending", 2), ("processing", 1), ("completed", 3), ("failed", 1)):
        for _ in range(n):
            QueueItem.objects.create(tenant_id=api.tenant_id, agent_name="worker", prompt="x", status=status)
    QueueItem.objects.create(tenant_id=other_api.tenant_id, agent_name="worker", prompt="x", status="cancelled")
    response = api.get("/api/queue/stats")
    assert response.json() == {"stats": {"pending": 2, "processing": 1, "completed": 3, "failed": 1, "cancelled": 0}}
    assert other_api.get("/api/queue/stats").json() == {
        "stats": {"pending": 0, "processing": 0, "completed": 0, "failed": 0, "cancelled": 1}
    }


def test_get_item_and_unknown_is_404(api, worker):
    item = _enqueue(api)
    assert api.get(f"/api/queue/{item['id']}").json() == {"item": item}
    assert_error(api.get(f"/api/queue/{uuid.uuid4()}"), 404, "Queue item not found")
    assert_error(api.get("/api/queue/not-a-uuid"), 400, "Invalid id: must be a UUID")


def test_cancel_pending_is_200_cancelled(api, worker):
    item = _enqueue(api)
    response = api.delete(f"/api/queue/{item['id']}")
    assert response.status_code == 200
    assert response.json()["item"]["status"] == "cancelled"
    assert QueueItem.objects.get(pk=item["id"]).status == "cancelled"


@pytest.mark.parametrize("status", ["processing", "completed", "failed", "cancelled"])
def test_cancel_non_pending_is_400(api, worker, status):
    item = _enqueue(api)
    QueueItem.objects.filter(pk=item["id"]).update(status=status)
    body = assert_error(api.delete(f"/api/queue/{item['id']}"), 400)
    assert body["error"] == f'Cannot cancel item with status "{status}"'
    assert QueueItem.objects.get(pk=item["id"]).status == status


def test_cancel_unknown_is_404(api):
    assert_error(api.delete(f"/api/queue/{uuid.uuid4()}"), 404, "Queue item not found")
