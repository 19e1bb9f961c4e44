"""Find the cgroup hierarchies of this process and pick a driver for them."""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field
from pathlib import Path

from .base import CgroupDriver, read_text
from .v1 import LIMIT_CONTROLLERS, OPTIONAL_CONTROLLERS, V1Driver
from .v2 import V2Driver

log = logging.getLogger(__name__)

V2_PARENT_NAME = "ash-sandboxes"


@dataclass
class CgroupLayout:
    """Mount points and this process's own cgroup path in each hierarchy."""

    v1_mounts: dict[str, Path] = field(default_factory=dict)  # controller -> mount point
    v1_own: dict[str, str] = field(default_factory=dict)  # controller -> "/path"
    v2_mount: Path | None = None
    v2_own: str = "/"

    def v1_parent(self, ctl: str) -> Path:
        return self.v1_mounts[ctl] / self.v1_own.get(ctl, "/").lstrip("/")

    def v2_parent(self) -> Path | None:
        if self.v2_mount is None:
            return None
        return self.v2_mount / self.v2_own.lstrip("/")

    def v2_controllers(self) -> set[str]:
        if self.v2_mount is None:
            return set()
        return set(read_text(self.v2_mount / "cgroup.controllers").split())


def read_layout(
    mounts_text: str | None = None, self_cgroup_text: str | None = None
) -> CgroupLayout:
    """Parse /proc/self/mounts and /proc/self/cgroup (or the given texts, for tests)."""
    if mounts_text is None:
        mounts_text = read_text(Path("/proc/self/mounts"))
    if self_cgroup_text is None:
        self_cgroup_text = read_text(Path("/proc/self/cgroup"))
    layout = CgroupLayout()
    wanted = set(LIMIT_CONTROLLERS + OPTIONAL_CONTROLLERS)
    for line in mounts_text.splitlines():
        parts = line.split()
        if len(parts) < 4:
            continue
        fstype, mountpoint, options = parts[2], Path(parts[1]), parts[3].split(",")
        if fstype == "cgroup":
            for ctl in wanted.intersection(options):
                layout.v1_mounts.setdefault(ctl, mountpoint)
        elif fstype == "cgroup2" and layout.v2_mount is None:
            layout.v2_mount = mountpoint
    for line in self_cgroup_text.splitlines():
        hier, _, rest = line.partition(":")
        controllers, _, path = rest.partition(":")
        if hier == "0" and controllers == "":
            layout.v2_own = path or "/"
        for ctl in controllers.split(","):
            if ctl in wanted:
                layout.v1_own[ctl] = path or "/"
    return layout


def driver_from_layout(layout: CgroupLayout) -> CgroupDriver | None:
    """v2 with controllers > v1 (+ v2 core for freeze/kill when mounted) > nothing."""
    if {"memory", "pids"} <= layout.v2_controllers():
        assert layout.v2_mount is not None
        return V2Driver(layout.v2_mount / V2_PARENT_NAME)
    if all(c in layout.v1_mounts for c in ("memory", "pids")):
        # Groups go under our own group in each hierarchy, so that memory stays charged
        # inside whatever accounts for this service (a shared host's supervisor, say).
        parents = {c: layout.v1_parent(c) for c in layout.v1_mounts}
        parents = {c: p for c, p in parents.items() if os.access(p, os.W_OK)}
        if not all(c in parents for c in ("memory", "pids")):
            return None
        unified = layout.v2_parent()
        if unified is not None and not os.access(unified, os.W_OK):
            unified = None
        if unified is not None:
            parents.pop("freezer", None)  # v2 cgroup.freeze does the job; one group fewer
        return V1Driver(parents, unified=unified)
    return None


def detect_driver() -> CgroupDriver | None:
    """The driver for this host, or None when no usable cgroup hierarchy is writable."""
    try:
        return driver_from_layout(read_layout())
    except OSError as exc:
        log.warning("cgroup detection failed: %s", exc)
        return None
