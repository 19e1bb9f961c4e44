"""Sandboxes for agent code. Import-light: backends load only when asked for."""

from .base import (
    AGENT_PATH,
    PROXY_DIR_PATH,
    RUNTIME_PATH,
    WORKSPACE_PATH,
    ExecResult,
    Isolation,
    Limits,
    Sandbox,
    SandboxBackend,
    SandboxError,
    SandboxGone,
    SandboxProcess,
    SandboxSpec,
    SandboxStats,
)

__all__ = [
    "AGENT_PATH",
    "PROXY_DIR_PATH",
    "RUNTIME_PATH",
    "WORKSPACE_PATH",
    "ExecResult",
    "Isolation",
    "Limits",
    "ProcessBackend",
    "Sandbox",
    "SandboxBackend",
    "SandboxError",
    "SandboxGone",
    "SandboxProcess",
    "SandboxSpec",
    "SandboxStats",
]


def __getattr__(name: str) -> object:
    # Lazy so that importing ash.sandbox (e.g. in the runtime) pulls in no backend code.
    if name == "ProcessBackend":
        from .process_backend import ProcessBackend

        return ProcessBackend
    raise AttributeError(name)
