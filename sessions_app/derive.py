"""From one SDK message to what Ash stores and streams: Message row, SessionEvents, SSE frames.

Pure functions, so the mapping is tested directly.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass
class Derived:
    store_message: bool = False  # an `assistant` Message row holding the whole SDK message
    events: list[tuple[str, dict[str, Any]]] = field(default_factory=list)  # SessionEvent (type, data)
    frames: list[tuple[str, dict[str, Any]]] = field(default_factory=list)  # SSE (event, data), before `message`
    tool_calls: int = 0


def _text_of(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(b.get("text", "") for b in content if isinstance(b, dict) and b.get("type") == "text")
    return ""


def derive(message: dict[str, Any]) -> Derived:
    kind = message.get("type")
    out = Derived()
    if kind == "stream_event":
        event = message.get("event") or {}
        delta = event.get("delta") or {}
        if event.get("type") == "content_block_delta":
            if delta.get("type") == "text_delta":
                out.frames.append(("text_delta", {"delta": delta.get("text", "")}))
            elif delta.get("type") == "thinking_delta":
                out.frames.append(("thinking_delta", {"delta": delta.get("thinking", "")}))
        return out
    if kind == "assistant":
        out.store_message = True
        parent = message.get("parent_tool_use_id")
        for block in (message.get("message") or {}).get("content") or []:
            btype = block.get("type")
            if btype == "text":
                out.events.append(("text", {"text": block.get("text", ""), "parentToolUseId": parent}))
            elif btype in ("thinking", "redacted_thinking"):
                out.events.append(("reasoning", {"thinking": block.get("thinking", ""), "parentToolUseId": parent}))
            elif btype in ("tool_use", "server_tool_use", "mcp_tool_use"):
                data = {"id": block.get("id"), "name": block.get("name"), "input": block.get("input")}
                out.events.append(("tool_start", {**data, "parentToolUseId": parent}))
                out.frames.append(("tool_use", data))
                out.tool_calls += 1
        return out
    if kind == "user":
        content = (message.get("message") or {}).get("content")
        for block in content if isinstance(content, list) else []:
            if isinstance(block, dict) and block.get("type") == "tool_result":
                data = {
                    "tool_use_id": block.get("tool_use_id"),
                    "content": _text_of(block.get("content")) if not isinstance(block.get("content"), str) else block["content"],
                    "is_error": bool(block.get("is_error", False)),
                }
                out.events.append(("tool_result", data))
                out.frames.append(("tool_result", data))
        return out
    if kind == "result":
        out.store_message = True
        data = {
            "subtype": message.get("subtype"),
            "isError": bool(message.get("is_error", False)),
            "numTurns": message.get("num_turns"),
            "result": message.get("result"),
            "durationMs": message.get("duration_ms"),
            "totalCostUsd": message.get("total_cost_usd"),
            "usage": message.get("usage"),
        }
        out.events.append(("turn_complete", data))
        out.frames.append(("turn_complete", {"numTurns": data["numTurns"], "result": data["result"]}))
        return out
    return out
