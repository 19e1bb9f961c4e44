"""The proxy in front of the fake Messages API: relay, credentials, metering, budget, errors."""

from __future__ import annotations

import json
import socket
import time

import pytest

from ash.llm_proxy import (
    ASH_ERROR_HEADER,
    BUDGET_EXCEEDED,
    CredentialKind,
    ProxyLimits,
    Upstream,
    UsageRecord,
)
from ash.llm_proxy.pricing import cost_usd
from tests.fakes.anthropic_server import ErrorReply, FakeAnthropic, Reply, sse_events, usage
from tests.llm_proxy.conftest import MESSAGE_HEADERS, ProxyFactory, message_body, uds_client

MODEL = "claude-sonnet-4-5-20250929"


def anthropic_upstream(fake: FakeAnthropic, key: str = "sk-ant-real-key") -> Upstream:
    return Upstream(CredentialKind.ANTHROPIC, key, fake.base_url)


def expected_sse(reply: Reply) -> bytes:
    return b"".join(f"event: {name}\ndata: {json.dumps(data)}\n\n".encode()
                    for name, data in sse_events(reply, MODEL))


async def test_stream_is_relayed_intact_and_incrementally(
        fake_anthropic: FakeAnthropic, make_proxy: ProxyFactory) -> None:
    reply = Reply.text("The quick brown fox jumps over the lazy dog.", delay=0.04, chunk=6)
    fake_anthropic.script([reply])
    proxy = await make_proxy(anthropic_upstream(fake_anthropic))
    chunks: list[tuple[float, bytes]] = []
    async with uds_client(proxy) as client:
        started = time.monotonic()
        async with client.stream("POST", "/v1/messages", json=message_body(stream=True),
                                 headers=MESSAGE_HEADERS) as response:
            assert response.status_code == 200
            assert response.headers["content-type"].startswith("text/event-stream")
            async for chunk in response.aiter_bytes():
                chunks.append((time.monotonic() - started, chunk))
    body = b"".join(c for _, c in chunks)
    assert body == expected_sse(reply)
    total = chunks[-1][0]
    n_events = len(sse_events(reply, MODEL))
    assert total >= 0.04 * n_events * 0.9
    # The first event reached the client long before the upstream finished.
    assert chunks[0][0] < total / 3
    assert len(chunks) > 5


async def test_json_response_is_relayed(fake_anthropic: FakeAnthropic,
                                        make_proxy: ProxyFactory) -> None:
    reply = Reply.text("hello")
    fake_anthropic.script([reply])
    proxy = await make_proxy(anthropic_upstream(fake_anthropic))
    async with uds_client(proxy) as client:
        response = await client.post("/v1/messages", json=message_body(), headers=MESSAGE_HEADERS)
    assert response.status_code == 200
    assert response.json() == reply.message(MODEL)
    assert response.headers["request-id"] == "req_fake"
    assert proxy.calls == 1


async def test_credential_is_added_and_client_auth_stripped(
        fake_anthropic: FakeAnthropic, make_proxy: ProxyFactory) -> None:
    fake_anthropic.script([Reply.text("a"), Reply.text("b")])
    proxy = await make_proxy(anthropic_upstream(fake_anthropic, "sk-ant-real"))
    headers = {**MESSAGE_HEADERS, "authorization": "Bearer client-token",
               "anthropic-beta": "prompt-caching-2024-07-31", "cookie": "session=1",
               "x-forwarded-for": "10.0.0.1"}
    async with uds_client(proxy) as client:
        await client.post("/v1/messages?beta=true", json=message_body(), headers=headers)
        proxy.set_upstream(Upstream(CredentialKind.CUSTOM, "tok-custom", fake_anthropic.base_url))
        await client.post("/v1/messages", json=message_body(), headers=headers)
    first, second = fake_anthropic.message_requests
    assert first.path == "/v1/messages?beta=true"
    assert first.headers["x-api-key"] == "sk-ant-real"
    assert "authorization" not in first.headers
    assert first.headers["anthropic-version"] == "2023-06-01"
    assert first.headers["anthropic-beta"] == "prompt-caching-2024-07-31"
    for dropped in ("cookie", "x-forwarded-for"):
        assert dropped not in first.headers
    assert second.headers["authorization"] == "Bearer tok-custom"
    assert "x-api-key" not in second.headers
    assert first.body == message_body()


@pytest.mark.parametrize("stream", [True, False])
async def test_usage_and_cost_are_metered_exactly(
        fake_anthropic: FakeAnthropic, make_proxy: ProxyFactory,
        usage_records: list[UsageRecord], stream: bool) -> None:
    reply_usage = usage(input_tokens=1200, output_tokens=345, cache_creation=2000,
                        cache_read=50_000, cache_creation_1h=1000)
    fake_anthropic.script([Reply.text("cached answer", usage=reply_usage)])
    proxy = await make_proxy(anthropic_upstream(fake_anthropic))
    async with uds_client(proxy) as client:
        response = await client.post("/v1/messages", json=message_body(stream=stream),
                                     headers=MESSAGE_HEADERS)
        assert response.status_code == 200
    # 1200*3 + 345*15 + 2000*3.75 + 1000*6 + 50000*0.30 = 37275 per MTok
    expected_cost = 0.037275
    assert cost_usd(MODEL, reply_usage) == expected_cost
    [record] = usage_records
    assert record == UsageRecord(
        sandbox_id="sbx-test", model=MODEL, input_tokens=1200, output_tokens=345,
        cache_creation_tokens=3000, cache_read_tokens=50_000, cost_usd=expected_cost,
        request_id="req_fake", duration_ms=record.duration_ms, local=False, stream=stream,
        price_known=True, complete=True)
    assert proxy.total_cost_usd == expected_cost
    assert proxy.turn_cost_usd == expected_cost


@pytest.mark.parametrize("local", [False, True], ids=["upstream", "local"])
async def test_usage_is_reported_before_the_sandbox_sees_the_message_end(
        fake_anthropic: FakeAnthropic, make_proxy: ProxyFactory, usage_records: list[UsageRecord],
        local: bool) -> None:
    """A runtime ends its query at `message_stop`; the call's usage must be in by then, so the
    turn's runner stores it with the turn (reported after, it was written on its own)."""
    # The body's end comes a while after message_stop, as it can from the real API.
    fake_anthropic.script([Reply.text("done soon", delay=0.01, chunk=3, end_delay=0.3)])
    proxy = await make_proxy(Upstream.local() if local else anthropic_upstream(fake_anthropic))
    seen_at_stop: list[int] = []
    async with uds_client(proxy) as client, client.stream(
            "POST", "/v1/messages", json=message_body(stream=True), headers=MESSAGE_HEADERS) as response:
        received = b""
        async for chunk in response.aiter_bytes():
            received += chunk
            if b"event: message_stop" in received and not seen_at_stop:
                seen_at_stop.append(len(usage_records))
    assert seen_at_stop == [1]
    [record] = usage_records
    assert record.complete and record.output_tokens > 0 and record.local is local
    assert proxy.calls == 1  # counted once, not again when the stream closed


async def test_budget_refuses_without_calling_upstream(
        fake_anthropic: FakeAnthropic, make_proxy: ProxyFactory) -> None:
    fake_anthropic.script([Reply.text("x", usage=usage(input_tokens=1000, output_tokens=1000)),
                           Reply.text("y")])
    proxy = await make_proxy(anthropic_upstream(fake_anthropic))
    proxy.set_budget(0.01)  # the first call costs 0.018
    async with uds_client(proxy) as client:
        first = await client.post("/v1/messages", json=message_body(), headers=MESSAGE_HEADERS)
        refused = await client.post("/v1/messages", json=message_body(stream=True),
                                    headers=MESSAGE_HEADERS)
        counted = await client.post("/v1/messages/count_tokens", json=message_body(),
                                    headers=MESSAGE_HEADERS)
        proxy.set_budget(0.01)  # the next turn starts afresh
        second = await client.post("/v1/messages", json=message_body(), headers=MESSAGE_HEADERS)
    assert first.status_code == 200
    assert refused.status_code == 402
    assert refused.headers[ASH_ERROR_HEADER] == BUDGET_EXCEEDED
    assert refused.json()["type"] == "error"
    assert refused.json()["error"]["type"] == "billing_error"
    assert "budget" in refused.json()["error"]["message"]
    assert counted.status_code == 200  # token counting is free and not budgeted
    assert second.status_code == 200
    assert len(fake_anthropic.message_requests) == 2
    assert proxy.total_cost_usd == pytest.approx(0.018 + 0.000105)


@pytest.mark.parametrize(("status", "kind"), [(429, "rate_limit_error"), (529, "overloaded_error"),
                                              (500, "api_error"), (401, "authentication_error")])
async def test_upstream_errors_are_relayed(fake_anthropic: FakeAnthropic, make_proxy: ProxyFactory,
                                           status: int, kind: str,
                                           usage_records: list[UsageRecord]) -> None:
    fake_anthropic.script([ErrorReply(status, "upstream says no", headers={"retry-after": "7"})])
    proxy = await make_proxy(anthropic_upstream(fake_anthropic))
    async with uds_client(proxy) as client:
        response = await client.post("/v1/messages", json=message_body(stream=True),
                                     headers=MESSAGE_HEADERS)
    assert response.status_code == status
    assert response.json()["error"] == {"type": kind, "message": "upstream says no"}
    assert response.json()["request_id"].startswith("req_fake")
    assert response.headers["retry-after"] == "7"
    assert usage_records == []
    assert proxy.calls == 0


async def test_mid_stream_error_is_relayed_and_partial_usage_recorded(
        fake_anthropic: FakeAnthropic, make_proxy: ProxyFactory,
        usage_records: list[UsageRecord]) -> None:
    err = {"type": "overloaded_error", "message": "Overloaded"}
    fake_anthropic.script([Reply([{"type": "text", "text": "partial"}, {"type": "text", "text": "x"}],
                                 usage=usage(input_tokens=100), stream_error=err)])
    proxy = await make_proxy(anthropic_upstream(fake_anthropic))
    async with uds_client(proxy) as client:
        response = await client.post("/v1/messages", json=message_body(stream=True),
                                     headers=MESSAGE_HEADERS)
    assert response.status_code == 200
    assert b'event: error\ndata: {"type": "error", "error": {"type": "overloaded_error"' in response.content
    [record] = usage_records
    assert (record.input_tokens, record.output_tokens, record.complete) == (100, 1, False)


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


async def test_upstream_down_is_a_502_anthropic_error(make_proxy: ProxyFactory) -> None:
    proxy = await make_proxy(Upstream(CredentialKind.ANTHROPIC, "k",
                                      f"http://127.0.0.1:{_closed_port()}"))
    async with uds_client(proxy) as client:
        response = await client.post("/v1/messages", json=message_body(), headers=MESSAGE_HEADERS)
    assert response.status_code == 502
    body = response.json()
    assert body["type"] == "error" and body["error"]["type"] == "api_error"
    assert "unreachable" in body["error"]["message"]
    assert "127.0.0.1" not in body["error"]["message"]


async def test_upstream_timeout_is_a_504(fake_anthropic: FakeAnthropic,
                                         make_proxy: ProxyFactory) -> None:
    fake_anthropic.script([Reply.text("slow", delay=1.0)])
    upstream = Upstream(CredentialKind.ANTHROPIC, "k", fake_anthropic.base_url, read_timeout_s=0.2)
    proxy = await make_proxy(upstream)
    async with uds_client(proxy) as client:
        response = await client.post("/v1/messages", json=message_body(), headers=MESSAGE_HEADERS)
    assert response.status_code == 504
    assert response.json()["error"]["type"] == "timeout_error"


async def test_non_anthropic_error_body_is_wrapped(make_proxy: ProxyFactory,
                                                   fake_anthropic: FakeAnthropic) -> None:
    # The fake answers unknown routes with a 404; /v1/models is not served by it.
    proxy = await make_proxy(anthropic_upstream(fake_anthropic))
    async with uds_client(proxy) as client:
        models = await client.get("/v1/models", headers=MESSAGE_HEADERS)
        counted = await client.post("/v1/messages/count_tokens", json=message_body(),
                                    headers=MESSAGE_HEADERS)
    assert models.status_code == 404
    assert models.json()["error"]["type"] == "not_found_error"
    assert counted.status_code == 200 and counted.json()["input_tokens"] > 0
    assert [r.path for r in fake_anthropic.requests] == ["/v1/models",
                                                         "/v1/messages/count_tokens"]
    assert fake_anthropic.requests[0].headers["x-api-key"] == "sk-ant-real-key"


@pytest.mark.parametrize(("kind", "base_url", "needle"), [
    (CredentialKind.OPENAI, None, "OpenAI credential cannot serve"),
    (CredentialKind.BEDROCK, None, "Bedrock credentials are not supported"),
])
async def test_unusable_credentials_are_refused_clearly(
        make_proxy: ProxyFactory, kind: CredentialKind, base_url: str | None,
        needle: str) -> None:
    proxy = await make_proxy(Upstream(kind, "secret", base_url))
    async with uds_client(proxy) as client:
        response = await client.post("/v1/messages", json=message_body(), headers=MESSAGE_HEADERS)
    assert response.status_code == 400
    assert response.json()["error"]["type"] == "invalid_request_error"
    assert needle in response.json()["error"]["message"]


async def test_openai_key_with_a_gateway_is_sent_as_bearer(
        fake_anthropic: FakeAnthropic, make_proxy: ProxyFactory) -> None:
    fake_anthropic.script([Reply.text("via gateway")])
    proxy = await make_proxy(Upstream(CredentialKind.OPENAI, "sk-openai", fake_anthropic.base_url))
    async with uds_client(proxy) as client:
        response = await client.post("/v1/messages", json=message_body(), headers=MESSAGE_HEADERS)
    assert response.status_code == 200
    assert fake_anthropic.message_requests[0].headers["authorization"] == "Bearer sk-openai"


async def test_oversized_body_is_413(fake_anthropic: FakeAnthropic,
                                     make_proxy: ProxyFactory) -> None:
    proxy = await make_proxy(anthropic_upstream(fake_anthropic),
                             limits=ProxyLimits(max_body_bytes=4096))
    big = message_body(messages=[{"role": "user", "content": "x" * 100_000}])
    async with uds_client(proxy) as client:
        response = await client.post("/v1/messages", json=big, headers=MESSAGE_HEADERS)
        again = await client.post("/v1/messages/count_tokens", json=message_body(),
                                  headers=MESSAGE_HEADERS)
    assert response.status_code == 413
    assert response.json()["error"]["type"] == "request_too_large"
    assert again.status_code == 200  # the client reconnects; the proxy lives on
    assert fake_anthropic.message_requests == []


async def test_oversized_headers_are_431(make_proxy: ProxyFactory,
                                         fake_anthropic: FakeAnthropic) -> None:
    proxy = await make_proxy(anthropic_upstream(fake_anthropic),
                             limits=ProxyLimits(max_header_bytes=2048))
    async with uds_client(proxy) as client:
        response = await client.post("/v1/messages", json=message_body(),
                                     headers={**MESSAGE_HEADERS, "x-junk": "j" * 8000})
    assert response.status_code == 431
    assert fake_anthropic.requests == []


@pytest.mark.parametrize(("method", "path", "status"), [
    ("GET", "/", 404), ("POST", "/v1/complete", 404), ("GET", "/v1/messages", 405),
    ("POST", "/v1/messages/batches", 404), ("GET", "/v1/models/../messages/batches", 404),
    ("DELETE", "/v1/models", 405),
])
async def test_unknown_routes_are_anthropic_errors(make_proxy: ProxyFactory,
                                                   fake_anthropic: FakeAnthropic, method: str,
                                                   path: str, status: int) -> None:
    proxy = await make_proxy(anthropic_upstream(fake_anthropic))
    async with uds_client(proxy) as client:
        response = await client.request(method, path, headers=MESSAGE_HEADERS)
    assert response.status_code == status
    assert response.json()["type"] == "error"
    assert fake_anthropic.requests == []


async def test_oversized_chunked_body_is_413(fake_anthropic: FakeAnthropic,
                                             make_proxy: ProxyFactory) -> None:
    proxy = await make_proxy(anthropic_upstream(fake_anthropic),
                             limits=ProxyLimits(max_body_bytes=4096))

    async def chunks():  # no content-length: the request is sent chunked
        for _ in range(20):
            yield b"x" * 1000

    async with uds_client(proxy) as client:
        response = await client.post("/v1/messages", content=chunks(), headers=MESSAGE_HEADERS)
    assert response.status_code == 413
    assert fake_anthropic.requests == []
