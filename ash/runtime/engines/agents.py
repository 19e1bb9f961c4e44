"""Subagents: the Agent tool (listed as `Task`) runs a nested loop in the foreground."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

from ash.runtime import messages as sdk
from ash.runtime.options import AgentDefinition
from ash.runtime.tools import ToolOutput, schema, tool_error

if TYPE_CHECKING:
    from ash.runtime.engines.loop import QueryRun, Thread

GENERAL_PURPOSE = AgentDefinition(
    name="general-purpose",
    description="General-purpose agent for researching complex questions, searching for code, "
                "and executing multi-step tasks.",
    prompt="You are an agent for a coding assistant. Given the user's message, use the tools "
           "available to complete the task fully. When you are done, respond with a concise "
           "report of what you did and what you found.",
)


def available_agents(defined: dict[str, AgentDefinition]) -> dict[str, AgentDefinition]:
    return {GENERAL_PURPOSE.name: GENERAL_PURPOSE, **defined}


def agent_tool_definition(defined: dict[str, AgentDefinition]) -> dict[str, Any]:
    listing = "\n".join(f"- {a.name}: {a.description}"
                        for a in available_agents(defined).values())
    return {
        "name": "Agent",
        "description": ("Launch a new agent to handle a complex, multi-step task autonomously. "
                        "Available agent types:\n" + listing + "\nThe agent's final message is "
                        "returned to you; it does not see this conversation, so give it a "
                        "complete prompt."),
        "input_schema": schema({
            "description": {"type": "string", "description": "A short (3-5 word) description "
                                                             "of the task"},
            "prompt": {"type": "string", "description": "The task for the agent to perform"},
            "subagent_type": {"type": "string", "description": "The type of agent to use"},
            "model": {"type": "string", "enum": ["sonnet", "opus", "haiku", "fable"]},
        }, ["description", "prompt"]),
    }


async def run_subagent(run: QueryRun, parent: Thread, tool_use_id: str,
                       tool_input: dict[str, Any]) -> ToolOutput:
    """Run the requested agent to completion; its messages carry `parent_tool_use_id`."""
    from ash.runtime.engines.loop import Thread

    kind = str(tool_input.get("subagent_type") or GENERAL_PURPOSE.name)
    agents = available_agents(run.opts.agents)
    agent = agents.get(kind)
    if agent is None:
        return tool_error(f"Agent type '{kind}' not found. Available agents: "
                          f"{', '.join(agents)}")
    if not isinstance(tool_input.get("prompt"), str):
        return tool_error("InputValidationError: Agent requires a prompt")
    engine = run.engine
    model = engine.resolve_model(tool_input.get("model") or agent.model, inherit=parent.model)
    prompt = tool_input["prompt"]
    started = time.monotonic()
    await run.io.emit(sdk.system("task_started", run.session_id, task_id=tool_use_id,
                                 tool_use_id=tool_use_id,
                                 description=str(tool_input.get("description", "")),
                                 subagent_type=kind, task_type="local_agent"))
    await run.io.emit(sdk.user(content=[{"type": "text", "text": prompt}],
                               session_id=run.session_id, parent_tool_use_id=tool_use_id))
    thread = Thread(messages=[{"role": "user", "content": prompt}], system=agent.prompt,
                    model=model, tool_defs=engine.tool_definitions(run.policy, run.opts, agent),
                    parent_tool_use_id=tool_use_id, max_turns=agent.max_turns)
    tokens_before = _token_total(run)
    outcome = await run.loop(thread)
    text = outcome.result_text or ""
    if outcome.subtype == "error_max_turns":
        text = text or f"Agent stopped: reached maximum number of turns ({agent.max_turns})"
    tool_uses = sum(1 for m in thread.messages if m["role"] == "assistant"
                    for b in m["content"] if b.get("type") == "tool_use")
    duration_ms = int((time.monotonic() - started) * 1000)
    await run.io.emit(sdk.system("task_notification", run.session_id, task_id=tool_use_id,
                                 tool_use_id=tool_use_id, status="completed", summary=text[:200],
                                 usage={"total_tokens": _token_total(run) - tokens_before,
                                        "tool_uses": tool_uses, "duration_ms": duration_ms}))
    return ToolOutput(text or "(the agent returned no text)", outcome.is_error, {
        "status": "completed", "prompt": prompt, "agentType": kind,
        "content": [{"type": "text", "text": text}], "totalDurationMs": duration_ms,
        "totalTokens": _token_total(run) - tokens_before, "totalToolUseCount": tool_uses})


def _token_total(run: QueryRun) -> int:
    u = run.totals.usage
    return (u["input_tokens"] + u["output_tokens"] + u["cache_read_input_tokens"]
            + u["cache_creation_input_tokens"])
