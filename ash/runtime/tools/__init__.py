"""Built-in tools with Claude Code's names, input schemas and result formats."""

from __future__ import annotations

import functools
import os
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


@dataclass
class ToolOutput:
    """`content` goes to the model in the tool_result; `structured` is the SDK `tool_use_result`."""

    content: str | list[dict[str, Any]]
    is_error: bool = False
    structured: Any = None


class ToolError(Exception):
    """A tool refused or failed; the message goes back to the model as an error result."""


@dataclass
class ToolContext:
    """Per-session tool state: working directory, files read, todo list."""

    workspace: Path
    shell_cwd: Path | None = None
    read_files: dict[str, float] = field(default_factory=dict)  # path -> mtime when read
    todos: list[dict[str, Any]] = field(default_factory=list)
    bash_output_limit: int = 30_000

    def __post_init__(self) -> None:
        if self.shell_cwd is None:
            self.shell_cwd = self.workspace

    def absolute(self, path: str) -> Path:
        if not os.path.isabs(path):
            raise ToolError(f"The path must be absolute, not relative: {path}")
        return Path(os.path.normpath(path))


@dataclass(frozen=True)
class Tool:
    name: str
    description: str
    input_schema: dict[str, Any]
    run: Callable[[dict[str, Any], ToolContext], Awaitable[ToolOutput]]

    @functools.cached_property
    def definition(self) -> dict[str, Any]:
        """The Messages API tool entry: one dict per tool, never changed (requests reuse its JSON)."""
        return {"name": self.name, "description": self.description,
                "input_schema": self.input_schema}


def schema(properties: dict[str, Any], required: list[str]) -> dict[str, Any]:
    return {"type": "object", "properties": properties, "required": required,
            "additionalProperties": False, "$schema": "http://json-schema.org/draft-07/schema#"}


def tool_error(message: str) -> ToolOutput:
    return ToolOutput(f"<tool_use_error>{message}</tool_use_error>", True, f"Error: {message}")


def validate_input(tool_name: str, input_schema: dict[str, Any],
                   tool_input: Any) -> str | None:
    """None when valid, else Claude Code's InputValidationError text."""
    import jsonschema  # on first use: 40 ms of every sandbox's start otherwise

    validator = jsonschema.Draft7Validator(input_schema)
    problems = [e.message for e in validator.iter_errors(tool_input)]
    if not problems:
        return None
    return (f"InputValidationError: {tool_name} failed due to the following issue"
            f"{'s' if len(problems) > 1 else ''}:\n" + "\n".join(problems))


def builtin_tools() -> dict[str, Tool]:
    """Every built-in tool by name (Agent and StructuredOutput live in the engine)."""
    from ash.runtime.tools.bash import BASH
    from ash.runtime.tools.files import EDIT, READ, WRITE
    from ash.runtime.tools.misc import TODO_WRITE, WEB_FETCH, WEB_SEARCH
    from ash.runtime.tools.search import GLOB, GREP

    return {t.name: t for t in (BASH, READ, WRITE, EDIT, GLOB, GREP, TODO_WRITE, WEB_FETCH,
                                WEB_SEARCH)}


async def run_tool(tool: Tool, tool_input: dict[str, Any], ctx: ToolContext) -> ToolOutput:
    """Validate, run and turn ToolError/OSError into error results."""
    problem = validate_input(tool.name, tool.input_schema, tool_input)
    if problem:
        return tool_error(problem)
    try:
        return await tool.run(tool_input, ctx)
    except ToolError as exc:
        return tool_error(str(exc))
    except OSError as exc:
        return tool_error(f"{type(exc).__name__}: {exc.strerror or exc}")
