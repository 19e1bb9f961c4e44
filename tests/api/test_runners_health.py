"""Internal runner API (secret, loopback rule, register/heartbeat/deregister/list) and /health."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest
from django.utils import timezone
from rest_framework.test import APIClient

from agents_app.models import Agent
from ash.core.models import Runner
from ash.core.services import POOL_KEYS
from sessions_app.models import Session, SessionEvent
from tests.conftest import assert_error

SECRET = "internal-secret-for-tests"
REGISTER = {"runnerId": "runner-1", "host": "127.0.0.1", "port": 4200, "maxSandboxes": 8}


@pytest.fixture
def internal(db, settings) -> APIClient:
    settings.ASH_INTERNAL_SECRET = SECRET
    return APIClient(HTTP_AUTHORIZATION=f"Bearer {SECRET}", REMOTE_ADDR="10.0.0.5")


def _post(client: APIClient, path: str, body: dict, **extra):
    return client.post(f"/api/internal/runners/{path}", body, format="json", **extra)


def test_register_then_list(internal):
    response = _post(internal, "register", {**REGISTER, "isolation": "strict"})
    assert response.status_code == 200
    assert response.json() == {"ok": True}
    listing = internal.get("/api/internal/runners").json()
    assert listing["count"] == 1
    assert listing["hasLocal"] is False
    runner = listing["runners"][0]
    assert set(runner) == {"runnerId", "host", "port", "active", "max", "isolation", "lastHeartbeat"}
    assert (runner["runnerId"], runner["host"], runner["port"], runner["max"], runner["active"]) == ("runner-1", "127.0.0.1", 4200, 8, 0)


def test_register_is_an_upsert(internal):
    _post(internal, "register", REGISTER)
    _post(internal, "register", {**REGISTER, "port": 4300})
    assert list(Runner.objects.values_list("runner_id", "port")) == [("runner-1", 4300)]


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"host": "h", "port": 1}, "runnerId: This field is required."),
        ({"runnerId": "bad id", "host": "h", "port": 1}, "runnerId: must be 1-255 of A-Z a-z 0-9 _ . : @ -"),
        ({"runnerId": "r", "host": "h", "port": 70000}, "port: Ensure this value is less than or equal to 65535."),
    ],
)
def test_register_validation_is_400(internal, body, message):
    assert assert_error(_post(internal, "register", body), 400)["error"] == message


def test_heartbeat_records_pool_counts(internal):
    _post(internal, "register", REGISTER)
    stale = timezone.now() - timedelta(seconds=20)
    Runner.objects.update(last_heartbeat_at=stale)
    stats = {"total": 5, "cold": 1, "warming": 2, "warm": 1, "running": 3, "maxCapacity": 8, "bogus": 9}
    response = _post(internal, "heartbeat", {"runnerId": "runner-1", "stats": stats, "activeCount": 3})
    assert response.json() == {"ok": True}
    runner = Runner.objects.get()
    assert (runner.active_count, runner.warming_count) == (3, 2)
    assert runner.last_heartbeat_at > stale
    assert "bogus" not in runner.pool_stats


def test_heartbeat_of_unknown_runner_is_404(internal):
    assert_error(_post(internal, "heartbeat", {"runnerId": "ghost", "stats": {}}), 404, "Runner not registered")


def test_deregister_pauses_the_runners_sessions_with_a_lifecycle_event(internal, api, deploy):
    deploy("helper")
    _post(internal, "register", REGISTER)
    _post(internal, "register", {**REGISTER, "runnerId": "runner-2"})
    agent = Agent.objects.get(name="helper")
    runner1, runner2 = Runner.objects.get(pk="runner-1"), Runner.objects.get(pk="runner-2")

    def make(status: str, runner: Runner) -> Session:
        return Session.objects.create(tenant_id=api.tenant_id, agent=agent, agent_name="helper", status=status, runner=runner)

    active, starting, stopped, elsewhere = (
        make("active", runner1), make("starting", runner1), make("stopped", runner1), make("active", runner2),
    )
    assert _post(internal, "deregister", {"runnerId": "runner-1"}).json() == {"ok": True}

    for session, expected in ((active, "paused"), (starting, "paused"), (stopped, "stopped"), (elsewhere, "active")):
        session.refresh_from_db()
        assert session.status == expected
    assert active.runner_id is None
    events = SessionEvent.objects.filter(session=active)
    assert [(e.type, json.loads(e.data)) for e in events] == [("lifecycle", {"action": "paused", "reason": "runner deregistered"})]
    assert events.get().sequence == 1
    assert not SessionEvent.objects.filter(session__in=[stopped, elsewhere]).exists()
    assert list(Runner.objects.values_list("runner_id", flat=True)) == ["runner-2"]


def test_list_omits_dead_runners(internal, settings):
    _post(internal, "register", REGISTER)
    _post(internal, "register", {**REGISTER, "runnerId": "old"})
    Runner.objects.filter(pk="old").update(last_heartbeat_at=timezone.now() - timedelta(seconds=settings.ASH_RUNNER_DEAD_AFTER_SECONDS + 5))
    assert [r["runnerId"] for r in internal.get("/api/internal/runners").json()["runners"]] == ["runner-1"]


# --- the internal secret ----------------------------------------------------------------------------


@pytest.mark.parametrize("header", [None, "Bearer wrong", f"Basic {SECRET}", f"Bearer {SECRET}x"])
def test_wrong_or_missing_secret_is_401(db, settings, header):
    settings.ASH_INTERNAL_SECRET = SECRET
    extra = {"HTTP_AUTHORIZATION": header} if header else {}
    for response in (
        APIClient().get("/api/internal/runners", **extra),
        _post(APIClient(), "register", REGISTER, **extra),
        _post(APIClient(), "heartbeat", {"runnerId": "r"}, **extra),
        _post(APIClient(), "deregister", {"runnerId": "r"}, **extra),
    ):
        assert assert_error(response, 401)["error"] == "Invalid internal secret"
    assert not Runner.objects.exists()


def test_secret_is_required_even_from_loopback_when_configured(db, settings):
    settings.ASH_INTERNAL_SECRET = SECRET
    assert_error(APIClient(REMOTE_ADDR="127.0.0.1").get("/api/internal/runners"), 401)


def test_an_api_key_is_not_the_internal_secret(api, settings):
    settings.ASH_INTERNAL_SECRET = SECRET
    assert_error(api.get("/api/internal/runners", REMOTE_ADDR="10.0.0.5"), 401, "Invalid internal secret")


def test_without_secret_non_loopback_is_503(db, settings):
    settings.ASH_INTERNAL_SECRET = ""
    settings.ASH_EMBEDDED = True
    client = APIClient(REMOTE_ADDR="10.1.2.3")
    body = assert_error(client.get("/api/internal/runners"), 503)
    assert body["error"] == "Internal API disabled: ASH_INTERNAL_SECRET is not set"
    assert_error(_post(client, "register", REGISTER), 503)
    assert not Runner.objects.exists()


@pytest.mark.parametrize("address", ["127.0.0.1", "::1"])
def test_without_secret_embedded_loopback_is_allowed(db, settings, address):
    settings.ASH_INTERNAL_SECRET = ""
    settings.ASH_EMBEDDED = True
    client = APIClient(REMOTE_ADDR=address)
    assert _post(client, "register", REGISTER).json() == {"ok": True}
    assert client.get("/api/internal/runners").json()["count"] == 1


def test_without_secret_production_loopback_is_503(db, settings):
    settings.ASH_INTERNAL_SECRET = ""
    settings.ASH_EMBEDDED = False
    assert_error(APIClient(REMOTE_ADDR="127.0.0.1").get("/api/internal/runners"), 503)


def test_secret_is_compared_in_constant_time(db, settings, monkeypatch):
    import hmac

    calls = []
    real = hmac.compare_digest

    def spy(a, b):
        calls.append((a, b))
        return real(a, b)

    monkeypatch.setattr("ash.auth.hmac.compare_digest", spy)
    settings.ASH_INTERNAL_SECRET = SECRET
    assert_error(APIClient(HTTP_AUTHORIZATION="Bearer nope").get("/api/internal/runners"), 401)
    assert (b"nope", SECRET.encode()) in calls


# --- /health --------------------------------------------------------------------------------------


def test_health_has_every_key_and_zero_pool(db, anon, settings):
    response = anon.get("/health")
    assert response.status_code == 200
    body = response.json()
    assert set(body) == {
        "status", "version", "coordinatorId", "activeSessions", "activeSandboxes",
        "remoteRunners", "uptime", "pool", "isolation",
    }
    assert body["status"] == "ok"
    assert body["version"]
    assert isinstance(body["uptime"], int) and body["uptime"] >= 0
    assert (body["activeSessions"], body["activeSandboxes"], body["remoteRunners"]) == (0, 0, 0)
    assert set(body["pool"]) == set(POOL_KEYS)
    assert {k: v for k, v in body["pool"].items() if k != "maxCapacity"} == dict.fromkeys(set(POOL_KEYS) - {"maxCapacity"}, 0)
    assert body["pool"]["maxCapacity"] == settings.ASH_MAX_SANDBOXES


def test_health_counts_active_sessions_of_all_tenants(anon, api, other_api, deploy):
    deploy("helper")
    deploy("helper", client=other_api)
    for tenant, status in ((api.tenant_id, "active"), (other_api.tenant_id, "active"), (api.tenant_id, "paused")):
        agent = Agent.objects.get(tenant_id=tenant, name="helper")
        Session.objects.create(tenant_id=tenant, agent=agent, agent_name="helper", status=status)
    assert anon.get("/health").json()["activeSessions"] == 2


def test_health_sums_live_remote_runner_pools(internal, anon):
    _post(internal, "register", REGISTER)
    _post(internal, "heartbeat", {"runnerId": "runner-1", "stats": {"total": 4, "cold": 1, "running": 2, "maxCapacity": 8}})
    body = anon.get("/health").json()
    assert body["remoteRunners"] == 1
    assert (body["pool"]["total"], body["pool"]["running"], body["pool"]["maxCapacity"]) == (4, 2, 8)
    assert body["activeSandboxes"] == 3
