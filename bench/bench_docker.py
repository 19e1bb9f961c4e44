"""Docker sandbox benchmarks: create-to-ready, exec, pause/resume, snapshot/restore (not a test).

Run: `.venv/bin/python bench/bench_docker.py [--rounds 40]` (starts the private engine and builds
the image like the tests do). Writes the "## Docker sandbox" section of bench/RESULTS.md.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import re
import shutil
import sys
import tempfile
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from ash.sandbox.base import Limits, SandboxSpec  # noqa: E402
from ash.sandbox.docker_backend import DockerBackend, DockerSandbox  # noqa: E402
from tests.sandbox.docker_env import docker_backend_factory, docker_environment  # noqa: E402

RESULTS = Path(__file__).with_name("RESULTS.md")
NOTES = """\
- "create" is `containers.run` (hardened flags, 5 bind mounts) until the container runs;
  "ready" adds the first exec. The first create after an engine start (not counted) is slower.
- exec includes starting the process, collecting output and waiting for the engine to record
  the exit code; a spawned process (the agent runtime) then answers a line in ~0.2 ms.
- pause/resume are the engine's freezer calls; stats read the cgroup files on the host
  (the Engine API stats endpoint samples for ~1 s on dockerd).
- snapshot/restore run on the host workspace with fd-relative, no-follow walks (tarfile + zstd
  level 3); restore includes spooling the archive and clearing the old workspace.
- One-off setup, measured by hand on a machine that already had docker.io: engine start 0.2-0.5 s,
  image build from scratch (debootstrap + import) 50-60 s, image import from the cached rootfs
  ~3 s, reuse of an existing tag 0.02 s. Installing docker.io itself is ~5 s of dpkg plus the
  download."""
SECTION = "## Docker sandbox"
VOCAB = [
    "def",
    "class",
    "return",
    "import",
    "self",
    "value",
    "list",
    "dict",
    "async",
    "await",
    "yield",
    "for",
    "in",
    "if",
    "else",
]


def pct(samples: list[float], q: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def row(name: str, samples: list[float]) -> str:
    ms = [s * 1000 for s in samples]
    return (
        f"| {name} | {len(ms)} | {pct(ms, 0.5):.1f} | {pct(ms, 0.95):.1f} | {pct(ms, 0.99):.1f} |"
    )


def small_files(root: Path) -> None:
    """1,000 text files of 200-4,000 B in 20x7 directories (~2 MB)."""
    rnd = random.Random(1)
    for i in range(1000):
        d = root / f"pkg{i % 20}" / f"mod{i % 7}"
        d.mkdir(parents=True, exist_ok=True)
        words = [rnd.choice(VOCAB) for _ in range(rnd.randint(200, 4000) // 6)]
        (d / f"f{i}.py").write_text(" ".join(words))


def big_files(root: Path) -> None:
    """25 x 1 MiB text + 5 x 5 MiB random (~52 MB)."""
    root.mkdir(parents=True, exist_ok=True)
    for i in range(25):
        (root / f"text{i}.txt").write_bytes(b"lorem ipsum dolor sit amet\n" * 38836)
    for i in range(5):
        (root / f"rand{i}.bin").write_bytes(os.urandom(5 << 20))


async def chunks_of(data: list[bytes]) -> AsyncIterator[bytes]:
    for c in data:
        yield c


async def timed(n: int, fn: Callable[[], Awaitable[object]]) -> list[float]:
    out = []
    for _ in range(n):
        t = time.perf_counter()
        await fn()
        out.append(time.perf_counter() - t)
    return out


def spec(root: Path, fill: Callable[[Path], None] | None = None) -> SandboxSpec:
    sid = "bench" + uuid.uuid4().hex[:10]
    ws = root / sid
    ws.mkdir()
    if fill is not None:
        fill(ws)
    return SandboxSpec(sandbox_id=sid, workspace=ws, limits=Limits(memory_bytes=512 << 20))


async def bench_snapshot(
    b: DockerBackend, root: Path, fill: Callable[[Path], None], rounds: int
) -> tuple[list[float], list[float], int]:
    sb = await b.create(spec(root, fill))
    try:
        snaps, restores, size = [], [], 0
        for _ in range(rounds):
            t = time.perf_counter()
            data = [c async for c in b.snapshot(sb)]
            snaps.append(time.perf_counter() - t)
            size = sum(map(len, data))
            t = time.perf_counter()
            await b.restore(sb, chunks_of(data))
            restores.append(time.perf_counter() - t)
        return snaps, restores, size
    finally:
        await b.destroy(sb, keep_workspace=False)


async def main(rounds: int) -> str:
    t0 = time.perf_counter()
    host, image = docker_environment()
    setup_s = time.perf_counter() - t0
    root = Path(tempfile.mkdtemp(prefix="ash-bench-docker-"))
    b = docker_backend_factory(root / "base")
    lines: list[str] = []
    try:
        warm = await b.create(spec(root))  # first create pays for image layer setup
        await b.destroy(warm, keep_workspace=False)
        created: list[DockerSandbox] = []
        create_s, ready_s, destroy_s = [], [], []
        for _ in range(rounds):
            s = spec(root)
            t = time.perf_counter()
            sb = await b.create(s)
            create_s.append(time.perf_counter() - t)
            await b.exec(sb, ["true"], timeout=30)
            ready_s.append(time.perf_counter() - t)
            created.append(sb)
        sb = created.pop()
        exec_s = await timed(rounds, lambda: b.exec(sb, ["true"], timeout=30))
        py_s = await timed(10, lambda: b.exec(sb, ["python3", "-c", "pass"], timeout=30))
        proc = await b.spawn(sb, ["cat"])

        async def echo() -> None:
            await proc.write(b"ping\n")
            await proc.readline()

        echo_s = await timed(rounds * 5, echo)
        await proc.kill()
        pause_s, resume_s, pr_s = [], [], []
        for _ in range(rounds):
            t = time.perf_counter()
            await b.pause(sb)
            pause_s.append(time.perf_counter() - t)
            t = time.perf_counter()
            await b.resume(sb)
            resume_s.append(time.perf_counter() - t)
        for _ in range(rounds):
            t = time.perf_counter()
            await b.pause(sb)
            await b.resume(sb)
            pr_s.append(time.perf_counter() - t)
        stats_s = await timed(rounds, lambda: b.stats(sb))
        created.append(sb)
        for sb in created:
            t = time.perf_counter()
            await b.destroy(sb, keep_workspace=False)
            destroy_s.append(time.perf_counter() - t)
        small = await bench_snapshot(b, root, small_files, 5)
        big = await bench_snapshot(b, root, lambda r: big_files(r / "data"), 3)
    finally:
        await b.sweep_orphans(keep=set())
        b.close()
        shutil.rmtree(root, ignore_errors=True)

    lines += [
        "| operation | n | p50 ms | p95 ms | p99 ms |",
        "|---|---|---|---|---|",
        row("create (container running)", create_s),
        row("create-to-ready (create + first exec)", ready_s),
        row("exec `true`", exec_s),
        row("exec `python3 -c pass`", py_s),
        row("spawned process line echo", echo_s),
        row("pause", pause_s),
        row("resume", resume_s),
        row("pause + resume", pr_s),
        row("stats", stats_s),
        row("destroy (force remove)", destroy_s),
        row("snapshot 1,000 small files", small[0]),
        row("restore 1,000 small files", small[1]),
        row("snapshot 50 MB (1/2 random)", big[0]),
        row("restore 50 MB (1/2 random)", big[1]),
        "",
        f"Archive sizes (zstd -3): 1,000 files {small[2] / 1e6:.2f} MB, 50 MB set "
        f"{big[2] / 1e6:.1f} MB. Engine `{host}`, image `{image}`; engine start + image "
        f"check took {setup_s:.2f} s in this run.",
    ]
    return "\n".join(lines)


def write_section(body: str) -> None:
    text = RESULTS.read_text() if RESULTS.exists() else "# Benchmark results\n"
    stamp = time.strftime("%Y-%m-%d")
    section = (
        f"{SECTION}\n\n`bench/bench_docker.py` against the private dockerd "
        f"(`scripts/sandbox-engine.sh`), measured {stamp} on the shared 2-core machine while "
        "other work ran: expect noise, p95/p99 especially.\n\n"
        f"{body}\n\n{NOTES}\n\nRun: `.venv/bin/python bench/bench_docker.py --rounds 40`\n"
    )
    pattern = re.compile(rf"^{re.escape(SECTION)}\n.*?(?=^## |\Z)", re.S | re.M)
    if pattern.search(text):
        text = pattern.sub(lambda _m: section + "\n", text)
    else:
        text = text.rstrip("\n") + "\n\n" + section
    RESULTS.write_text(text.rstrip("\n") + "\n")


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=40)
    parser.add_argument("--no-write", action="store_true")
    args = parser.parse_args()
    out = asyncio.run(main(args.rounds))
    print(out)
    if not args.no_write:
        write_section(out)
