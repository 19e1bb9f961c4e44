"""Per-sandbox model-API proxy: adds the credential, meters usage, enforces the budget.

The names below load lazily: the sandboxed runtime imports `ash.llm_proxy.pricing` and must not
pay for the proxy server (h11, its upstream client) it never runs.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "ASH_ERROR_HEADER": "errors",
    "BUDGET_EXCEEDED": "errors",
    "BUDGET_EXCEEDED_STATUS": "errors",
    "LOCAL_MODEL_ID": "local_model",
    "SOCKET_NAME": "server",
    "CredentialKind": "upstream",
    "ModelProxy": "server",
    "ProxyLimits": "http11",
    "Upstream": "upstream",
    "UpstreamConfigError": "upstream",
    "UsageRecord": "metering",
    "cost_usd": "pricing",
    "resolve_price": "pricing",
    "upstream_resolve": "upstream",
}
__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{module}"), name)
    globals()[name] = value
    return value
