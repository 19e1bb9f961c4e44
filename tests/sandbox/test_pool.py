"""SandboxPool: states, eviction order, exhaustion, snapshot hooks, idle sweep, keyed pre-warm."""

from __future__ import annotations

import asyncio
import shutil
import tempfile
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from ash.sandbox.base import ExecResult, Limits, SandboxSpec
from ash.sandbox.pool import (
    PoolEntry,
    PoolExhausted,
    SandboxPool,
    SandboxState,
    SandboxUnavailable,
    WarmKey,
)

KEY = WarmKey("tenant-a", "helper", 1)


@dataclass
class MemSandbox:
    id: str
    spec: SandboxSpec
    alive: bool = True

    @property
    def uid(self) -> int | None:
        return None


@dataclass
class MemProcess:
    env: dict[str, str]
    returncode: int | None = 0


@dataclass
class MemBackend:
    """The state machine's collaborator: records every call, in order."""

    name: str = "memory"
    isolation: str = "degraded"
    log: list[str] = field(default_factory=list)
    sandboxes: dict[str, MemSandbox] = field(default_factory=dict)
    create_delay: float = 0.0

    async def create(self, spec: SandboxSpec) -> MemSandbox:
        if self.create_delay:
            await asyncio.sleep(self.create_delay)
        sb = MemSandbox(spec.sandbox_id, spec)
        self.sandboxes[sb.id] = sb
        self.log.append(f"create:{sb.id}")
        return sb

    async def destroy(self, sb: MemSandbox, *, keep_workspace: bool = True) -> None:
        sb.alive = False
        self.log.append(f"destroy:{sb.id}")

    async def spawn(
        self, sb: MemSandbox, argv: Sequence[str], *, env: Mapping[str, str] | None = None
    ) -> MemProcess:
        # What a process would see: the sandbox's baked env plus what spawn passes.
        return MemProcess({**sb.spec.env, **(env or {})})

    async def exec(self, sb: MemSandbox, argv: Sequence[str], **kw: object) -> ExecResult:
        env = {**sb.spec.env, **dict(kw.get("env") or {})}  # type: ignore[call-overload]
        out = "\n".join(f"{k}={v}" for k, v in sorted(env.items())).encode()
        return ExecResult(0, out, b"")

    async def alive(self, sb: MemSandbox) -> bool:
        return sb.alive


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    def tick(self, seconds: float = 1.0) -> float:
        self.now += seconds
        return self.now


def spec_for(tmp_path: Path, env: Mapping[str, str] | None = None):
    def factory(sandbox_id: str) -> SandboxSpec:
        ws = tmp_path / sandbox_id
        ws.mkdir(exist_ok=True)
        return SandboxSpec(sandbox_id=sandbox_id, workspace=ws, env=dict(env or {}))

    return factory


@pytest.fixture
def backend() -> MemBackend:
    return MemBackend()


@pytest.fixture
def clock() -> Clock:
    return Clock()


def make_pool(backend: MemBackend, clock: Clock, **kw: object) -> tuple[SandboxPool, list[str]]:
    evicted: list[str] = []

    async def on_evict(entry: PoolEntry) -> None:
        # The snapshot must run while the sandbox is still alive.
        assert entry.sandbox is not None and entry.sandbox.alive
        backend.log.append(f"snapshot:{entry.id}")
        evicted.append(entry.id)

    kw.setdefault("max_sandboxes", 4)
    pool = SandboxPool(backend, on_evict=on_evict, clock=clock, **kw)  # type: ignore[arg-type]
    return pool, evicted


async def test_eviction_order_is_cold_then_warm_then_waiting_never_running(
    backend: MemBackend, clock: Clock, tmp_path: Path
) -> None:
    pool, evicted = make_pool(backend, clock)
    factory = spec_for(tmp_path)
    (warm,) = await pool.prewarm(KEY, 1, factory)
    clock.tick()
    waiting = await pool.create(factory, session_id="s-wait")
    clock.tick()
    soon_cold = await pool.create(factory, session_id="s-cold")
    clock.tick()
    running = await pool.create(factory, session_id="s-run")
    pool.mark_running(running.id)
    await pool.evict(soon_cold.id)
    assert pool.stats()["cold"] == 1 and pool.stats()["total"] == 4

    # 1st: the cold record goes (no snapshot, no destroy: it has no process).
    clock.tick()
    await pool.create(factory, session_id="n1")
    assert soon_cold.id not in {e.id for e in pool.entries()}
    assert pool.stats()["warm"] == 1
    # 2nd: the warm one is destroyed without a snapshot.
    n = len(evicted)
    await pool.create(factory, session_id="n2")
    assert backend.log[-2:] == [f"destroy:{warm.id}", backend.log[-1]]
    assert len(evicted) == n and pool.stats()["warm"] == 0
    # 3rd: the least recently used waiting one is snapshotted, then destroyed.
    await pool.create(factory, session_id="n3")
    assert evicted[-1] == waiting.id
    i = backend.log.index(f"snapshot:{waiting.id}")
    assert backend.log[i + 1] == f"destroy:{waiting.id}"
    assert pool.get(running.id).state is SandboxState.RUNNING
    assert pool.stats()["total"] == 4


async def test_lru_waiting_sandbox_is_evicted_first(
    backend: MemBackend, clock: Clock, tmp_path: Path
) -> None:
    pool, evicted = make_pool(backend, clock, max_sandboxes=2)
    factory = spec_for(tmp_path)
    a = await pool.create(factory, session_id="a")
    clock.tick()
    b = await pool.create(factory, session_id="b")
    clock.tick()
    pool.touch(a.id)  # a is now the most recently used
    await pool.create(factory, session_id="c")
    assert evicted == [b.id]
    assert pool.get(a.id).state is SandboxState.WAITING


async def test_pool_exhausted_when_every_slot_is_running(
    backend: MemBackend, clock: Clock, tmp_path: Path
) -> None:
    pool, evicted = make_pool(backend, clock, max_sandboxes=2)
    factory = spec_for(tmp_path)
    for sid in ("a", "b"):
        pool.mark_running((await pool.create(factory, session_id=sid)).id)
    with pytest.raises(PoolExhausted, match="capacity reached"):
        await pool.create(factory, session_id="c")
    with pytest.raises(PoolExhausted):
        await pool.claim(KEY, "d", spec_factory=factory)
    assert evicted == [] and pool.stats()["running"] == 2 and pool.stats()["total"] == 2


async def test_failed_snapshot_keeps_the_sandbox_and_tries_the_next_victim(
    backend: MemBackend, clock: Clock, tmp_path: Path
) -> None:
    async def on_evict(entry: PoolEntry) -> None:
        if entry.session_id == "a":
            raise OSError("storage down")

    pool = SandboxPool(backend, max_sandboxes=2, on_evict=on_evict, clock=clock)
    factory = spec_for(tmp_path)
    a = await pool.create(factory, session_id="a")
    clock.tick()
    b = await pool.create(factory, session_id="b")
    await pool.create(factory, session_id="c")
    assert pool.get(a.id).state is SandboxState.WAITING  # not lost: kept alive
    assert b.id not in {e.id for e in pool.entries()}
    pool.mark_running(pool.for_session("c").id)  # type: ignore[union-attr]
    with pytest.raises(PoolExhausted):
        await pool.create(factory, session_id="d")


async def test_turn_cannot_start_while_its_sandbox_is_being_snapshotted(
    backend: MemBackend, clock: Clock, tmp_path: Path
) -> None:
    gate = asyncio.Event()
    started = asyncio.Event()

    async def on_evict(entry: PoolEntry) -> None:
        started.set()
        await gate.wait()

    pool = SandboxPool(backend, on_evict=on_evict, clock=clock)
    entry = await pool.create(spec_for(tmp_path), session_id="s")
    task = asyncio.create_task(pool.evict(entry.id))
    await started.wait()
    with pytest.raises(SandboxUnavailable):
        pool.mark_running(entry.id)
    gate.set()
    await task
    assert pool.get(entry.id).state is SandboxState.COLD and entry.sandbox is None


async def test_idle_sweep_snapshots_then_destroys_only_idle_waiting(
    backend: MemBackend, clock: Clock, tmp_path: Path
) -> None:
    pool, evicted = make_pool(backend, clock, max_sandboxes=10, idle_timeout=60)
    factory = spec_for(tmp_path)
    (warm,) = await pool.prewarm(KEY, 1, factory)
    idle = await pool.create(factory, session_id="idle")
    busy = await pool.create(factory, session_id="busy")
    pool.mark_running(busy.id)
    clock.tick(30)
    fresh = await pool.create(factory, session_id="fresh")
    clock.tick(45)  # idle: 75 s, fresh: 45 s
    swept = await pool.sweep_idle()
    assert swept == [idle.id] and evicted == [idle.id]
    assert backend.log.index(f"snapshot:{idle.id}") < backend.log.index(f"destroy:{idle.id}")
    assert pool.get(idle.id).state is SandboxState.COLD
    assert pool.get(idle.id).workspace == tmp_path / idle.id  # where the files were, for resume
    assert pool.get(warm.id).state is SandboxState.WARM  # warm sandboxes are never idle-swept
    assert pool.get(busy.id).state is SandboxState.RUNNING
    assert pool.get(fresh.id).state is SandboxState.WAITING
    dropped = await pool.drop_cold(older_than=10, now=clock.tick(11))
    assert dropped == [idle.id] and pool.for_session("idle") is None


async def test_stats_have_exactly_the_pool_stats_keys_and_count_states(
    backend: MemBackend, clock: Clock, tmp_path: Path
) -> None:
    pool, _ = make_pool(backend, clock, max_sandboxes=10)
    factory = spec_for(tmp_path)
    await pool.prewarm(KEY, 2, factory)
    await pool.claim(KEY, "s1", spec_factory=factory, replenish=False)
    run = await pool.create(factory, session_id="s2")
    pool.mark_running(run.id)
    cold = await pool.create(factory, session_id="s3")
    await pool.evict(cold.id)
    await pool.resume("s1", spec_factory=factory)
    await pool.resume("s3", spec_factory=factory)
    assert pool.stats() == {
        "total": 4,  # warm, s1, s2, and s3's new sandbox
        "cold": 0,  # the cold resume of s3 superseded its cold record
        "warming": 0,
        "warm": 1,
        "waiting": 2,
        "running": 1,
        "maxCapacity": 10,
        "resumeWarmHits": 1,
        "resumeColdHits": 1,
        "preWarmHits": 1,
    }


async def test_claim_only_takes_a_warm_sandbox_of_the_same_tenant_agent_and_version(
    backend: MemBackend, clock: Clock, tmp_path: Path
) -> None:
    pool, _ = make_pool(backend, clock, max_sandboxes=20)
    factory = spec_for(tmp_path)
    (warm,) = await pool.prewarm(KEY, 1, factory)
    for i, key in enumerate(
        [
            WarmKey("tenant-b", "helper", 1),
            WarmKey("tenant-a", "helper", 2),
            WarmKey("tenant-a", "other", 1),
        ]
    ):
        entry = await pool.claim(key, f"other-{i}", spec_factory=factory, replenish=False)
        assert entry.id != warm.id and not entry.prewarmed
    assert pool.pre_warm_hits == 0 and pool.get(warm.id).state is SandboxState.WARM
    mine = await pool.claim(KEY, "mine", spec_factory=factory, replenish=False)
    assert mine is warm and mine.session_id == "mine" and pool.pre_warm_hits == 1


async def test_prewarmed_sandboxes_refuse_env_and_claims_carry_only_their_own_env(
    backend: MemBackend, clock: Clock, tmp_path: Path
) -> None:
    pool, _ = make_pool(backend, clock, max_sandboxes=10)
    with pytest.raises(ValueError, match="without env"):
        await pool.prewarm(KEY, 1, spec_for(tmp_path, {"LEAK": "x"}))
    assert pool.stats()["total"] == 0  # the reserved slot was released
    factory = spec_for(tmp_path)
    await pool.prewarm(KEY, 1, factory)
    first = await pool.claim(KEY, "s1", spec_factory=factory, env={"SECRET_A": "a"})
    await asyncio.gather(*pool._tasks)  # the replacement pre-warm
    second = await pool.claim(KEY, "s2", spec_factory=factory, env={"ONLY_B": "b"})
    assert first.prewarmed and second.prewarmed and first.id != second.id
    proc = await pool.spawn(second.id, ["runtime"])
    assert proc.env == {"ONLY_B": "b"}
    result = await pool.exec(second.id, ["env"], timeout=5)
    assert b"SECRET_A" not in result.stdout and b"ONLY_B=b" in result.stdout
    assert (await pool.spawn(first.id, ["runtime"])).env == {"SECRET_A": "a"}


async def test_concurrent_claims_never_share_a_warm_sandbox(
    backend: MemBackend, clock: Clock, tmp_path: Path
) -> None:
    pool, _ = make_pool(backend, clock, max_sandboxes=100)
    factory = spec_for(tmp_path)
    warm = await pool.prewarm(KEY, 10, factory)
    backend.create_delay = 0.01  # creations yield, so claims interleave
    claims = await asyncio.gather(
        *(pool.claim(KEY, f"s{i}", spec_factory=factory, replenish=False) for i in range(30))
    )
    ids = [c.id for c in claims]
    assert len(set(ids)) == 30
    assert {c.id for c in claims if c.prewarmed} == {w.id for w in warm}
    assert pool.pre_warm_hits == 10
    assert all(c.session_id == f"s{i}" for i, c in enumerate(claims))


async def test_concurrent_creates_at_capacity_never_exceed_the_limit(
    backend: MemBackend, clock: Clock, tmp_path: Path
) -> None:
    pool, _ = make_pool(backend, clock, max_sandboxes=3)
    factory = spec_for(tmp_path)
    for i in range(3):
        await pool.create(factory, session_id=f"old{i}")
    backend.create_delay = 0.005
    peak = 0
    real_create = backend.create

    async def counting_create(spec: SandboxSpec) -> MemSandbox:
        nonlocal peak
        sb = await real_create(spec)
        peak = max(peak, sum(s.alive for s in backend.sandboxes.values()))
        return sb

    backend.create = counting_create  # type: ignore[method-assign]
    results = await asyncio.gather(
        *(pool.create(factory, session_id=f"s{i}") for i in range(6)), return_exceptions=True
    )
    made = [r for r in results if isinstance(r, PoolEntry)]
    # Slots still being created are not evictable: the overflow is refused, never squeezed in.
    assert all(isinstance(r, PoolEntry | PoolExhausted) for r in results)
    assert len(made) == 3 and peak <= 3
    assert pool.stats()["total"] == 3 and {e.session_id for e in pool.entries()} == {
        m.session_id for m in made
    }


async def test_running_is_reference_counted_for_exec_during_a_turn(
    backend: MemBackend, clock: Clock, tmp_path: Path
) -> None:
    pool, _ = make_pool(backend, clock)
    entry = await pool.create(spec_for(tmp_path), session_id="s")
    async with pool.running(entry.id):
        await pool.exec(entry.id, ["true"], timeout=1)
        assert entry.state is SandboxState.RUNNING  # the turn still holds it
    assert entry.state is SandboxState.WAITING
    (warm,) = await pool.prewarm(KEY, 1, spec_for(tmp_path))
    with pytest.raises(SandboxUnavailable):
        pool.mark_running(warm.id)  # unclaimed sandboxes never run turns


async def test_resume_cold_gets_a_new_sandbox_not_a_prewarmed_one(
    backend: MemBackend, clock: Clock, tmp_path: Path
) -> None:
    pool, _ = make_pool(backend, clock, max_sandboxes=10)
    factory = spec_for(tmp_path)
    (warm,) = await pool.prewarm(KEY, 1, factory)
    restored: list[str] = []

    async def restore(entry: PoolEntry) -> str:
        restored.append(entry.id)
        return "local"

    entry, was_warm = await pool.resume(
        "s", key=KEY, spec_factory=factory, env={"E": "1"}, restore=restore
    )
    assert not was_warm and entry.id != warm.id and restored == [entry.id]
    assert pool.resume_cold_hits == 1 and pool.cold_resume_sources == {"local": 1}
    again, was_warm = await pool.resume("s", spec_factory=factory, env={"E": "2"})
    assert was_warm and again is entry and entry.env == {"E": "2"}
    assert pool.get(warm.id).state is SandboxState.WARM


async def test_destroy_during_warming_does_not_leak_the_sandbox(
    backend: MemBackend, clock: Clock, tmp_path: Path
) -> None:
    pool, _ = make_pool(backend, clock)
    backend.create_delay = 0.05
    task = asyncio.create_task(pool.create(spec_for(tmp_path), session_id="s"))
    await asyncio.sleep(0.01)
    (warming,) = pool.entries()
    assert pool.stats()["warming"] == 1
    await pool.destroy(warming.id)
    with pytest.raises(SandboxUnavailable):
        await task
    assert pool.stats()["total"] == 0
    assert all(not sb.alive for sb in backend.sandboxes.values())


async def test_close_persists_claimed_sandboxes_and_destroys_everything(
    backend: MemBackend, clock: Clock, tmp_path: Path
) -> None:
    pool, evicted = make_pool(backend, clock, max_sandboxes=10)
    factory = spec_for(tmp_path)
    await pool.prewarm(KEY, 1, factory)
    s = await pool.create(factory, session_id="s")
    await pool.close(persist=True)
    assert evicted == [s.id]
    assert pool.stats()["total"] == 0
    assert all(not sb.alive for sb in backend.sandboxes.values())


# -- against the real process backend ---------------------------------------------------------


@pytest.fixture(scope="module")
def process_backend_root() -> Iterator[Path]:
    root = Path(tempfile.mkdtemp(prefix="ash-pool-test-", dir="/tmp"))
    root.chmod(0o711)  # sandbox uids must traverse it to reach their workspaces
    yield root
    shutil.rmtree(root, ignore_errors=True)


@pytest.fixture(scope="module")
def process_backend(process_backend_root: Path) -> object:
    from ash.sandbox.process_backend import ProcessBackend  # S1's backend, imported lazily

    return ProcessBackend(base_dir=process_backend_root / "backend", strict=True)


def real_specs(root: Path):
    workspaces = root / "ws"
    workspaces.mkdir(mode=0o711, exist_ok=True)

    def factory(sandbox_id: str) -> SandboxSpec:
        return SandboxSpec(
            sandbox_id=sandbox_id,
            workspace=workspaces / sandbox_id,
            limits=Limits(memory_bytes=256 << 20, pids=64),
        )

    return factory


async def test_real_backend_prewarmed_claims_keep_session_env_apart_and_evict_with_snapshot(
    process_backend: object, process_backend_root: Path
) -> None:
    snapshots: dict[str, bytes] = {}

    async def on_evict(entry: PoolEntry) -> None:
        data = b"".join([c async for c in process_backend.snapshot(entry.sandbox)])  # type: ignore[attr-defined]
        snapshots[entry.id] = data

    pool = SandboxPool(process_backend, max_sandboxes=2, on_evict=on_evict)  # type: ignore[arg-type]
    factory = real_specs(process_backend_root)
    try:
        (warm,) = await pool.prewarm(KEY, 1, factory)
        first = await pool.claim(KEY, "s1", spec_factory=factory, env={"ASH_T_SECRET": "alpha"})
        await asyncio.gather(*pool._tasks)  # replacement pre-warm, created without any env
        second = await pool.claim(
            KEY, "s2", spec_factory=factory, env={"ASH_T_OTHER": "beta"}, replenish=False
        )
        assert first is warm and second.prewarmed and pool.pre_warm_hits == 2

        out = (await pool.exec(second.id, ["/usr/bin/env"], timeout=20)).stdout
        assert b"ASH_T_OTHER=beta" in out and b"alpha" not in out and b"ASH_T_SECRET" not in out
        proc = await pool.spawn(second.id, ["/usr/bin/env"])
        lines = []
        while line := await proc.readline():
            lines.append(line)
        await proc.wait()
        assert b"ASH_T_OTHER=beta\n" in lines and not any(b"alpha" in ln for ln in lines)
        first_env = (await pool.exec(first.id, ["/usr/bin/env"], timeout=20)).stdout
        assert b"ASH_T_SECRET=alpha" in first_env and b"beta" not in first_env

        # The file layer writes as the sandbox uid: the sandboxed process can use the file.
        from ash.sandbox.workspace_fs import WorkspaceFS

        sb = second.sandbox
        assert sb is not None and sb.uid is not None
        await WorkspaceFS(sb.spec.workspace, sb.uid).write("hello.txt", b"from the api")
        cat = await pool.exec(second.id, ["/bin/cat", "hello.txt"], timeout=20)
        assert cat.stdout == b"from the api"

        # Full: a new session evicts the least recently used waiting sandbox, snapshot first.
        pool.mark_running(second.id)
        first_sb = first.sandbox
        third = await pool.create(factory, session_id="s3")
        assert list(snapshots) == [first.id] and snapshots[first.id][:4] == b"\x28\xb5\x2f\xfd"
        assert pool.for_session("s1") is None  # snapshotted, destroyed, then its record dropped
        assert not await process_backend.alive(first_sb)  # type: ignore[attr-defined]
        assert await process_backend.alive(third.sandbox)  # type: ignore[attr-defined]
        pool.mark_running(third.id)
        with pytest.raises(PoolExhausted):
            await pool.create(factory, session_id="s4")
    finally:
        await pool.close()
