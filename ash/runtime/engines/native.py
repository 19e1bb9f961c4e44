"""The native engine: a Claude-Code-compatible agent loop on the Messages API."""

from __future__ import annotations

import asyncio
import logging
import time
from pathlib import Path
from typing import Any

from ash.runtime import messages as sdk
from ash.runtime.config import (
    PLACEHOLDER_API_KEY,
    PROXY_BASE_URL,
    RuntimeConfig,
    load_agent_settings,
)
from ash.runtime.engines import EngineIO
from ash.runtime.engines.agents import agent_tool_definition, available_agents
from ash.runtime.engines.loop import STRUCTURED_OUTPUT, Outcome, QueryRun, Stop, Thread
from ash.runtime.mcp_client import McpManager
from ash.runtime.model_client import ModelClient
from ash.runtime.options import DEFAULT_MAX_TOKENS, DEFAULT_MODEL, AgentDefinition, QueryOptions
from ash.runtime.permissions import PermissionPolicy
from ash.runtime.state import Conversation
from ash.runtime.tools import ToolContext, builtin_tools

log = logging.getLogger("ash.runtime")
TOOL_ORDER = ("Agent", "Bash", "Glob", "Grep", "Read", "Edit", "Write", "TodoWrite", "WebFetch",
              "WebSearch")
INTERRUPTED = "[Request interrupted by user]"
INTERRUPTED_TOOL = "[Request interrupted by user for tool use]"
STRUCTURED_DESCRIPTION = (
    "Use this tool to return your final response in the requested structured format. You MUST "
    "call this tool exactly once at the end of your response to provide the structured output.")


class NativeEngine:
    name = "native"

    def __init__(self, config: RuntimeConfig) -> None:
        self.config = config
        self.conv = Conversation.load(config.conversation_path)
        cwd = Path(self.conv.shell_cwd) if self.conv.shell_cwd else None
        self.ctx = ToolContext(workspace=config.workspace, shell_cwd=cwd, todos=self.conv.todos,
                               bash_output_limit=config.bash_output_limit)
        self.tools = builtin_tools()
        self.mcp = McpManager(config.mcp_connect_timeout_s)
        self._client: ModelClient | None = None

    @property
    def session_id(self) -> str:
        return self.conv.session_id

    def client(self) -> ModelClient:
        """The model client: HTTP to ASH_MODEL_BASE_URL, else the proxy's unix socket."""
        if self._client is None:
            url = self.config.model_base_url
            self._client = ModelClient(base_url=url or PROXY_BASE_URL,
                                       unix_socket=None if url else self.config.proxy_socket,
                                       api_key=PLACEHOLDER_API_KEY,
                                       max_retries=self.config.max_retries)
        return self._client

    # -- option helpers used by the loop -------------------------------------------------------

    def resolve_model(self, requested: str | None, inherit: str) -> str:
        from ash.llm_proxy.pricing import ALIASES

        if not requested or requested == "inherit":
            return inherit
        return ALIASES.get(requested, requested)

    @staticmethod
    def thinking_param(opts: QueryOptions) -> dict[str, Any] | None:
        if not opts.thinking:
            return None
        kind = opts.thinking["type"]
        if kind == "enabled":
            budget = opts.thinking.get("budgetTokens", opts.thinking.get("budget_tokens"))
            return {"type": "enabled", "budget_tokens": int(budget or 10_000)}
        return {"type": kind}

    def max_tokens(self, opts: QueryOptions) -> int:
        wanted = opts.max_tokens or DEFAULT_MAX_TOKENS
        thinking = self.thinking_param(opts)
        if thinking and thinking.get("budget_tokens", 0) >= wanted:
            wanted = thinking["budget_tokens"] + 4096  # the API needs max_tokens > budget
        return wanted

    def _base_tool_names(self, opts: QueryOptions, agent: AgentDefinition | None) -> list[str]:
        names = list(TOOL_ORDER)
        if opts.tools is not None:
            wanted = {"Agent" if t == "Task" else t for t in opts.tools}
            names = [n for n in names if n in wanted]
        if agent is not None and agent.tools is not None:
            wanted = {"Agent" if t == "Task" else t for t in agent.tools}
            names = [n for n in names if n in wanted or any(
                t.startswith(n + "(") for t in agent.tools)]
        if agent is not None:
            names = [n for n in names if n not in agent.disallowed_tools]
        return names

    def tool_definitions(self, policy: PermissionPolicy, opts: QueryOptions,
                         agent: AgentDefinition | None = None, main: bool = False) -> list[dict]:
        defs: list[dict[str, Any]] = []
        for name in self._base_tool_names(opts, agent):
            if policy.removed(name) or (name == "Agent" and not main):
                continue  # subagents cannot spawn subagents, as in Claude Code
            defs.append(agent_tool_definition(opts.agents) if name == "Agent"
                        else self.tools[name].definition)
        for tool in self.mcp.tools():
            if not policy.removed(tool.full_name) and (
                    agent is None or agent.tools is None or tool.full_name in agent.tools):
                defs.append(tool.definition)
        if opts.output_format is not None and main:
            defs.append({"name": STRUCTURED_OUTPUT, "description": STRUCTURED_DESCRIPTION,
                         "input_schema": opts.output_format["schema"]})
        return defs

    def known_tool_names(self, thread: Thread) -> set[str]:
        names = {d["name"] for d in thread.tool_defs}
        return names | ({"Task"} if "Agent" in names else set())

    # -- one query -----------------------------------------------------------------------------

    async def run(self, prompt: str | list[dict[str, Any]], opts: QueryOptions,
                  io: EngineIO) -> None:
        started = time.monotonic()
        settings = load_agent_settings(self.config.workspace, self.config.agent_dir)
        mode = opts.permission_mode
        if mode == "permissionsByAgent":
            mode = settings.default_mode or "default"
        policy = PermissionPolicy.build(mode, [*settings.allow, *opts.allowed_tools],
                                        [*settings.deny, *opts.disallowed_tools], settings.ask,
                                        self.config.workspace)
        await self.mcp.ensure({**settings.mcp_servers, **opts.mcp_servers})
        agent = opts.agents.get(opts.agent) if opts.agent else None
        fallback = settings.model or self.config.default_model or DEFAULT_MODEL
        model = self.resolve_model(opts.model or (agent.model if agent else None),
                                   inherit=fallback)
        system = opts.system_prompt if opts.system_prompt is not None else settings.system_prompt
        if agent is not None:
            system = agent.prompt + (f"\n\n{system}" if system else "")
        if opts.append_system_prompt:
            system = f"{system}\n\n{opts.append_system_prompt}" if system \
                else opts.append_system_prompt
        run = QueryRun(self, opts, io, policy, self.max_tokens(opts))
        tool_defs = self.tool_definitions(policy, opts, agent, main=True)
        await io.emit(sdk.system_init(
            session_id=self.session_id, cwd=str(self.config.workspace),
            tools=["Task" if d["name"] == "Agent" else d["name"] for d in tool_defs],
            model=model, permission_mode=mode, mcp_servers=self.mcp.statuses(),
            agents=list(available_agents(opts.agents)), betas=opts.betas))
        self.repair_history()
        self.conv.append({"role": "user", "content": prompt})
        self.conv.save()  # a runtime killed mid-query still has the prompt on restart
        thread = Thread(self.conv.messages, system, model, tool_defs,
                        max_turns=opts.max_turns or (agent.max_turns if agent else None),
                        append=self._persist)
        try:
            outcome = await run.loop(thread)
        except Stop as stop:
            outcome = stop.outcome
        except asyncio.CancelledError:
            task = asyncio.current_task()
            if task is not None:
                task.uncancel()  # the interrupt is handled here; later awaits must work
            outcome = await self._interrupted(io)
        except Exception as exc:
            log.exception("query failed")
            await io.error(f"{type(exc).__name__}: {exc}", "engine_error")
            outcome = Outcome("error_during_execution", True, "error", None, None,
                              [f"{type(exc).__name__}: {exc}"])
        finally:
            self._save_tool_state()
        await io.emit(sdk.result(
            subtype=outcome.subtype, is_error=outcome.is_error,
            duration_ms=int((time.monotonic() - started) * 1000),
            duration_api_ms=run.totals.api_ms, num_turns=outcome.num_turns,
            session_id=self.session_id, total_cost_usd=run.totals.cost_usd,
            usage=run.totals.usage, model_usage=run.totals.model_usage,
            permission_denials=run.denials, terminal_reason=outcome.terminal_reason,
            stop_reason=outcome.stop_reason, result_text=outcome.result_text,
            errors=outcome.errors, structured_output=outcome.structured,
            api_error_status=outcome.api_error_status))

    def _persist(self, message: dict[str, Any]) -> None:
        self.conv.append(message)
        if message["role"] == "assistant" and any(
                b.get("type") == "tool_use" for b in message["content"]):
            self.conv.save()  # tools may run long (or kill the sandbox): keep the history so far

    def _save_tool_state(self) -> None:
        self.conv.todos = self.ctx.todos
        self.conv.shell_cwd = str(self.ctx.shell_cwd) if self.ctx.shell_cwd else None
        self.conv.save()

    async def _interrupted(self, io: EngineIO) -> Outcome:
        """Close the history cleanly after an interrupt, as Claude Code records it."""
        self.repair_history(INTERRUPTED_TOOL)
        self.conv.append({"role": "user", "content": [{"type": "text", "text": INTERRUPTED}]})
        await io.emit(sdk.user(content=[{"type": "text", "text": INTERRUPTED}],
                               session_id=self.session_id, parent_tool_use_id=None))
        return Outcome("error_during_execution", True, "interrupted", None, None,
                       ["Request interrupted by user"])

    def repair_history(self, reason: str = "Tool execution was interrupted") -> None:
        """Give every tool_use of the last assistant turn a result, so the API accepts it."""
        msgs = self.conv.messages
        idx = next((i for i in range(len(msgs) - 1, -1, -1) if msgs[i]["role"] == "assistant"), None)
        if idx is None:
            return
        wanted = [b["id"] for b in msgs[idx]["content"] if b.get("type") == "tool_use"]
        have = {b.get("tool_use_id") for m in msgs[idx + 1:] if isinstance(m["content"], list)
                for b in m["content"]}
        missing = [i for i in wanted if i not in have]
        for tool_use_id in missing:
            self.conv.append({"role": "user", "content": [{
                "type": "tool_result", "tool_use_id": tool_use_id, "content": reason,
                "is_error": True}]})

    async def close(self) -> None:
        await self.mcp.close()
        if self._client is not None:
            await self._client.close()
