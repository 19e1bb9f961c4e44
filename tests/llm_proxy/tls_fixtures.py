"""Fixtures for HTTPS upstreams: a throwaway CA, the fake Messages API served over TLS with a
certificate it signed for 127.0.0.1, and a clean trust setting (`tests/llm_proxy/conftest.py`
imports them)."""

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

from ash.llm_proxy.server import _tls_context
from tests.fakes.anthropic_server import FakeAnthropic


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


@pytest.fixture
def fresh_trust(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """No SSL_CERT_FILE / SSL_CERT_DIR (this machine sets both) and no cached context: each test
    sets its own trust."""
    monkeypatch.delenv("SSL_CERT_FILE", raising=False)
    monkeypatch.delenv("SSL_CERT_DIR", raising=False)
    _tls_context.cache_clear()
    yield
    _tls_context.cache_clear()
