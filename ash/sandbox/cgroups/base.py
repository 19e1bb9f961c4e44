"""The cgroup driver interface shared by the v1 and v2 implementations.

A driver creates one `CgroupGroup` per sandbox. Methods never block for long: waiting
(for a freeze to settle or a group to empty) is left to the caller, which polls.
"""

from __future__ import annotations

import abc
import contextlib
import errno
import os
from dataclasses import dataclass
from pathlib import Path

CPU_PERIOD_US = 100_000


class CgroupError(OSError):
    """A cgroup could not be created, configured or removed."""


@dataclass(frozen=True)
class CgroupLimits:
    memory_bytes: int | None = None  # no swap on top: memory+swap is capped at the same value
    pids: int | None = None
    cpu: float | None = None  # cores


def read_text(path: Path, default: str = "") -> str:
    try:
        return path.read_text()
    except (FileNotFoundError, ProcessLookupError):
        return default


def write_text(path: Path, value: str) -> None:
    """Write one value to a control file (one write(2), as cgroupfs expects)."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o644)
    try:
        os.write(fd, value.encode())
    finally:
        os.close(fd)


def read_int(path: Path, default: int = 0) -> int:
    text = read_text(path).strip()
    if not text or text == "max":
        return default
    try:
        return int(text.split()[0])
    except ValueError:
        return default


def read_keyed(path: Path) -> dict[str, int]:
    """Parse flat keyed files such as memory.events or memory.oom_control."""
    out: dict[str, int] = {}
    for line in read_text(path).splitlines():
        parts = line.split()
        if len(parts) == 2:
            with contextlib.suppress(ValueError):
                out[parts[0]] = int(parts[1])
    return out


def read_pids(path: Path) -> list[int]:
    return [int(x) for x in read_text(path).split() if x.isdigit()]


def subdirs(path: Path) -> set[str]:
    try:
        return {e.name for e in os.scandir(path) if e.is_dir(follow_symlinks=False)}
    except FileNotFoundError:
        return set()


def rmdir_quiet(path: Path) -> bool:
    """Remove one cgroup directory; True when it is gone."""
    try:
        os.rmdir(path)
    except FileNotFoundError:
        return True
    except OSError as exc:
        if exc.errno in (errno.EBUSY, errno.ENOTEMPTY):
            return False
        raise
    return True


class CgroupGroup(abc.ABC):
    """The cgroup(s) of one sandbox, possibly spread over several v1 hierarchies."""

    name: str

    @abc.abstractmethod
    def procs_files(self) -> list[Path]:
        """Every cgroup.procs a new process must write its pid to, before it execs."""

    @abc.abstractmethod
    def freeze(self) -> None: ...

    @abc.abstractmethod
    def thaw(self) -> None: ...

    @abc.abstractmethod
    def is_frozen(self) -> bool:
        """True once every task in the group has actually stopped."""

    @abc.abstractmethod
    def kill_all(self) -> None:
        """Send SIGKILL to every task; call again until `is_empty()`."""

    @abc.abstractmethod
    def pids(self) -> list[int]: ...

    def is_empty(self) -> bool:
        return not self.pids()

    @abc.abstractmethod
    def oom_kills(self) -> int:
        """How many tasks the kernel OOM killer killed in this group."""

    @abc.abstractmethod
    def memory_bytes(self) -> int: ...

    @abc.abstractmethod
    def pid_count(self) -> int: ...

    @abc.abstractmethod
    def cpu_seconds(self) -> float: ...

    @abc.abstractmethod
    def remove(self) -> bool:
        """rmdir every directory; False if some are still busy (retry after reaping)."""


class CgroupDriver(abc.ABC):
    version: str  # "v1", "v2" or "hybrid"

    @abc.abstractmethod
    def create(self, name: str, limits: CgroupLimits) -> CgroupGroup: ...

    @abc.abstractmethod
    def names(self) -> set[str]:
        """Names of the existing groups this driver could have created (for orphan sweeps)."""

    @abc.abstractmethod
    def attach(self, name: str) -> CgroupGroup:
        """A handle on an existing group, e.g. one left behind by a crashed service."""

    def describe(self) -> dict[str, str]:
        """Where groups are created, for logs and /health."""
        return {"version": self.version}
