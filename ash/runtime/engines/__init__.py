"""Agent engines: the native loop (default) and the optional Claude Code CLI."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol


@dataclass(frozen=True)
class PermissionAsk:
    tool_use_id: str
    tool_name: str
    input: dict[str, Any]
    description: str = ""
    suggestions: list[dict[str, Any]] = field(default_factory=list)


@dataclass(frozen=True)
class PermissionAnswer:
    behavior: str  # allow | deny
    message: str = ""
    updated_input: dict[str, Any] | None = None
    timed_out: bool = False


class EngineIO(Protocol):
    """How an engine talks back to the bridge for the query it is running."""

    async def emit(self, message: dict[str, Any], *, hold: bool = False) -> None:
        """Send MESSAGE; with HOLD it may wait to leave with the next one (a query's final
        assistant message, which its result follows at once)."""
        ...

    async def ask(self, request: PermissionAsk, timeout_ms: int) -> PermissionAnswer: ...

    async def error(self, text: str, code: str = "engine_error") -> None: ...


class Engine(Protocol):
    name: str

    @property
    def session_id(self) -> str: ...

    async def run(self, prompt: str | list[dict[str, Any]], options: Any, io: EngineIO) -> None:
        """Run one query to completion, emitting messages; ends with exactly one result."""
        ...

    async def close(self) -> None: ...
