"""Session lifecycle latencies: create (POST /api/sessions -> 201), pause, warm resume (pause ->
resume: the frozen sandbox is thawed), stop, cold resume (stop -> resume: a new sandbox restored
from the workspace snapshot), and the first turn after each kind of resume.

Run: .venv/bin/python bench/bench_sessions.py --mode embedded --sessions 50
     .venv/bin/python bench/bench_sessions.py --mode distributed --sessions 50
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _harness import Stack, TimedFake, create_session, deploy_agent, machine_conditions, table, turn  # noqa: E402


def timed_post(client: Any, path: str, expect: tuple[int, ...] = (200, 201)) -> tuple[float, dict[str, Any]]:
    started = time.perf_counter()
    r = client.post(path)
    elapsed = (time.perf_counter() - started) * 1000
    assert r.status_code in expect, (path, r.status_code, r.text[:300])
    return elapsed, r.json()


def resume_path(client: Any, sid: str) -> str:
    """How the last resume placed the session (from its `lifecycle` events)."""
    events = client.get(f"/api/sessions/{sid}/events", params={"type": "lifecycle"}).json().get("events", [])
    for event in reversed(events):
        data = event.get("data") or {}
        if isinstance(data, str):
            data = json.loads(data)
        if data.get("action") == "resumed":
            return f"{data.get('path')}/{data.get('source')}"
    return "?"


def run_mode(mode: str, args: argparse.Namespace) -> str:
    fake = TimedFake().start()
    out = [f"## bench_sessions: {mode} ({machine_conditions()} at start)", ""]
    try:
        with Stack(mode, fake, redis_db=args.redis_db, keep=args.keep) as stack, stack.client() as client:
            deploy_agent(client)
            for _ in range(args.warmup):  # first creates import code paths and warm caches
                sid, _ = create_session(client)
                client.delete(f"/api/sessions/{sid}")
            creates, sids = [], []
            for _ in range(args.sessions):
                sid, elapsed = create_session(client)
                creates.append(elapsed * 1000)
                sids.append(sid)
            first_turns, pauses, warm, stops, cold, warm_turns, cold_turns = [], [], [], [], [], [], []
            paths: dict[str, int] = {}
            for sid in sids[: args.resumes]:
                first_turns.append(turn(client, sid, "hello").total_ms)
                ms, _ = timed_post(client, f"/api/sessions/{sid}/pause")
                pauses.append(ms)
                ms, _ = timed_post(client, f"/api/sessions/{sid}/resume")
                warm.append(ms)
                p = resume_path(client, sid)
                paths[p] = paths.get(p, 0) + 1
                warm_turns.append(turn(client, sid, "after warm resume").total_ms)
                ms, _ = timed_post(client, f"/api/sessions/{sid}/stop")
                stops.append(ms)
                ms, _ = timed_post(client, f"/api/sessions/{sid}/resume")
                cold.append(ms)
                p = resume_path(client, sid)
                paths[p] = paths.get(p, 0) + 1
                t = turn(client, sid, "after cold resume")
                assert t.done and not t.errors, t.errors
                cold_turns.append(t.total_ms)
            deletes = []
            for sid in sids:
                started = time.perf_counter()
                assert client.delete(f"/api/sessions/{sid}").status_code == 200
                deletes.append((time.perf_counter() - started) * 1000)
            out.append(table([
                ("create (POST /api/sessions -> 201)", creates),
                ("first turn of a new session (POST -> `done`)", first_turns),
                ("pause", pauses),
                ("**warm resume** (paused -> active)", warm),
                ("first turn after warm resume", warm_turns),
                ("stop (snapshot + destroy sandbox)", stops),
                ("**cold resume** (stopped -> active, restore snapshot)", cold),
                ("first turn after cold resume", cold_turns),
                ("end (DELETE)", deletes),
            ]))
            out.append(f"\n- resume paths seen (path/source from the `resumed` lifecycle event): {paths}")
    finally:
        fake.stop()
    out.append(f"- finished with {machine_conditions()}\n")
    return "\n".join(out)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--mode", choices=["embedded", "distributed", "both"], default="embedded")
    parser.add_argument("--sessions", type=int, default=50, help="sessions created (sequentially, all kept live)")
    parser.add_argument("--resumes", type=int, default=20, help="of those, how many go through pause/resume/stop/resume")
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--redis-db", type=int, default=14, help="an empty Redis db (flushed afterwards)")
    parser.add_argument("--keep", action="store_true", help="keep the temp dir (logs) for inspection")
    args = parser.parse_args()
    for mode in (["embedded", "distributed"] if args.mode == "both" else [args.mode]):
        print(run_mode(mode, args), flush=True)


if __name__ == "__main__":
    main()
