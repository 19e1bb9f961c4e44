"""Token usage and cost totals for one query, in the CLI's `usage`/`modelUsage` shapes."""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from typing import Any

from ash.llm_proxy.pricing import cost_usd
from ash.runtime.messages import EMPTY_USAGE

CONTEXT_WINDOW = 200_000


def _int(usage: dict[str, Any], key: str) -> int:
    value = usage.get(key)
    return int(value) if isinstance(value, (int, float)) else 0


@dataclass
class Totals:
    usage: dict[str, Any] = field(default_factory=lambda: copy.deepcopy(EMPTY_USAGE))
    model_usage: dict[str, dict[str, Any]] = field(default_factory=dict)
    cost_usd: float = 0.0
    api_ms: int = 0

    def add(self, model: str, usage: dict[str, Any], max_tokens: int) -> float:
        """Account one API response; returns its cost."""
        cost = cost_usd(model, usage)
        self.cost_usd += cost
        u = self.usage
        for key in ("input_tokens", "cache_creation_input_tokens", "cache_read_input_tokens",
                    "output_tokens"):
            u[key] += _int(usage, key)
        split = usage.get("cache_creation") or {}
        for key in ("ephemeral_1h_input_tokens", "ephemeral_5m_input_tokens"):
            u["cache_creation"][key] += _int(split, key)
        server = usage.get("server_tool_use") or {}
        for key in ("web_search_requests", "web_fetch_requests"):
            u["server_tool_use"][key] += _int(server, key)
        if isinstance(usage.get("service_tier"), str):
            u["service_tier"] = usage["service_tier"]
        m = self.model_usage.setdefault(model, {
            "inputTokens": 0, "outputTokens": 0, "cacheReadInputTokens": 0,
            "cacheCreationInputTokens": 0, "webSearchRequests": 0, "costUSD": 0.0,
            "contextWindow": CONTEXT_WINDOW, "maxOutputTokens": max_tokens})
        m["inputTokens"] += _int(usage, "input_tokens")
        m["outputTokens"] += _int(usage, "output_tokens")
        m["cacheReadInputTokens"] += _int(usage, "cache_read_input_tokens")
        m["cacheCreationInputTokens"] += _int(usage, "cache_creation_input_tokens")
        m["webSearchRequests"] += _int(server, "web_search_requests")
        m["costUSD"] += cost
        return cost
