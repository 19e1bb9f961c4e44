"""The runtime process: bridge commands on stdin, events on stdout, logs on stderr."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import sys
import uuid
from dataclasses import replace
from typing import Any

from ash.runtime import protocol as p
from ash.runtime.config import RuntimeConfig
from ash.runtime.engines import Engine, PermissionAnswer, PermissionAsk
from ash.runtime.options import OptionsError, QueryOptions

log = logging.getLogger("ash.runtime")


class FrameReader(asyncio.Protocol):
    """Newline-delimited frames from the bridge's input pipe, read on the event loop; oversize
    lines are skipped (and reported) instead of buffered without bound."""

    def __init__(self, limit: int = p.MAX_FRAME_BYTES) -> None:
        self.queue: asyncio.Queue[bytes | None] = asyncio.Queue()
        self._limit = limit
        self._buf = bytearray()
        self._skipping = False
        self._ended = False

    @classmethod
    async def open(cls, fd: int) -> FrameReader:
        reader = cls()
        await asyncio.get_running_loop().connect_read_pipe(lambda: reader, os.fdopen(fd, "rb", buffering=0))
        return reader

    def data_received(self, chunk: bytes) -> None:
        buf = self._buf
        buf += chunk
        while (nl := buf.find(b"\n")) >= 0:
            line = bytes(buf[:nl])
            del buf[: nl + 1]
            if self._skipping:
                self._skipping = False  # the rest of an oversize frame
            elif len(line) > self._limit:
                self.queue.put_nowait(b"\0oversize")
            else:
                self.queue.put_nowait(line)
        if len(buf) > self._limit:
            if not self._skipping:
                self.queue.put_nowait(b"\0oversize")
            buf.clear()
            self._skipping = True

    def eof_received(self) -> bool:
        self._end()
        return False

    def connection_lost(self, exc: Exception | None) -> None:
        self._end()

    def _end(self) -> None:
        if not self._ended:
            self._ended = True
            self.queue.put_nowait(None)


async def open_frame_writer(fd: int) -> asyncio.StreamWriter:
    """The bridge's output pipe as a stream: a frame is written on the loop (the pipe takes it at
    once unless the host has fallen behind; then `drain` waits), not through a thread per frame."""
    loop = asyncio.get_running_loop()
    transport, protocol = await loop.connect_write_pipe(
        lambda: asyncio.streams.FlowControlMixin(loop), os.fdopen(fd, "wb", buffering=0))
    return asyncio.StreamWriter(transport, protocol, None, loop)


class BridgeIO:
    """EngineIO for one query: routes messages and permission prompts to the bridge."""

    def __init__(self, server: RuntimeServer, qid: str) -> None:
        self.server, self.qid = server, qid
        self.pending: dict[str, asyncio.Future[PermissionAnswer]] = {}

    async def emit(self, message: dict[str, Any], *, hold: bool = False) -> None:
        # A result is a query's last message and its `done` follows at once (_run): one write.
        hold = hold or message.get("type") == "result"
        await self.server.send(p.MessageEv(self.qid, message), hold=hold)

    async def error(self, text: str, code: str = "engine_error") -> None:
        await self.server.send(p.ErrorEv(self.qid, text, code))

    async def ask(self, request: PermissionAsk, timeout_ms: int) -> PermissionAnswer:
        request_id = "perm_" + uuid.uuid4().hex
        fut: asyncio.Future[PermissionAnswer] = asyncio.get_running_loop().create_future()
        self.pending[request_id] = fut
        await self.server.send(p.PermissionRequestEv(
            self.qid, request_id, request.tool_use_id, request.tool_name, request.input,
            request.description, request.suggestions, timeout_ms))
        try:
            return await asyncio.wait_for(fut, timeout_ms / 1000)
        except TimeoutError:
            return PermissionAnswer("deny", "Permission request timed out", timed_out=True)
        finally:
            self.pending.pop(request_id, None)


class RuntimeServer:
    def __init__(self, config: RuntimeConfig, engine: Engine, out: asyncio.StreamWriter) -> None:
        self.config, self.engine, self.out = config, engine, out
        self._engines: dict[str, Engine] = {engine.name: engine}
        self._write_lock = asyncio.Lock()
        self._held: list[bytes] = []  # frames sent with hold=True, written with the next frame
        self._query: asyncio.Task[None] | None = None
        self._io: BridgeIO | None = None

    async def send(self, frame: p.Event, *, hold: bool = False) -> None:
        """Write FRAME to the bridge. A HOLD frame waits for the next send and leaves in the same
        write, so the host gets both at once (and stores them in one transaction)."""
        try:
            data = p.encode(frame)
        except (p.ProtocolError, TypeError, ValueError) as exc:
            data = p.encode(p.ErrorEv(getattr(frame, "qid", ""), f"unencodable event: {exc}",
                                      "engine_error"))
        # Shielded: a cancelled query must not leave half a frame behind for the next writer.
        await asyncio.shield(self._write(data, hold))

    async def _write(self, data: bytes, hold: bool) -> None:
        async with self._write_lock:
            if hold:
                self._held.append(data)
                return
            if self._held:
                data = b"".join([*self._held, data])
                self._held.clear()
            self.out.write(data)
            await self.out.drain()

    async def serve(self, reader: FrameReader) -> int:
        await self.send(p.ReadyEv(self.engine.name, self.engine.session_id))
        while True:
            line = await reader.queue.get()
            if line is None:
                log.info("stdin closed; exiting")
                await self._stop_query()
                return 0
            if line == b"\0oversize":
                await self.send(p.ErrorEv("", f"frame exceeds {p.MAX_FRAME_BYTES} bytes",
                                          "bad_frame"))
                continue
            if not line.strip():
                continue
            try:
                cmd = p.decode_command(line)
            except p.ProtocolError as exc:
                await self.send(p.ErrorEv(exc.qid, str(exc), "bad_frame"))
                continue
            if isinstance(cmd, p.ShutdownCmd):
                await self._stop_query()
                await self.send(p.DoneEv(cmd.qid, self.engine.session_id))
                return 0
            await self._handle(cmd)

    async def _handle(self, cmd: p.Command) -> None:
        # The query counts as running until just before its `done` is written, so a client
        # that answers `done` with a new query is never refused.
        running = self._io is not None
        if isinstance(cmd, p.QueryCmd):
            if running:
                await self.send(p.ErrorEv(cmd.qid, "a query is already running", "busy"))
                await self.send(p.DoneEv(cmd.qid, self.engine.session_id))
                return
            try:
                opts = QueryOptions.from_wire(cmd.options)
                engine = self._engine_for(opts)
            except (OptionsError, RuntimeError) as exc:
                await self.send(p.ErrorEv(cmd.qid, str(exc), "bad_options"))
                await self.send(p.DoneEv(cmd.qid, self.engine.session_id))
                return
            self._io = BridgeIO(self, cmd.qid)
            self._query = asyncio.create_task(self._run(engine, cmd, opts, self._io))
        elif isinstance(cmd, p.InterruptCmd):
            if self._io is None or self._io.qid != cmd.qid:
                await self.send(p.ErrorEv(cmd.qid, "no such running query", "unknown_query"))
                return
            assert self._query is not None
            self._query.cancel()
        elif isinstance(cmd, p.PermissionResponseCmd):
            fut = self._io.pending.get(cmd.request_id) if (
                self._io is not None and self._io.qid == cmd.qid) else None
            if fut is None or fut.done():
                await self.send(p.ErrorEv(cmd.qid, f"no pending permission request "
                                                   f"{cmd.request_id}", "unknown_request"))
                return
            fut.set_result(PermissionAnswer(cmd.behavior, cmd.message, cmd.updatedInput))

    def _engine_for(self, opts: QueryOptions) -> Engine:
        """The engine a query asks for (`options.engine`), created on first use."""
        name = opts.engine or self.config.engine
        if name not in self._engines:
            self._engines[name] = make_engine(replace(self.config, engine=name))
        self.engine = self._engines[name]
        return self.engine

    async def _run(self, engine: Engine, cmd: p.QueryCmd, opts: QueryOptions,
                   io: BridgeIO) -> None:
        try:
            # An interrupt cancels this task; the engine turns that into an "interrupted"
            # result and returns normally.
            await engine.run(cmd.prompt, opts, io)
        except Exception as exc:  # noqa: BLE001 - reported on the bridge, the process lives on
            log.exception("query %s crashed", cmd.qid)
            await self.send(p.ErrorEv(cmd.qid, f"{type(exc).__name__}: {exc}", "engine_error"))
        finally:
            self._io = None
            await self.send(p.DoneEv(cmd.qid, self.engine.session_id))

    async def _stop_query(self) -> None:
        if self._query is not None and not self._query.done():
            self._query.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._query
        for engine in self._engines.values():
            await engine.close()


def _claim_stdio() -> tuple[int, int]:
    """Move the protocol onto private fds; fds 0/1 become /dev/null and stderr, so tool
    subprocesses and stray prints can never read or corrupt bridge frames."""
    in_fd, out_fd = os.dup(0), os.dup(1)
    os.set_inheritable(in_fd, False)
    os.set_inheritable(out_fd, False)
    devnull = os.open(os.devnull, os.O_RDONLY)
    os.dup2(devnull, 0)
    os.close(devnull)
    os.dup2(2, 1)
    sys.stdout = sys.stderr
    return in_fd, out_fd


def make_engine(config: RuntimeConfig) -> Engine:
    if config.engine == "claude-code":
        from ash.runtime.engines.claude_code import ClaudeCodeEngine
        return ClaudeCodeEngine(config)
    from ash.runtime.engines.native import NativeEngine
    return NativeEngine(config)


async def amain(config: RuntimeConfig | None = None) -> int:
    config = config or RuntimeConfig.from_env()
    in_fd, out_fd = _claim_stdio()
    engine = make_engine(config)
    server = RuntimeServer(config, engine, await open_frame_writer(out_fd))
    return await server.serve(await FrameReader.open(in_fd))


def main() -> int:
    logging.basicConfig(stream=sys.stderr, level=os.environ.get("ASH_LOG_LEVEL", "INFO"),
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    return asyncio.run(amain())
