"""Token usage of one model call, read from a JSON body or an SSE stream as it passes by."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ash.llm_proxy.pricing import cost_usd, resolve_price

if TYPE_CHECKING:
    from ash.llm_proxy.server import ModelProxy

_METERED_EVENTS = (b"message_start", b"message_delta")


@dataclass(frozen=True)
class UsageRecord:
    """One metered model call, as reported to `on_usage`."""

    sandbox_id: str
    model: str
    input_tokens: int
    output_tokens: int
    cache_creation_tokens: int
    cache_read_tokens: int
    cost_usd: float
    request_id: str | None
    duration_ms: int
    local: bool
    stream: bool = False
    price_known: bool = True  # False: the model was priced at the default tier
    complete: bool = True  # False: the stream ended early (client gone or upstream error)


def _int(value: Any) -> int:
    return int(value) if isinstance(value, (int, float)) and value > 0 else 0


class UsageMeter:
    """Accumulates `usage` and `model` from a Messages API response.

    `feed()` takes raw SSE bytes in arbitrary chunks; only `message_start` and `message_delta`
    frames are parsed, everything else is skipped by a cheap prefix check.
    """

    def __init__(self, requested_model: str | None = None) -> None:
        self.model = requested_model or ""
        self.usage: dict[str, Any] = {}
        self.message_id: str | None = None
        self.stopped = False  # saw message_stop (or a complete JSON message)
        self._buffer = b""

    @property
    def seen(self) -> bool:
        return bool(self.usage)

    def feed(self, chunk: bytes) -> None:
        self._buffer += chunk
        while True:
            cut, size = self._frame_end()
            if cut < 0:
                return
            frame, self._buffer = self._buffer[:cut], self._buffer[cut + size:]
            self._frame(frame)

    def _frame_end(self) -> tuple[int, int]:
        # SSE allows \n\n, \r\n\r\n and \r\r between frames; the API sends \n\n.
        positions = [(self._buffer.find(sep), len(sep)) for sep in (b"\n\n", b"\r\n\r\n")]
        found = [p for p in positions if p[0] >= 0]
        return min(found) if found else (-1, 0)

    def _frame(self, frame: bytes) -> None:
        event = b""
        data: list[bytes] = []
        for line in frame.splitlines():
            if line.startswith(b"event:"):
                event = line[6:].strip()
            elif line.startswith(b"data:"):
                data.append(line[5:].lstrip())
        if event == b"message_stop":
            self.stopped = True
            return
        if event not in _METERED_EVENTS or not data:
            return
        try:
            payload = json.loads(b"\n".join(data))
        except ValueError:
            return
        if event == b"message_start":
            message = payload.get("message") or {}
            self._merge(message.get("usage"))
            self.model = message.get("model") or self.model
            self.message_id = message.get("id") or self.message_id
        else:
            self._merge(payload.get("usage"))

    def feed_json(self, body: bytes) -> None:
        """Meter a non-streaming response body."""
        try:
            payload = json.loads(body)
        except ValueError:
            return
        if isinstance(payload, dict) and payload.get("type") == "message":
            self._merge(payload.get("usage"))
            self.model = payload.get("model") or self.model
            self.message_id = payload.get("id") or self.message_id
            self.stopped = True

    def _merge(self, usage: Any) -> None:
        # message_delta usage is cumulative and may repeat the start's counts: the last value wins.
        if isinstance(usage, dict):
            self.usage.update({k: v for k, v in usage.items() if v is not None})

    def record(self, *, sandbox_id: str, request_id: str | None, duration_ms: int, local: bool,
               stream: bool) -> UsageRecord:
        usage = self.usage
        return UsageRecord(
            sandbox_id=sandbox_id,
            model=self.model,
            input_tokens=_int(usage.get("input_tokens")),
            output_tokens=_int(usage.get("output_tokens")),
            cache_creation_tokens=_int(usage.get("cache_creation_input_tokens")),
            cache_read_tokens=_int(usage.get("cache_read_input_tokens")),
            cost_usd=0.0 if local else cost_usd(self.model, usage),
            request_id=request_id,
            duration_ms=duration_ms,
            local=local,
            stream=stream,
            price_known=local or resolve_price(self.model).known,
            complete=self.stopped,
        )


class CallMeter:
    """One model call's metering as its answer passes through to the sandbox.

    The call is counted, and its usage reported, the moment the answer is complete (its
    `message_stop`, or a whole JSON message): before that last piece is relayed. The sandbox
    cannot finish its query ahead of it, so a turn's runner always has the usage of the turn's
    calls to store with the turn's end (reported after the query, it was written on its own, in
    a transaction of its own, for about a third of the bench's turns). A call that never
    completes is counted by `finish`."""

    def __init__(self, proxy: ModelProxy, meter: UsageMeter, request_id: str | None, started: float, *,
                 local: bool, stream: bool) -> None:
        self.proxy, self.meter, self.request_id, self.started = proxy, meter, request_id, started
        self.local, self.stream = local, stream
        self.counted = False

    async def feed(self, chunk: bytes) -> None:
        """Meter CHUNK of a streamed answer (call before relaying it)."""
        self.meter.feed(chunk)
        if self.meter.stopped:
            await self.finish()

    async def feed_json(self, body: bytes) -> None:
        """Meter a whole JSON answer (call before relaying it)."""
        self.meter.feed_json(body)
        await self.finish()

    async def finish(self) -> None:
        """Count the call now if it has not been (the answer ended early, or was not metered)."""
        if not self.counted:
            self.counted = True
            await self.proxy.record_usage(self.meter, self.request_id, self.started, local=self.local,
                                          stream=self.stream)
