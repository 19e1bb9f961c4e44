"""Per-sandbox model-API proxy: adds the credential, meters usage, enforces the budget."""

from ash.llm_proxy.errors import ASH_ERROR_HEADER, BUDGET_EXCEEDED, BUDGET_EXCEEDED_STATUS
from ash.llm_proxy.http11 import ProxyLimits
from ash.llm_proxy.local_model import LOCAL_MODEL_ID
from ash.llm_proxy.metering import UsageRecord
from ash.llm_proxy.pricing import cost_usd, resolve_price
from ash.llm_proxy.server import SOCKET_NAME, ModelProxy
from ash.llm_proxy.upstream import CredentialKind, Upstream, UpstreamConfigError, upstream_resolve

__all__ = [
    "ASH_ERROR_HEADER",
    "BUDGET_EXCEEDED",
    "BUDGET_EXCEEDED_STATUS",
    "LOCAL_MODEL_ID",
    "SOCKET_NAME",
    "CredentialKind",
    "ModelProxy",
    "ProxyLimits",
    "Upstream",
    "UpstreamConfigError",
    "UsageRecord",
    "cost_usd",
    "resolve_price",
    "upstream_resolve",
]
