"""The proxy's HTTPS upstream, against the fake Messages API served over TLS on loopback with a
certificate from a throwaway CA: verified, trusted through SSL_CERT_FILE, refused otherwise."""

from __future__ import annotations

from pathlib import Path

import pytest

from ash.llm_proxy import CredentialKind, Upstream, UsageRecord
from tests.fakes.anthropic_server import FakeAnthropic, Reply
from tests.llm_proxy.conftest import MESSAGE_HEADERS, ProxyFactory, message_body, uds_client

pytestmark = pytest.mark.usefixtures("fresh_trust")


async def _call(make_proxy: ProxyFactory, fake: FakeAnthropic, *, stream: bool) -> tuple[int, bytes]:
    proxy = await make_proxy(Upstream(CredentialKind.ANTHROPIC, "sk-ant-over-tls", fake.base_url))
    async with uds_client(proxy) as client:
        response = await client.post("/v1/messages", json=message_body(stream=stream), headers=MESSAGE_HEADERS)
        return response.status_code, response.content


async def test_a_model_api_whose_ca_is_in_ssl_cert_file_is_reached_over_tls(
        monkeypatch: pytest.MonkeyPatch, pki: dict[str, Path], tls_fake: FakeAnthropic, make_proxy: ProxyFactory,
        usage_records: list[UsageRecord]) -> None:
    monkeypatch.setenv("SSL_CERT_FILE", str(pki["ca"]))
    assert tls_fake.base_url.startswith("https://127.0.0.1:")
    tls_fake.script([Reply.text("over TLS"), Reply.text("streamed over TLS")])
    status, body = await _call(make_proxy, tls_fake, stream=False)
    assert status == 200 and b"over TLS" in body
    status, body = await _call(make_proxy, tls_fake, stream=True)
    assert status == 200 and b"event: message_stop" in body
    # The credential went upstream, inside TLS; both calls were metered.
    assert [r.headers.get("x-api-key") for r in tls_fake.requests] == ["sk-ant-over-tls"] * 2
    assert len(usage_records) == 2 and all(r.complete for r in usage_records)


@pytest.mark.parametrize("trust", ["certifi", "other"])
async def test_a_certificate_the_trust_store_does_not_vouch_for_is_refused(
        monkeypatch: pytest.MonkeyPatch, pki: dict[str, Path], tls_fake: FakeAnthropic, make_proxy: ProxyFactory,
        usage_records: list[UsageRecord], trust: str) -> None:
    if trust == "other":
        monkeypatch.setenv("SSL_CERT_FILE", str(pki["other"]))
    tls_fake.script([Reply.text("must not be served")])
    status, body = await _call(make_proxy, tls_fake, stream=False)
    assert status == 502 and b"the model API is unreachable (SSLCertVerificationError)" in body
    assert not tls_fake.requests and not usage_records  # nothing, the key included, was sent


async def test_an_unreadable_ca_file_is_a_clear_502(
        monkeypatch: pytest.MonkeyPatch, tmp_path: Path, tls_fake: FakeAnthropic, make_proxy: ProxyFactory) -> None:
    monkeypatch.setenv("SSL_CERT_FILE", str(tmp_path / "missing.pem"))
    status, body = await _call(make_proxy, tls_fake, stream=False)
    assert status == 502 and b"TLS trust store (SSL_CERT_FILE, SSL_CERT_DIR) not loaded" in body
