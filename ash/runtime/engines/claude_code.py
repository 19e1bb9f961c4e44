"""Optional engine: the Claude Code CLI bundled with `claude_agent_sdk`, in stream-json mode.

Each query spawns the CLI (resuming the previous CLI session) and relays every stdout message
unchanged; `can_use_tool` control requests become bridge permission prompts. The CLI cannot
speak to a unix socket, so a loopback TCP relay to the model proxy socket is started for it.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib.util
import json
import logging
import os
import shutil
from pathlib import Path
from typing import Any

from ash.runtime import messages as sdk
from ash.runtime.config import PLACEHOLDER_API_KEY, RuntimeConfig, load_agent_settings
from ash.runtime.engines import EngineIO, PermissionAsk
from ash.runtime.options import QueryOptions

log = logging.getLogger("ash.runtime.claude_code")
READ_LIMIT = 64 << 20


def find_cli() -> str | None:
    """ASH_CLAUDE_CLI, the binary bundled in claude_agent_sdk, or `claude` on PATH."""
    if os.environ.get("ASH_CLAUDE_CLI"):
        return os.environ["ASH_CLAUDE_CLI"]
    spec = importlib.util.find_spec("claude_agent_sdk")
    if spec is not None and spec.origin:
        bundled = Path(spec.origin).parent / "_bundled" / "claude"
        if bundled.exists():
            return str(bundled)
    return shutil.which("claude")


class _SocketRelay:
    """127.0.0.1:<port> -> unix socket, so an HTTP client without UDS support reaches the proxy."""

    def __init__(self, socket_path: str) -> None:
        self.socket_path = socket_path
        self.server: asyncio.AbstractServer | None = None
        self.port = 0

    async def start(self) -> str:
        self.server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        self.port = self.server.sockets[0].getsockname()[1]
        return f"http://127.0.0.1:{self.port}"

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            up_reader, up_writer = await asyncio.open_unix_connection(self.socket_path)
        except OSError:
            writer.close()
            return

        async def pipe(src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
            with contextlib.suppress(ConnectionError):
                while data := await src.read(65536):
                    dst.write(data)
                    await dst.drain()
            with contextlib.suppress(OSError):
                dst.write_eof()

        await asyncio.gather(pipe(reader, up_writer), pipe(up_reader, writer))
        writer.close()
        up_writer.close()

    async def close(self) -> None:
        if self.server is not None:
            self.server.close()


class ClaudeCodeEngine:
    name = "claude-code"

    def __init__(self, config: RuntimeConfig, cli: str | None = None) -> None:
        self.config = config
        self.cli = cli or find_cli()
        if self.cli is None:
            raise RuntimeError("Claude Code engine selected but no CLI was found "
                               "(install claude-agent-sdk or set ASH_CLAUDE_CLI)")
        self._state_path = config.conversation_path.with_name("claude-code.json")
        try:
            self._session = json.loads(self._state_path.read_text()).get("session_id", "")
        except (OSError, ValueError):
            self._session = ""
        self._relay: _SocketRelay | None = None

    @property
    def session_id(self) -> str:
        return self._session

    def _save_session(self, session_id: str) -> None:
        self._session = session_id
        self._state_path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self._state_path.with_suffix(".tmp")
        tmp.write_text(json.dumps({"session_id": session_id}))
        os.replace(tmp, self._state_path)

    async def _base_url(self) -> str:
        if self.config.model_base_url:
            return self.config.model_base_url
        if self._relay is None:
            self._relay = _SocketRelay(self.config.proxy_socket or "")
            await self._relay.start()
        return f"http://127.0.0.1:{self._relay.port}"

    def argv(self, opts: QueryOptions) -> list[str]:
        args = [self.cli or "claude", "--output-format", "stream-json", "--verbose",
                "--input-format", "stream-json", "--setting-sources", "project"]
        mode = opts.permission_mode
        if mode == "permissionsByAgent":
            settings = load_agent_settings(self.config.workspace, self.config.agent_dir)
            mode = settings.default_mode or "default"
        args += ["--permission-mode", mode]
        if opts.permission_prompts == "host":
            args += ["--permission-prompt-tool", "stdio"]
        if opts.include_partial_messages:
            args.append("--include-partial-messages")
        simple = {"--model": opts.model or self.config.default_model,
                  "--max-turns": opts.max_turns, "--max-budget-usd": opts.max_budget_usd,
                  "--effort": opts.effort, "--system-prompt": opts.system_prompt,
                  "--append-system-prompt": opts.append_system_prompt, "--agent": opts.agent}
        for flag, value in simple.items():
            if value is not None:
                args += [flag, str(value)]
        if opts.system_prompt is None:
            prompt = load_agent_settings(self.config.workspace, self.config.agent_dir)
            if prompt.system_prompt:
                args += ["--system-prompt", prompt.system_prompt]
        if opts.thinking:
            budget = opts.thinking.get("budgetTokens", opts.thinking.get("budget_tokens"))
            if opts.thinking["type"] == "enabled" and budget:
                args += ["--max-thinking-tokens", str(budget)]
            elif opts.thinking["type"] in ("adaptive", "disabled"):
                args += ["--thinking", opts.thinking["type"]]
        if opts.output_format:
            args += ["--json-schema", json.dumps(opts.output_format["schema"])]
        for flag, values in (("--allowedTools", opts.allowed_tools),
                             ("--disallowedTools", opts.disallowed_tools),
                             ("--betas", opts.betas)):
            if values:
                args += [flag, ",".join(values)]
        if opts.tools is not None:
            args += ["--tools", ",".join(opts.tools)]
        if opts.agents:
            args += ["--agents", json.dumps({a.name: {
                "description": a.description, "prompt": a.prompt, "tools": a.tools,
                "disallowedTools": a.disallowed_tools or None, "model": a.model,
                "maxTurns": a.max_turns} for a in opts.agents.values()})]
        if opts.mcp_servers:
            args += ["--mcp-config", json.dumps({"mcpServers": opts.mcp_servers})]
        if self._session:
            args += ["--resume", self._session]
        return args

    async def run(self, prompt: str | list[dict[str, Any]], opts: QueryOptions,
                  io: EngineIO) -> None:
        env = {**os.environ, "ANTHROPIC_BASE_URL": await self._base_url(),
               "ANTHROPIC_API_KEY": PLACEHOLDER_API_KEY, "IS_SANDBOX": "1",
               "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC": "1",
               "CLAUDE_CODE_MAX_RETRIES": str(self.config.max_retries)}
        proc = await asyncio.create_subprocess_exec(
            *self.argv(opts), cwd=str(self.config.workspace), env=env, limit=READ_LIMIT,
            stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE, stderr=None,
            start_new_session=True)
        assert proc.stdin is not None and proc.stdout is not None

        async def send(obj: dict[str, Any]) -> None:
            assert proc.stdin is not None
            proc.stdin.write((json.dumps(obj) + "\n").encode())
            await proc.stdin.drain()

        await send({"type": "user", "message": {"role": "user", "content": prompt},
                    "parent_tool_use_id": None, "session_id": self._session})
        got_result = False
        try:
            got_result = await self._relay_output(proc, io, send, opts)
        except asyncio.CancelledError:
            task = asyncio.current_task()
            if task is not None:
                task.uncancel()
            with contextlib.suppress(Exception):
                await send({"type": "control_request", "request_id": "ash_interrupt",
                            "request": {"subtype": "interrupt"}})
                got_result = await asyncio.wait_for(self._relay_output(proc, io, send, opts), 5)
        finally:
            with contextlib.suppress(ProcessLookupError):
                proc.stdin.close()
            try:
                await asyncio.wait_for(proc.wait(), 5)
            except TimeoutError:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, 9)
                await proc.wait()
        if not got_result:
            await io.error(f"Claude Code CLI exited with code {proc.returncode} before a result")
            await io.emit(sdk.result(
                subtype="error_during_execution", is_error=True, duration_ms=0,
                duration_api_ms=0, num_turns=0, session_id=self._session, total_cost_usd=0.0,
                usage=dict(sdk.EMPTY_USAGE), model_usage={}, permission_denials=[],
                terminal_reason="error", stop_reason=None,
                errors=[f"CLI exited with code {proc.returncode}"]))

    async def _relay_output(self, proc: asyncio.subprocess.Process, io: EngineIO, send: Any,
                            opts: QueryOptions) -> bool:
        """Relay CLI messages until its `result`; True once a result was relayed."""
        assert proc.stdout is not None
        while line := await proc.stdout.readline():
            try:
                msg = json.loads(line)
            except ValueError:
                log.warning("non-JSON line from the CLI: %r", line[:200])
                continue
            kind = msg.get("type")
            if kind == "control_request":
                await self._control(msg, io, send, opts)
                continue
            if kind in ("control_response", "control_cancel_request", "keep_alive"):
                continue
            if isinstance(msg.get("session_id"), str) and msg["session_id"] != self._session:
                self._save_session(msg["session_id"])
            await io.emit(msg)
            if kind == "result":
                return True
        return False

    async def _control(self, msg: dict[str, Any], io: EngineIO, send: Any,
                       opts: QueryOptions) -> None:
        request = msg.get("request") or {}
        if request.get("subtype") != "can_use_tool":
            await send({"type": "control_response", "response": {
                "subtype": "error", "request_id": msg.get("request_id"),
                "error": f"unsupported control request {request.get('subtype')}"}})
            return
        answer = await io.ask(PermissionAsk(
            str(request.get("tool_use_id", "")), str(request.get("tool_name", "")),
            dict(request.get("input") or {}), str(request.get("description") or ""),
            list(request.get("permission_suggestions") or [])),
            opts.permission_timeout_ms or self.config.permission_timeout_ms)
        if answer.behavior == "allow":
            body: dict[str, Any] = {"behavior": "allow",
                                    "updatedInput": answer.updated_input or request.get("input")}
        else:
            body = {"behavior": "deny", "message": answer.message or "Permission denied",
                    "interrupt": False}
        await send({"type": "control_response", "response": {
            "subtype": "success", "request_id": msg.get("request_id"), "response": body}})

    async def close(self) -> None:
        if self._relay is not None:
            await self._relay.close()
