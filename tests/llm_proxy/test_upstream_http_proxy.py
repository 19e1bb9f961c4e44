"""The proxy reaches the model API through the HTTP proxy the environment names (HTTPS_PROXY,
HTTP_PROXY, ALL_PROXY, NO_PROXY), as the anthropic SDK would: a CONNECT tunnel carrying TLS end
to end for https, absolute-form requests for http, Proxy-Authorization from the proxy URL."""

from __future__ import annotations

import base64
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from ash.llm_proxy import CredentialKind, Upstream
from tests.fakes.anthropic_server import FakeAnthropic, Reply
from tests.fakes.http_proxy import FakeHttpProxy
from tests.llm_proxy.conftest import MESSAGE_HEADERS, ProxyFactory, message_body, uds_client

KEY = "sk-ant-secret-through-proxy"
BASIC = "Basic " + base64.b64encode(b"ash:p@ss").decode()


@pytest.fixture(autouse=True)
def no_proxy_settings(monkeypatch: pytest.MonkeyPatch, fresh_trust: None) -> None:
    for name in list(os.environ):
        if name.lower().endswith("_proxy"):
            monkeypatch.delenv(name)


@pytest.fixture
def http_proxy() -> Iterator[FakeHttpProxy]:
    proxy = FakeHttpProxy(require_authorization=BASIC).start()
    try:
        yield proxy
    finally:
        proxy.stop()


def _with_credentials(proxy: FakeHttpProxy) -> str:
    return f"http://ash:p%40ss@127.0.0.1:{proxy.port}"


async def _call(make_proxy: ProxyFactory, fake: FakeAnthropic, *, stream: bool = False) -> tuple[int, bytes]:
    proxy = await make_proxy(Upstream(CredentialKind.ANTHROPIC, KEY, fake.base_url))
    async with uds_client(proxy) as client:
        response = await client.post("/v1/messages", json=message_body(stream=stream), headers=MESSAGE_HEADERS)
        return response.status_code, response.content


async def test_an_https_model_api_is_reached_through_a_connect_tunnel(
        monkeypatch: pytest.MonkeyPatch, pki: dict[str, Path], tls_fake: FakeAnthropic,
        http_proxy: FakeHttpProxy, make_proxy: ProxyFactory) -> None:
    monkeypatch.setenv("SSL_CERT_FILE", str(pki["ca"]))
    monkeypatch.setenv("HTTPS_PROXY", _with_credentials(http_proxy))
    tls_fake.script([Reply.text("tunnelled"), Reply.text("tunnelled and streamed")])
    proxy = await make_proxy(Upstream(CredentialKind.ANTHROPIC, KEY, tls_fake.base_url))
    async with uds_client(proxy) as client:
        first = await client.post("/v1/messages", json=message_body(), headers=MESSAGE_HEADERS)
        second = await client.post("/v1/messages", json=message_body(stream=True), headers=MESSAGE_HEADERS)
    assert (first.status_code, second.status_code) == (200, 200)
    assert b"tunnelled" in first.content and b"event: message_stop" in second.content
    # One tunnel, kept alive for the second call, opened with the proxy's credentials.
    assert [r.line for r in http_proxy.requests] == [f"CONNECT 127.0.0.1:{tls_fake.port} HTTP/1.1"]
    assert http_proxy.requests[0].headers["proxy-authorization"] == BASIC
    # TLS ran end to end: the proxy carried the calls but never saw the key or a prompt.
    assert len(http_proxy.tunnelled) > 1000
    assert KEY.encode() not in http_proxy.tunnelled and b"/v1/messages" not in http_proxy.tunnelled
    assert [r.headers["x-api-key"] for r in tls_fake.requests] == [KEY, KEY]


async def test_an_http_model_api_is_sent_to_the_proxy_in_absolute_form(
        monkeypatch: pytest.MonkeyPatch, fake_anthropic: FakeAnthropic, http_proxy: FakeHttpProxy,
        make_proxy: ProxyFactory) -> None:
    monkeypatch.setenv("http_proxy", _with_credentials(http_proxy))  # lower case works too
    fake_anthropic.script([Reply.text("proxied in the clear")])
    status, body = await _call(make_proxy, fake_anthropic)
    assert status == 200 and b"proxied in the clear" in body
    assert http_proxy.requests[0].line == f"POST http://127.0.0.1:{fake_anthropic.port}/v1/messages HTTP/1.1"
    assert http_proxy.requests[0].headers["proxy-authorization"] == BASIC
    seen = fake_anthropic.requests[0]
    assert seen.path == "/v1/messages" and "proxy-authorization" not in seen.headers


async def test_no_proxy_hosts_are_reached_directly(
        monkeypatch: pytest.MonkeyPatch, fake_anthropic: FakeAnthropic, http_proxy: FakeHttpProxy,
        make_proxy: ProxyFactory) -> None:
    monkeypatch.setenv("ALL_PROXY", _with_credentials(http_proxy))
    monkeypatch.setenv("NO_PROXY", "example.com,127.0.0.1")
    fake_anthropic.script([Reply.text("direct")])
    status, body = await _call(make_proxy, fake_anthropic)
    assert status == 200 and b"direct" in body and not http_proxy.requests


async def test_a_proxy_that_refuses_the_tunnel_is_a_502_that_says_so(
        monkeypatch: pytest.MonkeyPatch, pki: dict[str, Path], tls_fake: FakeAnthropic,
        http_proxy: FakeHttpProxy, make_proxy: ProxyFactory) -> None:
    monkeypatch.setenv("SSL_CERT_FILE", str(pki["ca"]))
    monkeypatch.setenv("HTTPS_PROXY", f"http://ash:wrong@127.0.0.1:{http_proxy.port}")
    status, body = await _call(make_proxy, tls_fake)
    assert status == 502 and b"the HTTP proxy refused the tunnel (HTTP 407)" in body
    assert not tls_fake.requests


async def test_a_proxy_url_it_cannot_use_is_a_502_that_says_so(
        monkeypatch: pytest.MonkeyPatch, fake_anthropic: FakeAnthropic, make_proxy: ProxyFactory) -> None:
    monkeypatch.setenv("HTTP_PROXY", "socks5://127.0.0.1:1080")
    status, body = await _call(make_proxy, fake_anthropic)
    assert status == 502 and b"the HTTP_PROXY setting is not an http://host:port proxy URL" in body
    assert not fake_anthropic.requests
