"""Shared fixtures: API clients authenticated as a tenant, and deploy helpers."""

from __future__ import annotations

import base64
from collections.abc import Callable
from typing import Any

import pytest
from rest_framework.test import APIClient

from ash.auth import api_key_create


class TenantClient(APIClient):
    """An APIClient that sends JSON and a tenant's Bearer key."""

    def __init__(self, tenant_id: str, key: str) -> None:
        super().__init__(HTTP_AUTHORIZATION=f"Bearer {key}")
        self.tenant_id = tenant_id
        self.key = key

    def post_json(self, path: str, data: Any = None, **extra: Any) -> Any:
        return self.post(path, data, format="json", **extra)

    def patch_json(self, path: str, data: Any = None, **extra: Any) -> Any:
        return self.patch(path, data, format="json", **extra)


@pytest.fixture
def make_client(db: None) -> Callable[[str], TenantClient]:
    def make(tenant_id: str = "default") -> TenantClient:
        _, key = api_key_create(tenant_id=tenant_id, label="test")
        return TenantClient(tenant_id, key)

    return make


@pytest.fixture
def api(make_client: Callable[[str], TenantClient]) -> TenantClient:
    return make_client("tenant-a")


@pytest.fixture
def other_api(make_client: Callable[[str], TenantClient]) -> TenantClient:
    return make_client("tenant-b")


@pytest.fixture
def anon() -> APIClient:
    return APIClient()


def b64(text: str | bytes) -> str:
    return base64.b64encode(text.encode() if isinstance(text, str) else text).decode()


@pytest.fixture
def deploy(api: TenantClient) -> Callable[..., dict[str, Any]]:
    """Deploy an agent for `api`'s tenant and return its JSON."""

    def do(name: str = "helper", client: TenantClient | None = None, **body: Any) -> dict[str, Any]:
        response = (client or api).post_json("/api/agents", {"name": name, **body})
        assert response.status_code == 201, response.content
        return response.json()["agent"]

    return do


def assert_error(response: Any, status: int, contains: str | None = None) -> dict[str, Any]:
    """The contract's error envelope with STATUS (and a message containing CONTAINS)."""
    assert response.status_code == status, (response.status_code, response.content[:500])
    body = response.json()
    assert set(body) == {"error", "statusCode"}, body
    assert body["statusCode"] == status
    assert isinstance(body["error"], str) and body["error"]
    if contains is not None:
        assert contains in body["error"], body
    return body
