"""Fixtures: a proxy factory on a short socket path, and the fake Messages API."""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

from ash.llm_proxy import ModelProxy, Upstream, UsageRecord
from tests.fakes.fixtures import fake_anthropic  # noqa: F401
from tests.llm_proxy.tls_fixtures import fresh_trust, pki, tls_fake  # noqa: F401

ProxyFactory = Callable[..., Awaitable[ModelProxy]]


@pytest.fixture
def socket_root() -> Any:
    # Unix socket paths are capped at 108 bytes; pytest's tmp_path can be longer.
    root = Path(tempfile.mkdtemp(prefix="ashp-"))
    yield root
    shutil.rmtree(root, ignore_errors=True)


@pytest.fixture
def usage_records() -> list[UsageRecord]:
    return []


@pytest.fixture
async def make_proxy(socket_root: Path,
                     usage_records: list[UsageRecord]) -> AsyncIterator[ProxyFactory]:
    proxies: list[ModelProxy] = []

    async def record(rec: UsageRecord) -> None:
        usage_records.append(rec)

    async def factory(upstream: Upstream, **kw: Any) -> ModelProxy:
        kw.setdefault("sandbox_id", "sbx-test")
        kw.setdefault("on_usage", record)
        proxy = ModelProxy(socket_dir=socket_root / f"p{len(proxies)}", upstream=upstream, **kw)
        await proxy.start()
        proxies.append(proxy)
        return proxy

    yield factory
    for proxy in proxies:
        await proxy.stop()


def uds_client(proxy: ModelProxy, **kw: Any) -> httpx.AsyncClient:
    """A plain httpx client that talks to the proxy over its unix socket."""
    # verify=False: no TLS on a unix socket, and loading the CA bundle costs ~30 ms per client.
    transport = httpx.AsyncHTTPTransport(uds=str(proxy.socket_path), verify=False)
    return httpx.AsyncClient(transport=transport, base_url="http://ash-proxy", **kw)


MESSAGE_HEADERS = {"x-api-key": "placeholder-not-a-key", "anthropic-version": "2023-06-01",
                   "content-type": "application/json"}


def message_body(stream: bool = False, **extra: Any) -> dict[str, Any]:
    return {"model": "claude-sonnet-4-5-20250929", "max_tokens": 256, "stream": stream,
            "messages": [{"role": "user", "content": "hi"}], **extra}
