"""Model proxy overhead: requests through ModelProxy vs straight to the fake Messages API.

Run: .venv/bin/python bench/bench_proxy.py [--requests 300]
Prints a markdown table; the same numbers go in bench/RESULTS.md ("## Model proxy").
"""

from __future__ import annotations

import argparse
import asyncio
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from ash.llm_proxy import CredentialKind, ModelProxy, Upstream  # noqa: E402
from tests.fakes.anthropic_server import FakeAnthropic, Reply  # noqa: E402

HEADERS = {"x-api-key": "placeholder", "anthropic-version": "2023-06-01"}
ANSWER = "The proxy relays this answer. " * 20  # ~600 characters, ~75 SSE frames at chunk=8


def body(stream: bool) -> dict:
    return {"model": "claude-haiku-4-5", "max_tokens": 256, "stream": stream,
            "messages": [{"role": "user", "content": "benchmark " * 200}]}


def pct(samples: list[float], q: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


async def timed(n: int, call: Callable[[], Awaitable[None]]) -> list[float]:
    for _ in range(10):  # warm up connections and code paths
        await call()
    out = []
    for _ in range(n):
        started = time.perf_counter()
        await call()
        out.append((time.perf_counter() - started) * 1000)
    return out


async def run(n: int) -> list[tuple[str, list[float]]]:
    fake = FakeAnthropic().start()
    fake.script(Reply.text(ANSWER) for _ in range(4 * (n + 10)))
    root = Path(tempfile.mkdtemp(prefix="ashb-"))
    proxy = ModelProxy(socket_dir=root / "p", upstream=Upstream(
        CredentialKind.ANTHROPIC, "sk-bench", fake.base_url))
    local = ModelProxy(socket_dir=root / "l", upstream=Upstream.local())
    await proxy.start()
    await local.start()
    direct = httpx.AsyncClient(base_url=fake.base_url, verify=False)
    via = httpx.AsyncClient(transport=httpx.AsyncHTTPTransport(uds=str(proxy.socket_path),
                                                               verify=False),
                            base_url="http://ash-proxy")
    via_local = httpx.AsyncClient(transport=httpx.AsyncHTTPTransport(uds=str(local.socket_path),
                                                                     verify=False),
                                  base_url="http://ash-proxy")

    def call(client: httpx.AsyncClient, stream: bool) -> Callable[[], Awaitable[None]]:
        async def go() -> None:
            response = await client.post("/v1/messages", json=body(stream), headers=HEADERS)
            assert response.status_code == 200, response.text
        return go

    results = [
        ("json, direct to fake", await timed(n, call(direct, False))),
        ("json, through proxy", await timed(n, call(via, False))),
        ("stream (~75 frames), direct", await timed(n, call(direct, True))),
        ("stream (~75 frames), through proxy", await timed(n, call(via, True))),
        ("stream, local model", await timed(n, call(via_local, True))),
    ]

    async def start_stop() -> None:
        p = ModelProxy(socket_dir=root / "s", upstream=Upstream.local())
        await p.start()
        await p.stop()

    results.append(("proxy start + stop", await timed(min(n, 200), start_stop)))
    for client in (direct, via, via_local):
        await client.aclose()
    await proxy.stop()
    await local.stop()
    fake.stop()
    shutil.rmtree(root, ignore_errors=True)
    return results


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--requests", type=int, default=300)
    args = parser.parse_args()
    results = asyncio.run(run(args.requests))
    print(f"| case ({args.requests} sequential requests) | p50 ms | p95 ms | mean ms |")
    print("|---|---|---|---|")
    for name, samples in results:
        print(f"| {name} | {pct(samples, 0.5):.2f} | {pct(samples, 0.95):.2f} | "
              f"{statistics.fmean(samples):.2f} |")
    by = dict(results)
    for kind, a, b in (("json", "json, direct to fake", "json, through proxy"),
                       ("stream", "stream (~75 frames), direct",
                        "stream (~75 frames), through proxy")):
        print(f"\nproxy overhead ({kind}): p50 {pct(by[b], .5) - pct(by[a], .5):+.2f} ms, "
              f"p95 {pct(by[b], .95) - pct(by[a], .95):+.2f} ms")


if __name__ == "__main__":
    main()
