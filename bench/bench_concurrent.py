"""Many live sessions: create N sessions (each a sandbox with its runtime), then fire one turn in
every session at once; report success rate, turn latency and memory per live session (RSS and
PSS of the whole deployment's process tree, sandbox processes included, from /proc).

Creation stops early (and says so) if the machine's MemAvailable falls below --min-free-gb, so
the benchmark never pushes a shared machine into OOM.

Run: .venv/bin/python bench/bench_concurrent.py --mode embedded --sessions 200
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import httpx  # noqa: E402
from _harness import (  # noqa: E402
    Mem,
    Stack,
    TimedFake,
    aturn,
    cpu_delta,
    cpu_seconds,
    create_session,
    deploy_agent,
    machine_conditions,
    memory_of,
    summary,
    table,
)


def mem_available_gb() -> float:
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemAvailable:"):
            return int(line.split()[1]) / (1 << 20)
    return float("nan")


def describe(mem: Mem) -> str:
    kinds = ", ".join(f"{k}: {len(v)} x {sum(v) / len(v) / 1024:.1f} MB" for k, v in sorted(mem.by_kind.items()))
    return f"RSS {mem.rss_kb / 1024:.0f} MB, PSS {mem.pss_kb / 1024:.0f} MB in {mem.procs} processes ({kinds})"


async def fire(stack: Stack, sids: list[str], label: str) -> tuple[list[float], list[Any]]:
    limits = httpx.Limits(max_connections=len(sids) + 10, max_keepalive_connections=len(sids) + 10)
    async with stack.async_client(limits=limits) as client:
        timings = await asyncio.wait_for(
            asyncio.gather(*(aturn(client, sid, f"{label} turn") for sid in sids)), timeout=900)
    ok = [t.total_ms for t in timings if t.done and not t.errors]
    errors = [(t.status, t.errors[:1]) for t in timings if not (t.done and not t.errors)]
    return ok, errors


def run(args: argparse.Namespace) -> str:
    fake = TimedFake().start()
    extra = {"ASH_MAX_SANDBOXES": str(args.max_sandboxes), **dict(args.env)}
    if args.runner_concurrency:
        extra["ASH_RUNNER_CONCURRENCY"] = str(args.runner_concurrency)
    out = [f"## bench_concurrent: {args.mode}, {args.sessions} sessions ({machine_conditions()} at start)", ""]
    try:
        with Stack(args.mode, fake, redis_db=args.redis_db, extra_env=extra, keep=args.keep) as stack, \
                stack.client() as client:
            deploy_agent(client)
            base = memory_of(stack.tree_pids())
            out.append(f"- idle deployment, no session: {describe(base)}")
            sids, creates, stopped_early = [], [], ""
            started = time.perf_counter()
            for i in range(args.sessions):
                if mem_available_gb() < args.min_free_gb:
                    stopped_early = f"stopped creating at {i} sessions: MemAvailable < {args.min_free_gb} GB"
                    break
                sid, elapsed = create_session(client)
                sids.append(sid)
                creates.append(elapsed * 1000)
                if (i + 1) % 25 == 0:
                    print(f"  {i + 1} sessions, {time.perf_counter() - started:.0f} s, "
                          f"MemAvailable {mem_available_gb():.1f} GB, {machine_conditions()}", file=sys.stderr, flush=True)
            live = memory_of(stack.tree_pids())
            n = len(sids)
            out.append(f"- {n} live sessions: {describe(live)}")
            if stopped_early:
                out.append(f"- **{stopped_early}**")
            out.append(f"- memory per live session: RSS {(live.rss_kb - base.rss_kb) / n / 1024:.1f} MB, "
                       f"PSS {(live.pss_kb - base.pss_kb) / n / 1024:.1f} MB "
                       f"(deployment total RSS {live.rss_kb / 1024:.0f} MB, PSS {live.pss_kb / 1024:.0f} MB)")
            rows = [(f"create, sequential ({n} sessions)", creates)]
            cpu0 = cpu_seconds(stack.tree_pids())
            for round_no in range(1, args.rounds + 1):
                wall = time.perf_counter()
                ok, errors = asyncio.run(fire(stack, sids, f"round {round_no}"))
                wall = time.perf_counter() - wall
                label = "first turn of each session" if round_no == 1 else f"turn {round_no} of each session"
                rows.append((f"{n} concurrent turns: {label} (POST -> `done`)", ok))
                out.append(f"- round {round_no}: {len(ok)}/{n} turns succeeded ({100 * len(ok) / n:.1f}%), "
                           f"all done in {wall:.1f} s" + (f"; errors: {errors[:5]}" if errors else ""))
            cpu = cpu_delta(cpu0, cpu_seconds(stack.tree_pids()))
            after = memory_of(stack.tree_pids())
            out.append(f"- after the turns: {describe(after)}; RSS per session "
                       f"{(after.rss_kb - base.rss_kb) / n / 1024:.1f} MB, PSS {(after.pss_kb - base.pss_kb) / n / 1024:.1f} MB")
            out.append(f"- Ash CPU during the turn rounds: {cpu:.1f} s ({cpu / (n * args.rounds) * 1000:.0f} ms per turn)")
            out.insert(2, table(rows) + "\n")
            s = summary(rows[1][1]) if len(rows) > 1 else {}
            if s:
                out.append(f"- round 1 p95 turn latency {s['p95']:.0f} ms")
    finally:
        fake.stop()
    out.append(f"- finished with {machine_conditions()}\n")
    return "\n".join(out)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--mode", choices=["embedded", "distributed"], default="embedded")
    parser.add_argument("--sessions", type=int, default=200)
    parser.add_argument("--rounds", type=int, default=2, help="concurrent turn rounds (round 1 = first turns)")
    parser.add_argument("--max-sandboxes", type=int, default=250)
    parser.add_argument("--runner-concurrency", type=int, default=0, help="ASH_RUNNER_CONCURRENCY (0 = default)")
    parser.add_argument("--min-free-gb", type=float, default=4.0)
    parser.add_argument("--redis-db", type=int, default=14, help="an empty Redis db (flushed afterwards)")
    parser.add_argument("--keep", action="store_true", help="keep the temp dir (logs) for inspection")
    parser.add_argument("--env", action="append", default=[], type=lambda kv: tuple(kv.split("=", 1)),
                        help="NAME=VALUE for the deployment (repeatable)")
    print(run(parser.parse_args()), flush=True)


if __name__ == "__main__":
    main()
