"""The one model price table, and the cost of a Messages API `usage` object.

Prices are USD per million tokens. Model ids resolve by normalising (provider prefixes, date and
version suffixes, `-latest` are stripped) and then taking the longest table key that the id starts
with at a `-` boundary. An unknown model is priced like the Claude Code CLI does, at the 5/25 tier,
and flagged (`PriceResolution.known is False`). The built-in local model costs nothing.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

LOCAL_MODEL_PREFIX = "ash-local"
WEB_SEARCH_USD_PER_REQUEST = Decimal("0.01")
US_INFERENCE_MULTIPLIER = Decimal("1.1")  # usage.inference_geo == "us"


@dataclass(frozen=True)
class ModelPrice:
    """USD per million tokens for each kind of token."""

    input: Decimal
    output: Decimal
    cache_write_5m: Decimal
    cache_write_1h: Decimal
    cache_read: Decimal
    # Some models charge more once the prompt (input + cache write + cache read) passes a size.
    long_context_threshold: int | None = None
    long_context: ModelPrice | None = None


def _price(inp: str, w5: str, w1h: str, read: str, out: str, **kw: Any) -> ModelPrice:
    return ModelPrice(Decimal(inp), Decimal(out), Decimal(w5), Decimal(w1h), Decimal(read), **kw)


TIER_15_75 = _price("15", "18.75", "30", "1.50", "75")
TIER_5_25 = _price("5", "6.25", "10", "0.50", "25")
TIER_3_15 = _price("3", "3.75", "6", "0.30", "15")
TIER_2_10 = _price("2", "2.50", "4", "0.20", "10")
FREE = _price("0", "0", "0", "0", "0")

# Family key (normalised model id prefix) -> price. Order does not matter: longest match wins.
PRICES: dict[str, ModelPrice] = {
    "claude-opus-4": TIER_15_75,  # claude-opus-4-20250514 is Opus 4.0
    "claude-opus-4-0": TIER_15_75,
    "claude-opus-4-1": TIER_15_75,
    "claude-opus-4-5": TIER_5_25,
    "claude-opus-4-6": TIER_5_25,
    "claude-opus-4-7": TIER_5_25,
    "claude-opus-4-8": TIER_5_25,
    "claude-opus-5": TIER_5_25,
    "claude-opus-5-5": _price("4", "5", "8", "0.20", "20"),
    "claude-3-5-sonnet": TIER_3_15,
    "claude-3-7-sonnet": TIER_3_15,
    "claude-sonnet-4": TIER_3_15,  # claude-sonnet-4-20250514 is Sonnet 4.0
    "claude-sonnet-4-0": TIER_3_15,
    "claude-sonnet-4-5": TIER_3_15,
    "claude-sonnet-4-6": TIER_3_15,
    "claude-sonnet-5": TIER_2_10,
    "claude-sonnet-5-5": _price("2", "2.50", "4", "0.10", "10"),
    "claude-haiku-4-5": _price("1", "1.25", "2", "0.10", "5"),
    "claude-3-5-haiku": _price("0.80", "1", "1.6", "0.08", "4"),
    "claude-haiku-5-5": _price(
        "0.10", "0.125", "0.20", "0.01", "0.50",
        long_context_threshold=100_000,
        long_context=_price("0.5", "0.625", "1", "0.05", "2.5"),
    ),
    "claude-fable-5": _price("10", "12.50", "20", "1", "50"),
    "claude-mythos-5": _price("10", "12.50", "20", "1", "50"),
    "claude-fable-5-1": _price("10", "12.50", "20", "0.25", "50"),
    "claude-mythos-5-1": _price("10", "12.50", "20", "0.25", "50"),
    "claude-fable-5-2": _price("8", "10", "16", "0.20", "40"),
    "claude-mythos-5-2": _price("8", "10", "16", "0.20", "40"),
    LOCAL_MODEL_PREFIX: FREE,
}

# Short names (Agent tool `model`, CLI `--model`) -> the newest family of that name in the table.
ALIASES: dict[str, str] = {
    "opus": "claude-opus-5-5",
    "sonnet": "claude-sonnet-5-5",
    "haiku": "claude-haiku-5-5",
    "fable": "claude-fable-5-2",
    "mythos": "claude-mythos-5-2",
}

DEFAULT_PRICE = TIER_5_25  # what the Claude Code CLI charges for a model it does not know

_PROVIDER_PREFIX = re.compile(r"^(?:[a-z]{2,4}\.)?anthropic[./]")  # bedrock "us.anthropic.", "anthropic/"
_VERSION_SUFFIX = re.compile(r"(?:-v\d+(?::\d+)?|@\d{8}|-\d{8}|-latest)$")


@dataclass(frozen=True)
class PriceResolution:
    """How a model id was priced: the matched family (None when unknown)."""

    model: str
    family: str | None
    price: ModelPrice

    @property
    def known(self) -> bool:
        return self.family is not None


def normalize_model(model: str) -> str:
    """Lower-case, drop provider prefixes and date/version suffixes, resolve aliases."""
    name = model.strip().lower()
    name = _PROVIDER_PREFIX.sub("", name)
    # Suffixes can stack (`-20250929-v1:0`), so strip until nothing changes.
    while (stripped := _VERSION_SUFFIX.sub("", name)) != name:
        name = stripped
    return ALIASES.get(name, name)


@functools.lru_cache(maxsize=512)
def resolve_price(model: str | None) -> PriceResolution:
    """The price for `model`; unknown ids get DEFAULT_PRICE and `known=False`. Cached: every
    model call is priced (twice: by the proxy and by the runtime) and ids are few."""
    name = normalize_model(model or "")
    best: str | None = None
    for key in PRICES:
        if (name == key or name.startswith(key + "-")) and (best is None or len(key) > len(best)):
            best = key
    if best is None:
        return PriceResolution(model or "", None, DEFAULT_PRICE)
    return PriceResolution(model or "", best, PRICES[best])


def _tokens(usage: Mapping[str, Any], key: str) -> int:
    value = usage.get(key)
    return int(value) if isinstance(value, (int, float)) and value > 0 else 0


def cost_usd_decimal(model: str | None, usage: Mapping[str, Any]) -> Decimal:
    """Exact cost of one API response; see `cost_usd`."""
    price = resolve_price(model).price
    inp = _tokens(usage, "input_tokens")
    out = _tokens(usage, "output_tokens")
    read = _tokens(usage, "cache_read_input_tokens")
    written = _tokens(usage, "cache_creation_input_tokens")
    split = usage.get("cache_creation")
    split = split if isinstance(split, Mapping) else {}
    w1h = _tokens(split, "ephemeral_1h_input_tokens")
    w5m = _tokens(split, "ephemeral_5m_input_tokens")
    # The total is authoritative; tokens the split does not account for are charged as 5m writes.
    if written > w5m + w1h:
        w5m = written - w1h
    if (price.long_context_threshold is not None and price.long_context is not None
            and inp + read + w5m + w1h > price.long_context_threshold):
        price = price.long_context
    per_mtok = (inp * price.input + out * price.output + w5m * price.cache_write_5m
                + w1h * price.cache_write_1h + read * price.cache_read)
    total = per_mtok / Decimal(1_000_000)
    server_tools = usage.get("server_tool_use")
    if isinstance(server_tools, Mapping) and price is not FREE:
        total += _tokens(server_tools, "web_search_requests") * WEB_SEARCH_USD_PER_REQUEST
    if usage.get("inference_geo") == "us":
        total *= US_INFERENCE_MULTIPLIER
    return total


def cost_usd(model: str | None, usage: Mapping[str, Any]) -> float:
    """USD cost of one Messages API response's `usage` (input excludes cached tokens).

    Missing or null fields count as zero; the result is the float nearest the exact sum.
    """
    return float(cost_usd_decimal(model, usage))


def is_local_model(model: str | None) -> bool:
    return normalize_model(model or "").startswith(LOCAL_MODEL_PREFIX)
