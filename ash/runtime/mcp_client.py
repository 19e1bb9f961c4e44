"""MCP servers (stdio and streamable HTTP) exposed as `mcp__<server>__<tool>` tools.

Each server lives in its own task, because the `mcp` client's anyio scopes must be entered and
left by the same task; tool calls from the engine only talk to the open session.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
import logging
from dataclasses import dataclass
from typing import Any

from ash.runtime.tools import ToolOutput, tool_error

log = logging.getLogger("ash.runtime.mcp")


@dataclass(frozen=True)
class McpTool:
    server: str
    name: str  # the server's own tool name
    description: str
    input_schema: dict[str, Any]

    @property
    def full_name(self) -> str:
        return f"mcp__{self.server}__{self.name}"

    @functools.cached_property
    def definition(self) -> dict[str, Any]:
        """The Messages API tool entry: one dict per tool, never changed (requests reuse its JSON)."""
        return {"name": self.full_name, "description": self.description,
                "input_schema": self.input_schema}


class _Server:
    def __init__(self, name: str, spec: dict[str, Any]) -> None:
        self.name, self.spec = name, spec
        self.status = "pending"
        self.error = ""
        self.client: Any = None
        self.tools: list[McpTool] = []
        self._stop = asyncio.Event()
        self._ready: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.task = asyncio.create_task(self._run(), name=f"mcp:{name}")

    def _make_client(self) -> Any:
        from mcp import Client, StdioServerParameters

        if self.spec.get("command"):
            from mcp.client.stdio import get_default_environment

            env = {**get_default_environment(), **{k: str(v) for k, v in
                                                   (self.spec.get("env") or {}).items()}}
            return Client(StdioServerParameters(
                command=self.spec["command"], args=[str(a) for a in self.spec.get("args") or []],
                env=env, cwd=self.spec.get("cwd")))
        headers = self.spec.get("headers") or {}
        if not headers:
            return Client(self.spec["url"])
        import httpx2
        from mcp.client.streamable_http import streamable_http_client

        return Client(streamable_http_client(
            self.spec["url"], http_client=httpx2.AsyncClient(headers=headers)))

    async def _run(self) -> None:
        try:
            async with self._make_client() as client:
                listed = await client.list_tools()
                self.tools = [McpTool(self.name, t.name, t.description or "",
                                      dict(t.input_schema or {"type": "object"}))
                              for t in listed.tools]
                self.client, self.status = client, "connected"
                self._ready.set_result(None)
                await self._stop.wait()
        except asyncio.CancelledError:
            raise
        except BaseException as exc:  # noqa: BLE001 - any server failure is a status, not a crash
            self.status, self.error = "failed", f"{type(exc).__name__}: {exc}"
            log.warning("MCP server %s failed: %s", self.name, self.error)
            if not self._ready.done():
                self._ready.set_result(None)
        finally:
            self.client = None

    async def wait_ready(self, timeout: float) -> None:
        try:
            await asyncio.wait_for(asyncio.shield(self._ready), timeout)
        except TimeoutError:
            self.status, self.error = "failed", f"timed out after {timeout:g}s"
            await self.close()

    async def close(self) -> None:
        self._stop.set()
        try:
            await asyncio.wait_for(asyncio.shield(self.task), 5)
        except (TimeoutError, Exception):
            self.task.cancel()
            with contextlib.suppress(BaseException):
                await self.task


class McpManager:
    """The MCP servers of the current configuration, reconnected when it changes."""

    def __init__(self, connect_timeout: float = 10.0) -> None:
        self.connect_timeout = connect_timeout
        self._servers: dict[str, _Server] = {}
        self._config: dict[str, dict[str, Any]] = {}

    async def ensure(self, config: dict[str, dict[str, Any]]) -> None:
        """Connect to every server in `config` concurrently; failures only mark a status."""
        if config == self._config and self._servers:
            return
        await self.close()
        self._config = json.loads(json.dumps(config))
        self._servers = {name: _Server(name, spec) for name, spec in config.items()}
        await asyncio.gather(*(s.wait_ready(self.connect_timeout)
                               for s in self._servers.values()))

    def statuses(self) -> list[dict[str, Any]]:
        return [{"name": s.name, "status": s.status} for s in self._servers.values()]

    def failures(self) -> dict[str, str]:
        return {s.name: s.error for s in self._servers.values() if s.status == "failed"}

    def tools(self) -> list[McpTool]:
        return [t for s in self._servers.values() if s.status == "connected" for t in s.tools]

    async def call(self, full_name: str, arguments: dict[str, Any]) -> ToolOutput:
        _, server_name, tool_name = full_name.split("__", 2)
        server = self._servers.get(server_name)
        if server is None or server.client is None:
            return tool_error(f"MCP server {server_name} is not connected")
        try:
            res = await server.client.call_tool(tool_name, arguments)
        except Exception as exc:  # noqa: BLE001 - reported to the model as a tool error
            return tool_error(f"MCP tool {full_name} failed: {exc}")
        blocks: list[dict[str, Any]] = []
        for item in res.content or []:
            kind = getattr(item, "type", "")
            if kind == "text":
                blocks.append({"type": "text", "text": item.text})
            elif kind == "image":
                blocks.append({"type": "image", "source": {
                    "type": "base64", "media_type": item.mime_type if hasattr(item, "mime_type")
                    else item.mimeType, "data": item.data}})
        if not blocks and res.structured_content is not None:
            blocks = [{"type": "text", "text": json.dumps(res.structured_content)}]
        if all(b["type"] == "text" for b in blocks):
            content: str | list[dict[str, Any]] = "\n".join(b["text"] for b in blocks)
        else:
            content = blocks
        return ToolOutput(content, bool(res.is_error), blocks)

    async def close(self) -> None:
        servers, self._servers, self._config = list(self._servers.values()), {}, {}
        await asyncio.gather(*(s.close() for s in servers), return_exceptions=True)
