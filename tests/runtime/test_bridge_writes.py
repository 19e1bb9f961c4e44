"""The bridge's writes, in process: which frames wait to leave with the next one."""

from __future__ import annotations

import json

from ash.runtime import protocol as p
from ash.runtime.server import BridgeIO, RuntimeServer


class Writer:
    def __init__(self) -> None:
        self.writes: list[bytes] = []

    def write(self, data: bytes) -> None:
        self.writes.append(data)

    async def drain(self) -> None:
        pass


class Engine:
    name = "native"
    session_id = "s"


def frames(data: bytes) -> list[str]:
    return [json.loads(line)["ev"] + ":" + json.loads(line).get("data", {}).get("type", "")
            for line in data.splitlines()]


async def test_held_frames_and_the_result_leave_with_the_next_frame() -> None:
    out = Writer()
    server = RuntimeServer(None, Engine(), out)  # type: ignore[arg-type]
    io = BridgeIO(server, "q1")
    await io.emit({"type": "assistant", "message": {"content": []}})
    assert len(out.writes) == 1  # not held: written at once
    await io.emit({"type": "assistant", "message": {"content": []}}, hold=True)
    await io.emit({"type": "result", "subtype": "success"})  # a query's last message: held too
    assert len(out.writes) == 1
    await server.send(p.DoneEv("q1", "s"))
    assert len(out.writes) == 2
    assert frames(out.writes[1]) == ["message:assistant", "message:result", "done:"]
