"""cgroup v1 groups, one directory per controller hierarchy.

Limits live in the v1 `memory`, `pids` and `cpu` hierarchies. Freezing and killing use a
v2 core group when the host mounts cgroup2 next to v1 (hybrid), otherwise the v1 freezer
and a kill loop over `cgroup.procs`.
"""

from __future__ import annotations

import contextlib
import os
import signal
from collections.abc import Mapping
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
from .v2 import V2Driver, V2Group

LIMIT_CONTROLLERS = ("memory", "pids", "cpu")
OPTIONAL_CONTROLLERS = ("freezer", "cpuacct")


class V1Group(CgroupGroup):
    def __init__(self, name: str, paths: Mapping[str, Path], core: V2Group | None) -> None:
        self.name = name
        self.paths = dict(paths)  # controller -> this group's directory
        self.core = core

    def apply_limits(self, limits: CgroupLimits) -> None:
        mem = self.paths.get("memory")
        if mem is not None and limits.memory_bytes is not None:
            write_text(mem / "memory.limit_in_bytes", str(limits.memory_bytes))
            # memory+swap equal to memory: the group may not swap at all.
            if (mem / "memory.memsw.limit_in_bytes").exists():
                write_text(mem / "memory.memsw.limit_in_bytes", str(limits.memory_bytes))
        pids = self.paths.get("pids")
        if pids is not None and limits.pids is not None:
            write_text(pids / "pids.max", str(limits.pids))
        cpu = self.paths.get("cpu")
        if cpu is not None and limits.cpu is not None:
            write_text(cpu / "cpu.cfs_period_us", str(CPU_PERIOD_US))
            write_text(cpu / "cpu.cfs_quota_us", str(max(1000, int(limits.cpu * CPU_PERIOD_US))))

    def procs_files(self) -> list[Path]:
        files = [p / "cgroup.procs" for p in dict.fromkeys(self.paths.values())]
        if self.core is not None:
            files += self.core.procs_files()
        return files

    def freeze(self) -> None:
        if self.core is not None:
            self.core.freeze()
        elif "freezer" in self.paths:
            write_text(self.paths["freezer"] / "freezer.state", "FROZEN")
        else:
            raise CgroupError(0, "no freezer available")

    def thaw(self) -> None:
        if self.core is not None:
            self.core.thaw()
        elif "freezer" in self.paths:
            write_text(self.paths["freezer"] / "freezer.state", "THAWED")

    def is_frozen(self) -> bool:
        if self.core is not None:
            return self.core.is_frozen()
        return read_text(self.paths["freezer"] / "freezer.state").strip() == "FROZEN"

    def kill_all(self) -> None:
        if self.core is not None and (self.core.path / "cgroup.kill").exists():
            self.core.kill_all()
            return
        # No cgroup.kill: stop the group so nothing can fork while we signal it.
        frozen = "freezer" in self.paths or self.core is not None
        if frozen:
            self.freeze()
        for pid in self.pids():
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        if frozen:
            self.thaw()

    def _any_path(self) -> Path:
        return self.paths.get("pids") or self.paths.get("memory") or next(iter(self.paths.values()))

    def pids(self) -> list[int]:
        seen: set[int] = set()
        for path in self.procs_files():
            seen.update(read_pids(path))
        return sorted(seen)

    def oom_kills(self) -> int:
        mem = self.paths.get("memory")
        return read_keyed(mem / "memory.oom_control").get("oom_kill", 0) if mem else 0

    def memory_bytes(self) -> int:
        mem = self.paths.get("memory")
        return read_int(mem / "memory.usage_in_bytes") if mem else 0

    def pid_count(self) -> int:
        pids = self.paths.get("pids")
        return read_int(pids / "pids.current") if pids else len(self.pids())

    def cpu_seconds(self) -> float:
        acct = self.paths.get("cpuacct")
        if acct is not None:
            return read_int(acct / "cpuacct.usage") / 1e9
        return self.core.cpu_seconds() if self.core is not None else 0.0

    def remove(self) -> bool:
        gone = True
        for path in dict.fromkeys(self.paths.values()):
            gone = rmdir_quiet(path) and gone
        if self.core is not None:
            gone = self.core.remove() and gone
        return gone


class V1Driver(CgroupDriver):
    """`parents` maps each v1 controller to the directory new groups are made in."""

    version = "v1"

    def __init__(self, parents: Mapping[str, Path], *, unified: Path | None = None) -> None:
        missing = [c for c in ("memory", "pids") if c not in parents]
        if missing:
            raise CgroupError(0, f"v1 controllers missing: {', '.join(missing)}")
        self.parents = dict(parents)
        self.core_driver = V2Driver(unified, limits=False) if unified is not None else None
        if unified is not None:
            self.version = "hybrid"

    def create(self, name: str, limits: CgroupLimits) -> V1Group:
        made: dict[str, Path] = {}
        core: V2Group | None = None
        try:
            for ctl, parent in self.parents.items():
                path = parent / name
                if path not in made.values():  # co-mounted controllers share a directory
                    path.mkdir()
                made[ctl] = path
            if self.core_driver is not None:
                core = self.core_driver.create(name, CgroupLimits())
            group = V1Group(name, made, core)
            group.apply_limits(limits)
        except OSError as exc:
            for path in set(made.values()):
                rmdir_quiet(path)
            if core is not None:
                core.remove()
            raise CgroupError(exc.errno, f"cannot create cgroup {name}: {exc}") from exc
        return group

    def names(self) -> set[str]:
        found: set[str] = set()
        for parent in self.parents.values():
            found |= subdirs(parent)
        if self.core_driver is not None:
            found |= self.core_driver.names()
        return found

    def attach(self, name: str) -> V1Group:
        paths = {c: p / name for c, p in self.parents.items() if (p / name).is_dir()}
        core = self.core_driver.attach(name) if self.core_driver is not None else None
        return V1Group(name, paths, core if core is not None and core.path.is_dir() else None)

    def describe(self) -> dict[str, str]:
        out = {"version": self.version}
        out.update({ctl: str(p) for ctl, p in self.parents.items()})
        if self.core_driver is not None:
            out["unified"] = str(self.core_driver.parent)
        return out
