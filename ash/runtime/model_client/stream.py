"""A streamed Messages API response: server-sent events, accumulated as the SDK does.

The snapshot follows the SDK's `accumulate_event`; blocks and usage come out as the SDK's
`model_dump(mode="json", exclude_none=True)` gave them, as plain JSON.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import AsyncGenerator, AsyncIterator
from dataclasses import dataclass
from typing import Any

from ash.runtime.model_client.errors import ModelStatusError, error_message
from ash.runtime.model_client.http11 import Response

MESSAGE_EVENTS = frozenset({"message_start", "content_block_start", "content_block_delta",
                            "content_block_stop", "message_delta", "message_stop"})
TOOL_INPUT_BLOCKS = frozenset({"tool_use", "server_tool_use"})
DELTA_USAGE_FIELDS = ("input_tokens", "cache_creation_input_tokens", "cache_read_input_tokens",
                      "server_tool_use", "output_tokens_details")


def plain(value: Any, *, drop_none: bool = True) -> Any:
    """A copy of JSON `value` without None-valued keys, as `model_dump(exclude_none=True)`."""
    if isinstance(value, dict):
        return {k: plain(v, drop_none=drop_none) for k, v in value.items()
                if not (drop_none and v is None)}
    if isinstance(value, list):
        return [plain(v, drop_none=drop_none) for v in value]
    return value


def plain_block(block: dict[str, Any]) -> dict[str, Any]:
    """A content block as the SDK dumps it: a tool's `input` is free-form and keeps its nulls."""
    return {k: plain(v, drop_none=k != "input") for k, v in block.items() if v is not None}


def parse_tool_input(text: str) -> Any:
    """Streamed tool input JSON, read as the SDK's partial-mode parser reads it."""
    try:
        return json.loads(text)
    except ValueError:
        return _complete_part(text)


def _complete_part(text: str) -> Any:
    """The finished part of JSON cut short (at max_tokens), its open containers closed.

    Cuts back to the last complete value, as the SDK keeps it; JSON that is broken rather
    than unfinished still raises.
    """
    closers: list[str] = []
    cuts: list[tuple[int, str]] = []  # (end, closers): text[:end] + closers is complete JSON
    in_string = escaped = False
    for i, ch in enumerate(text):
        if in_string:
            if escaped:
                escaped = False
            elif ch == "\\":
                escaped = True
            elif ch == '"':
                in_string = False
        elif ch == '"':
            in_string = True
        elif ch in "{[":
            closers.append("}" if ch == "{" else "]")
            cuts.append((i + 1, "".join(reversed(closers))))
        elif ch in "}]" and closers:
            closers.pop()
            cuts.append((i + 1, "".join(reversed(closers))))
        elif ch == ",":
            cuts.append((i, "".join(reversed(closers))))
    if closers or in_string:
        for end, tail in [(len(text), "".join(reversed(closers))), *reversed(cuts)]:
            with contextlib.suppress(ValueError):
                return json.loads(text[:end] + tail)
    raise ValueError(f"Unable to parse tool parameter JSON from model. JSON: {text}")


class SseDecoder:
    """Server-sent events from body bytes: (event name, data) per dispatched event."""

    def __init__(self) -> None:
        self._tail = b""
        self._event = ""
        self._data: list[str] = []

    def feed(self, chunk: bytes) -> list[tuple[str, str]]:
        """The events that `chunk` completes; lines end in LF, CRLF or CR."""
        buf = self._tail + chunk
        if b"\r" in buf:
            cut = len(buf) - 1 if buf.endswith(b"\r") else len(buf)  # CRLF may span two reads
            buf = buf[:cut].replace(b"\r\n", b"\n").replace(b"\r", b"\n") + buf[cut:]
        complete, newline, self._tail = buf.rpartition(b"\n")
        if not newline:
            return []
        events = []
        for line in complete.decode().split("\n"):
            if not line:
                if self._event:  # the SDK drops events without a name
                    events.append((self._event, "\n".join(self._data)))
                self._event, self._data = "", []
            elif not line.startswith(":"):
                name, _, value = line.partition(":")
                value = value[1:] if value.startswith(" ") else value
                if name == "event":
                    self._event = value
                elif name == "data":
                    self._data.append(value)
        return events


@dataclass(frozen=True)
class Message:
    """The accumulated response, as plain JSON."""

    content: list[dict[str, Any]]
    stop_reason: str | None
    usage: dict[str, Any]


class MessageStream:
    """The message events of one response, as received; `message` accumulates them."""

    def __init__(self, response: Response) -> None:
        self.message: dict[str, Any] = {}  # the snapshot; empty until message_start
        self._response = response
        # Streamed text, thinking or tool input JSON per block index, joined at the block's end
        # (appending to one string would copy it for every delta).
        self._pieces: dict[int, list[str]] = {}
        self._events = self._read_events()

    def __aiter__(self) -> AsyncIterator[dict[str, Any]]:
        return self._events

    async def _read_events(self) -> AsyncGenerator[dict[str, Any], None]:
        decoder = SseDecoder()
        async with contextlib.aclosing(self._response.body()) as chunks:
            async for chunk in chunks:
                for name, data in decoder.feed(chunk):
                    if name == "error":
                        raise self._stream_error(data)
                    if name == "ping" or not data:
                        continue
                    event = json.loads(data)
                    if event.get("type") in MESSAGE_EVENTS:
                        self._accumulate(event)
                        yield event

    def _stream_error(self, data: str) -> ModelStatusError:
        """An `error` event, raised as the SDK does: with the response's (2xx) status."""
        try:
            body: Any = json.loads(data)
            fallback = f"{body}"
        except ValueError:
            body, fallback = data, data or f"Error code: {self._response.status}"
        return ModelStatusError(self._response.status, body, error_message(body, fallback))

    def _accumulate(self, event: dict[str, Any]) -> None:
        kind = event["type"]
        msg = self.message
        if not msg:
            if kind != "message_start":
                raise RuntimeError(f'Unexpected event order, got {kind} before "message_start"')
            self.message = {**plain(event["message"]),
                            "content": [plain_block(b) for b in event["message"]["content"]]}
        elif kind == "content_block_start":
            msg["content"].append(plain_block(event["content_block"]))
        elif kind == "content_block_delta":
            self._apply_delta(msg["content"][event["index"]], event["index"], event["delta"])
        elif kind == "content_block_stop":
            self._finish_block(event["index"])
        elif kind == "message_delta":
            usage = event.get("usage") or {}
            msg["stop_reason"] = event["delta"].get("stop_reason")
            # Cumulative totals: they overwrite; absent ones keep the message_start value.
            msg["usage"]["output_tokens"] = usage.get("output_tokens")
            msg["usage"].update({k: usage[k] for k in DELTA_USAGE_FIELDS
                                 if usage.get(k) is not None})

    def _apply_delta(self, block: dict[str, Any], index: int, delta: dict[str, Any]) -> None:
        kind, block_type = delta.get("type"), block.get("type")
        if (kind, block_type) in (("text_delta", "text"), ("thinking_delta", "thinking")):
            self._pieces.setdefault(index, []).append(delta[block_type])
        elif kind == "input_json_delta" and block_type in TOOL_INPUT_BLOCKS:
            self._pieces.setdefault(index, []).append(delta["partial_json"])
        elif kind == "citations_delta" and block_type == "text":
            block["citations"] = [*block.get("citations", ()), plain(delta["citation"])]
        elif kind == "signature_delta" and block_type == "thinking":
            block["signature"] = delta["signature"]

    def _finish_block(self, index: int) -> None:
        pieces = self._pieces.pop(index, None)
        if pieces is None:
            return
        block = self.message["content"][index]
        if block["type"] in TOOL_INPUT_BLOCKS:
            if text := "".join(pieces):
                block["input"] = parse_tool_input(text)
        else:
            block[block["type"]] += "".join(pieces)  # a text block's `text`, thinking's `thinking`

    def block(self, index: int) -> dict[str, Any]:
        """A finished content block (read it at its content_block_stop)."""
        return plain_block(self.message["content"][index])

    def usage(self) -> dict[str, Any]:
        return plain(self.message["usage"])

    def final_message(self) -> Message:
        if not self.message:
            raise RuntimeError("the model stream ended without a message")
        for index in list(self._pieces):  # blocks the stream never stopped
            self._finish_block(index)
        return Message([plain_block(b) for b in self.message["content"]],
                       self.message.get("stop_reason"), self.usage())

    async def aclose(self) -> None:
        await self._events.aclose()
