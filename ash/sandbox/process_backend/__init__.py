"""The process sandbox backend (bubblewrap + per-sandbox uid + cgroups, or degraded)."""

from .backend import DEGRADED_WARNING, ProcessBackend
from .proc import ProcessHandle
from .sandbox import ProcessSandbox

__all__ = ["DEGRADED_WARNING", "ProcessBackend", "ProcessHandle", "ProcessSandbox"]
