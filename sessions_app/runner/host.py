"""The runner host: one per runner process. Owns the sandbox pool, each sandbox's model proxy
and agent runtime, and an asyncio loop (in its own thread) on which all of that runs.

Celery task threads call in with `host.call(coro)`; nothing here touches the database except
through the hooks given by the caller (usage metering, workspace persistence).
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import functools
import logging
import threading
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

from ash.llm_proxy.metering import UsageRecord
from ash.llm_proxy.server import ModelProxy
from ash.llm_proxy.upstream import Upstream
from ash.runtime import protocol
from ash.runtime.client import RuntimeClient, RuntimeClosed
from ash.sandbox.base import AGENT_PATH, PROXY_DIR_PATH, WORKSPACE_PATH, Limits, SandboxSpec
from ash.sandbox.pool import PoolEntry, SandboxPool, SandboxState, WarmKey

log = logging.getLogger("ash.runner")
T = TypeVar("T")

LOG_RING_SIZE = 10_000
RUNTIME_ARGV = ("python3", "-m", "ash.runtime")
RUNTIME_READY_TIMEOUT = 30.0
EXEC_LOG_LINES = 200
SHUTDOWN_PARALLELISM = 16  # sessions saved and released at once when the runner stops  # the tail of each exec's output goes to the sandbox log


@dataclass(frozen=True)
class SessionSpec:
    """Everything the runner needs to host a session, read from the database by the caller."""

    session_id: str
    tenant_id: str
    agent_name: str
    agent_version: int
    agent_path: str
    extra_env: dict[str, str] = field(default_factory=dict)
    credential_type: str | None = None
    credential_key: str | None = field(default=None, repr=False)


class LogRing:
    """The last LOG_RING_SIZE lines of a sandbox (stdout, stderr, system), with monotonic indexes."""

    def __init__(self) -> None:
        self._lines: collections.deque[dict[str, Any]] = collections.deque(maxlen=LOG_RING_SIZE)
        self._next = 0

    def add(self, level: str, text: str) -> None:
        ts = datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
        self._lines.append({"index": self._next, "level": level, "text": text, "ts": ts})
        self._next += 1

    def after(self, index: int) -> list[dict[str, Any]]:
        return [line for line in self._lines if line["index"] > index]


@dataclass
class Hosted:
    """A live session on this runner: its pool entry, proxy, runtime and logs."""

    spec: SessionSpec
    entry: PoolEntry
    proxy: ModelProxy
    logs: LogRing
    runtime: RuntimeClient | None = None
    turn_lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    snapshot_lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    current_qid: str | None = None
    pending_usage: collections.deque[UsageRecord] = field(default_factory=collections.deque)  # for the running turn
    snapshot_timer: asyncio.TimerHandle | None = None  # the pending after-turn snapshot
    snapshot_due_by: float = 0.0  # loop time by which a deferred after-turn snapshot must run


UsageSink = Callable[[SessionSpec, UsageRecord], Awaitable[None]]
WorkspaceHook = Callable[..., Awaitable[None]]  # (spec, entry, *, reason=...)


class RunnerHost:
    def __init__(
        self,
        *,
        runner_id: str,
        base_dir: Path,
        backend: Any,
        max_sandboxes: int,
        idle_timeout: float,
        limits: Limits | None = None,
        on_usage: UsageSink | None = None,
        persist_workspace: WorkspaceHook | None = None,
        upstream_env: dict[str, str] | None = None,
    ) -> None:
        self.runner_id = runner_id
        self.base_dir = base_dir
        self.backend = backend
        self.limits = limits or Limits()
        self.on_usage = on_usage
        self.persist_workspace = persist_workspace
        self.upstream_env = upstream_env
        self.hosted: dict[str, Hosted] = {}  # by session id
        self.loop = asyncio.new_event_loop()  # not uvloop: see ash.eventloop
        self._thread = threading.Thread(target=self._run_loop, name=f"runner-{runner_id}", daemon=True)
        self.pool = SandboxPool(
            backend, max_sandboxes=max_sandboxes, idle_timeout=idle_timeout, on_evict=self._on_evict, id_prefix="sb"
        )
        self._thread.start()

    # -- the loop thread ---------------------------------------------------------------------

    def _run_loop(self) -> None:
        asyncio.set_event_loop(self.loop)
        self.loop.run_forever()

    def call(self, coro: Coroutine[Any, Any, T], timeout: float | None = None) -> T:
        """Run CORO on the host loop from another thread and wait for its result."""
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def stream(self, agen: AsyncIterator[T]) -> Iterator[list[T]]:
        """Iterate an async generator living on the host loop from a (task) thread, in batches:
        each is every item that had arrived when the thread looked (at least one)."""
        import queue as thread_queue

        q: thread_queue.Queue[tuple[str, Any]] = thread_queue.Queue(maxsize=1024)
        done = object()

        async def put(item: tuple[str, Any]) -> None:
            try:
                q.put_nowait(item)  # the usual case: no thread hop per event
            except thread_queue.Full:
                await asyncio.to_thread(q.put, item)  # a slow consumer: wait without blocking the loop

        async def pump() -> None:
            try:
                async for item in agen:
                    await put(("item", item))
            except BaseException as exc:  # noqa: BLE001 - relayed to the consuming thread
                await put(("error", exc))
            else:
                await put(("done", done))

        future = asyncio.run_coroutine_threadsafe(pump(), self.loop)
        try:
            while True:
                entries = [q.get()]  # then whatever else is there, up to the end marker
                while entries[-1][0] == "item":
                    try:
                        entries.append(q.get_nowait())
                    except thread_queue.Empty:
                        break
                batch: list[T] = [value for kind, value in entries if kind == "item"]
                if batch:
                    yield batch
                kind, value = entries[-1]
                if kind == "error":
                    raise value
                if kind == "done":
                    return
        finally:
            if not future.done():
                future.cancel()

    def close(self) -> None:
        limit = asyncio.Semaphore(SHUTDOWN_PARALLELISM)

        async def save_and_release(session_id: str) -> None:
            async with limit:
                hosted = self.hosted.get(session_id)
                if hosted is None:
                    return
                # Snapshot first, so the session (now paused) resumes cold with its workspace.
                if self.persist_workspace is not None and hosted.entry.sandbox is not None:
                    with contextlib.suppress(Exception):
                        await self.backend.resume(hosted.entry.sandbox)  # a frozen sandbox cannot be read
                    try:
                        await self.persist_workspace(hosted.spec, hosted.entry, reason="runner shut down")
                    except Exception:  # noqa: BLE001 - shutting down: keep going, the workspace dir stays
                        log.exception("snapshot of session %s at shutdown failed", session_id)
                with contextlib.suppress(Exception):
                    await self._release(session_id, destroy=True, keep_workspace=True)

        async def shutdown() -> None:
            await asyncio.gather(*(save_and_release(sid) for sid in list(self.hosted)))
            await self.pool.close(persist=False)

        with contextlib.suppress(Exception):
            self.call(shutdown(), timeout=60)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(timeout=5)

    # -- placing sessions --------------------------------------------------------------------

    def workspace_dir(self, sandbox_id: str) -> Path:
        return self.base_dir / "sandboxes" / sandbox_id / "workspace"

    def proxy_dir(self, sandbox_id: str) -> Path:
        return self.base_dir / "proxy" / sandbox_id

    def _spec_factory(self, spec: SessionSpec) -> Callable[[str], SandboxSpec]:
        def make(sandbox_id: str) -> SandboxSpec:
            workspace = self.workspace_dir(sandbox_id)
            workspace.mkdir(parents=True, exist_ok=True)
            proxy_dir = self.proxy_dir(sandbox_id)
            proxy_dir.mkdir(parents=True, exist_ok=True, mode=0o755)
            return SandboxSpec(
                sandbox_id=sandbox_id,
                workspace=workspace,
                agent_dir=Path(spec.agent_path),
                limits=self.limits,
                proxy_socket_dir=proxy_dir,
                labels={"ash.tenant": spec.tenant_id, "ash.agent": spec.agent_name},
            )

        return make

    def _runtime_env(self, spec: SessionSpec, sandbox_id: str) -> dict[str, str]:
        return {
            **spec.extra_env,
            "ASH_SESSION_ID": spec.session_id,
            "ASH_SANDBOX_ID": sandbox_id,
            "ASH_PROXY_SOCKET": f"{PROXY_DIR_PATH}/llm.sock",
            "ASH_AGENT_DIR": AGENT_PATH,
            "ASH_WORKSPACE_DIR": WORKSPACE_PATH,
        }

    async def place(self, spec: SessionSpec, *, restore: Callable[[PoolEntry], Awaitable[str | None]] | None = None,
                    fresh: bool = True) -> tuple[str, str]:
        """Host SPEC here: claim or create a sandbox, start its proxy and runtime.

        Returns (sandbox_id, path) where path is "new", "prewarm", "warm" or "cold".
        """
        key = WarmKey(spec.tenant_id, spec.agent_name, spec.agent_version)
        factory = self._spec_factory(spec)
        existing = self.hosted.get(spec.session_id)
        if existing is not None and existing.entry.live:
            self.pool.resume_warm_hits += 1
            return existing.entry.id, "warm"
        if fresh:
            before = self.pool.pre_warm_hits
            entry = await self.pool.claim(key, spec.session_id, spec_factory=factory, replenish=False)
            path = "prewarm" if self.pool.pre_warm_hits > before else "new"
        else:
            entry, warm = await self.pool.resume(spec.session_id, spec_factory=factory, key=key, restore=restore)
            path = "warm" if warm else "cold"
        try:
            await self._start(spec, entry)
        except BaseException:
            await self._release(spec.session_id, destroy=True, keep_workspace=False, entry=entry)
            raise
        return entry.id, path

    async def _start(self, spec: SessionSpec, entry: PoolEntry) -> None:
        logs = LogRing()
        started = time.monotonic()
        upstream = self._upstream(spec)
        proxy = ModelProxy(
            socket_dir=self.proxy_dir(entry.id), upstream=upstream, sandbox_id=entry.id,
            on_usage=functools.partial(self._model_call_usage, spec),
        )
        await proxy.start()
        hosted = Hosted(spec=spec, entry=entry, proxy=proxy, logs=logs)
        self.hosted[spec.session_id] = hosted
        proc = await self.pool.spawn(entry.id, list(RUNTIME_ARGV), env=self._runtime_env(spec, entry.id))
        hosted.runtime = RuntimeClient(proc, on_stderr=lambda text: logs.add("stderr", text))
        ready = await hosted.runtime.wait_ready(timeout=RUNTIME_READY_TIMEOUT)
        logs.add("system", f"Sandbox {entry.id} ready in {int((time.monotonic() - started) * 1000)}ms "
                           f"(engine {ready.engine}, model {'local demo' if upstream.is_local else 'proxied'})")

    async def _model_call_usage(self, spec: SessionSpec, record: UsageRecord) -> None:
        """A metered model call. During a turn the turn stores its usage with the next message it
        persists (one transaction fewer per call); otherwise it is written now."""
        hosted = self.hosted.get(spec.session_id)
        if hosted is not None and hosted.current_qid is not None:
            hosted.pending_usage.append(record)
        elif self.on_usage is not None:
            await self.on_usage(spec, record)

    def take_usage(self, session_id: str) -> list[UsageRecord]:
        """The usage of model calls a running turn must store (from the turn's thread)."""
        hosted = self.hosted.get(session_id)
        taken: list[UsageRecord] = []
        while hosted is not None and hosted.pending_usage:
            taken.append(hosted.pending_usage.popleft())  # deque pops are atomic across threads
        return taken

    def _upstream(self, spec: SessionSpec) -> Upstream:
        from ash.llm_proxy.upstream import upstream_resolve

        return upstream_resolve(
            credential_type=spec.credential_type, credential_key=spec.credential_key, env=self.upstream_env
        )

    async def _on_evict(self, entry: PoolEntry) -> None:
        """The pool needs the slot (or the sandbox idled out): persist, then stop the runtime."""
        hosted = next((h for h in self.hosted.values() if h.entry is entry), None)
        if hosted is None:
            return
        with contextlib.suppress(Exception):
            await self.backend.resume(entry.sandbox)  # a paused (frozen) sandbox cannot be snapshotted
        if self.persist_workspace is not None:
            await self.persist_workspace(hosted.spec, entry)
        await self._stop_runtime(hosted)
        self.hosted.pop(hosted.spec.session_id, None)

    async def _stop_runtime(self, hosted: Hosted) -> None:
        if hosted.runtime is not None:
            with contextlib.suppress(Exception):
                await hosted.runtime.shutdown(timeout=3)
            hosted.runtime = None
        with contextlib.suppress(Exception):
            await hosted.proxy.stop()
        # Usage a turn did not get to store (it failed while its query ran on): written now.
        while hosted.pending_usage and self.on_usage is not None:
            try:
                await self.on_usage(hosted.spec, hosted.pending_usage.popleft())
            except Exception:  # noqa: BLE001 - releasing the sandbox must go on
                log.exception("usage of session %s could not be stored", hosted.spec.session_id)

    async def _release(self, session_id: str, *, destroy: bool, keep_workspace: bool, entry: PoolEntry | None = None) -> None:
        hosted = self.hosted.pop(session_id, None)
        if hosted is not None:
            if hosted.snapshot_timer is not None:
                hosted.snapshot_timer.cancel()  # whoever releases it snapshots first if needed
            await self._stop_runtime(hosted)
            entry = hosted.entry
        if destroy and entry is not None:
            with contextlib.suppress(Exception):
                await self.pool.destroy(entry.id, keep_workspace=keep_workspace)

    # -- operations on hosted sessions ------------------------------------------------------------

    def get(self, session_id: str) -> Hosted | None:
        hosted = self.hosted.get(session_id)
        if hosted is None or not hosted.entry.live:
            return None
        return hosted

    async def query(self, session_id: str, prompt: Any, options: dict[str, Any], *,
                    budget_usd: float | None) -> AsyncIterator[protocol.Event]:
        hosted = self.get(session_id)
        if hosted is None or hosted.runtime is None:
            raise LookupError("session is not hosted on this runner")
        async with hosted.turn_lock, self.pool.running(hosted.entry.id):
            hosted.proxy.set_budget(budget_usd)
            qid = f"t{time.monotonic_ns()}"
            hosted.current_qid = qid
            try:
                async for event in hosted.runtime.query(prompt, options, qid=qid):
                    if isinstance(event, protocol.PermissionRequestEv):
                        # The Ash API has no answering endpoint: deny like `claude -p` does.
                        await hosted.runtime.permission_response(
                            qid, event.request_id, "deny", "No permission handler is attached to this session"
                        )
                    yield event
            finally:
                hosted.current_qid = None

    async def snapshot(self, session_id: str, *, record: Callable[[str], Awaitable[None]] | None = None) -> str | None:
        """Snapshot the session's workspace to storage (one at a time per session); the storage key.

        RECORD, when given, runs under the same lock so snapshots are recorded in the order taken.
        """
        from sessions_app.runner.persistence import snapshot_to_storage

        hosted = self.get(session_id)
        if hosted is None:
            return None
        async with hosted.snapshot_lock:
            if not hosted.entry.live:
                return None
            key = await snapshot_to_storage(self.backend, hosted.entry, tenant_id=hosted.spec.tenant_id, session_id=session_id)
            if record is not None:
                await record(key)
            return key

    def snapshot_after_turn(self, session_id: str, record: Callable[[str], Awaitable[None]], *,
                            delay: float, max_delay: float) -> None:
        """Persist the workspace off the request path once the session has been quiet for DELAY
        seconds: a burst of turns costs one snapshot, not one each. A session that never goes
        quiet is still snapshotted within MAX_DELAY of its first unsaved turn. A crashed runner
        loses at most those seconds of workspace changes (the messages are in the database)."""
        self.loop.call_soon_threadsafe(self._schedule_snapshot, session_id, record, delay, max_delay)

    def _schedule_snapshot(self, session_id: str, record: Callable[[str], Awaitable[None]],
                           delay: float, max_delay: float) -> None:
        hosted = self.get(session_id)
        if hosted is None:
            return
        now = self.loop.time()
        if hosted.snapshot_timer is not None:
            hosted.snapshot_timer.cancel()
        else:
            hosted.snapshot_due_by = now + max_delay
        wait = max(0.0, min(delay, hosted.snapshot_due_by - now))
        hosted.snapshot_timer = self.loop.call_later(wait, self._snapshot_now, session_id, record)

    def _snapshot_now(self, session_id: str, record: Callable[[str], Awaitable[None]]) -> None:
        hosted = self.hosted.get(session_id)
        if hosted is None:
            return
        hosted.snapshot_timer = None

        async def run() -> None:
            try:
                await self.snapshot(session_id, record=record)
            except Exception:  # noqa: BLE001 - the sandbox may be going away; the next turn retries
                log.warning("background snapshot of session %s failed", session_id, exc_info=True)

        self.loop.create_task(run())

    async def interrupt(self, session_id: str) -> bool:
        hosted = self.get(session_id)
        if hosted is None or hosted.runtime is None or hosted.current_qid is None:
            return False
        await hosted.runtime.interrupt(hosted.current_qid)
        return True

    async def exec(self, session_id: str, command: str, timeout_s: float) -> dict[str, Any]:
        hosted = self.get(session_id)
        if hosted is None:
            raise LookupError("session is not hosted on this runner")
        result = await self.pool.exec(hosted.entry.id, ["/bin/sh", "-c", command], timeout=timeout_s,
                                      env=self._runtime_env(hosted.spec, hosted.entry.id))
        for level, output in (("stdout", result.stdout), ("stderr", result.stderr)):
            for line in output.decode("utf-8", "replace").splitlines()[-EXEC_LOG_LINES:]:
                hosted.logs.add(level, line)
        hosted.logs.add("system", f"exec exit={result.exit_code} {'(timed out)' if result.timed_out else ''}".strip())
        return {
            "exitCode": result.exit_code,
            "stdout": result.stdout.decode("utf-8", "replace"),
            "stderr": result.stderr.decode("utf-8", "replace"),
            "timedOut": result.timed_out,
            "oomKilled": result.oom_killed,
        }

    async def pause(self, session_id: str) -> bool:
        """Freeze the sandbox (a warm resume thaws it)."""
        hosted = self.get(session_id)
        if hosted is None:
            return False
        await self.backend.pause(hosted.entry.sandbox)
        self.pool.touch(hosted.entry.id)
        return True

    async def thaw(self, session_id: str) -> bool:
        hosted = self.get(session_id)
        if hosted is None:
            return False
        await self.backend.resume(hosted.entry.sandbox)
        return True

    async def release(self, session_id: str, *, keep_workspace: bool = True) -> None:
        hosted = self.hosted.get(session_id)
        if hosted is not None and hosted.entry.sandbox is not None:
            with contextlib.suppress(Exception):
                await self.backend.resume(hosted.entry.sandbox)  # a frozen tree cannot be killed cleanly
        await self._release(session_id, destroy=True, keep_workspace=keep_workspace)

    async def oom_killed(self, session_id: str) -> bool:
        hosted = self.get(session_id)
        if hosted is None or hosted.entry.sandbox is None:
            return False
        stats = await self.backend.stats(hosted.entry.sandbox)
        return stats.oom_kills > 0

    def logs(self, session_id: str, after: int) -> list[dict[str, Any]] | None:
        hosted = self.hosted.get(session_id)
        return hosted.logs.after(after) if hosted is not None else None

    def stats(self) -> dict[str, int]:
        return self.pool.stats()

    async def sweep_idle(self) -> list[str]:
        return await self.pool.sweep_idle()

    def session_ids_in(self, states: tuple[SandboxState, ...]) -> list[str]:
        return [h.spec.session_id for h in self.hosted.values() if h.entry.state in states]


__all__ = ["Hosted", "LogRing", "RunnerHost", "RuntimeClosed", "SessionSpec"]
