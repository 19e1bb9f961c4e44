"""Builders for Claude Agent SDK message dicts (the CLI's stream-json line shapes)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

CLAUDE_CODE_VERSION = "2.1.330"  # the CLI version whose shapes these mirror
EMPTY_USAGE: dict[str, Any] = {
    "input_tokens": 0, "cache_creation_input_tokens": 0, "cache_read_input_tokens": 0,
    "output_tokens": 0, "server_tool_use": {"web_search_requests": 0, "web_fetch_requests": 0},
    "service_tier": "standard",
    "cache_creation": {"ephemeral_1h_input_tokens": 0, "ephemeral_5m_input_tokens": 0},
}


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _uuid() -> str:
    return str(uuid.uuid4())


def system_init(*, session_id: str, cwd: str, tools: list[str], model: str,
                permission_mode: str, mcp_servers: list[dict[str, Any]], agents: list[str],
                betas: list[str]) -> dict[str, Any]:
    msg: dict[str, Any] = {
        "type": "system", "subtype": "init", "cwd": cwd, "session_id": session_id,
        "tools": tools, "mcp_servers": mcp_servers, "model": model,
        "permissionMode": permission_mode, "slash_commands": [], "apiKeySource": "none",
        "claude_code_version": CLAUDE_CODE_VERSION, "output_style": "default",
        "agents": agents, "skills": [], "plugins": [], "uuid": _uuid(),
    }
    if betas:
        msg["betas"] = betas
    return msg


def system(subtype: str, session_id: str, **fields: Any) -> dict[str, Any]:
    return {"type": "system", "subtype": subtype, **fields, "session_id": session_id,
            "uuid": _uuid()}


def assistant(*, message_id: str, model: str, block: dict[str, Any], usage: dict[str, Any],
              session_id: str, parent_tool_use_id: str | None,
              error: str | None = None) -> dict[str, Any]:
    """One assistant message per content block, as the CLI emits them."""
    msg: dict[str, Any] = {
        "type": "assistant",
        "message": {"id": message_id, "type": "message", "role": "assistant", "model": model,
                    "content": [block], "stop_reason": None, "stop_sequence": None,
                    "usage": usage, "context_management": None},
        "parent_tool_use_id": parent_tool_use_id, "session_id": session_id, "uuid": _uuid(),
        "timestamp": _now(),
    }
    if error is not None:
        msg["error"] = error
    return msg


def user(*, content: str | list[dict[str, Any]], session_id: str,
         parent_tool_use_id: str | None, tool_use_result: Any = None) -> dict[str, Any]:
    msg: dict[str, Any] = {
        "type": "user", "message": {"role": "user", "content": content},
        "parent_tool_use_id": parent_tool_use_id, "session_id": session_id, "uuid": _uuid(),
        "timestamp": _now(),
    }
    if tool_use_result is not None:
        msg["tool_use_result"] = tool_use_result
    return msg


def stream_event(event: dict[str, Any], *, session_id: str, parent_tool_use_id: str | None,
                 message_id: str | None) -> dict[str, Any]:
    msg: dict[str, Any] = {"type": "stream_event", "event": event,
                           "parent_tool_use_id": parent_tool_use_id, "session_id": session_id,
                           "uuid": _uuid()}
    if message_id:
        msg["api_message_id"] = message_id
    return msg


def result(*, subtype: str, is_error: bool, duration_ms: int, duration_api_ms: int,
           num_turns: int, session_id: str, total_cost_usd: float, usage: dict[str, Any],
           model_usage: dict[str, Any], permission_denials: list[dict[str, Any]],
           terminal_reason: str, stop_reason: str | None, result_text: str | None = None,
           errors: list[str] | None = None, structured_output: Any = None,
           api_error_status: int | None = None) -> dict[str, Any]:
    msg: dict[str, Any] = {
        "type": "result", "subtype": subtype, "is_error": is_error, "duration_ms": duration_ms,
        "duration_api_ms": duration_api_ms, "num_turns": num_turns,
    }
    if result_text is not None:
        msg["result"] = result_text
    msg.update({
        "stop_reason": stop_reason, "session_id": session_id, "total_cost_usd": total_cost_usd,
        "usage": usage, "modelUsage": model_usage, "permission_denials": permission_denials,
        "terminal_reason": terminal_reason, "uuid": _uuid(),
    })
    if errors is not None:
        msg["errors"] = errors
    if structured_output is not None:
        msg["structured_output"] = structured_output
    if api_error_status is not None:
        msg["api_error_status"] = api_error_status
    return msg


def api_error_kind(status: int | None) -> str:
    """The assistant message `error` field for an HTTP status."""
    return {401: "authentication_failed", 402: "billing_error", 403: "authentication_failed",
            400: "invalid_request", 413: "invalid_request", 429: "rate_limit"}.get(
        status or 0, "server_error" if status and status >= 500 else "unknown")
