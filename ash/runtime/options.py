"""Query options: the Claude Agent SDK option names (camelCase), validated strictly."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

PERMISSION_MODES = ("bypassPermissions", "default", "acceptEdits", "plan", "dontAsk",
                    "permissionsByAgent")
EFFORTS = ("low", "medium", "high", "xhigh", "max")
DEFAULT_MODEL = "claude-sonnet-4-6"
DEFAULT_MAX_TOKENS = 32000


class OptionsError(ValueError):
    """The query options are invalid."""


@dataclass(frozen=True)
class AgentDefinition:
    """A subagent: `options.subagents[name]` (SDK `agents`)."""

    name: str
    description: str
    prompt: str
    tools: list[str] | None = None
    disallowed_tools: list[str] = field(default_factory=list)
    model: str | None = None  # alias, full id or "inherit"
    max_turns: int | None = None


@dataclass(frozen=True)
class QueryOptions:
    model: str | None = None
    system_prompt: str | None = None
    append_system_prompt: str | None = None
    max_turns: int | None = None
    max_budget_usd: float | None = None
    max_tokens: int | None = None
    effort: str | None = None
    thinking: dict[str, Any] | None = None
    output_format: dict[str, Any] | None = None
    tools: list[str] | None = None  # the base tool set (None = all built-ins)
    allowed_tools: list[str] = field(default_factory=list)
    disallowed_tools: list[str] = field(default_factory=list)
    betas: list[str] = field(default_factory=list)
    agents: dict[str, AgentDefinition] = field(default_factory=dict)
    agent: str | None = None
    mcp_servers: dict[str, dict[str, Any]] = field(default_factory=dict)
    permission_mode: str = "bypassPermissions"
    permission_prompts: str = "host"  # "host": ask the runner; "none": auto-deny asks
    permission_timeout_ms: int | None = None
    include_partial_messages: bool = False
    engine: str | None = None

    @classmethod
    def from_wire(cls, raw: dict[str, Any]) -> QueryOptions:
        """Validate a query's `options` object; unknown keys are rejected."""
        raw = {k: v for k, v in raw.items() if v is not None}
        unknown = sorted(set(raw) - _KNOWN)
        if unknown:
            raise OptionsError(f"unknown option(s): {', '.join(unknown)}")
        kw: dict[str, Any] = {}
        for wire, (attr, check) in _FIELDS.items():
            if wire in raw:
                kw[attr] = check(wire, raw[wire])
        for alias, wire in _ALIASES.items():
            if alias in raw:
                attr, check = _FIELDS[wire]
                kw[attr] = check(alias, raw[alias])
        opts = cls(**kw)
        if opts.agent is not None and opts.agent not in opts.agents:
            raise OptionsError(f"initialAgent {opts.agent!r} is not among the subagents")
        return opts


def _str(name: str, v: Any) -> str:
    if not isinstance(v, str):
        raise OptionsError(f"{name} must be a string")
    return v


def _pos_int(name: str, v: Any) -> int:
    if isinstance(v, bool) or not isinstance(v, int) or v <= 0:
        raise OptionsError(f"{name} must be a positive integer")
    return v


def _pos_num(name: str, v: Any) -> float:
    if isinstance(v, bool) or not isinstance(v, (int, float)) or v <= 0:
        raise OptionsError(f"{name} must be a positive number")
    return float(v)


def _bool(name: str, v: Any) -> bool:
    if not isinstance(v, bool):
        raise OptionsError(f"{name} must be a boolean")
    return v


def _str_list(name: str, v: Any) -> list[str]:
    if not isinstance(v, list) or not all(isinstance(s, str) for s in v):
        raise OptionsError(f"{name} must be a list of strings")
    return list(v)


def _one_of(choices: tuple[str, ...]):
    def check(name: str, v: Any) -> str:
        if v not in choices:
            raise OptionsError(f"{name} must be one of {', '.join(choices)}")
        return v
    return check


def _thinking(name: str, v: Any) -> dict[str, Any]:
    if not isinstance(v, dict) or v.get("type") not in ("enabled", "adaptive", "disabled"):
        raise OptionsError(f"{name}.type must be enabled, adaptive or disabled")
    budget = v.get("budgetTokens", v.get("budget_tokens"))
    if v["type"] == "enabled" and budget is not None:
        _pos_int(f"{name}.budgetTokens", budget)
    return dict(v)


def _output_format(name: str, v: Any) -> dict[str, Any]:
    if not isinstance(v, dict) or v.get("type") != "json_schema" or not isinstance(
            v.get("schema"), dict):
        raise OptionsError(f"{name} must be {{type: 'json_schema', schema: {{...}}}}")
    return dict(v)


def _system_prompt(name: str, v: Any) -> str:
    # The SDK preset form {type: 'preset', append} means "the default prompt plus append".
    if isinstance(v, dict) and v.get("type") == "preset":
        return str(v.get("append") or "")
    return _str(name, v)


def _mcp_servers(name: str, v: Any) -> dict[str, dict[str, Any]]:
    if not isinstance(v, dict):
        raise OptionsError(f"{name} must be an object")
    for server, spec in v.items():
        if not isinstance(spec, dict) or not (isinstance(spec.get("command"), str)
                                              or isinstance(spec.get("url"), str)):
            raise OptionsError(f"{name}.{server} needs a command or a url")
    return {k: dict(s) for k, s in v.items()}


def _agents(name: str, v: Any) -> dict[str, AgentDefinition]:
    if not isinstance(v, dict):
        raise OptionsError(f"{name} must be an object")
    out: dict[str, AgentDefinition] = {}
    for key, spec in v.items():
        if not isinstance(spec, dict) or not isinstance(spec.get("prompt"), str):
            raise OptionsError(f"{name}.{key} needs a prompt")
        tools = spec.get("tools")
        out[key] = AgentDefinition(
            name=key, description=str(spec.get("description") or key), prompt=spec["prompt"],
            tools=_str_list(f"{name}.{key}.tools", tools) if tools is not None else None,
            disallowed_tools=_str_list(f"{name}.{key}.disallowedTools",
                                       spec.get("disallowedTools") or []),
            model=spec.get("model") if isinstance(spec.get("model"), str) else None,
            max_turns=_pos_int(f"{name}.{key}.maxTurns", spec["maxTurns"])
            if spec.get("maxTurns") is not None else None)
    return out


def _ignore(name: str, v: Any) -> Any:
    return v


_FIELDS: dict[str, tuple[str, Any]] = {
    "model": ("model", _str),
    "systemPrompt": ("system_prompt", _system_prompt),
    "appendSystemPrompt": ("append_system_prompt", _str),
    "maxTurns": ("max_turns", _pos_int),
    "maxBudgetUsd": ("max_budget_usd", _pos_num),
    "maxTokens": ("max_tokens", _pos_int),
    "effort": ("effort", _one_of(EFFORTS)),
    "thinking": ("thinking", _thinking),
    "outputFormat": ("output_format", _output_format),
    "tools": ("tools", _str_list),
    "allowedTools": ("allowed_tools", _str_list),
    "disallowedTools": ("disallowed_tools", _str_list),
    "betas": ("betas", _str_list),
    "subagents": ("agents", _agents),
    "initialAgent": ("agent", _str),
    "mcpServers": ("mcp_servers", _mcp_servers),
    "permissionMode": ("permission_mode", _one_of(PERMISSION_MODES)),
    "permissionPrompts": ("permission_prompts", _one_of(("host", "none"))),
    "permissionTimeoutMs": ("permission_timeout_ms", _pos_int),
    "includePartialMessages": ("include_partial_messages", _bool),
    "engine": ("engine", _one_of(("native", "claude-code"))),
}
# SDK spellings accepted as synonyms of the Ash ones.
_ALIASES = {"agents": "subagents", "agent": "initialAgent"}
# Carried by the runner for its own bookkeeping; accepted and ignored here.
_IGNORED = {"sessionId", "traceContext", "resume"}
_KNOWN = set(_FIELDS) | set(_ALIASES) | _IGNORED
