"""The anthropic SDK over the unix socket, and the proxy's lifecycle."""

from __future__ import annotations

import asyncio
import os
import stat
from pathlib import Path

import anthropic
import httpx2
import pytest

from ash.llm_proxy import (
    ASH_ERROR_HEADER,
    BUDGET_EXCEEDED,
    BUDGET_EXCEEDED_STATUS,
    CredentialKind,
    ModelProxy,
    Upstream,
    UsageRecord,
)
from tests.fakes.anthropic_server import ErrorReply, FakeAnthropic, Reply, usage
from tests.llm_proxy.conftest import ProxyFactory, uds_client

PLACEHOLDER_KEY = "ash-sandbox-placeholder"


def sdk_client(proxy: ModelProxy) -> anthropic.AsyncAnthropic:
    """What the runtime in the sandbox does: the SDK over the socket, a placeholder key."""
    transport = httpx2.AsyncHTTPTransport(uds=str(proxy.socket_path), verify=False)
    return anthropic.AsyncAnthropic(api_key=PLACEHOLDER_KEY, base_url="http://ash-proxy",
                                    http_client=httpx2.AsyncClient(transport=transport),
                                    max_retries=0)


async def test_sdk_create_and_stream_through_the_proxy(
        fake_anthropic: FakeAnthropic, make_proxy: ProxyFactory,
        usage_records: list[UsageRecord]) -> None:
    fake_anthropic.script([
        Reply.text("plain answer", usage=usage(input_tokens=50, output_tokens=7)),
        Reply.tool("Bash", {"command": "ls -la"}, before="Listing.",
                   usage=usage(input_tokens=60, output_tokens=20, cache_read=1000)),
    ])
    proxy = await make_proxy(Upstream(CredentialKind.ANTHROPIC, "sk-ant-real",
                                      fake_anthropic.base_url))
    async with sdk_client(proxy) as client:
        message = await client.messages.create(
            model="claude-haiku-4-5", max_tokens=100,
            messages=[{"role": "user", "content": "hi"}])
        async with client.messages.stream(
                model="claude-haiku-4-5", max_tokens=100,
                messages=[{"role": "user", "content": "list"}],
                tools=[{"name": "Bash", "description": "run", "input_schema": {
                    "type": "object", "properties": {"command": {"type": "string"}}}}]) as stream:
            streamed = await stream.get_final_message()
    assert message.content[0].text == "plain answer"
    assert streamed.stop_reason == "tool_use"
    assert streamed.content[1].input == {"command": "ls -la"}
    assert streamed.usage.cache_read_input_tokens == 1000
    assert [r.headers["x-api-key"] for r in fake_anthropic.message_requests] == ["sk-ant-real"] * 2
    # haiku-4-5: 50*1 + 7*5 = 85; 60*1 + 20*5 + 1000*0.1 = 260 per MTok
    assert [r.cost_usd for r in usage_records] == [0.000085, 0.00026]
    assert [r.stream for r in usage_records] == [False, True]


async def test_sdk_sees_typed_errors_and_the_budget_marker(
        fake_anthropic: FakeAnthropic, make_proxy: ProxyFactory) -> None:
    fake_anthropic.script([ErrorReply(529, "Overloaded"),
                           Reply.text("x", usage=usage(input_tokens=10_000, output_tokens=0))])
    proxy = await make_proxy(Upstream(CredentialKind.ANTHROPIC, "k", fake_anthropic.base_url))
    proxy.set_budget(0.01)
    args = {"model": "claude-sonnet-4-6", "max_tokens": 10,
            "messages": [{"role": "user", "content": "hi"}]}
    async with sdk_client(proxy) as client:
        with pytest.raises(anthropic.OverloadedError):
            await client.messages.create(**args)
        await client.messages.create(**args)  # costs 0.03, over the 0.01 budget
        with pytest.raises(anthropic.APIStatusError) as refused:
            await client.messages.create(**args)
    err = refused.value
    assert err.status_code == BUDGET_EXCEEDED_STATUS
    assert err.response.headers[ASH_ERROR_HEADER] == BUDGET_EXCEEDED
    assert err.body["error"]["type"] == "billing_error"
    assert len(fake_anthropic.message_requests) == 2


async def test_socket_is_connectable_by_other_uids(make_proxy: ProxyFactory) -> None:
    proxy = await make_proxy(Upstream.local())
    assert stat.S_IMODE(os.stat(proxy.socket_path).st_mode) == 0o666
    assert stat.S_IMODE(os.stat(proxy.socket_dir).st_mode) == 0o755
    assert proxy.socket_path.name == "llm.sock"


async def test_stop_removes_the_socket_and_a_stale_socket_is_replaced(socket_root: Path) -> None:
    proxy = ModelProxy(socket_dir=socket_root / "s", upstream=Upstream.local())
    await proxy.start()
    await proxy.stop()
    assert not proxy.socket_path.exists()
    proxy.socket_path.write_text("stale")  # left by a crashed runner
    await proxy.start()
    async with uds_client(proxy) as client:
        assert (await client.get("/v1/models")).status_code == 200
    await proxy.stop()


def _open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


async def test_many_proxies_start_and_stop_without_leaks(socket_root: Path) -> None:
    async def round_trip(proxy: ModelProxy) -> int:
        async with uds_client(proxy) as client:
            response = await client.post("/v1/messages", json={
                "model": "x", "max_tokens": 50, "stream": True,
                "messages": [{"role": "user", "content": "hello"}]})
            return response.status_code

    baseline_fds = _open_fds()
    baseline_tasks = len(asyncio.all_tasks())
    for round_no in range(3):
        proxies = [ModelProxy(socket_dir=socket_root / f"r{round_no}-{i}", upstream=Upstream.local())
                   for i in range(40)]
        await asyncio.gather(*(p.start() for p in proxies))
        statuses = await asyncio.gather(*(round_trip(p) for p in proxies))
        assert statuses == [200] * 40
        # A client that connects and never sends anything must not keep stop() waiting.
        idle = await asyncio.open_unix_connection(str(proxies[0].socket_path))
        await asyncio.gather(*(p.stop() for p in proxies))
        idle[1].close()
        assert all(not p.socket_path.exists() for p in proxies)
        assert sum(p.calls for p in proxies) == 40
    await asyncio.sleep(0)
    assert len(asyncio.all_tasks()) == baseline_tasks
    assert _open_fds() <= baseline_fds + 1


async def test_client_disconnect_mid_stream_keeps_the_proxy_serving(
        fake_anthropic: FakeAnthropic, make_proxy: ProxyFactory,
        usage_records: list[UsageRecord]) -> None:
    fake_anthropic.script([Reply.text("a long answer " * 20, delay=0.02, chunk=4,
                                      usage=usage(input_tokens=77)),
                           Reply.text("next")])
    proxy = await make_proxy(Upstream(CredentialKind.ANTHROPIC, "k", fake_anthropic.base_url))
    body = {"model": "claude-sonnet-4-6", "max_tokens": 10, "stream": True,
            "messages": [{"role": "user", "content": "hi"}]}
    async with uds_client(proxy) as client, client.stream("POST", "/v1/messages",
                                                          json=body) as response:
        async for _ in response.aiter_bytes():
            break  # hang up after the first chunk
    async with uds_client(proxy) as client:
        for _ in range(100):  # the abandoned relay notices the hang-up on its next write
            if usage_records:
                break
            await asyncio.sleep(0.02)
        again = await client.post("/v1/messages", json={**body, "stream": False})
    assert again.status_code == 200
    first = usage_records[0]
    assert (first.input_tokens, first.complete) == (77, False)


async def test_a_failing_usage_callback_does_not_break_the_call(make_proxy: ProxyFactory) -> None:
    async def broken(record: UsageRecord) -> None:
        raise RuntimeError("database down")

    proxy = await make_proxy(Upstream.local(), on_usage=broken)
    async with uds_client(proxy) as client:
        response = await client.post("/v1/messages", json={
            "model": "x", "max_tokens": 20, "messages": [{"role": "user", "content": "hi"}]})
    assert response.status_code == 200
    assert proxy.calls == 1


async def test_connections_beyond_the_cap_get_a_429(make_proxy: ProxyFactory) -> None:
    from ash.llm_proxy import ProxyLimits

    proxy = await make_proxy(Upstream.local(), limits=ProxyLimits(max_connections=2))
    held = [await asyncio.open_unix_connection(str(proxy.socket_path)) for _ in range(2)]
    await asyncio.sleep(0.05)  # let the proxy register both
    reader, writer = await asyncio.open_unix_connection(str(proxy.socket_path))
    writer.write(b"GET /v1/models HTTP/1.1\r\nhost: x\r\n\r\n")
    await writer.drain()
    head = await asyncio.wait_for(reader.read(200), 5)
    assert head.startswith(b"HTTP/1.1 429 ")
    for _, w in [*held, (reader, writer)]:
        w.close()
