"""Attached exec streams over the Engine API, spoken directly with asyncio.

`POST /exec/{id}/start` with `Upgrade: tcp` hijacks the HTTP connection: after the 101 answer the
socket carries our bytes to the process's stdin and, for a non-TTY exec, the process's stdout and
stderr multiplexed in frames (1 byte stream, 3 padding, 4 bytes big-endian length). Doing this on
an asyncio Unix connection avoids a reader thread per process and the docker SDK's buffered
response parser, which can swallow the first output bytes after the upgrade.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import struct
from collections.abc import Awaitable, Callable

from ash.sandbox.base import SandboxError, SandboxGone

_FRAME = struct.Struct(">BxxxL")
STDOUT, STDERR = 1, 2
STDOUT_HIGH_WATER = 8 << 20  # pump stops reading (backpressure) above this much unread stdout
STDERR_KEEP = 1 << 20  # unread stderr beyond this is dropped: diagnostics must not block the agent


async def open_exec_stream(
    socket_path: str, api_version: str, exec_id: str
) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    """Start exec `exec_id` attached; returns the hijacked connection's reader and writer."""
    reader, writer = await asyncio.open_unix_connection(socket_path, limit=1 << 20)
    body = b'{"Detach":false,"Tty":false}'
    head = (
        f"POST /v{api_version}/exec/{exec_id}/start HTTP/1.1\r\nHost: docker\r\n"
        "Content-Type: application/json\r\nConnection: Upgrade\r\nUpgrade: tcp\r\n"
        f"Content-Length: {len(body)}\r\n\r\n"
    )
    try:
        writer.write(head.encode() + body)
        await writer.drain()
        answer = await reader.readuntil(b"\r\n\r\n")
        status = int(answer.split(b" ", 2)[1])
        if status not in (101, 200):
            raise _http_error(status, answer, await _read_body(reader, answer))
    except BaseException:
        writer.close()
        raise
    return reader, writer


async def _read_body(reader: asyncio.StreamReader, head: bytes) -> bytes:
    for line in head.split(b"\r\n"):
        if line.lower().startswith(b"content-length:"):
            return await reader.readexactly(int(line.split(b":", 1)[1]))
    return b""


def _http_error(status: int, head: bytes, body: bytes) -> SandboxError:
    try:
        message = json.loads(body)["message"]
    except (ValueError, KeyError, TypeError):
        message = body.decode(errors="replace") or head.split(b"\r\n", 1)[0].decode()
    cls = SandboxGone if status == 404 else SandboxError
    return cls(f"exec start failed ({status}): {message}")


async def pump(reader: asyncio.StreamReader, sink: Callable[[int, bytes], Awaitable[None]]) -> None:
    """Read frames until EOF and hand each payload to `sink(stream, data)`."""
    while True:
        try:
            kind, size = _FRAME.unpack(await reader.readexactly(_FRAME.size))
        except (asyncio.IncompleteReadError, ConnectionError, OSError):
            return
        try:
            data = await reader.readexactly(size)
        except asyncio.IncompleteReadError as e:
            if e.partial:
                await sink(kind, e.partial)
            return
        except (ConnectionError, OSError):
            return
        await sink(kind, data)


class Pipe:
    """Bytes from one stream of a process, read line-wise; EOF once the stream ends."""

    def __init__(self, keep: int | None = None) -> None:
        self._buf = bytearray()
        self._eof = False
        self._keep = keep  # None: never drop (backpressure instead)
        self._changed = asyncio.Event()
        self._space = asyncio.Event()
        self._space.set()

    def feed(self, data: bytes) -> None:
        self._buf += data
        if self._keep is not None and len(self._buf) > self._keep:
            del self._buf[: len(self._buf) - self._keep]
        if self._keep is None and len(self._buf) > STDOUT_HIGH_WATER:
            self._space.clear()
        self._changed.set()

    def feed_eof(self) -> None:
        self._eof = True
        self._changed.set()

    async def wait_space(self) -> None:
        await self._space.wait()

    async def readline(self) -> bytes:
        while True:
            idx = self._buf.find(b"\n")
            if idx >= 0 or (self._eof and self._buf):
                end = idx + 1 if idx >= 0 else len(self._buf)
                line = bytes(self._buf[:end])
                del self._buf[:end]
                if len(self._buf) <= STDOUT_HIGH_WATER:
                    self._space.set()
                return line
            if self._eof:
                return b""
            self._changed.clear()
            await self._changed.wait()


class Capture:
    """Output of a one-shot exec, each stream capped at `limit` bytes (the rest is drained)."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.out = bytearray()
        self.err = bytearray()

    async def sink(self, kind: int, data: bytes) -> None:
        buf = self.err if kind == STDERR else self.out
        room = self.limit - len(buf)
        if room > 0:
            buf += data[:room]


async def feed_stdin(writer: asyncio.StreamWriter, data: bytes) -> None:
    """Write all of `data`, then half-close so the process sees EOF on stdin."""
    with contextlib.suppress(ConnectionError, OSError):
        writer.write(data)
        await writer.drain()
        if writer.can_write_eof():
            writer.write_eof()


ExecStatus = Callable[[], Awaitable[tuple[bool, int]]]  # -> (running, exit code)


class DockerProcess:
    """A long-lived exec (the agent runtime) spoken to over its stdin/stdout/stderr."""

    def __init__(
        self,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        *,
        status: ExecStatus,
        kill_tree: Callable[[], Awaitable[bool]],
    ) -> None:
        self._reader, self._writer = reader, writer
        self._status, self._kill_tree = status, kill_tree
        self._stdout = Pipe()
        self._stderr = Pipe(keep=STDERR_KEEP)
        self._returncode: int | None = None
        self._killed = False
        self._pump = asyncio.create_task(self._run_pump())

    async def _sink(self, kind: int, data: bytes) -> None:
        if kind == STDERR:
            self._stderr.feed(data)
        else:
            self._stdout.feed(data)
            await self._stdout.wait_space()

    async def _run_pump(self) -> None:
        try:
            await pump(self._reader, self._sink)
        finally:
            self._stdout.feed_eof()
            self._stderr.feed_eof()

    async def write(self, data: bytes) -> None:
        if self._writer.is_closing() or self._pump.done():
            raise SandboxError("process stdin is closed")
        try:
            self._writer.write(data)
            await self._writer.drain()
        except (ConnectionError, OSError) as e:
            raise SandboxError(f"process stdin is closed: {e}") from e

    async def readline(self) -> bytes:
        return await self._stdout.readline()

    async def read_stderr_line(self) -> bytes:
        return await self._stderr.readline()

    @property
    def returncode(self) -> int | None:
        return self._returncode

    async def wait(self) -> int:
        if self._returncode is not None:
            return self._returncode
        # Normally the stream ends when the process exits; but a child that inherited stdout
        # can keep it open, so the engine's view of the exec is checked every few seconds too.
        delay = 0.02
        while True:
            if not self._pump.done():
                await asyncio.wait({self._pump}, timeout=2.0)
            running, code = await self._status()
            if not running:
                break
            if self._pump.done():  # stream closed first: the exit is due within moments
                await asyncio.sleep(delay)
                delay = min(delay * 2, 1.0)
        if self._killed and code == 128 + 9:
            code = -9  # the engine reports 128+signal; match subprocess for our own kill
        self._returncode = code
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(asyncio.shield(self._pump), 1.0)
        self._writer.close()
        return code

    async def kill(self) -> None:
        if self._returncode is not None:
            return
        self._killed = True
        if await self._kill_tree():
            await self.wait()
        # else: the sandbox is paused; the kill lands (and wait() returns) once it resumes
