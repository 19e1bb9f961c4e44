"""Sandbox benchmarks: create-to-ready, pause/resume, snapshot+restore (not a test).

Run: `.venv/bin/python bench/bench_sandbox.py [--rounds 200] [--no-docker]`.
Writes the "## Sandboxes" section of bench/RESULTS.md (other sections are left alone).
"""

from __future__ import annotations

import argparse
import asyncio
import platform
import shutil
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from ash.sandbox.base import Limits, SandboxSpec  # noqa: E402

RESULTS = ROOT / "bench" / "RESULTS.md"
HEADING = "## Sandboxes"

SMALL_FILES = """
import os, random
random.seed(1)
for d in range(20):
    for s in range(7):
        os.makedirs(f"src/d{d}/s{s}", exist_ok=True)
n = 0
while n < 1000:
    d, s = n % 20, (n // 20) % 7
    body = ("def f%d(x):\\n    return x * %d\\n" % (n, n)) * random.randint(6, 120)
    open(f"src/d{d}/s{s}/m{n}.py", "w").write(body)
    n += 1
"""
BIG_FILES = """
import os
line = b"the quick brown fox jumps over the lazy dog 0123456789\\n"
for i in range(25):
    open(f"text{i}.txt", "wb").write(line * (1048576 // len(line) + 1))
for i in range(5):
    open(f"rand{i}.bin", "wb").write(os.urandom(5 << 20))
"""


def pct(values: list[float]) -> dict[str, float]:
    ms = sorted(v * 1000 for v in values)
    q = statistics.quantiles(ms, n=100, method="inclusive")
    return {"p50": statistics.median(ms), "p95": q[94], "p99": q[98], "n": len(ms)}


def fmt(p: dict[str, float]) -> str:
    return f"{p['p50']:.1f} / {p['p95']:.1f} / {p['p99']:.1f} ms (n={int(p['n'])})"


class Bench:
    def __init__(self, backend: Any, root: Path) -> None:
        self.backend = backend
        self.root = root

    def spec(self, **kw: Any) -> SandboxSpec:
        sid = f"b{uuid.uuid4().hex[:12]}"
        limits = Limits(memory_bytes=512 << 20, pids=128, disk_bytes=2 << 30)
        return SandboxSpec(sandbox_id=sid, workspace=self.root / sid, limits=limits, **kw)

    async def create_to_ready(self, rounds: int) -> dict[str, dict[str, float]]:
        create, ready, destroy = [], [], []
        for _ in range(rounds):
            t0 = time.perf_counter()
            sb = await self.backend.create(self.spec())
            t1 = time.perf_counter()
            r = await self.backend.exec(sb, ["true"], timeout=30)
            t2 = time.perf_counter()
            assert r.exit_code == 0, r
            await self.backend.destroy(sb, keep_workspace=False)
            t3 = time.perf_counter()
            create.append(t1 - t0)
            ready.append(t2 - t0)
            destroy.append(t3 - t2)
        return {"create()": pct(create), "create + first exec(true)": pct(ready),
                "destroy": pct(destroy)}  # fmt: skip

    async def exec_python(self, rounds: int) -> dict[str, float]:
        sb = await self.backend.create(self.spec())
        times = []
        for _ in range(rounds):
            t0 = time.perf_counter()
            await self.backend.exec(sb, ["python3", "-c", "pass"], timeout=30)
            times.append(time.perf_counter() - t0)
        await self.backend.destroy(sb, keep_workspace=False)
        return pct(times)

    async def pause_resume(self, rounds: int) -> dict[str, dict[str, float]]:
        sb = await self.backend.create(self.spec())
        await self.backend.spawn(sb, ["sh", "-c", "while :; do sleep 0.01; done"])
        await asyncio.sleep(0.1)
        pause, resume = [], []
        for _ in range(rounds):
            t0 = time.perf_counter()
            await self.backend.pause(sb)
            t1 = time.perf_counter()
            await self.backend.resume(sb)
            t2 = time.perf_counter()
            pause.append(t1 - t0)
            resume.append(t2 - t1)
        await self.backend.destroy(sb, keep_workspace=False)
        return {"pause": pct(pause), "resume": pct(resume)}

    async def snapshot_restore(self, script: str, rounds: int) -> dict[str, Any]:
        src = await self.backend.create(self.spec())
        r = await self.backend.exec(src, ["python3", "-c", script], timeout=120)
        assert r.exit_code == 0, r
        snap, rest, size = [], [], 0
        for _ in range(rounds):
            dst = await self.backend.create(self.spec())
            t0 = time.perf_counter()
            chunks = [c async for c in self.backend.snapshot(src)]
            t1 = time.perf_counter()

            async def replay(chunks: list[bytes] = chunks) -> AsyncIterator[bytes]:
                for c in chunks:
                    yield c

            await self.backend.restore(dst, replay())
            t2 = time.perf_counter()
            size = sum(map(len, chunks))
            snap.append(t1 - t0)
            rest.append(t2 - t1)
            await self.backend.destroy(dst, keep_workspace=False)
        stats = await self.backend.stats(src)
        await self.backend.destroy(src, keep_workspace=False)
        return {"snapshot_ms": statistics.median(snap) * 1000,
                "restore_ms": statistics.median(rest) * 1000,
                "archive_mb": size / 1e6, "workspace_mb": stats.disk_bytes / 1e6}  # fmt: skip


def backends(root: Path, want_docker: bool) -> list[tuple[str, Any]]:
    from ash.sandbox.process_backend import ProcessBackend

    out: list[tuple[str, Any]] = [
        ("process-strict", ProcessBackend(base_dir=root / "strict", strict=True)),
        ("process-degraded", ProcessBackend(base_dir=root / "degraded", strict=False)),
    ]
    if want_docker:
        try:
            from tests.sandbox.docker_env import docker_backend_factory
        except ImportError as exc:
            print(f"docker backend not available: {exc}", file=sys.stderr)
        else:
            out.append(("docker", docker_backend_factory()))
    return out


async def measure(b: Bench, name: str, backend: Any, rounds: int) -> list[str]:
    lines = [f"### {name} (isolation: {backend.isolation.value})", ""]
    lines += ["| measurement | p50 / p95 / p99 |", "|---|---|"]
    for what, p in (await b.create_to_ready(rounds)).items():
        lines.append(f"| {what} | {fmt(p)} |")
    lines.append(f"| exec(python3 -c pass) | {fmt(await b.exec_python(max(20, rounds // 4)))} |")
    for what, p in (await b.pause_resume(max(20, rounds // 2))).items():
        lines.append(f"| {what} | {fmt(p)} |")
    lines += ["", "| snapshot + restore (median of 5) | snapshot | restore | archive | workspace |",
              "|---|---|---|---|---|"]  # fmt: skip
    for label, script in (("1,000 small files", SMALL_FILES), ("50 MB", BIG_FILES)):
        s = await b.snapshot_restore(script, 5)
        lines.append(f"| {label} | {s['snapshot_ms']:.0f} ms | {s['restore_ms']:.0f} ms | "
                     f"{s['archive_mb']:.1f} MB | {s['workspace_mb']:.1f} MB |")  # fmt: skip
    return lines


async def run_all(args: argparse.Namespace) -> str:
    root = Path(tempfile.mkdtemp(prefix="ash-bench-", dir="/tmp"))
    root.chmod(0o711)
    ws = root / "ws"
    ws.mkdir(mode=0o711)
    lines = [HEADING, "",
             f"`bench/bench_sandbox.py`, {time.strftime('%Y-%m-%d')}, {platform.node()}: "
             f"Linux {platform.release()}, {__import__('os').cpu_count()} vCPU, shared with other "
             "work (expect ±30 %; 1-min load average at start: "
             f"{__import__('os').getloadavg()[0]:.1f}). Latencies are p50 / p95 / p99.", ""]  # fmt: skip
    try:
        for name, backend in backends(root, not args.no_docker):
            rounds = args.rounds if name.startswith("process") else max(20, args.rounds // 5)
            b = Bench(backend, ws)
            first = len(lines)
            try:
                lines += await measure(b, name, backend, rounds)
            except Exception as exc:  # one broken backend must not lose the others' numbers
                lines += [f"### {name}", "", f"Failed: `{type(exc).__name__}: {exc}`"[:400]]
            lines.append("")
            print("\n".join(lines[first:]), flush=True)
    finally:
        shutil.rmtree(root, ignore_errors=True)
    lines += [
        'Notes: "create + first exec" is the time until a command has run inside a new sandbox '
        "(process backend: uid claim, workspace chown, cgroups, then `sh → setpriv → bwrap`). "
        "Target: strict process sandbox ready < 20 ms p50.",
        "",
    ]
    return "\n".join(lines)


def write_section(text: str) -> None:
    old = RESULTS.read_text() if RESULTS.exists() else "# Benchmark results\n"
    start = old.find(HEADING + "\n")
    if start < 0:
        new = old.rstrip("\n") + "\n\n" + text
    else:
        end = old.find("\n## ", start + len(HEADING))
        new = old[:start] + text + (old[end + 1 :] if end >= 0 else "")
    RESULTS.write_text(new)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rounds", type=int, default=200)
    parser.add_argument("--no-docker", action="store_true")
    parser.add_argument("--no-write", action="store_true")
    args = parser.parse_args()
    text = asyncio.run(run_all(args))
    if not args.no_write:
        write_section(text)


if __name__ == "__main__":
    main()
