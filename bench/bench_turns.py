"""Turn overhead: a turn's end-to-end time seen by the HTTP client minus the fake model's own time.

Starts its own Ash (embedded: one process, SQLite; distributed: PostgreSQL + Redis + a separate
runner) against a timed fake Messages API on loopback, runs sequential turns in one session and
round-robin across several sessions, and breaks each turn down by stage.

Run: .venv/bin/python bench/bench_turns.py --mode embedded --turns 100 [--sessions 10]
     .venv/bin/python bench/bench_turns.py --mode distributed --turns 100
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _harness import (  # noqa: E402
    Stack,
    TimedFake,
    TurnTiming,
    cpu_by_role,
    cpu_delta,
    cpu_seconds,
    create_session,
    deploy_agent,
    machine_conditions,
    table,
    turn,
)

PG_STATS_SETTLE_S = 11  # PostgreSQL 15 backends flush their statistics within 10 s of going idle


def measure(stack: Stack, fake: TimedFake, do_turn: Callable[[str, str], TurnTiming], sessions: list[str],
            turns: int) -> list[dict[str, Any]]:
    """TURNS sequential turns, round-robin over SESSIONS; one row of stage timings per turn."""
    rows = []
    for i in range(turns):
        t = do_turn(sessions[i % len(sessions)], f"benchmark turn {i}")
        if t.errors or not t.done:
            rows.append({"error": t.errors or ["no done"], "status": t.status})
            continue
        time.sleep(0.002)  # let the fake's thread record the call's end before it is looked up
        calls = fake.calls_between(t.sent, t.done)
        model_ms = sum(c.ms for c in calls)
        result = t.result_msg or {}
        row = {
            "total": t.total_ms,
            "model": model_ms,
            "overhead": t.total_ms - model_ms,
            "headers": (t.headers - t.sent) * 1000,
            "first_frame": (t.first_frame - t.sent) * 1000,
            "to_model": (calls[0].arrived - t.sent) * 1000 if calls else float("nan"),
            "after_model": (t.done - calls[-1].finished) * 1000 if calls else float("nan"),
            "result_to_done": (t.done - t.result) * 1000 if t.result else float("nan"),
            "runtime_duration": float(result.get("duration_ms", "nan")),
            "runtime_api": float(result.get("duration_api_ms", "nan")),
            "calls": len(calls),
            "frames": t.frames,
        }
        rows.append(row)
    return rows


def trend(rows: list[dict[str, Any]]) -> str:
    """Does a turn get slower as the conversation grows? p50 overhead of the first vs last fifth."""
    ok = [r["overhead"] for r in rows if "error" not in r]
    k = max(1, len(ok) // 5)
    first, last = sorted(ok[:k]), sorted(ok[-k:])
    return (f"overhead p50 of the first {k} turns {first[len(first) // 2]:.1f} ms, "
            f"of the last {k} turns {last[len(last) // 2]:.1f} ms")


def start_profilers(stack: Stack, out_dir: str) -> list[subprocess.Popen]:
    """py-spy (if installed) on the server and runner, collapsed stacks into OUT_DIR."""
    spy = Path(sys.executable).parent / "py-spy"
    Path(out_dir).mkdir(parents=True, exist_ok=True)
    procs = []
    for p in stack.procs:
        cmd = [str(spy), "record", "--pid", str(p.proc.pid), "--subprocesses", "--rate", "250", "--format", "raw",
               "--nonblocking", "-o", str(Path(out_dir) / f"{stack.mode}-{p.name}.txt")]
        procs.append(subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True))
    time.sleep(1.0)  # let py-spy attach
    return procs


def stop_profilers(procs: list[subprocess.Popen]) -> None:
    for proc in procs:
        proc.send_signal(signal.SIGINT)  # py-spy writes its output on SIGINT
    for proc in procs:
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)


def report(title: str, rows: list[dict[str, Any]], extra: list[str]) -> str:
    ok = [r for r in rows if "error" not in r]
    errors = [r for r in rows if "error" in r]
    col = lambda key: [r[key] for r in ok if r[key] == r[key]]  # noqa: E731 - drops NaN
    lines = [f"### {title}", "", table([
        ("**overhead = total − model**", col("overhead")),
        ("total (POST → `done`)", col("total")),
        ("fake model's own time", col("model")),
        ("POST → response headers", col("headers")),
        ("POST → first SSE frame", col("first_frame")),
        ("POST → model request arrives", col("to_model")),
        ("model response ends → `done`", col("after_model")),
        ("`result` frame → `done` frame", col("result_to_done")),
        ("runtime's duration_ms", col("runtime_duration")),
        ("runtime's duration_api_ms", col("runtime_api")),
    ]), ""]
    calls = sorted({r["calls"] for r in ok})
    frames = sorted({r["frames"] for r in ok})
    lines.append(f"- {len(ok)} turns ok, {len(errors)} failed{': ' + str(errors[:3]) if errors else ''}; "
                 f"model calls per turn: {calls}; SSE frames per turn: {frames}")
    lines += [f"- {e}" for e in extra]
    return "\n".join(lines) + "\n"


def run_mode(mode: str, args: argparse.Namespace) -> str:
    fake = TimedFake().start()
    out = [f"## bench_turns: {mode}, {args.client} client ({machine_conditions()} at start)", ""]
    try:
        with Stack(mode, fake, redis_db=args.redis_db, keep=args.keep, extra_env=dict(args.env)) as stack, \
                stack.client() as client, stack.raw_client() as raw:
            do_turn: Callable[[str, str], TurnTiming] = raw.turn if args.client == "raw" else (
                lambda session_id, text: turn(client, session_id, text))
            deploy_agent(client)
            sid, _ = create_session(client)
            first = do_turn(sid, "first turn")
            for i in range(args.warmup):
                do_turn(sid, f"warm-up {i}")
            if mode == "distributed":
                time.sleep(PG_STATS_SETTLE_S)
            pg_before = stack.pg_stats() if mode == "distributed" else {}
            pids = stack.tree_pids()
            cpu_before = cpu_seconds(pids)
            profilers = start_profilers(stack, args.profile) if args.profile else []
            wall = time.perf_counter()
            rows = measure(stack, fake, do_turn, [sid], args.turns)
            wall = time.perf_counter() - wall
            stop_profilers(profilers)
            cpu_after = cpu_seconds(stack.tree_pids())
            cpu = cpu_delta(cpu_before, cpu_after)
            roles = cpu_by_role(cpu_before, cpu_after)
            extra = [trend(rows), f"first turn of a new session: {first.total_ms:.1f} ms (not in the table)",
                     f"Ash CPU (server{' + runner' if mode == 'distributed' else ''} + sandbox processes): "
                     f"{cpu / args.turns * 1000:.1f} ms per turn ("
                     + ", ".join(f"{k} {v / args.turns * 1000:.1f}" for k, v in sorted(roles.items()) if v > 0)
                     + f"); wall {wall:.1f} s for {args.turns} turns"]
            if mode == "distributed":
                time.sleep(PG_STATS_SETTLE_S)
                after = stack.pg_stats()
                per = {k: (after[k] - pg_before.get(k, 0)) / args.turns for k in after}
                extra.append("PostgreSQL per turn: " + ", ".join(f"{k} {v:.1f}" for k, v in per.items())
                             + " (pg_stat_database deltas; includes the read-only transactions)")
            out.append(report(f"{args.turns} sequential turns, one session ({mode})", rows, extra))
            if args.sessions > 1:
                sids = [create_session(client)[0] for _ in range(args.sessions)]
                for s in sids:
                    do_turn(s, "warm-up")
                rows = measure(stack, fake, do_turn, sids, args.turns)
                out.append(report(f"{args.turns} sequential turns round-robin across {args.sessions} sessions ({mode})",
                                  rows, []))
            if args.json:
                Path(args.json).write_text(json.dumps(rows))
    finally:
        fake.stop()
    out.append(f"(finished with {machine_conditions()})\n")
    return "\n".join(out)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--mode", choices=["embedded", "distributed", "both"], default="embedded")
    parser.add_argument("--turns", type=int, default=100)
    parser.add_argument("--sessions", type=int, default=10, help="sessions of the round-robin variant (1 = skip)")
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--client", choices=["raw", "httpx"], default="raw",
                        help="raw: a plain-socket HTTP/1.1 client (~0.1 ms of its own per turn); httpx: ~2-3 ms")
    parser.add_argument("--redis-db", type=int, default=14, help="an empty Redis db (flushed afterwards)")
    parser.add_argument("--json", default="", help="write the last variant's per-turn rows here")
    parser.add_argument("--profile", default="", help="py-spy the measured single-session phase into this dir")
    parser.add_argument("--keep", action="store_true", help="keep the temp dir (logs) for inspection")
    parser.add_argument("--env", action="append", default=[], type=lambda kv: tuple(kv.split("=", 1)),
                        metavar="NAME=VALUE", help="extra server environment (repeatable)")
    args = parser.parse_args()
    modes = ["embedded", "distributed"] if args.mode == "both" else [args.mode]
    for mode in modes:
        print(run_mode(mode, args), flush=True)


if __name__ == "__main__":
    main()
