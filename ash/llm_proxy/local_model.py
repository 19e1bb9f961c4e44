"""The built-in local demo model, served by the proxy when no model credential is configured.

It is not a language model: a few recognisable requests ("list the files", "create a file named
X", "read X") become real tool calls for the tools the request offers, a tool result is
summarised, and anything else gets a scripted reply explaining how to configure a real key. Every
response is labelled and deterministic (same request, same bytes), with Messages API shapes.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
from dataclasses import dataclass
from typing import Any

from ash.llm_proxy import local_intents as intents

LOCAL_MODEL_ID = "ash-local-demo"
LOCAL_MODEL_NAME = "Ash built-in local demo model (no API key configured)"
DEFAULT_MAX_TOKENS = 4096

_WORD = re.compile(r"\S+\s*|\s+")


def estimate_tokens(text: str) -> int:
    """A deterministic stand-in for a tokenizer: about four characters per token."""
    return max(1, math.ceil(len(text) / 4))


def _words(text: str) -> list[str]:
    return _WORD.findall(text)


@dataclass
class LocalResponse:
    """One local-model answer, renderable as a Messages API JSON body or SSE stream."""

    message: dict[str, Any]

    def json_bytes(self) -> bytes:
        return json.dumps(self.message).encode()

    def sse_frames(self) -> list[bytes]:
        """The same event sequence the real API streams, one frame per element."""
        msg = self.message
        usage = msg["usage"]
        head = {**msg, "content": [], "stop_reason": None, "stop_sequence": None,
                "usage": {**usage, "output_tokens": min(1, usage["output_tokens"])}}
        events: list[tuple[str, dict[str, Any]]] = [
            ("message_start", {"type": "message_start", "message": head}),
            ("ping", {"type": "ping"}),
        ]
        for index, block in enumerate(msg["content"]):
            events.extend(_block_events(index, block))
        events.append(("message_delta", {
            "type": "message_delta",
            "delta": {"stop_reason": msg["stop_reason"], "stop_sequence": msg["stop_sequence"]},
            "usage": usage,
        }))
        events.append(("message_stop", {"type": "message_stop"}))
        return [f"event: {name}\ndata: {json.dumps(data)}\n\n".encode() for name, data in events]


def _block_events(index: int, block: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    if block["type"] == "text":
        start: dict[str, Any] = {"type": "text", "text": ""}
        words = _words(block["text"]) or [""]
        deltas = [{"type": "text_delta", "text": "".join(words[i:i + 3])}
                  for i in range(0, len(words), 3)]
    else:
        start = {"type": "tool_use", "id": block["id"], "name": block["name"], "input": {}}
        raw = json.dumps(block["input"])
        half = len(raw) // 2
        deltas = [{"type": "input_json_delta", "partial_json": part}
                  for part in (raw[:half], raw[half:]) if part]
    events: list[tuple[str, dict[str, Any]]] = [
        ("content_block_start", {"type": "content_block_start", "index": index,
                                 "content_block": start})]
    events += [("content_block_delta", {"type": "content_block_delta", "index": index,
                                        "delta": d}) for d in deltas]
    events.append(("content_block_stop", {"type": "content_block_stop", "index": index}))
    return events


def _digest(request: dict[str, Any]) -> str:
    canonical = json.dumps(request, sort_keys=True, default=str).encode()
    return hashlib.sha256(canonical).hexdigest()


def _limit(blocks: list[dict[str, Any]], max_tokens: int,
           stop_sequences: list[str]) -> tuple[list[dict[str, Any]], int, str, str | None]:
    """Apply stop sequences and max_tokens; returns (blocks, output tokens, stop_reason, seq)."""
    out: list[dict[str, Any]] = []
    used = 0
    for block in blocks:
        if block["type"] == "text":
            text = block["text"]
            for seq in stop_sequences:
                if seq and seq in text:
                    text = text[:text.index(seq)]
                    out.append({"type": "text", "text": text})
                    return out, used + len(_words(text)), "stop_sequence", seq
            words = _words(text)
            if used + len(words) > max_tokens:
                kept = "".join(words[:max_tokens - used])
                if kept:
                    out.append({"type": "text", "text": kept})
                return out, max_tokens, "max_tokens", None
            out.append(block)
            used += len(words)
        else:
            cost = estimate_tokens(json.dumps(block["input"]))
            if used + cost > max_tokens:
                # A half-written tool call is useless to the runtime: stop before it.
                return out, max_tokens, "max_tokens", None
            out.append(block)
            used += cost
    has_tool = any(b["type"] == "tool_use" for b in out)
    return out, used, "tool_use" if has_tool else "end_turn", None


def local_respond(request: dict[str, Any]) -> LocalResponse:
    """Answer one `POST /v1/messages` body."""
    digest = _digest(request)
    blocks = intents.decide(request, tool_id=f"toolu_local_{digest[:20]}")
    max_tokens = request.get("max_tokens")
    if not isinstance(max_tokens, int) or max_tokens < 1:
        max_tokens = DEFAULT_MAX_TOKENS
    stops = [s for s in request.get("stop_sequences") or [] if isinstance(s, str)]
    content, output_tokens, stop_reason, stop_sequence = _limit(blocks, max_tokens, stops)
    prompt_size = json.dumps([request.get("system"), request.get("messages"),
                              request.get("tools")], default=str)
    usage = {"input_tokens": estimate_tokens(prompt_size), "output_tokens": output_tokens,
             "cache_creation_input_tokens": 0, "cache_read_input_tokens": 0,
             "service_tier": "standard"}
    return LocalResponse({
        "id": f"msg_local_{digest[:24]}", "type": "message", "role": "assistant",
        "model": LOCAL_MODEL_ID, "content": content, "stop_reason": stop_reason,
        "stop_sequence": stop_sequence, "usage": usage,
    })


def local_count_tokens(request: dict[str, Any]) -> dict[str, int]:
    prompt = json.dumps([request.get("system"), request.get("messages"), request.get("tools")],
                        default=str)
    return {"input_tokens": estimate_tokens(prompt)}


def local_model_info() -> dict[str, Any]:
    return {"type": "model", "id": LOCAL_MODEL_ID, "display_name": LOCAL_MODEL_NAME,
            "created_at": "2026-01-01T00:00:00Z"}


def local_models_list() -> dict[str, Any]:
    return {"data": [local_model_info()], "has_more": False, "first_id": LOCAL_MODEL_ID,
            "last_id": LOCAL_MODEL_ID}
