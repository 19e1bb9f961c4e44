"""One query of the native engine: the model/tool loop for the main thread and its subagents."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ash.runtime import messages as sdk
from ash.runtime.accounting import Totals
from ash.runtime.engines import EngineIO, PermissionAsk
from ash.runtime.model_client import Message, ModelConnectionError, ModelStatusError
from ash.runtime.permissions import ALLOW, DENY, PermissionPolicy, denial_message, describe
from ash.runtime.tools import ToolOutput, run_tool, tool_error

if TYPE_CHECKING:
    from ash.runtime.engines.native import NativeEngine
    from ash.runtime.options import QueryOptions

STRUCTURED_OUTPUT = "StructuredOutput"
MAX_STRUCTURED_RETRIES = 5
HOST_DENY_DEFAULT = ("The user doesn't want to proceed with this tool use. The tool use was "
                     "rejected (eg. if it was a file edit, the new_string was NOT written to the "
                     "file).")


@dataclass
class Thread:
    """A conversation the loop drives: the main one (persisted) or a subagent's."""

    messages: list[dict[str, Any]]
    system: str | None
    model: str
    tool_defs: list[dict[str, Any]]
    parent_tool_use_id: str | None = None
    max_turns: int | None = None
    append: Callable[[dict[str, Any]], None] | None = None  # persists main-thread messages

    def add(self, message: dict[str, Any]) -> None:
        if self.append is not None:
            self.append(message)
        else:
            self.messages.append(message)


@dataclass
class Outcome:
    subtype: str = "success"
    is_error: bool = False
    terminal_reason: str = "completed"
    stop_reason: str | None = None
    result_text: str | None = None
    errors: list[str] | None = None
    structured: Any = None
    api_error_status: int | None = None
    num_turns: int = 0


class Stop(Exception):
    """Ends the whole query (budget exhausted, API error), even from inside a subagent."""

    def __init__(self, outcome: Outcome) -> None:
        super().__init__(outcome.subtype)
        self.outcome = outcome


@dataclass
class QueryRun:
    engine: NativeEngine
    opts: QueryOptions
    io: EngineIO
    policy: PermissionPolicy
    max_tokens: int
    totals: Totals = field(default_factory=Totals)
    denials: list[dict[str, Any]] = field(default_factory=list)
    structured_failures: int = 0

    @property
    def session_id(self) -> str:
        return self.engine.session_id

    # -- the loop ------------------------------------------------------------------------------

    async def loop(self, thread: Thread) -> Outcome:
        turns = 0
        while True:
            turns += 1
            if thread.max_turns and turns > thread.max_turns:
                return Outcome("error_max_turns", True, "max_turns", "tool_use", None,
                               [f"Reached maximum number of turns ({thread.max_turns})"],
                               num_turns=turns)
            msg, last = await self._call_model(thread, turns)
            content = msg.content
            uses = [b for b in content if b["type"] == "tool_use"]
            if last is not None:
                # The final answer's last block leaves with the result that follows it at once.
                await self.io.emit(last, hold=not uses and msg.stop_reason != "pause_turn")
            thread.add({"role": "assistant", "content": content})
            if (self.opts.max_budget_usd is not None
                    and self.totals.cost_usd >= self.opts.max_budget_usd):
                raise Stop(Outcome("error_max_budget_usd", True, "budget_exhausted",
                                   msg.stop_reason, None,
                                   [f"Reached maximum budget (${self.opts.max_budget_usd:g})"],
                                   num_turns=turns))
            if msg.stop_reason == "pause_turn":
                continue
            if not uses:
                text = "".join(b.get("text", "") for b in content if b["type"] == "text")
                return Outcome(stop_reason=msg.stop_reason, result_text=text, num_turns=turns)
            structured = await self._run_tools(thread, uses)
            if structured is not None:
                return Outcome(stop_reason="tool_use", result_text=json.dumps(structured),
                               structured=structured, num_turns=turns)
            if self.structured_failures >= MAX_STRUCTURED_RETRIES:
                return Outcome("error_max_structured_output_retries", True, "structured_output",
                               "tool_use", None, ["Failed to provide valid structured output "
                                                  f"after {MAX_STRUCTURED_RETRIES} attempts"],
                               num_turns=turns)

    async def _call_model(self, thread: Thread, turn: int) -> tuple[Message, dict[str, Any] | None]:
        """One streamed model call. Each finished content block is emitted as an assistant message,
        the last one excepted: it is returned (unless partial messages stream) for the caller to
        emit once it knows whether the answer is final."""
        params: dict[str, Any] = {"model": thread.model, "max_tokens": self.max_tokens,
                                  "messages": thread.messages, "tools": thread.tool_defs}
        if thread.system:
            params["system"] = thread.system
        thinking = self.engine.thinking_param(self.opts)
        if thinking:
            params["thinking"] = thinking
        if self.opts.effort:
            params["output_config"] = {"effort": self.opts.effort}
        started = time.monotonic()
        parent = thread.parent_tool_use_id
        partial = self.opts.include_partial_messages
        last: dict[str, Any] | None = None  # a finished block's message, until the next block starts
        try:
            async with self.engine.client().stream(params, betas=self.opts.betas) as stream:
                async for ev in stream:
                    snap = stream.message
                    if last is not None and ev["type"] == "content_block_start":
                        await self.io.emit(last)
                        last = None
                    if ev["type"] == "content_block_stop":
                        last = sdk.assistant(
                            message_id=snap["id"], model=snap["model"],
                            block=stream.block(ev["index"]), usage=stream.usage(),
                            session_id=self.session_id, parent_tool_use_id=parent)
                        if partial:  # streamed event by event: keep the usual order
                            await self.io.emit(last)
                            last = None
                    if partial:
                        await self.io.emit(sdk.stream_event(
                            _raw_event(ev), session_id=self.session_id,
                            parent_tool_use_id=parent, message_id=snap["id"]))
                msg = stream.final_message()
        except (ModelStatusError, ModelConnectionError) as exc:
            if last is not None:  # blocks that did arrive are part of the history
                await self.io.emit(last)
            await self._api_error(thread, turn, getattr(exc, "status", None), exc.message)
        except asyncio.CancelledError:
            if last is not None:  # interrupted: a finished block is still sent, as it was before
                await self.io.emit(last)
            raise
        finally:
            self.totals.api_ms += int((time.monotonic() - started) * 1000)
        self.totals.add(thread.model, msg.usage, self.max_tokens)
        return msg, last

    async def _api_error(self, thread: Thread, turn: int, status: int | None,
                         message: str) -> None:
        text = f"API Error: {status} {message}" if status else f"API Error: {message}"
        await self.io.emit(sdk.assistant(
            message_id=f"msg_synthetic_{turn}", model="<synthetic>",
            block={"type": "text", "text": text}, usage=dict(sdk.EMPTY_USAGE),
            session_id=self.session_id, parent_tool_use_id=thread.parent_tool_use_id,
            error=sdk.api_error_kind(status)))
        raise Stop(Outcome("success", True, "api_error", None, text, None, None, status,
                           num_turns=turn))

    # -- tools -----------------------------------------------------------------------------------

    async def _run_tools(self, thread: Thread, uses: list[dict[str, Any]]) -> Any:
        """Run every tool call of one response; returns structured output if one was given."""
        structured = None
        for use in uses:
            out, accepted = await self._run_one(thread, use)
            if accepted is not None:
                structured = accepted
            block = {"type": "tool_result", "tool_use_id": use["id"], "content": out.content,
                     "is_error": out.is_error}
            thread.add({"role": "user", "content": [block]})
            await self.io.emit(sdk.user(
                content=[block], session_id=self.session_id,
                parent_tool_use_id=thread.parent_tool_use_id,
                tool_use_result=out.structured if out.structured is not None else
                (f"Error: {out.content}" if out.is_error else out.content)))
        return structured

    async def _run_one(self, thread: Thread, use: dict[str, Any]) -> tuple[ToolOutput, Any]:
        name, tool_input = use["name"], use.get("input") or {}
        if name == STRUCTURED_OUTPUT and self.opts.output_format is not None:
            import jsonschema  # on first use: 40 ms of every sandbox's start otherwise

            try:
                jsonschema.validate(tool_input, self.opts.output_format["schema"])
            except jsonschema.ValidationError as exc:
                self.structured_failures += 1
                return tool_error(f"Output does not match the required schema: {exc.message}"), \
                    None
            return ToolOutput("Structured output provided successfully", False, tool_input), \
                tool_input
        if name not in self.engine.known_tool_names(thread):
            return tool_error(f"No such tool available: {name}"), None
        allowed, tool_input, message = await self._permit(thread, use["id"], name, tool_input)
        if not allowed:
            return ToolOutput(message, True, f"Error: {message}"), None
        return await self.dispatch(thread, use["id"], name, tool_input), None

    async def _permit(self, thread: Thread, tool_use_id: str, name: str,
                      tool_input: dict[str, Any]) -> tuple[bool, dict[str, Any], str]:
        decision = self.policy.decide(name, tool_input)
        if decision.behavior == ALLOW:
            return True, tool_input, ""
        if decision.behavior == DENY:
            msg = (f"Permission to use {name} has been denied by the rule {decision.rule}."
                   if decision.rule else denial_message(name, tool_input))
            return self._deny(name, tool_use_id, tool_input, msg)
        if self.opts.permission_prompts == "none":
            msg = denial_message(name, tool_input)
            await self._announce_denial(name, tool_use_id, msg)
            return self._deny(name, tool_use_id, tool_input, msg)
        answer = await self.io.ask(
            PermissionAsk(tool_use_id, name, tool_input, describe(name, tool_input)),
            self.opts.permission_timeout_ms or self.engine.config.permission_timeout_ms)
        if answer.behavior == "allow":
            return True, answer.updated_input or tool_input, ""
        msg = answer.message or HOST_DENY_DEFAULT
        if answer.timed_out:
            await self._announce_denial(name, tool_use_id, msg)
        return self._deny(name, tool_use_id, tool_input, msg)

    def _deny(self, name: str, tool_use_id: str, tool_input: dict[str, Any],
              message: str) -> tuple[bool, dict[str, Any], str]:
        self.denials.append({"tool_name": name, "tool_use_id": tool_use_id,
                             "tool_input": tool_input})
        return False, tool_input, message

    async def _announce_denial(self, name: str, tool_use_id: str, message: str) -> None:
        await self.io.emit(sdk.system("permission_denied", self.session_id, tool_name=name,
                                      tool_use_id=tool_use_id, message=message))

    async def dispatch(self, thread: Thread, tool_use_id: str, name: str,
                       tool_input: dict[str, Any]) -> ToolOutput:
        if name in ("Agent", "Task"):
            from ash.runtime.engines.agents import run_subagent
            return await run_subagent(self, thread, tool_use_id, tool_input)
        if name.startswith("mcp__"):
            return await self.engine.mcp.call(name, tool_input)
        return await run_tool(self.engine.tools[name], tool_input, self.engine.ctx)


def _raw_event(ev: dict[str, Any]) -> dict[str, Any]:
    """The Messages API event as the SDK passed it on: stop events without extra fields."""
    if ev["type"] == "content_block_stop":
        return {"type": "content_block_stop", "index": ev["index"]}
    if ev["type"] == "message_stop":
        return {"type": "message_stop"}
    return ev
