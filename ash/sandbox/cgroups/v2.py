"""cgroup v2 groups: limits through controllers, freeze and kill through core files.

On a hybrid host (v1 controllers, an empty cgroup2 at /sys/fs/cgroup/unified) the same
class is used with `limits=False` as the freeze/kill half of the v1 driver.
"""

from __future__ import annotations

import contextlib
import os
import signal
from pathlib import Path

from .base import (
    CPU_PERIOD_US,
    CgroupDriver,
    CgroupError,
    CgroupGroup,
    CgroupLimits,
    read_int,
    read_keyed,
    read_pids,
    read_text,
    rmdir_quiet,
    subdirs,
    write_text,
)


class V2Group(CgroupGroup):
    def __init__(self, path: Path, name: str) -> None:
        self.path = path
        self.name = name

    def apply_limits(self, limits: CgroupLimits) -> None:
        if limits.memory_bytes is not None:
            write_text(self.path / "memory.max", str(limits.memory_bytes))
            write_text(self.path / "memory.swap.max", "0")
        if limits.pids is not None:
            write_text(self.path / "pids.max", str(limits.pids))
        if limits.cpu is not None:
            quota = max(1000, int(limits.cpu * CPU_PERIOD_US))
            write_text(self.path / "cpu.max", f"{quota} {CPU_PERIOD_US}")

    def procs_files(self) -> list[Path]:
        return [self.path / "cgroup.procs"]

    def freeze(self) -> None:
        write_text(self.path / "cgroup.freeze", "1")

    def thaw(self) -> None:
        write_text(self.path / "cgroup.freeze", "0")

    def is_frozen(self) -> bool:
        return read_keyed(self.path / "cgroup.events").get("frozen") == 1

    def kill_all(self) -> None:
        if (self.path / "cgroup.kill").exists():
            write_text(self.path / "cgroup.kill", "1")
            return
        # Kernels before 5.14 have no cgroup.kill: freeze, signal every task, thaw.
        self.freeze()
        for pid in self.pids():
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        self.thaw()

    def pids(self) -> list[int]:
        return read_pids(self.path / "cgroup.procs")

    def oom_kills(self) -> int:
        return read_keyed(self.path / "memory.events").get("oom_kill", 0)

    def memory_bytes(self) -> int:
        return read_int(self.path / "memory.current")

    def pid_count(self) -> int:
        if (self.path / "pids.current").exists():
            return read_int(self.path / "pids.current")
        return len(self.pids())

    def cpu_seconds(self) -> float:
        return read_keyed(self.path / "cpu.stat").get("usage_usec", 0) / 1e6

    def remove(self) -> bool:
        return rmdir_quiet(self.path)


class V2Driver(CgroupDriver):
    """Creates `<parent>/<name>`; with `limits` the memory, pids and cpu controllers are enabled."""

    version = "v2"

    def __init__(self, parent: Path, *, limits: bool = True) -> None:
        self.parent = parent
        self.limits = limits
        self._prepared = False

    def _prepare(self) -> None:
        if self._prepared:
            return
        self.parent.mkdir(exist_ok=True)
        if self.limits:
            # Controllers must be enabled on every level from the mount down to our parent.
            missing = {"memory", "pids", "cpu"} - set(
                read_text(self.parent / "cgroup.controllers").split()
            )
            if missing:
                up = self.parent.parent
                write_text(
                    up / "cgroup.subtree_control", " ".join(f"+{c}" for c in sorted(missing))
                )
            write_text(self.parent / "cgroup.subtree_control", "+memory +pids +cpu")
        self._prepared = True

    def create(self, name: str, limits: CgroupLimits) -> V2Group:
        try:
            self._prepare()
            path = self.parent / name
            path.mkdir()
        except OSError as exc:
            raise CgroupError(
                exc.errno, f"cannot create cgroup {self.parent / name}: {exc}"
            ) from exc
        group = V2Group(path, name)
        if self.limits:
            try:
                group.apply_limits(limits)
            except OSError as exc:
                group.remove()
                raise CgroupError(exc.errno, f"cannot set limits on {path}: {exc}") from exc
        return group

    def names(self) -> set[str]:
        return subdirs(self.parent)

    def attach(self, name: str) -> V2Group:
        return V2Group(self.parent / name, name)

    def describe(self) -> dict[str, str]:
        return {"version": self.version, "parent": str(self.parent), "limits": str(self.limits)}
