"""TodoWrite, and the internet tools that exist but cannot work in a network-less sandbox."""

from __future__ import annotations

import copy
from typing import Any

from ash.runtime.tools import Tool, ToolContext, ToolOutput, schema, tool_error

TODO_ACK = ("Todos have been modified successfully. Ensure that you continue to use the todo "
            "list to track your progress. Please proceed with the current tasks if applicable")


async def run_todo_write(tool_input: dict[str, Any], ctx: ToolContext) -> ToolOutput:
    old = copy.deepcopy(ctx.todos)
    ctx.todos = copy.deepcopy(tool_input["todos"])
    return ToolOutput(TODO_ACK, False, {"oldTodos": old, "newTodos": ctx.todos})


def _offline(tool: str):
    async def run(tool_input: dict[str, Any], ctx: ToolContext) -> ToolOutput:
        return tool_error(f"{tool} is unavailable: this sandbox has no internet access.")
    return run


TODO_WRITE = Tool(
    name="TodoWrite",
    description=("Create and manage a structured task list for the current session. Send the "
                 "whole list each time; mark exactly one task in_progress while working on it."),
    input_schema=schema({"todos": {"type": "array", "items": {
        "type": "object", "additionalProperties": False,
        "required": ["content", "status", "activeForm"],
        "properties": {"content": {"type": "string", "minLength": 1},
                       "status": {"type": "string",
                                  "enum": ["pending", "in_progress", "completed"]},
                       "activeForm": {"type": "string", "minLength": 1}}},
        "description": "The updated todo list"}}, ["todos"]),
    run=run_todo_write,
)
WEB_FETCH = Tool(
    name="WebFetch",
    description="Fetches a URL and processes its content with a prompt.",
    input_schema=schema({"url": {"type": "string", "format": "uri"},
                         "prompt": {"type": "string"}}, ["url", "prompt"]),
    run=_offline("WebFetch"),
)
WEB_SEARCH = Tool(
    name="WebSearch",
    description="Searches the web and returns result titles and links.",
    input_schema=schema({"query": {"type": "string", "minLength": 2},
                         "allowed_domains": {"type": "array", "items": {"type": "string"}},
                         "blocked_domains": {"type": "array", "items": {"type": "string"}}},
                        ["query"]),
    run=_offline("WebSearch"),
)
