"""Runtime configuration from the environment, and the agent folder's files."""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

log = logging.getLogger("ash.runtime")

# The runtime never holds a real credential: the model proxy replaces this placeholder.
PLACEHOLDER_API_KEY = "ash-sandbox-no-credential"
DEFAULT_PROXY_SOCKET = "/run/ash-proxy/llm.sock"
PROXY_BASE_URL = "http://ash-proxy"  # host is ignored when speaking over the unix socket


@dataclass(frozen=True)
class RuntimeConfig:
    workspace: Path = Path("/workspace")
    agent_dir: Path = Path("/agent")
    proxy_socket: str | None = DEFAULT_PROXY_SOCKET
    model_base_url: str | None = None  # when set, used instead of the proxy socket
    state_path: Path | None = None  # default: <workspace>/.ash/conversation.json
    default_model: str | None = None
    max_retries: int = 2
    permission_timeout_ms: int = 300_000
    default_permission_mode: str = "bypassPermissions"
    mcp_connect_timeout_s: float = 10.0
    engine: str = "native"
    bash_output_limit: int = 30_000

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> RuntimeConfig:
        env = os.environ if env is None else env
        workspace = Path(env.get("ASH_WORKSPACE") or env.get("ASH_WORKSPACE_DIR") or "/workspace")
        return cls(
            workspace=workspace,
            agent_dir=Path(env.get("ASH_AGENT_DIR") or "/agent"),
            proxy_socket=env.get("ASH_PROXY_SOCKET") or DEFAULT_PROXY_SOCKET,
            model_base_url=env.get("ASH_MODEL_BASE_URL") or None,
            state_path=Path(env["ASH_STATE_PATH"]) if env.get("ASH_STATE_PATH") else None,
            default_model=env.get("ASH_MODEL") or None,
            max_retries=int(env.get("ASH_MODEL_MAX_RETRIES", "2")),
            permission_timeout_ms=int(env.get("ASH_PERMISSION_TIMEOUT_MS", "300000")),
            default_permission_mode=env.get("ASH_PERMISSION_MODE") or "bypassPermissions",
            mcp_connect_timeout_s=float(env.get("ASH_MCP_CONNECT_TIMEOUT", "10")),
            engine=env.get("ASH_ENGINE") or "native",
            bash_output_limit=int(env.get("ASH_BASH_OUTPUT_LIMIT", "30000")),
        )

    @property
    def conversation_path(self) -> Path:
        return self.state_path or self.workspace / ".ash" / "conversation.json"


@dataclass(frozen=True)
class AgentSettings:
    """What the agent folder contributes: prompt, permission rules, default model, MCP servers."""

    system_prompt: str | None = None
    allow: list[str] = field(default_factory=list)
    deny: list[str] = field(default_factory=list)
    ask: list[str] = field(default_factory=list)
    default_mode: str | None = None
    model: str | None = None
    mcp_servers: dict[str, dict[str, Any]] = field(default_factory=dict)


_texts: dict[Path, tuple[tuple[int, int, int], str]] = {}


def _read_text(path: Path) -> str:
    """PATH's text, re-read only when the file changed (inode, size or mtime): every query reads
    the agent's settings, and a stat costs a fraction of an open and a read. Raises like
    `read_text`."""
    st = os.stat(path)
    key = (st.st_ino, st.st_size, st.st_mtime_ns)
    cached = _texts.get(path)
    if cached is not None and cached[0] == key:
        return cached[1]
    text = path.read_text()
    _texts[path] = (key, text)
    return text


def _read_json(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(_read_text(path))
    except FileNotFoundError:
        return {}
    except (OSError, ValueError) as exc:
        log.warning("ignoring unreadable %s: %s", path, exc)
        return {}
    return data if isinstance(data, dict) else {}


def _strings(value: Any) -> list[str]:
    return [s for s in value if isinstance(s, str)] if isinstance(value, list) else []


def load_agent_settings(workspace: Path, agent_dir: Path) -> AgentSettings:
    """CLAUDE.md (workspace copy first, then the agent dir), settings.json and .mcp.json."""
    prompt = None
    for candidate in (workspace / "CLAUDE.md", agent_dir / "CLAUDE.md"):
        try:
            prompt = _read_text(candidate)
            break
        except (FileNotFoundError, IsADirectoryError, PermissionError):
            continue
    settings = _read_json(agent_dir / ".claude" / "settings.json")
    perms = settings.get("permissions") if isinstance(settings.get("permissions"), dict) else {}
    mcp = _read_json(agent_dir / ".mcp.json").get("mcpServers")
    servers = {k: v for k, v in mcp.items() if isinstance(v, dict)} if isinstance(mcp, dict) \
        else {}
    return AgentSettings(
        system_prompt=prompt,
        allow=_strings(perms.get("allow")),
        deny=_strings(perms.get("deny")),
        ask=_strings(perms.get("ask")),
        default_mode=perms.get("defaultMode") if isinstance(perms.get("defaultMode"), str)
        else None,
        model=settings.get("model") if isinstance(settings.get("model"), str) else None,
        mcp_servers=servers,
    )
