"""Paired A/B of turn overhead: two checkouts' Ash side by side, turns alternating between them.

This machine's speed drifts by 30 % and more from one minute to the next, so two runs taken one
after the other compare the minutes as much as the code. Here both deployments live at once
(each idle while the other serves a turn) and every turn of A is paired with the next turn of B:
the median of the per-pair differences, and each side's CPU per turn over the same minutes.
Half the pairs run with A's deployment started first, half with B's (fresh deployments): in A/A
runs of one code base, whichever deployment started second was up to ~0.4 ms faster.

Run: .venv/bin/python bench/bench_ab.py --a /path/to/checkout-a --b /path/to/checkout-b \\
         --mode embedded --turns 300
(each checkout needs the venv's packages; the benchmark code itself comes from this file's checkout)
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from contextlib import ExitStack
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _harness import (  # noqa: E402
    Stack,
    TimedFake,
    TurnTiming,
    cpu_by_role,
    cpu_seconds,
    create_session,
    deploy_agent,
    machine_conditions,
    table,
)


def overhead_ms(fake: TimedFake, t: TurnTiming) -> float | None:
    """The turn's end-to-end time minus the fake model's own; None for a failed turn."""
    if t.errors or not t.done:
        return None
    time.sleep(0.002)  # let the fake's thread record the call's end before it is looked up
    return t.total_ms - sum(c.ms for c in fake.calls_between(t.sent, t.done))


def measure(args: argparse.Namespace, fake: TimedFake, repos: dict[str, Path], start_order: tuple[str, str],
            pairs: int) -> tuple[dict[str, list[float]], list[float], int, dict[str, dict[str, float]]]:
    """PAIRS pairs of turns on deployments of A and B started in START_ORDER: each side's
    overheads, the paired differences B − A, failed pairs, and each side's CPU by role."""
    with ExitStack() as stack_cm:
        stacks, raws, sids = {}, {}, {}
        for i, name in enumerate(start_order):
            stack = stack_cm.enter_context(Stack(args.mode, fake, redis_db=args.redis_db + i, repo=repos[name]))
            client = stack_cm.enter_context(stack.client())
            stacks[name], raws[name] = stack, stack_cm.enter_context(stack.raw_client())
            deploy_agent(client)
            sids[name] = create_session(client)[0]
            for w in range(args.warmup):
                raws[name].turn(sids[name], f"warm-up {w}")
        cpu_before = {name: cpu_seconds(s.tree_pids()) for name, s in stacks.items()}
        rows: dict[str, list[float]] = {"A": [], "B": []}
        diffs, failed = [], 0
        for i in range(pairs):
            order = ("A", "B") if i % 2 == 0 else ("B", "A")  # neither always goes first
            pair = {name: overhead_ms(fake, raws[name].turn(sids[name], f"turn {i}")) for name in order}
            if pair["A"] is None or pair["B"] is None:
                failed += 1
                continue
            rows["A"].append(pair["A"])
            rows["B"].append(pair["B"])
            diffs.append(pair["B"] - pair["A"])
        cpu = {name: cpu_by_role(cpu_before[name], cpu_seconds(s.tree_pids())) for name, s in stacks.items()}
    return rows, diffs, failed, cpu


def run(args: argparse.Namespace) -> str:
    """Half the pairs with A's deployment started first, half with B's: the deployment started
    second came out up to ~0.4 ms faster in A/A runs of one code base, so either alone is biased."""
    fake = TimedFake().start()
    repos = {"A": Path(args.a).resolve(), "B": Path(args.b).resolve()}
    out = [f"## bench_ab: {args.mode}, A = {repos['A']}, B = {repos['B']} ({machine_conditions()} at start)", ""]
    rows: dict[str, list[float]] = {"A": [], "B": []}
    diffs: list[float] = []
    failed, halves = 0, []
    cpu: dict[str, dict[str, float]] = {"A": {}, "B": {}}
    try:
        for start_order in (("A", "B"), ("B", "A")):
            half_rows, half_diffs, half_failed, half_cpu = measure(args, fake, repos, start_order, args.turns // 2)
            for name in ("A", "B"):
                rows[name] += half_rows[name]
                for role, seconds in half_cpu[name].items():
                    cpu[name][role] = cpu[name].get(role, 0.0) + seconds
            diffs += half_diffs
            failed += half_failed
            halves.append((start_order[0], statistics.median(half_diffs) if half_diffs else float("nan")))
    finally:
        fake.stop()
    out.append(table([(f"overhead, {name}", values) for name, values in rows.items()] + [("B − A, paired", diffs)]))
    out.append("")
    for name in ("A", "B"):
        roles = cpu[name]
        total = sum(roles.values()) / args.turns * 1000
        out.append(f"- {name}: CPU {total:.2f} ms per turn ("
                   + ", ".join(f"{k} {v / args.turns * 1000:.2f}" for k, v in sorted(roles.items()) if v > 0) + ")")
    out.append("- median B − A with " + " and with ".join(f"{first} started first {d:+.2f} ms" for first, d in halves))
    median = f"{statistics.median(diffs):+.2f} ms" if diffs else "none (no pair succeeded)"
    out.append(f"- median paired difference B − A: {median} over {len(diffs)} pairs"
               f"{f'; {failed} pairs failed' if failed else ''}")
    out.append(f"(finished with {machine_conditions()})\n")
    return "\n".join(out)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--a", required=True, help="checkout A (the baseline)")
    parser.add_argument("--b", required=True, help="checkout B (the change)")
    parser.add_argument("--mode", choices=["embedded", "distributed"], default="embedded")
    parser.add_argument("--turns", type=int, default=300, help="pairs of turns (half with each deployment started first)")
    parser.add_argument("--warmup", type=int, default=10)
    parser.add_argument("--redis-db", type=int, default=14, help="A uses this Redis db, B the next one (both empty)")
    print(run(parser.parse_args()), flush=True)


if __name__ == "__main__":
    main()
