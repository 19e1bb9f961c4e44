"""Sandboxed child processes: the `SandboxProcess` handle and helpers to read them safely."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
from collections.abc import Callable
from pathlib import Path

STREAM_LIMIT = 64 << 20  # longest NDJSON line accepted from the runtime


def normalize_returncode(code: int | None) -> int | None:
    """Signals as shells and Docker report them: 128 + signal number."""
    if code is not None and code < 0:
        return 128 - code
    return code


class ProcessHandle:
    """A process started in a sandbox, spoken to over pipes (implements SandboxProcess)."""

    def __init__(
        self, proc: asyncio.subprocess.Process, *, own_group: bool, on_exit: Callable[[], None]
    ) -> None:
        self._proc = proc
        self._own_group = own_group  # degraded mode: signal the whole process group
        self._on_exit = on_exit

    @property
    def pid(self) -> int:
        return self._proc.pid

    async def write(self, data: bytes) -> None:
        if self._proc.stdin is None:
            raise BrokenPipeError("stdin is not a pipe")
        self._proc.stdin.write(data)
        await self._proc.stdin.drain()

    @property
    def stdout(self) -> asyncio.StreamReader | None:
        return self._proc.stdout

    @property
    def stderr(self) -> asyncio.StreamReader | None:
        return self._proc.stderr

    async def feed(self, data: bytes) -> None:
        """Write all of `data` then close stdin; a reader that exits early is not an error."""
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):
            await self.write(data)
            await self.close_stdin()

    async def close_stdin(self) -> None:
        if self._proc.stdin is not None and not self._proc.stdin.is_closing():
            self._proc.stdin.close()
            with contextlib.suppress(BrokenPipeError, ConnectionResetError):
                await self._proc.stdin.wait_closed()

    async def readline(self) -> bytes:
        assert self._proc.stdout is not None
        return await self._proc.stdout.readline()

    async def read_stderr_line(self) -> bytes:
        assert self._proc.stderr is not None
        return await self._proc.stderr.readline()

    async def exited(self) -> None:
        """Return once the process itself has exited, even if orphans still hold its pipes.

        (asyncio's Process.wait() also waits for every pipe to close.)
        """
        if self._proc.returncode is not None:
            return
        loop = asyncio.get_running_loop()
        try:
            fd = os.pidfd_open(self._proc.pid)
        except ProcessLookupError:
            fd = None  # already reaped: the returncode is on its way
        if fd is not None:
            done = loop.create_future()
            loop.add_reader(fd, lambda: done.done() or done.set_result(None))
            try:
                await done
            finally:
                loop.remove_reader(fd)
                os.close(fd)
        while self._proc.returncode is None:  # the child watcher reaps it momentarily
            await asyncio.sleep(0.001)

    async def wait(self) -> int:
        await self.exited()
        self._on_exit()
        return normalize_returncode(self._proc.returncode)  # type: ignore[return-value]

    @property
    def returncode(self) -> int | None:
        return normalize_returncode(self._proc.returncode)

    def signal(self, sig: int) -> None:
        if self._proc.returncode is not None:
            return
        with contextlib.suppress(ProcessLookupError, PermissionError):
            if self._own_group:
                os.killpg(self._proc.pid, sig)
            elif sig == signal.SIGKILL:
                kill_bwrap(self._proc.pid)
            else:
                os.kill(self._proc.pid, sig)

    async def kill(self) -> None:
        self.signal(signal.SIGKILL)
        await self.wait()


def children_of(pid: int) -> list[int]:
    kids: list[int] = []
    with contextlib.suppress(FileNotFoundError, ProcessLookupError):
        for task in os.listdir(f"/proc/{pid}/task"):
            with open(f"/proc/{pid}/task/{task}/children") as f:
                kids += [int(x) for x in f.read().split()]
    return kids


def kill_bwrap(pid: int) -> None:
    """Kill a bwrap launch and its pid namespace.

    Killing only the outer bwrap is not enough: in the instant after it clones the
    namespace's init and before that init arms --die-with-parent, the init would survive
    as an orphan. So stop the outer one (no new children), kill its children (the init:
    the kernel then kills the whole namespace), then kill it.
    """
    os.kill(pid, signal.SIGSTOP)
    for child in children_of(pid):
        with contextlib.suppress(ProcessLookupError):
            os.kill(child, signal.SIGKILL)
    os.kill(pid, signal.SIGKILL)


async def read_capped(stream: asyncio.StreamReader | None, cap: int, buf: bytearray) -> None:
    """Read a stream to EOF into `buf`, keeping at most `cap` bytes (what was read so far
    stays in `buf` if the task is cancelled)."""
    if stream is None:
        return
    while chunk := await stream.read(1 << 16):
        room = cap - len(buf)
        if room > 0:
            buf += chunk[:room]
        # past the cap: keep draining so the writer never blocks on a full pipe


def uid_pids(uid: int) -> list[int]:
    """Every live (non-zombie) process whose real uid is `uid`."""
    found = []
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            with open(f"/proc/{entry.name}/status", "rb") as f:
                for line in f:
                    if line.startswith(b"State:") and b"Z" in line.split()[1]:
                        break  # zombies are dead already; their parent reaps them
                    if line.startswith(b"Uid:"):
                        if int(line.split()[1]) == uid:
                            found.append(int(entry.name))
                        break
        except (FileNotFoundError, ProcessLookupError, PermissionError):
            continue
    return found


def signal_uid(uid: int, sig: int) -> int:
    count = 0
    for pid in uid_pids(uid):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, sig)
            count += 1
    return count


def path_is_traversable(path: Path) -> str | None:
    """None if every ancestor lets other uids pass (o+x); otherwise the first that does not."""
    for parent in path.resolve().parents:
        if not os.stat(parent).st_mode & 0o001:
            return str(parent)
    return None
