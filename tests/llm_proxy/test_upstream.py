"""Choosing the upstream and its credential."""

from __future__ import annotations

import pytest

from ash.llm_proxy import CredentialKind, Upstream, UpstreamConfigError, upstream_resolve
from ash.llm_proxy.upstream import DEFAULT_BASE_URL


def test_credential_wins_over_the_environment() -> None:
    up = upstream_resolve(credential_type="custom", credential_key="tok",
                          env={"ANTHROPIC_API_KEY": "env-key", "ANTHROPIC_BASE_URL": "http://gw:8"})
    assert (up.kind, up.api_key, up.url) == (CredentialKind.CUSTOM, "tok", "http://gw:8")
    assert up.auth_headers() == {"authorization": "Bearer tok"}


def test_environment_key_then_token_then_local() -> None:
    key = upstream_resolve(env={"ANTHROPIC_API_KEY": "k", "ANTHROPIC_AUTH_TOKEN": "t"})
    assert (key.kind, key.url, key.auth_headers()) == (
        CredentialKind.ANTHROPIC, DEFAULT_BASE_URL, {"x-api-key": "k"})
    token = upstream_resolve(env={"ANTHROPIC_AUTH_TOKEN": "t"})
    assert token.auth_headers() == {"authorization": "Bearer t"}
    assert upstream_resolve(env={}).is_local
    with pytest.raises(UpstreamConfigError):
        upstream_resolve(env={}, allow_local=False)


def test_base_url_alone_is_a_keyless_gateway() -> None:
    up = upstream_resolve(env={"ANTHROPIC_BASE_URL": "http://127.0.0.1:9/"})
    assert (up.kind, up.url, up.auth_headers(), up.problem) == (
        CredentialKind.CUSTOM, "http://127.0.0.1:9", {}, None)


def test_key_never_appears_in_repr() -> None:
    assert "sk-secret" not in repr(Upstream(CredentialKind.ANTHROPIC, "sk-secret"))


@pytest.mark.parametrize(("upstream", "problem"), [
    (Upstream(CredentialKind.BEDROCK, '{"accessKeyId": "a"}'), "Bedrock"),
    (Upstream(CredentialKind.OPENAI, "sk-openai"), "OpenAI credential cannot serve"),
    (Upstream(CredentialKind.ANTHROPIC, ""), "empty key"),
])
def test_unusable_configurations_explain_themselves(upstream: Upstream, problem: str) -> None:
    assert upstream.problem is not None and problem in upstream.problem


def test_usable_configurations_have_no_problem() -> None:
    assert Upstream(CredentialKind.OPENAI, "sk", "http://gw").problem is None
    assert Upstream(CredentialKind.ANTHROPIC, "k").problem is None
    assert Upstream.local().problem is None


@pytest.mark.parametrize("url", ["ftp://x", "api.anthropic.com", "http://"])
def test_bad_base_urls_are_rejected(url: str) -> None:
    with pytest.raises(UpstreamConfigError):
        Upstream(CredentialKind.ANTHROPIC, "k", url)


def test_unknown_credential_type_is_rejected() -> None:
    with pytest.raises(ValueError):
        upstream_resolve(credential_type="gemini", credential_key="k", env={})
