"""The runner side of the bridge: drive a runtime process (in a sandbox or not) over NDJSON.

The runtime is untrusted (it runs agent code), so every line it prints is decoded strictly and
bad lines are logged and dropped, never allowed to crash the caller.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import itertools
import logging
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from typing import Any

from ash.runtime import protocol as p

log = logging.getLogger("ash.runtime.client")
READ_LIMIT = p.MAX_FRAME_BYTES + (1 << 16)


class RuntimeClosed(ConnectionError):
    """The runtime process ended (or its stdout closed) while we still needed it."""


class RuntimeClient:
    """Commands in, events out; one `query()` iterator per query id."""

    def __init__(self, proc: Any, *, stderr_lines: int = 200,
                 on_stderr: Callable[[str], None] | None = None) -> None:
        self.proc = proc  # an ash.sandbox.base.SandboxProcess
        self.on_stderr = on_stderr  # e.g. the runner's per-sandbox log ring
        self.session_id = ""
        self.engine = ""
        self.stderr_tail: collections.deque[str] = collections.deque(maxlen=stderr_lines)
        self.unrouted: asyncio.Queue[p.Event] = asyncio.Queue()  # events of no live query
        self._queues: dict[str, asyncio.Queue[p.Event | None]] = {}
        self._ready: asyncio.Future[p.ReadyEv] = asyncio.get_running_loop().create_future()
        self._write_lock = asyncio.Lock()
        self._closed = False
        self._ids = itertools.count(1)
        self._tasks = [asyncio.create_task(self._read_events(), name="runtime-stdout"),
                       asyncio.create_task(self._read_stderr(), name="runtime-stderr")]

    # -- reading -------------------------------------------------------------------------------

    async def _read_events(self) -> None:
        try:
            while line := await self.proc.readline():
                try:
                    ev = p.decode_event(line)
                except p.ProtocolError as exc:
                    log.warning("dropping bad frame from runtime: %s", exc)
                    continue
                self._route(ev)
        except Exception as exc:  # noqa: BLE001 - a broken pipe ends the session, not the caller
            log.warning("runtime stdout failed: %s", exc)
        finally:
            self._closed = True
            if not self._ready.done():
                self._ready.set_exception(RuntimeClosed(self._exit_reason()))
            for q in self._queues.values():
                q.put_nowait(None)

    def _route(self, ev: p.Event) -> None:
        if isinstance(ev, p.ReadyEv):
            self.session_id, self.engine = ev.sessionId, ev.engine
            if not self._ready.done():
                self._ready.set_result(ev)
            return
        if isinstance(ev, p.DoneEv) and ev.sessionId:
            self.session_id = ev.sessionId
        queue = self._queues.get(ev.qid)
        if queue is None:
            self.unrouted.put_nowait(ev)
        else:
            queue.put_nowait(ev)

    async def _read_stderr(self) -> None:
        with contextlib.suppress(Exception):
            while line := await self.proc.read_stderr_line():
                text = line.decode(errors="replace").rstrip("\n")
                self.stderr_tail.append(text)
                if self.on_stderr is not None:
                    self.on_stderr(text)
                log.debug("runtime: %s", text)

    def _exit_reason(self) -> str:
        tail = "\n".join(list(self.stderr_tail)[-10:])
        return f"runtime exited (code {self.proc.returncode})" + (f":\n{tail}" if tail else "")

    # -- commands ------------------------------------------------------------------------------

    async def send(self, cmd: p.Command) -> None:
        if self._closed:
            raise RuntimeClosed(self._exit_reason())
        data = p.encode(cmd)
        async with self._write_lock:
            try:
                await self.proc.write(data)
            except (BrokenPipeError, ConnectionError) as exc:
                raise RuntimeClosed(f"cannot write to runtime: {exc}") from exc

    async def wait_ready(self, timeout: float = 10.0) -> p.ReadyEv:
        return await asyncio.wait_for(asyncio.shield(self._ready), timeout)

    async def query(self, prompt: str | list[dict[str, Any]],
                    options: Mapping[str, Any] | None = None, *,
                    qid: str | None = None) -> AsyncIterator[p.Event]:
        """Send a query and yield its events up to and including `done`."""
        qid = qid or f"q{next(self._ids)}"
        if qid in self._queues:
            raise ValueError(f"query id {qid} is already in use")
        queue: asyncio.Queue[p.Event | None] = asyncio.Queue()
        self._queues[qid] = queue
        try:
            await self.send(p.QueryCmd(qid, prompt, dict(options or {})))
            while True:
                ev = await queue.get()
                if ev is None:
                    raise RuntimeClosed(self._exit_reason())
                yield ev
                if isinstance(ev, p.DoneEv):
                    return
        finally:
            self._queues.pop(qid, None)

    async def interrupt(self, qid: str) -> None:
        await self.send(p.InterruptCmd(qid))

    async def permission_response(self, qid: str, request_id: str, behavior: str,
                                  message: str = "",
                                  updated_input: dict[str, Any] | None = None) -> None:
        await self.send(p.PermissionResponseCmd(qid, request_id, behavior, message,
                                                updated_input))

    async def shutdown(self, timeout: float = 10.0) -> int:
        """Ask the runtime to exit; kill it if it does not within `timeout`."""
        with contextlib.suppress(RuntimeClosed):
            await self.send(p.ShutdownCmd(f"shutdown-{next(self._ids)}"))
        try:
            code = await asyncio.wait_for(self.proc.wait(), timeout)
        except TimeoutError:
            await self.proc.kill()
            code = await self.proc.wait()
        await self.aclose()
        return code

    async def aclose(self) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)


class LocalProcess:
    """A plain asyncio subprocess as a SandboxProcess (tests, and running without a sandbox)."""

    def __init__(self, proc: asyncio.subprocess.Process) -> None:
        assert proc.stdin and proc.stdout and proc.stderr, "spawn with stdin/stdout/stderr pipes"
        self._proc = proc

    @classmethod
    async def spawn(cls, argv: Sequence[str], *, env: Mapping[str, str] | None = None,
                    cwd: str | None = None) -> LocalProcess:
        proc = await asyncio.create_subprocess_exec(
            *argv, env=dict(env) if env is not None else None, cwd=cwd,
            stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE, limit=READ_LIMIT, start_new_session=True)
        return cls(proc)

    @property
    def pid(self) -> int:
        return self._proc.pid

    async def write(self, data: bytes) -> None:
        assert self._proc.stdin is not None
        self._proc.stdin.write(data)
        await self._proc.stdin.drain()

    async def readline(self) -> bytes:
        assert self._proc.stdout is not None
        try:
            return await self._proc.stdout.readline()
        except ValueError:
            # Over the limit: asyncio dropped the line (or its head; the tail then fails to
            # decode). Hand back something the decoder rejects, so it is logged and dropped.
            return b"<oversize frame>\n"

    async def read_stderr_line(self) -> bytes:
        assert self._proc.stderr is not None
        try:
            return await self._proc.stderr.readline()
        except ValueError:
            return b"<stderr line too long>\n"

    async def wait(self) -> int:
        return await self._proc.wait()

    @property
    def returncode(self) -> int | None:
        return self._proc.returncode

    async def kill(self) -> None:
        with contextlib.suppress(ProcessLookupError):
            self._proc.kill()
