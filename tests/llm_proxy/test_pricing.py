"""Price table resolution and exact costs."""

from __future__ import annotations

import pytest

from ash.llm_proxy.pricing import (
    DEFAULT_PRICE,
    cost_usd,
    is_local_model,
    normalize_model,
    resolve_price,
)


@pytest.mark.parametrize(
    ("model", "family"),
    [
        ("claude-sonnet-4-5-20250929", "claude-sonnet-4-5"),
        ("claude-sonnet-4-5", "claude-sonnet-4-5"),
        ("claude-opus-4-20250514", "claude-opus-4"),
        ("claude-opus-4-1-20250805", "claude-opus-4-1"),
        ("claude-opus-4-5-20251101", "claude-opus-4-5"),
        ("claude-3-7-sonnet-latest", "claude-3-7-sonnet"),
        ("claude-3-5-haiku-20241022", "claude-3-5-haiku"),
        ("us.anthropic.claude-sonnet-4-5-20250929-v1:0", "claude-sonnet-4-5"),
        ("anthropic.claude-haiku-4-5-20251001-v1:0", "claude-haiku-4-5"),
        ("claude-sonnet-4-5@20250929", "claude-sonnet-4-5"),
        ("Claude-Opus-5-5", "claude-opus-5-5"),
        ("claude-opus-5", "claude-opus-5"),
        ("claude-fable-5-2-20270101", "claude-fable-5-2"),
        ("sonnet", "claude-sonnet-5-5"),
        ("haiku", "claude-haiku-5-5"),
        ("ash-local-demo", "ash-local"),
    ],
)
def test_model_ids_resolve_to_their_family(model: str, family: str) -> None:
    resolution = resolve_price(model)
    assert resolution.family == family
    assert resolution.known


def test_prefix_match_needs_a_dash_boundary() -> None:
    # "claude-opus-45" must not be mistaken for claude-opus-4 (15/75).
    assert not resolve_price("claude-opus-45").known


@pytest.mark.parametrize("model", ["gpt-4o", "", None, "claude-3-opus-20240229", "claude"])
def test_unknown_models_get_the_default_tier_and_a_flag(model: str | None) -> None:
    resolution = resolve_price(model)
    assert resolution.known is False
    assert resolution.family is None
    assert resolution.price == DEFAULT_PRICE
    assert cost_usd(model, {"input_tokens": 1_000_000}) == 5.0


def test_normalize_strips_stacked_suffixes() -> None:
    assert normalize_model("eu.anthropic.claude-opus-4-1-20250805-v1:0") == "claude-opus-4-1"


def test_sonnet_matches_the_cli_figure() -> None:
    # 200 in + 40 out on sonnet-4-5 gave total_cost_usd 0.0012 in the CLI.
    assert cost_usd("claude-sonnet-4-5-20250929", {"input_tokens": 200, "output_tokens": 40}) == 0.0012


def test_cost_with_every_token_kind() -> None:
    usage = {
        "input_tokens": 1000,
        "output_tokens": 500,
        "cache_creation_input_tokens": 3000,
        "cache_read_input_tokens": 10_000,
        "cache_creation": {"ephemeral_5m_input_tokens": 2000, "ephemeral_1h_input_tokens": 1000},
    }
    # sonnet-4-5: 1000*3 + 500*15 + 2000*3.75 + 1000*6 + 10000*0.30 = 27000 per MTok
    assert cost_usd("claude-sonnet-4-5", usage) == 0.027
    # opus-4-1: 1000*15 + 500*75 + 2000*18.75 + 1000*30 + 10000*1.5 = 135000
    assert cost_usd("claude-opus-4-1", usage) == 0.135
    # haiku-4-5: 1000 + 2500 + 2500 + 2000 + 1000 = 9000
    assert cost_usd("claude-haiku-4-5", usage) == 0.009


def test_cache_writes_without_split_are_charged_as_5m() -> None:
    usage = {"cache_creation_input_tokens": 1_000_000}
    assert cost_usd("claude-sonnet-4-5", usage) == 3.75


def test_split_shortfall_is_charged_as_5m() -> None:
    usage = {"cache_creation_input_tokens": 2_000_000,
             "cache_creation": {"ephemeral_5m_input_tokens": 0, "ephemeral_1h_input_tokens": 1_000_000}}
    assert cost_usd("claude-sonnet-4-5", usage) == 3.75 + 6


def test_null_and_missing_fields_count_as_zero() -> None:
    usage = {"input_tokens": None, "output_tokens": 1_000_000, "cache_creation": None,
             "cache_read_input_tokens": None}
    assert cost_usd("claude-sonnet-4-5", usage) == 15.0
    assert cost_usd("claude-sonnet-4-5", {}) == 0.0


def test_haiku_5_5_long_context_rates_above_100k_prompt() -> None:
    short = {"input_tokens": 100_000, "output_tokens": 1000}
    assert cost_usd("claude-haiku-5-5", short) == 0.0105  # 100000*0.10 + 1000*0.50
    long = {"input_tokens": 50_000, "cache_read_input_tokens": 60_000, "output_tokens": 1000}
    # 50000*0.5 + 60000*0.05 + 1000*2.5 = 30500
    assert cost_usd("claude-haiku-5-5", long) == 0.0305


def test_us_inference_and_web_search() -> None:
    usage = {"input_tokens": 1_000_000, "inference_geo": "us",
             "server_tool_use": {"web_search_requests": 2}}
    assert cost_usd("claude-sonnet-4-5", usage) == pytest.approx((3 + 0.02) * 1.1, abs=1e-12)
    assert cost_usd("claude-sonnet-4-5", usage) == 3.322


def test_local_model_is_free() -> None:
    usage = {"input_tokens": 10_000, "output_tokens": 10_000, "server_tool_use": {"web_search_requests": 3}}
    assert cost_usd("ash-local-demo", usage) == 0.0
    assert is_local_model("ash-local-demo")
    assert not is_local_model("claude-sonnet-4-5")
