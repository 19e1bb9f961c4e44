"""Host-side view of a local container's cgroups: cheap stats and process-tree kills.

The engine is local (Unix socket), so its containers are host processes. Reading cgroup files
takes microseconds where the Engine API's stats endpoint samples for a second on dockerd.
Handles cgroup v1 (per-controller hierarchies, as on these hosts) and v2.
"""

from __future__ import annotations

import contextlib
import os
import signal
import time
from dataclasses import dataclass
from pathlib import Path

from ash.sandbox.base import FREEZE_RETRY_SECONDS, SandboxStats

CGROUP_ROOT = Path("/sys/fs/cgroup")


@dataclass(frozen=True)
class ContainerCgroups:
    memory: Path | None
    pids: Path | None
    cpuacct: Path | None
    v2: Path | None  # unified group with controllers (pure v2 hosts)
    freezer: Path | None = None  # v1 freezer group
    unified: Path | None = None  # the cgroup2 group, for cgroup.freeze where v1 has no freezer

    @classmethod
    def of_pid(cls, pid: int) -> ContainerCgroups:
        """The cgroups of host process `pid` (the container's init)."""
        found: dict[str, Path] = {}
        v2: Path | None = None
        unified: Path | None = None
        for line in Path(f"/proc/{pid}/cgroup").read_text().splitlines():
            _, controllers, path = line.split(":", 2)
            rel = path.lstrip("/")
            if not controllers:
                for root in (CGROUP_ROOT, CGROUP_ROOT / "unified"):
                    if (root / rel / "cgroup.freeze").exists():
                        unified = root / rel
                        if (unified / "memory.current").exists():
                            v2 = unified
                        break
                continue
            for ctl in controllers.split(","):
                if ctl in ("memory", "pids", "cpuacct", "freezer"):
                    found[ctl] = CGROUP_ROOT / controllers / rel
        return cls(
            found.get("memory"),
            found.get("pids"),
            found.get("cpuacct"),
            v2,
            found.get("freezer"),
            unified,
        )

    def is_frozen(self) -> bool:
        if self.freezer is not None:
            return (self.freezer / "freezer.state").read_text().strip() != "THAWED"
        if self.unified is not None:
            return "frozen 1" in (self.unified / "cgroup.events").read_text()
        return False

    @property
    def can_freeze(self) -> bool:
        return self.freezer is not None or self.unified is not None

    def freeze(self, timeout: float = 5.0) -> None:
        """Freeze the group directly (not through the engine); wait until it is frozen."""
        if self.freezer is not None:
            ask = lambda: (self.freezer / "freezer.state").write_text("FROZEN")  # noqa: E731
            done = lambda: (self.freezer / "freezer.state").read_text().strip() == "FROZEN"  # noqa: E731
        elif self.unified is not None:
            ask = lambda: (self.unified / "cgroup.freeze").write_text("1")  # noqa: E731
            done = lambda: "frozen 1" in (self.unified / "cgroup.events").read_text()  # noqa: E731
        else:
            raise OSError("no freezer for this container")
        ask()
        deadline = time.monotonic() + timeout
        next_ask = time.monotonic() + FREEZE_RETRY_SECONDS
        while not done():
            now = time.monotonic()
            if now > deadline:
                self.thaw()
                raise TimeoutError("container did not freeze")
            if now > next_ask:
                ask()
                next_ask = now + FREEZE_RETRY_SECONDS
            time.sleep(0.001)

    def thaw(self) -> None:
        if self.freezer is not None:
            (self.freezer / "freezer.state").write_text("THAWED")
        elif self.unified is not None:
            (self.unified / "cgroup.freeze").write_text("0")

    def procs(self) -> list[int]:
        for group in (self.pids, self.memory, self.v2):
            if group is not None:
                with contextlib.suppress(OSError):
                    text = (group / "cgroup.procs").read_text()
                    return [int(p) for p in text.split()]
        return []

    def oom_kills(self) -> int:
        if self.v2 is not None:
            return _keyed(self.v2 / "memory.events").get("oom_kill", 0)
        if self.memory is not None:
            return _keyed(self.memory / "memory.oom_control").get("oom_kill", 0)
        return 0

    def stats(self) -> SandboxStats:
        st = SandboxStats(oom_kills=self.oom_kills())
        if self.v2 is not None:
            st.memory_bytes = _int(self.v2 / "memory.current")
            st.pids = _int(self.v2 / "pids.current")
            st.cpu_seconds = _keyed(self.v2 / "cpu.stat").get("usage_usec", 0) / 1e6
            return st
        if self.memory is not None:
            st.memory_bytes = _int(self.memory / "memory.usage_in_bytes")
        if self.pids is not None:
            st.pids = _int(self.pids / "pids.current")
        if self.cpuacct is not None:
            st.cpu_seconds = _int(self.cpuacct / "cpuacct.usage") / 1e9
        return st


def _int(path: Path) -> int:
    try:
        return int(path.read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return 0


def _keyed(path: Path) -> dict[str, int]:
    out: dict[str, int] = {}
    with contextlib.suppress(OSError):
        for line in path.read_text().splitlines():
            key, _, value = line.partition(" ")
            with contextlib.suppress(ValueError):
                out[key] = int(value)
    return out


def _ppid(pid: int) -> int | None:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # The command name may hold spaces and parentheses: fields start after the last ')'.
    return int(stat[stat.rindex(")") + 2 :].split()[1])


def kill_subtree(groups: ContainerCgroups, root_pid: int) -> int:
    """SIGKILL `root_pid` and its descendants among the container's processes.

    The group is frozen meanwhile (unless it already is) so that the tree cannot fork or
    re-parent underneath; the signals land when it thaws. Returns how many were signalled.
    """
    frozen_here = groups.can_freeze and not groups.is_frozen()
    if frozen_here:
        groups.freeze()
    try:
        return _kill_tree(groups, root_pid)
    finally:
        if frozen_here:
            groups.thaw()


def _kill_tree(groups: ContainerCgroups, root_pid: int) -> int:
    members = groups.procs()
    if root_pid not in members:
        return 0  # exited already; the pid may be reused by an unrelated host process
    children: dict[int, list[int]] = {}
    for pid in members:
        parent = _ppid(pid)
        if parent is not None:
            children.setdefault(parent, []).append(pid)
    todo, victims = [root_pid], []
    while todo:
        pid = todo.pop()
        victims.append(pid)
        todo.extend(children.get(pid, []))
    count = 0
    for pid in victims:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
            count += 1
    return count
