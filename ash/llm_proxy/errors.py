"""Anthropic-shaped error bodies, so every refusal looks like the real API to the SDK."""

from __future__ import annotations

import json
import secrets
from typing import Any

ERROR_TYPES: dict[int, str] = {
    400: "invalid_request_error",
    401: "authentication_error",
    402: "billing_error",
    403: "permission_error",
    404: "not_found_error",
    405: "invalid_request_error",
    408: "timeout_error",
    413: "request_too_large",
    429: "rate_limit_error",
    431: "request_too_large",
    500: "api_error",
    502: "api_error",
    503: "overloaded_error",
    504: "timeout_error",
    529: "overloaded_error",
}

# A request refused because the turn's budget is spent. 402 is not retried by the anthropic SDK
# (it retries 408/409/429/5xx), and the marker header lets the runtime map it to the
# `error_max_budget_usd` result without parsing the message.
BUDGET_EXCEEDED_STATUS = 402
ASH_ERROR_HEADER = "x-ash-error"
BUDGET_EXCEEDED = "budget_exceeded"


def new_request_id() -> str:
    return "req_ash" + secrets.token_hex(10)


def error_type_for(status: int) -> str:
    if status in ERROR_TYPES:
        return ERROR_TYPES[status]
    return "invalid_request_error" if status < 500 else "api_error"


def error_body(status: int, message: str, *, error_type: str | None = None,
               request_id: str | None = None) -> dict[str, Any]:
    return {
        "type": "error",
        "error": {"type": error_type or error_type_for(status), "message": message},
        "request_id": request_id or new_request_id(),
    }


def error_bytes(status: int, message: str, **kw: Any) -> bytes:
    return json.dumps(error_body(status, message, **kw)).encode()


def is_anthropic_error(payload: Any) -> bool:
    """True for `{"type": "error", "error": {"type": str, "message": str}}`."""
    return (isinstance(payload, dict) and payload.get("type") == "error"
            and isinstance(payload.get("error"), dict)
            and isinstance(payload["error"].get("type"), str))
