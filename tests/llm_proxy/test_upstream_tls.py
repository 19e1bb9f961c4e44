"""The proxy's HTTPS upstream, against the fake Messages API served over TLS on loopback with a
certificate from a throwaway CA: verified, trusted through SSL_CERT_FILE, refused otherwise."""

from __future__ import annotations

import datetime as dt
import ipaddress
import ssl
from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from ash.llm_proxy import CredentialKind, Upstream, UsageRecord
from ash.llm_proxy.server import _tls_context
from tests.fakes.anthropic_server import FakeAnthropic, Reply
from tests.llm_proxy.conftest import MESSAGE_HEADERS, ProxyFactory, message_body, uds_client


def _name(text: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, text)])


def _certificate(subject: str, key: ec.EllipticCurvePrivateKey, issuer: str, issuer_key: ec.EllipticCurvePrivateKey,
                 *, ca: bool) -> x509.Certificate:
    now = dt.datetime.now(dt.UTC)
    builder = (x509.CertificateBuilder().subject_name(_name(subject)).issuer_name(_name(issuer))
               .public_key(key.public_key()).serial_number(x509.random_serial_number())
               .not_valid_before(now - dt.timedelta(minutes=5)).not_valid_after(now + dt.timedelta(days=1))
               .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True))
    if ca:
        builder = builder.add_extension(
            x509.KeyUsage(digital_signature=True, key_cert_sign=True, crl_sign=True, content_commitment=False,
                          key_encipherment=False, data_encipherment=False, key_agreement=False,
                          encipher_only=False, decipher_only=False), critical=True)
    else:
        builder = builder.add_extension(x509.SubjectAlternativeName(
            [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), critical=False)
    return builder.sign(issuer_key, hashes.SHA256())


def _pem(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.PEM)


@pytest.fixture
def pki(tmp_path: Path) -> dict[str, Path]:
    """A CA, a server certificate it signed for 127.0.0.1, and an unrelated CA."""
    ca_key, server_key, other_key = (ec.generate_private_key(ec.SECP256R1()) for _ in range(3))
    ca = _certificate("Ash test CA", ca_key, "Ash test CA", ca_key, ca=True)
    server = _certificate("127.0.0.1", server_key, "Ash test CA", ca_key, ca=False)
    other = _certificate("Another CA", other_key, "Another CA", other_key, ca=True)
    paths = {name: tmp_path / f"{name}.pem" for name in ("ca", "server", "key", "other")}
    paths["ca"].write_bytes(_pem(ca))
    paths["server"].write_bytes(_pem(server))
    paths["other"].write_bytes(_pem(other))
    paths["key"].write_bytes(server_key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                                      serialization.NoEncryption()))
    return paths


@pytest.fixture
def tls_fake(pki: dict[str, Path]) -> Iterator[FakeAnthropic]:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(pki["server"], pki["key"])
    server = FakeAnthropic(tls=context).start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(autouse=True)
def fresh_trust(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Each test picks its own trust (this machine sets SSL_CERT_FILE and SSL_CERT_DIR)."""
    monkeypatch.delenv("SSL_CERT_FILE", raising=False)
    monkeypatch.delenv("SSL_CERT_DIR", raising=False)
    _tls_context.cache_clear()
    yield
    _tls_context.cache_clear()


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
