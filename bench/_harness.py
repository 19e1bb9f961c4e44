"""Shared benchmark support: a timed fake model, Ash server processes (embedded or distributed),
an SSE turn client that stamps every stage, percentiles and /proc memory accounting.

Everything listens on loopback; every process is started in its own process group and killed
with it; the distributed stack gets its own PostgreSQL database and Redis db, dropped/flushed.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from tests.e2e.support import ServerProcess, pids_mentioning  # noqa: E402
from tests.fakes.anthropic_server import FakeAnthropic, Reply  # noqa: E402

PYTHON = sys.executable
PG_ADMIN_URL = "postgresql://postgres@127.0.0.1:5432/postgres"
SCRUBBED = ("DJANGO_SETTINGS_MODULE", "DATABASE_URL", "REDIS_URL", "ANTHROPIC_BASE_URL", "ANTHROPIC_API_KEY",
            "ANTHROPIC_AUTH_TOKEN")
ANSWER = "Hello from the benchmark model."


# -- statistics ---------------------------------------------------------------------------------

def pct(samples: list[float], q: float) -> float:
    """Nearest-rank percentile (q in 0..1)."""
    if not samples:
        return float("nan")
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, max(0, int(round(q * len(ordered) + 0.5)) - 1))]


def summary(samples: list[float]) -> dict[str, float]:
    return {"n": len(samples), "p50": pct(samples, 0.50), "p95": pct(samples, 0.95), "p99": pct(samples, 0.99),
            "mean": sum(samples) / len(samples) if samples else float("nan"),
            "max": max(samples) if samples else float("nan")}


def table(rows: list[tuple[str, list[float]]], unit: str = "ms") -> str:
    out = [f"| measure | n | p50 {unit} | p95 {unit} | p99 {unit} | mean {unit} | max {unit} |", "|---|---|---|---|---|---|---|"]
    for name, samples in rows:
        s = summary(samples)
        out.append(f"| {name} | {s['n']} | {s['p50']:.2f} | {s['p95']:.2f} | {s['p99']:.2f} | {s['mean']:.2f} | {s['max']:.2f} |")
    return "\n".join(out)


def cpu_reference_ms() -> float:
    """Milliseconds for a fixed pure-Python loop (best of 3): how fast this machine's CPU is right
    now. Shared cloud vCPUs vary by 2x between machines and hours; compare runs by this too."""
    best = float("inf")
    for _ in range(3):
        started = time.perf_counter()
        total = 0
        for i in range(2_000_000):
            total += i
        best = min(best, (time.perf_counter() - started) * 1000)
    return best


def machine_conditions() -> str:
    load = os.getloadavg()
    return (f"load average {load[0]:.2f} / {load[1]:.2f} / {load[2]:.2f}, {os.cpu_count()} cores, "
            f"CPU reference loop {cpu_reference_ms():.0f} ms")


# -- the fake model, timed ----------------------------------------------------------------------

class _StampReader:
    """Wraps the fake's StreamReader: stamps when each request's first line arrives."""

    def __init__(self, inner: asyncio.StreamReader, owner: TimedFake) -> None:
        self._inner = inner
        self._owner = owner
        self._at_request_start = True

    async def readline(self) -> bytes:
        line = await self._inner.readline()
        if self._at_request_start and line:
            self._owner._arrived[id(self)] = time.perf_counter()
            self._at_request_start = False
        if line in (b"\r\n", b"\n"):
            self._at_request_start = True  # headers done; the next readline starts a new request
        return line

    async def readexactly(self, n: int) -> bytes:
        return await self._inner.readexactly(n)


@dataclass
class ModelCall:
    arrived: float  # perf_counter when the request line arrived
    finished: float  # perf_counter when the last byte of the response was written and drained
    path: str

    @property
    def ms(self) -> float:
        return (self.finished - self.arrived) * 1000


class TimedFake(FakeAnthropic):
    """The scripted fake, never exhausted (a short text reply), recording each call's own time."""

    def __init__(self, answer: str = ANSWER) -> None:
        super().__init__()
        self.answer = answer
        self.calls: list[ModelCall] = []
        self._arrived: dict[int, float] = {}

    def _next(self, req: Any) -> Reply:
        return Reply.text(self.answer)

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await super()._handle(_StampReader(reader, self), writer)  # type: ignore[arg-type]

    async def _serve_one(self, reader: Any, writer: asyncio.StreamWriter) -> bool:
        more = await super()._serve_one(reader, writer)
        arrived = self._arrived.pop(id(reader), None)
        if arrived is not None and self.requests:
            self.calls.append(ModelCall(arrived, time.perf_counter(), self.requests[-1].path))
        return more

    def calls_between(self, start: float, end: float) -> list[ModelCall]:
        return [c for c in self.calls if start <= c.arrived <= end]


# -- processes ------------------------------------------------------------------------------------

def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_until(check: Callable[[], Any], *, timeout: float, what: str, interval: float = 0.1) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        try:
            value = check()
        except (httpx.HTTPError, OSError):
            value = None
        if value:
            return value
        if time.monotonic() > deadline:
            raise RuntimeError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(interval)


def _proc_table() -> dict[int, int]:
    """pid -> ppid for every process."""
    out = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        out[int(entry.name)] = int(stat.rsplit(")", 1)[1].split()[1])
    return out


def descendants(root: int) -> list[int]:
    """ROOT and every process below it."""
    parents = _proc_table()
    children: dict[int, list[int]] = {}
    for pid, ppid in parents.items():
        children.setdefault(ppid, []).append(pid)
    found, todo = [], [root]
    while todo:
        pid = todo.pop()
        if pid in parents:
            found.append(pid)
        todo.extend(children.get(pid, []))
    return found


@dataclass
class Mem:
    rss_kb: int = 0
    pss_kb: int = 0
    procs: int = 0
    by_kind: dict[str, list[int]] = field(default_factory=dict)  # command -> RSS kB of each process


def memory_of(pids: list[int]) -> Mem:
    """Sum RSS and PSS (smaps_rollup: shared pages split between sharers) over PIDS."""
    mem = Mem()
    for pid in set(pids):
        try:
            rollup = Path(f"/proc/{pid}/smaps_rollup").read_text()
            cmd = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        fields = {line.split(":")[0]: int(line.split()[1]) for line in rollup.splitlines()[1:] if line.endswith("kB")}
        mem.rss_kb += fields.get("Rss", 0)
        mem.pss_kb += fields.get("Pss", 0)
        mem.procs += 1
        kind = " ".join(c.decode(errors="replace") for c in cmd[:3] if c)[:60] or "?"
        if b"manage.py" in b" ".join(cmd):
            kind = "manage.py " + (cmd[2].decode() if len(cmd) > 2 else "")
        elif cmd and cmd[0].endswith(b"bwrap"):
            kind = "bwrap"
        mem.by_kind.setdefault(kind, []).append(fields.get("Rss", 0))
    return mem


def cpu_seconds(pids: list[int]) -> dict[int, float]:
    """pid -> user+system CPU seconds so far."""
    tick = os.sysconf("SC_CLK_TCK")
    out = {}
    for pid in set(pids):
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        out[pid] = (int(fields[11]) + int(fields[12])) / tick
    return out


def cpu_delta(before: dict[int, float], after: dict[int, float]) -> float:
    """CPU seconds spent between two snapshots (processes that appeared count from zero)."""
    return sum(v - before.get(pid, 0.0) for pid, v in after.items())


def cpu_by_role(before: dict[int, float], after: dict[int, float]) -> dict[str, float]:
    """cpu_delta split by what each process is: server, runner, sandbox runtime, other."""
    roles: dict[str, float] = {}
    for pid, v in after.items():
        try:
            cmd = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            cmd = ""
        role = ("sandbox runtime" if "ash.runtime" in cmd and "bwrap" not in cmd else
                "server" if " serve" in cmd else "runner" if " runner" in cmd else "other")
        roles[role] = roles.get(role, 0.0) + v - before.get(pid, 0.0)
    return roles


# -- the stack ------------------------------------------------------------------------------------

class Stack:
    """An Ash deployment for benchmarking: embedded (one process) or distributed (PG + Redis + runner)."""

    def __init__(self, mode: str, fake: FakeAnthropic, *, redis_db: int = 14, extra_env: dict[str, str] | None = None,
                 keep: bool = False, repo: Path = REPO) -> None:
        assert mode in ("embedded", "distributed")
        self.mode = mode
        self.repo = repo  # the checkout whose code runs (bench_ab.py runs two)
        self.fake = fake
        self.redis_db = redis_db
        self.keep = keep
        self.root = Path(tempfile.mkdtemp(prefix=f"ash-bench-{mode}-"))
        self.root.chmod(0o711)  # sandbox uids must traverse it to reach their workspaces
        self.data_dir = self.root / "data"
        self.port = free_port()
        self.base_url = f"http://127.0.0.1:{self.port}"
        self.db_name = f"ash_bench_{os.getpid()}_{int(time.time())}_{self.port}"
        self.extra_env = extra_env or {}
        self.procs: list[ServerProcess] = []
        self.key = ""
        self._created_db = False

    # environment
    def env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if k not in SCRUBBED and not k.startswith("ASH_")}
        env.update({"ASH_DATA_DIR": str(self.data_dir), "ASH_LOG_LEVEL": "WARNING", "PYTHONUNBUFFERED": "1",
                    "ANTHROPIC_BASE_URL": self.fake.base_url, "ANTHROPIC_API_KEY": "sk-fake"})
        if self.mode == "distributed":
            env["DATABASE_URL"] = f"postgresql://postgres@127.0.0.1:5432/{self.db_name}"
            env["REDIS_URL"] = f"redis://127.0.0.1:6379/{self.redis_db}"
        env.update(self.extra_env)
        return env

    @property
    def server(self) -> ServerProcess:
        return self.procs[0]

    @property
    def runner(self) -> ServerProcess | None:
        return self.procs[1] if len(self.procs) > 1 else None

    def start(self, timeout: float = 120.0) -> Stack:
        self.data_dir.mkdir(parents=True)
        if self.mode == "distributed":
            if self._redis().dbsize():  # never wipe a db someone else is using
                raise RuntimeError(f"Redis db {self.redis_db} is not empty: pick a free one with --redis-db")
            self._pg(f'CREATE DATABASE "{self.db_name}"')
            self._created_db = True
        env = self.env()
        self.procs.append(ServerProcess("server", ["serve", "--port", str(self.port)], env, self.root, self.repo))
        key_file = self.data_dir / "initial-api-key"
        wait_until(lambda: self._check_alive() and key_file.exists() and httpx.get(f"{self.base_url}/health", timeout=2).status_code == 200,
                   timeout=timeout, what="the server")
        self.key = key_file.read_text().strip()
        if self.mode == "distributed":
            self.procs.append(ServerProcess("runner", ["runner", "--id", "bench-r1"], env, self.root, self.repo))
            wait_until(lambda: self._check_alive() and httpx.get(f"{self.base_url}/health", timeout=2).json().get("remoteRunners", 0) >= 1,
                       timeout=timeout, what="the runner to register")
        return self

    def _check_alive(self) -> bool:
        for p in self.procs:
            if not p.alive():
                raise RuntimeError(f"{p.name} exited:\n{p.log()}")
        return True

    def client(self, **kw: Any) -> httpx.Client:
        return httpx.Client(base_url=self.base_url, headers={"Authorization": f"Bearer {self.key}"},
                            timeout=httpx.Timeout(120, read=120), **kw)

    def raw_client(self) -> RawTurnClient:
        return RawTurnClient(self.base_url, self.key)

    def async_client(self, **kw: Any) -> httpx.AsyncClient:
        return httpx.AsyncClient(base_url=self.base_url, headers={"Authorization": f"Bearer {self.key}"},
                                 timeout=httpx.Timeout(300, read=300), **kw)

    def tree_pids(self) -> list[int]:
        """Every process of the deployment: server and runner trees, plus anything naming its data dir."""
        pids: set[int] = set()
        for p in self.procs:
            pids.update(descendants(p.proc.pid))
        pids.update(pids_mentioning(str(self.data_dir)))
        return sorted(pids)

    # postgres / redis
    def _pg(self, sql: str) -> list[tuple]:
        import psycopg

        with psycopg.connect(PG_ADMIN_URL, autocommit=True) as conn:
            cur = conn.execute(sql)
            return cur.fetchall() if cur.description else []

    def pg_stats(self) -> dict[str, int]:
        rows = self._pg("SELECT xact_commit, tup_inserted, tup_updated, tup_deleted, tup_fetched "
                        f"FROM pg_stat_database WHERE datname = '{self.db_name}'")
        names = ("xact_commit", "tup_inserted", "tup_updated", "tup_deleted", "tup_fetched")
        return dict(zip(names, rows[0], strict=True)) if rows else {}

    def _redis(self) -> Any:
        import redis

        return redis.Redis.from_url(f"redis://127.0.0.1:6379/{self.redis_db}")

    def stop(self) -> list[str]:
        """Stop everything, drop/flush/remove what was created; returns leftovers found (should be none)."""
        problems = []
        for p in reversed(self.procs):
            p.stop()
        time.sleep(0.5)
        for pid in pids_mentioning(str(self.data_dir)):
            problems.append(f"leftover process {pid}")
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        if self.mode == "distributed" and self._created_db:
            try:
                self._pg(f'DROP DATABASE IF EXISTS "{self.db_name}" WITH (FORCE)')
            except Exception as exc:  # noqa: BLE001 - report, keep cleaning
                problems.append(f"drop database: {exc}")
            try:
                self._redis().flushdb()
            except Exception as exc:  # noqa: BLE001
                problems.append(f"flush redis: {exc}")
        if not self.keep:
            shutil.rmtree(self.root, ignore_errors=True)
            if self.root.exists():
                subprocess.run(["rm", "-rf", str(self.root)], check=False, timeout=60)
        return problems

    def __enter__(self) -> Stack:
        try:
            return self.start()
        except BaseException:
            for problem in self.stop():
                print("cleanup:", problem, file=sys.stderr)
            raise

    def __exit__(self, *exc: object) -> None:
        for problem in self.stop():
            print("cleanup:", problem, file=sys.stderr)


# -- API helpers -----------------------------------------------------------------------------------

def deploy_agent(client: httpx.Client, name: str = "bench") -> None:
    r = client.post("/api/agents", json={"name": name, "systemPrompt": "You are a benchmark agent.\n"})
    assert r.status_code == 201, r.text


def create_session(client: httpx.Client, agent: str = "bench") -> tuple[str, float]:
    """Returns (session id, seconds the POST took)."""
    started = time.perf_counter()
    r = client.post("/api/sessions", json={"agent": agent})
    elapsed = time.perf_counter() - started
    assert r.status_code == 201, (r.status_code, r.text[:500])
    return r.json()["session"]["id"], elapsed


@dataclass
class TurnTiming:
    """perf_counter stamps of one turn as the client saw it, plus what the stream said."""

    sent: float
    headers: float = 0.0
    first_frame: float = 0.0
    result: float = 0.0
    done: float = 0.0
    frames: int = 0
    result_msg: dict[str, Any] | None = None
    errors: list[Any] = field(default_factory=list)
    status: int = 0

    @property
    def total_ms(self) -> float:
        return (self.done - self.sent) * 1000


def _parse_blocks(buffer: bytes, timing: TurnTiming, now: float) -> bytes:
    while b"\n\n" in buffer:
        block, buffer = buffer.split(b"\n\n", 1)
        if block.startswith(b":"):
            continue
        event, data = "", None
        for line in block.split(b"\n"):
            if line.startswith(b"event: "):
                event = line[7:].decode()
            elif line.startswith(b"data: "):
                data = json.loads(line[6:])
        timing.frames += 1
        if timing.frames == 1:
            timing.first_frame = now
        if event == "message" and isinstance(data, dict) and data.get("type") == "result":
            timing.result, timing.result_msg = now, data
        elif event == "error":
            timing.errors.append(data)
        elif event == "done":
            timing.done = now
    return buffer


def turn(client: httpx.Client, session_id: str, content: str = "hi") -> TurnTiming:
    """POST a message and read the SSE stream to `done`, stamping each stage."""
    timing = TurnTiming(sent=time.perf_counter())
    with client.stream("POST", f"/api/sessions/{session_id}/messages", json={"content": content}) as r:
        timing.headers = time.perf_counter()
        timing.status = r.status_code
        if r.status_code != 200:
            timing.errors.append(r.read().decode(errors="replace")[:300])
            return timing
        buffer = b""
        for chunk in r.iter_raw():
            buffer = _parse_blocks(buffer + chunk, timing, time.perf_counter())
            if timing.done:
                break
    if not timing.done:
        timing.errors.append("stream ended without done")
    return timing


class RawTurnClient:
    """A minimal keep-alive HTTP/1.1 client for streamed turns, on a plain socket.

    httpx costs ~2-3 ms per request on the bench machine (request building, its transport and
    response parsing), which would be counted as Ash's overhead; this client costs ~0.1 ms, so
    the measured time is the server's (the POST is written in one send, chunked SSE parsed by
    hand). `turn()` with httpx stays for the lifecycle benchmarks and as a cross-check.
    """

    def __init__(self, base_url: str, key: str) -> None:
        host, _, port = base_url.removeprefix("http://").rstrip("/").partition(":")
        self.address = (host, int(port or 80))
        self.auth = f"Bearer {key}".encode()
        self.sock: socket.socket | None = None

    def _connect(self) -> socket.socket:
        if self.sock is None:
            self.sock = socket.create_connection(self.address, timeout=120)
            self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return self.sock

    def close(self) -> None:
        if self.sock is not None:
            self.sock.close()
            self.sock = None

    def __enter__(self) -> RawTurnClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def turn(self, session_id: str, content: str = "hi") -> TurnTiming:
        body = json.dumps({"content": content}).encode()
        request = (f"POST /api/sessions/{session_id}/messages HTTP/1.1\r\nHost: {self.address[0]}\r\n"
                   f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n").encode()
        request += b"Authorization: " + self.auth + b"\r\n\r\n" + body
        sock = self._connect()
        timing = TurnTiming(sent=time.perf_counter())
        sock.sendall(request)
        raw = b""
        while b"\r\n\r\n" not in raw:
            raw += self._recv(sock)
        head, raw = raw.split(b"\r\n\r\n", 1)
        timing.headers = time.perf_counter()
        timing.status = int(head.split(b" ", 2)[1])
        lowered = head.lower()
        if timing.status != 200 or b"transfer-encoding: chunked" not in lowered:
            self.close()  # not the streamed answer: read what came, drop the connection
            timing.errors.append(raw.decode(errors="replace")[:300] or f"HTTP {timing.status}")
            return timing
        events = b""
        while True:  # chunked framing: size line, data, CRLF; a zero size ends the body
            while b"\r\n" not in raw:
                raw += self._recv(sock)
            size_line, raw = raw.split(b"\r\n", 1)
            size = int(size_line.split(b";")[0], 16)
            while len(raw) < size + 2:
                raw += self._recv(sock)
            chunk, raw = raw[:size], raw[size + 2:]
            if size == 0:
                break
            events = _parse_blocks(events + chunk, timing, time.perf_counter())
        if raw:
            self.close()  # bytes after the end of the response: do not reuse
        if not timing.done:
            timing.errors.append("stream ended without done")
        return timing

    def _recv(self, sock: socket.socket) -> bytes:
        data = sock.recv(65536)
        if not data:
            self.close()
            raise ConnectionError("the server closed the connection")
        return data


async def aturn(client: httpx.AsyncClient, session_id: str, content: str = "hi") -> TurnTiming:
    timing = TurnTiming(sent=time.perf_counter())
    try:
        async with client.stream("POST", f"/api/sessions/{session_id}/messages", json={"content": content}) as r:
            timing.headers = time.perf_counter()
            timing.status = r.status_code
            if r.status_code != 200:
                timing.errors.append((await r.aread()).decode(errors="replace")[:300])
                return timing
            buffer = b""
            async for chunk in r.aiter_raw():
                buffer = _parse_blocks(buffer + chunk, timing, time.perf_counter())
                if timing.done:
                    break
    except httpx.HTTPError as exc:
        timing.errors.append(f"{type(exc).__name__}: {exc}")
    if not timing.done and not timing.errors:
        timing.errors.append("stream ended without done")
    return timing
