"""drf-spectacular helpers: response envelopes and the error envelope, declared once."""

from __future__ import annotations

from typing import Any

from drf_spectacular.extensions import OpenApiAuthenticationExtension
from drf_spectacular.utils import OpenApiResponse, inline_serializer
from rest_framework import serializers

ApiErrorSerializer = inline_serializer(
    "ApiError", {"error": serializers.CharField(), "statusCode": serializers.IntegerField()}
)


def envelope_of(name: str, **fields: Any) -> serializers.Serializer:
    return inline_serializer(name, fields)


def ERRORS(*codes: int) -> dict[int, OpenApiResponse]:  # noqa: N802 - reads like a constant at call sites
    return {code: OpenApiResponse(ApiErrorSerializer) for code in codes}


class ApiKeyAuthenticationScheme(OpenApiAuthenticationExtension):
    """Declares `Authorization: Bearer <API key>` for every view using ApiKeyAuthentication."""

    target_class = "ash.auth.ApiKeyAuthentication"
    name = "bearerAuth"

    def get_security_definition(self, auto_schema: Any) -> dict[str, str]:
        return {"type": "http", "scheme": "bearer", "description": "An Ash API key"}


def _error_responses(*codes: int) -> dict[str, Any]:
    ref = {"$ref": "#/components/schemas/ApiError"}
    return {str(c): {"description": "", "content": {"application/json": {"schema": ref}}} for c in codes}


_SESSION_ID = [{"in": "path", "name": "session_id", "required": True, "schema": {"type": "string", "format": "uuid"}}]
_SSE = {"text/event-stream": {"schema": {"type": "string"}}}
_MESSAGE = {
    "type": "object",
    "properties": {
        "id": {"type": "string", "format": "uuid"},
        "sessionId": {"type": "string", "format": "uuid"},
        "tenantId": {"type": "string"},
        "role": {"type": "string", "enum": ["user", "assistant"]},
        "content": {"type": "string", "description": "JSON-encoded SDK message"},
        "sequence": {"type": "integer"},
        "createdAt": {"type": "string", "format": "date-time"},
    },
    "required": ["id", "sessionId", "role", "content", "sequence", "createdAt"],
}
_SEND = {
    "type": "object",
    "properties": {
        "content": {"oneOf": [{"type": "string"}, {"type": "array", "items": {"type": "object"}}]},
        "includePartialMessages": {"type": "boolean"},
        "model": {"type": "string"},
        "maxTurns": {"type": "integer", "minimum": 1},
        "maxBudgetUsd": {"type": "number", "minimum": 0},
        "effort": {"type": "string", "enum": ["low", "medium", "high", "max"]},
        "thinking": {"type": "object", "properties": {"type": {"type": "string"}, "budgetTokens": {"type": "integer"}}, "required": ["type"]},
        "outputFormat": {"type": "object", "properties": {"type": {"type": "string"}, "schema": {"type": "object"}}, "required": ["type", "schema"]},
    },
    "required": ["content"],
}
_STREAM_DESCRIPTION = (
    "SSE, one frame per event: `event: <name>`, `data: <one-line JSON>`, blank line. Events: "
    "`session_start`, `message` (the SDK message), derived `text_delta`/`thinking_delta`/`tool_use`/"
    "`tool_result`/`turn_complete`, `permission_request`, `error` ({error}), and `done` ({sessionId}), "
    "after which the stream closes. `: keepalive` comments every 15 s of silence."
)


def add_async_views(result: dict[str, Any], generator: Any, request: Any, public: bool) -> dict[str, Any]:
    """Postprocessing hook: the SSE endpoints are plain async views that drf-spectacular cannot see."""
    security = [{"bearerAuth": []}]
    paths = result.setdefault("paths", {})
    paths["/api/sessions/{session_id}/messages"] = {
        "get": {
            "operationId": "listMessages", "tags": ["sessions"], "security": security, "parameters": [
                *_SESSION_ID,
                {"in": "query", "name": "limit", "schema": {"type": "integer", "minimum": 1, "maximum": 1000, "default": 100}},
                {"in": "query", "name": "after", "schema": {"type": "integer", "minimum": 0, "default": 0}},
            ],
            "responses": {"200": {"description": "", "content": {"application/json": {"schema": {
                "type": "object", "properties": {"messages": {"type": "array", "items": _MESSAGE}}, "required": ["messages"],
            }}}}, **_error_responses(400, 404)},
        },
        "post": {
            "operationId": "sendMessage", "tags": ["sessions"], "security": security, "parameters": _SESSION_ID,
            "requestBody": {"required": True, "content": {"application/json": {"schema": _SEND}}},
            "responses": {"200": {"description": _STREAM_DESCRIPTION, "content": _SSE}, **_error_responses(400, 404, 409, 500)},
        },
    }
    paths["/api/sessions/{session_id}/stream"] = {
        "get": {
            "operationId": "reattachStream", "tags": ["sessions"], "security": security,
            "description": "Extension: re-attach to the running (or last) turn and replay its frames after `after` "
                           "(frames carry `id: <seq>` lines here).",
            "parameters": [
                *_SESSION_ID,
                {"in": "query", "name": "after", "schema": {"type": "integer", "minimum": 0, "default": 0}},
                {"in": "query", "name": "turn", "schema": {"type": "string", "format": "uuid"}},
            ],
            "responses": {"200": {"description": _STREAM_DESCRIPTION, "content": _SSE}, **_error_responses(400, 404)},
        },
    }
    paths["/api/sessions/{session_id}/interrupt"] = {
        "post": {
            "operationId": "interruptTurn", "tags": ["sessions"], "security": security, "parameters": _SESSION_ID,
            "description": "Extension: stop the running turn cleanly (it ends with a result and `done`).",
            "responses": {"200": {"description": "", "content": {"application/json": {"schema": {
                "type": "object", "properties": {"interrupted": {"type": "boolean"}}, "required": ["interrupted"],
            }}}}, **_error_responses(400, 404)},
        },
    }
    return result
