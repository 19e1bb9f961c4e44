"""Usage: filtered lists (session, agent, time window, limit) and per-type sums with zeros."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import pytest

from tests.conftest import assert_error
from usage_app.models import UsageEvent

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


def _event(tenant_id: str, *, session_id: uuid.UUID, agent: str, type_: str, value: float, minutes: int) -> UsageEvent:
    row = UsageEvent.objects.create(tenant_id=tenant_id, session_id=session_id, agent_name=agent, event_type=type_, value=value)
    UsageEvent.objects.filter(pk=row.pk).update(created_at=T0 + timedelta(minutes=minutes))
    row.refresh_from_db()
    return row


@pytest.fixture
def events(api, other_api) -> dict:
    s1, s2 = uuid.uuid4(), uuid.uuid4()
    rows = {
        "a": _event(api.tenant_id, session_id=s1, agent="alpha", type_="input_tokens", value=100, minutes=0),
        "b": _event(api.tenant_id, session_id=s1, agent="alpha", type_="output_tokens", value=40, minutes=1),
        "c": _event(api.tenant_id, session_id=s1, agent="alpha", type_="message", value=1, minutes=2),
        "d": _event(api.tenant_id, session_id=s2, agent="beta", type_="input_tokens", value=7, minutes=3),
        "e": _event(api.tenant_id, session_id=s2, agent="beta", type_="cost_usd", value=0.25, minutes=4),
    }
    _event(other_api.tenant_id, session_id=uuid.uuid4(), agent="alpha", type_="input_tokens", value=999, minutes=2)
    return {"s1": s1, "s2": s2, **rows}


def _ids(response) -> list[str]:
    assert response.status_code == 200, response.content
    return [e["id"] for e in response.json()["events"]]


def test_list_is_tenant_scoped_newest_first(api, events):
    response = api.get("/api/usage")
    assert _ids(response) == [str(events[k].id) for k in "edcba"]
    first = response.json()["events"][0]
    assert set(first) == {"id", "tenantId", "sessionId", "agentName", "eventType", "value", "model", "createdAt"}
    assert (first["eventType"], first["value"], first["agentName"], first["sessionId"]) == ("cost_usd", 0.25, "beta", str(events["s2"]))


def test_list_filters_by_session_and_agent(api, events):
    assert _ids(api.get("/api/usage", {"sessionId": str(events["s1"])})) == [str(events[k].id) for k in "cba"]
    assert _ids(api.get("/api/usage", {"agentName": "beta"})) == [str(events[k].id) for k in "ed"]
    assert _ids(api.get("/api/usage", {"agentName": "nobody"})) == []


def test_list_after_and_before_are_inclusive(api, events):
    query = {"after": (T0 + timedelta(minutes=1)).isoformat(), "before": (T0 + timedelta(minutes=3)).isoformat()}
    assert _ids(api.get("/api/usage", query)) == [str(events[k].id) for k in "dcb"]
    # "Z" suffix and a "+" that arrived as a space in an unencoded query string both parse.
    assert _ids(api.get("/api/usage", {"after": "2026-03-01T12:04:00Z"})) == [str(events["e"].id)]
    assert _ids(api.get("/api/usage?before=2026-03-01T12:00:00 00:00")) == [str(events["a"].id)]


def test_dates_without_offset_are_utc(api, events):
    assert _ids(api.get("/api/usage", {"after": "2026-03-01T12:04:00"})) == [str(events["e"].id)]
    assert _ids(api.get("/api/usage", {"before": "2026-03-01"})) == []


def test_list_limit(api, events):
    assert _ids(api.get("/api/usage", {"limit": 2})) == [str(events[k].id) for k in "ed"]
    assert len(_ids(api.get("/api/usage", {"limit": 1000}))) == 5


@pytest.mark.parametrize(
    ("query", "message"),
    [
        ({"limit": 0}, "limit: must be between 1 and 1000"),
        ({"limit": 1001}, "limit: must be between 1 and 1000"),
        ({"limit": "x"}, "limit: must be an integer"),
        ({"after": "yesterday"}, "after: must be an ISO-8601 date-time"),
        ({"before": "2026-13-45T00:00:00Z"}, "before: must be an ISO-8601 date-time"),
        ({"sessionId": "nope"}, "Invalid sessionId: must be a UUID"),
        ({"after": "2026-03-02T00:00:00Z", "before": "2026-03-01T00:00:00Z"}, "after: must not be later than before"),
    ],
)
def test_list_bad_query_is_400(api, query, message):
    assert assert_error(api.get("/api/usage", query), 400)["error"] == message


def test_stats_sum_per_type_with_zeros_for_missing(api, events):
    response = api.get("/api/usage/stats")
    assert response.status_code == 200
    assert response.json() == {
        "stats": {
            "totalInputTokens": 107,
            "totalOutputTokens": 40,
            "totalCacheCreationTokens": 0,
            "totalCacheReadTokens": 0,
            "totalToolCalls": 0,
            "totalMessages": 1,
            "totalComputeSeconds": 0,
            "totalCostUsd": 0.25,
        }
    }


def test_stats_apply_the_filters(api, events):
    stats = api.get("/api/usage/stats", {"sessionId": str(events["s1"])}).json()["stats"]
    assert (stats["totalInputTokens"], stats["totalOutputTokens"], stats["totalCostUsd"]) == (100, 40, 0)
    stats = api.get("/api/usage/stats", {"agentName": "beta", "before": (T0 + timedelta(minutes=3)).isoformat()}).json()["stats"]
    assert (stats["totalInputTokens"], stats["totalCostUsd"]) == (7, 0)


def test_stats_sums_carry_no_float_noise(make_client):
    client = make_client("sums")
    sid = uuid.uuid4()
    for minutes, (type_, value) in enumerate([("compute_seconds", 0.012)] * 3 + [("cost_usd", 0.1), ("cost_usd", 0.2)]):
        _event(client.tenant_id, session_id=sid, agent="alpha", type_=type_, value=value, minutes=minutes)
    stats = client.get("/api/usage/stats").json()["stats"]
    assert (stats["totalComputeSeconds"], stats["totalCostUsd"]) == (0.036, 0.3)


def test_stats_of_empty_tenant_are_all_zero(make_client):
    stats = make_client("fresh").get("/api/usage/stats").json()["stats"]
    assert len(stats) == 8 and set(stats.values()) == {0}


def test_stats_bad_query_is_400(api):
    assert_error(api.get("/api/usage/stats", {"after": "nope"}), 400, "after: must be an ISO-8601 date-time")
