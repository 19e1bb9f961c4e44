"""The state of one process sandbox."""

from __future__ import annotations

import contextlib
import os
import re
from dataclasses import dataclass, field
from pathlib import Path

from ..base import SandboxSpec
from ..cgroups import CgroupGroup
from .proc import ProcessHandle, signal_uid, uid_pids

SANDBOX_ID_RE = re.compile(r"^[A-Za-z0-9_-]{1,64}$")


@dataclass(eq=False)
class ProcessSandbox:
    id: str
    spec: SandboxSpec
    host_uid: int
    state_dir: Path  # private to the service (root 0700): archives in transit
    group: CgroupGroup | None
    procs: set[ProcessHandle] = field(default_factory=set)
    paused: bool = False
    destroyed: bool = False
    breach: str | None = None  # why the service killed it ("disk"), if it did
    own_uid: bool = True  # False: a non-root service runs sandboxes as itself (degraded)

    @property
    def uid(self) -> int | None:
        return self.host_uid

    def host_pids(self) -> list[int]:
        """Processes belonging to this sandbox, as far as the uid (or our children) tell."""
        if self.own_uid:
            return uid_pids(self.host_uid)
        return [p.pid for p in self.procs if p.returncode is None]

    def signal_all(self, sig: int) -> None:
        if self.own_uid:
            signal_uid(self.host_uid, sig)
            return
        for proc in list(self.procs):  # never signal our own uid wholesale: that is us
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(proc.pid, sig)
