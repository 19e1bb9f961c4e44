"""The bridge protocol between the runner and the runtime: newline-delimited JSON frames.

Commands (runner -> runtime) carry `cmd`; events (runtime -> runner) carry `ev`. Every frame has
a correlation id `qid` (a string; "" on `ready` and on errors about frames that had none). A
query's events all carry its qid and always end with exactly one `done`. Decoding is strict:
unknown kinds, unknown keys, wrong types and frames over MAX_FRAME_BYTES are rejected.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

PROTOCOL_VERSION = 1
MAX_FRAME_BYTES = 16 << 20  # per frame, newline excluded
PERMISSION_BEHAVIORS = ("allow", "deny")


class ProtocolError(ValueError):
    """A frame could not be decoded; `qid` is the frame's id when it was readable."""

    def __init__(self, message: str, qid: str = "") -> None:
        super().__init__(message)
        self.qid = qid


# -- commands -----------------------------------------------------------------------------------

@dataclass(frozen=True)
class QueryCmd:
    qid: str
    prompt: str | list[dict[str, Any]]
    options: dict[str, Any] = field(default_factory=dict)  # validated by options.QueryOptions
    cmd: str = "query"


@dataclass(frozen=True)
class InterruptCmd:
    qid: str
    cmd: str = "interrupt"


@dataclass(frozen=True)
class PermissionResponseCmd:
    qid: str
    request_id: str
    behavior: str  # "allow" | "deny"
    message: str = ""
    updatedInput: dict[str, Any] | None = None  # noqa: N815 - wire name
    cmd: str = "permission_response"


@dataclass(frozen=True)
class ShutdownCmd:
    qid: str = ""
    cmd: str = "shutdown"


Command = QueryCmd | InterruptCmd | PermissionResponseCmd | ShutdownCmd


# -- events -------------------------------------------------------------------------------------

@dataclass(frozen=True)
class ReadyEv:
    engine: str
    sessionId: str  # noqa: N815 - wire name; "" before the first query
    protocol: int = PROTOCOL_VERSION
    qid: str = ""
    ev: str = "ready"


@dataclass(frozen=True)
class MessageEv:
    qid: str
    data: dict[str, Any]  # one Claude-Agent-SDK-shaped message
    ev: str = "message"


@dataclass(frozen=True)
class PermissionRequestEv:
    qid: str
    request_id: str
    tool_use_id: str
    tool_name: str
    input: dict[str, Any]
    description: str = ""
    suggestions: list[dict[str, Any]] = field(default_factory=list)
    timeout_ms: int = 0
    ev: str = "permission_request"


@dataclass(frozen=True)
class ErrorEv:
    qid: str
    error: str
    code: str = "error"  # bad_frame | busy | unknown_query | unknown_request | engine_error
    ev: str = "error"


@dataclass(frozen=True)
class DoneEv:
    qid: str
    sessionId: str  # noqa: N815 - wire name
    ev: str = "done"


Event = ReadyEv | MessageEv | PermissionRequestEv | ErrorEv | DoneEv

COMMANDS: dict[str, type] = {"query": QueryCmd, "interrupt": InterruptCmd,
                             "permission_response": PermissionResponseCmd, "shutdown": ShutdownCmd}
EVENTS: dict[str, type] = {"ready": ReadyEv, "message": MessageEv,
                           "permission_request": PermissionRequestEv, "error": ErrorEv,
                           "done": DoneEv}

# Field name -> accepted JSON types, per frame kind; "?" suffix marks optional fields.
_SCHEMAS: dict[str, dict[str, tuple[type, ...]]] = {
    "query": {"qid": (str,), "prompt": (str, list), "options?": (dict,)},
    "interrupt": {"qid": (str,)},
    "permission_response": {"qid": (str,), "request_id": (str,), "behavior": (str,),
                            "message?": (str,), "updatedInput?": (dict, type(None))},
    "shutdown": {"qid?": (str,)},
    "ready": {"qid": (str,), "engine": (str,), "sessionId": (str,), "protocol": (int,)},
    "message": {"qid": (str,), "data": (dict,)},
    "permission_request": {"qid": (str,), "request_id": (str,), "tool_use_id": (str,),
                           "tool_name": (str,), "input": (dict,), "description?": (str,),
                           "suggestions?": (list,), "timeout_ms?": (int,)},
    "error": {"qid": (str,), "error": (str,), "code?": (str,)},
    "done": {"qid": (str,), "sessionId": (str,)},
}


def encode(frame: Command | Event) -> bytes:
    """One frame as a JSON line (compact, UTF-8, trailing newline)."""
    tag = "cmd" if hasattr(frame, "cmd") else "ev"
    payload = {tag: getattr(frame, tag), "qid": frame.qid}
    payload.update((k, v) for k, v in frame.__dict__.items() if v is not None)
    data = json.dumps(payload, separators=(",", ":"), ensure_ascii=False).encode()
    if len(data) > MAX_FRAME_BYTES:
        raise ProtocolError(f"frame of {len(data)} bytes exceeds {MAX_FRAME_BYTES}",
                            payload.get("qid", ""))
    return data + b"\n"


def decode_command(line: bytes | str) -> Command:
    return _decode(line, "cmd", COMMANDS)  # type: ignore[return-value]


def decode_event(line: bytes | str) -> Event:
    return _decode(line, "ev", EVENTS)  # type: ignore[return-value]


def _decode(line: bytes | str, tag: str, kinds: dict[str, type]) -> Any:
    raw = line.encode() if isinstance(line, str) else line
    if len(raw.rstrip(b"\r\n")) > MAX_FRAME_BYTES:
        raise ProtocolError(f"frame exceeds {MAX_FRAME_BYTES} bytes")
    try:
        obj = json.loads(raw)
    except (ValueError, UnicodeDecodeError) as exc:
        raise ProtocolError(f"malformed JSON: {exc}") from None
    if not isinstance(obj, dict):
        raise ProtocolError("frame must be a JSON object")
    qid = obj.get("qid") if isinstance(obj.get("qid"), str) else ""
    other = "ev" if tag == "cmd" else "cmd"
    if other in obj:
        raise ProtocolError(f"frame carries {other!r}, expected {tag!r}", qid)
    kind = obj.get(tag)
    if kind not in kinds:
        raise ProtocolError(f"unknown {tag} {kind!r}", qid)
    schema = _SCHEMAS[kind]
    allowed = {name.rstrip("?") for name in schema} | {tag}
    unknown = sorted(set(obj) - allowed)
    if unknown:
        raise ProtocolError(f"unknown field(s) in {kind}: {', '.join(unknown)}", qid)
    for name, types in schema.items():
        key = name.rstrip("?")
        if key not in obj:
            if not name.endswith("?"):
                raise ProtocolError(f"{kind}: missing field {key!r}", qid)
            continue
        value = obj[key]
        # bool is an int subclass in Python but not a JSON number.
        if not isinstance(value, types) or (isinstance(value, bool) and bool not in types):
            raise ProtocolError(f"{kind}: field {key!r} has the wrong type", qid)
    if kind == "permission_response" and obj["behavior"] not in PERMISSION_BEHAVIORS:
        raise ProtocolError("permission_response: behavior must be allow or deny", qid)
    if kind == "query" and isinstance(obj["prompt"], list) and not all(
            isinstance(b, dict) for b in obj["prompt"]):
        raise ProtocolError("query: prompt blocks must be objects", qid)
    fields = {k: v for k, v in obj.items() if k != tag}
    return kinds[kind](**fields)
