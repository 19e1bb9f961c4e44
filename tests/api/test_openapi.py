"""Our OpenAPI document (drf-spectacular) against the contract, and the self-hosted Swagger UI."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

# The contract sits next to the repository (DESIGN.md: ../shared/specs/ash-openapi.json).
CONTRACT = Path(__file__).resolve().parents[3] / "shared" / "specs" / "ash-openapi.json"

METHODS = ("get", "post", "put", "patch", "delete")

# Contract operations not (yet) in our OpenAPI document. Shrink this set as they land: the test
# fails when an operation here exists, or when an operation is neither built nor listed here.
# The two message routes are served by plain async (SSE) views, which drf-spectacular cannot see.
NOT_YET_BUILT: frozenset[tuple[str, str]] = frozenset()

# Top-level keys we answer beyond the contract's, on purpose.
EXTRA_KEYS: dict[tuple[str, str], set[str]] = {
    ("GET", "/health"): {"isolation"},  # which sandbox isolation the runners achieved
}


def normalise(path: str) -> str:
    """`{id}`, `{item_id}`, `{*}`, `{path}` → `{}`: parameter names differ, positions must not."""
    return re.sub(r"\{[^}]*\}", "{}", path)


def _resolve(document: dict[str, Any], schema: dict[str, Any]) -> dict[str, Any]:
    while "$ref" in schema:
        node: Any = document
        for part in schema["$ref"].lstrip("#/").split("/"):
            node = node[part]
        schema = node
    return schema


def operations(document: dict[str, Any]) -> dict[tuple[str, str], dict[str, Any]]:
    """(METHOD, normalised path) → {"success": {codes}, "keys": top-level JSON keys or None}."""
    found: dict[tuple[str, str], dict[str, Any]] = {}
    for path, item in document["paths"].items():
        for method in METHODS:
            if method not in item:
                continue
            responses = item[method].get("responses", {})
            success = {code for code in responses if code.startswith("2")} or {"200"}  # raw downloads
            keys = None
            for code in sorted(success):
                content = responses.get(code, {}).get("content", {}).get("application/json")
                if content and "schema" in content:
                    properties = _resolve(document, content["schema"]).get("properties")
                    if properties:
                        keys = set(properties)
            found[(method.upper(), normalise(path))] = {"success": success, "keys": keys}
    return found


@pytest.fixture(scope="module")
def contract() -> dict[str, Any]:
    return json.loads(CONTRACT.read_text())


@pytest.fixture
def ours(client, db) -> dict[str, Any]:
    response = client.get("/docs/json")
    assert response.status_code == 200
    assert response["Content-Type"].startswith("application/vnd.oai.openapi+json")
    return json.loads(response.content)


def test_schema_is_openapi_3_json_served_without_auth(ours):
    assert ours["openapi"].startswith("3.")
    assert ours["info"]["title"] == "Ash API"
    assert ours["components"]["securitySchemes"]["bearerAuth"] == {
        "type": "http", "scheme": "bearer", "description": "An Ash API key",
    }


def test_every_contract_operation_is_built_or_explicitly_pending(contract, ours):
    theirs, mine = operations(contract), operations(ours)
    missing = sorted(op for op in theirs if op not in mine and op not in NOT_YET_BUILT)
    assert missing == [], f"contract operations neither built nor in NOT_YET_BUILT: {missing}"
    built_but_listed = sorted(op for op in NOT_YET_BUILT if op in mine)
    assert built_but_listed == [], f"remove from NOT_YET_BUILT, they exist now: {built_but_listed}"
    unknown = sorted(op for op in NOT_YET_BUILT if op not in theirs)
    assert unknown == [], f"NOT_YET_BUILT names operations the contract does not have: {unknown}"


def test_built_operations_match_success_status_and_envelope_keys(contract, ours):
    theirs, mine = operations(contract), operations(ours)
    built = [op for op in theirs if op not in NOT_YET_BUILT]
    problems = []
    for op in built:
        expected, actual = theirs[op], mine[op]
        if actual["success"] != expected["success"]:
            problems.append(f"{op}: success {sorted(actual['success'])} != contract {sorted(expected['success'])}")
        if expected["keys"] is not None:
            allowed = expected["keys"] | EXTRA_KEYS.get(op, set())
            if actual["keys"] != allowed:
                problems.append(f"{op}: keys {sorted(actual['keys'] or [])} != contract {sorted(allowed)}")
    assert problems == []


def test_operation_ids_are_unique(ours):
    ids = [item[m]["operationId"] for item in ours["paths"].values() for m in METHODS if m in item]
    assert len(ids) == len(set(ids))


def test_agent_file_route_is_documented_as_one_path_parameter(ours):
    item = ours["paths"]["/api/agents/{name}/files/{path}"]["get"]
    names = {(p["in"], p["name"]) for p in item["parameters"]}
    assert {("path", "name"), ("path", "path"), ("query", "format")} <= names


def test_swagger_ui_is_served_with_local_assets(client, db):
    response = client.get("/docs")
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/html")
    page = response.content.decode()
    assert "/docs/json" in page
    assets = re.findall(r'(?:src|href)="([^"]+)"', page)
    assert any(a.endswith("swagger-ui-bundle.js") for a in assets)
    for asset in assets:
        assert asset.startswith("/static/"), asset
    assert not re.search(r"https?://(?!localhost|127\.0\.0\.1)[a-z0-9.-]+\.[a-z]{2,}/", page), "page references a remote host"
    for asset in assets:
        served = client.get(asset)
        assert served.status_code == 200, asset
        assert b"".join(served.streaming_content if served.streaming else [served.content])
