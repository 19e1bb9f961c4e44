"""Fixtures for whole-system tests: a fake model API plus real Ash server processes.

`ash` is one embedded server for the whole test session (tests use their own agents and
sessions, so they do not interfere); `distributed` is a web process plus a separate runner
on PostgreSQL and Redis. Every process is stopped at the end and no sandbox may outlive it.
"""

from __future__ import annotations

import contextlib
import shutil
import tempfile
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest

from tests.e2e.support import (
    Api,
    ServerProcess,
    free_port,
    manage,
    pids_mentioning,
    reset_script,
    server_env,
    wait_until,
)
from tests.fakes.anthropic_server import FakeAnthropic

SDK_AGENT = "sdk-agent"
PG_ADMIN_DSN = "postgresql://postgres@127.0.0.1:5432/postgres"
REDIS_DB = 9


@dataclass
class AshSystem:
    """A running Ash deployment under test: where it listens, its key and data, the fake model."""

    data_dir: Path
    fake: FakeAnthropic
    agents_root: Path
    extra_env: dict[str, str] = field(default_factory=dict)
    processes: list[ServerProcess] = field(default_factory=list)
    base_url: str = ""
    key: str = ""
    api: Api | None = None

    @property
    def env(self) -> dict[str, str]:
        return server_env(self.data_dir, self.fake, ASH_AGENTS_ROOT=str(self.agents_root), **self.extra_env)

    def start_web(self, *, port: int | None = None) -> None:
        port = port or free_port()
        web = ServerProcess(f"web-{port}", ["serve", "--host", "127.0.0.1", "--port", str(port)], self.env, self.data_dir)
        self.processes.append(web)
        self.base_url = f"http://127.0.0.1:{port}"

        def healthy() -> bool:
            assert web.alive(), f"server exited:\n{web.log()}"
            try:
                return httpx.get(f"{self.base_url}/health", timeout=2).status_code == 200
            except httpx.TransportError:
                return False

        wait_until(healthy, timeout=60, interval=0.1, what="server /health")
        self.key = (self.data_dir / "initial-api-key").read_text().strip()
        if self.api is not None:
            self.api.close()
        self.api = Api(self.base_url, self.key)

    def start_runner(self, runner_id: str) -> ServerProcess:
        runner = ServerProcess(f"runner-{runner_id}", ["runner", "--id", runner_id], self.env, self.data_dir)
        self.processes.append(runner)
        return runner

    def health(self) -> dict:
        return httpx.get(f"{self.base_url}/health", timeout=10).json()

    def stop(self) -> None:
        """Stop every process (web last) and check that no sandbox process survived them."""
        for proc in reversed(self.processes):
            proc.stop()
        self.processes.clear()
        wait_until(lambda: not pids_mentioning(str(self.data_dir)), timeout=15, what="sandbox processes to exit")

    def close(self) -> None:
        if self.api is not None:
            self.api.close()
        self.stop()

    def logs(self) -> str:
        return "\n".join(f"--- {p.name}\n{p.log()}" for p in self.processes)


def make_data_dir() -> Path:
    path = Path(tempfile.mkdtemp(prefix="ash-e2e-"))
    path.chmod(0o755)  # sandbox uids traverse it to reach their workspaces
    return path


def make_agents_root(base: Path) -> Path:
    root = base / "agents-root"
    (root / SDK_AGENT).mkdir(parents=True)
    (root / SDK_AGENT / "CLAUDE.md").write_text("# SDK agent\n\nYou are deployed from a server path.\n")
    return root


@pytest.fixture(scope="session")
def fake() -> Iterator[FakeAnthropic]:
    server = FakeAnthropic().start()
    yield server
    server.stop()


def _system(fake: FakeAnthropic, **extra_env: str) -> AshSystem:
    data = make_data_dir()
    return AshSystem(data_dir=data, fake=fake, agents_root=make_agents_root(data), extra_env=extra_env)


@contextlib.contextmanager
def running_server(fake: FakeAnthropic, **extra_env: str) -> Iterator[AshSystem]:
    """An embedded server of its own (stopped, and its data removed, afterwards)."""
    system = _system(fake, **extra_env)
    try:
        system.start_web()
        yield system
    finally:
        system.close()
        shutil.rmtree(system.data_dir, ignore_errors=True)


@pytest.fixture(scope="session")
def ash(fake: FakeAnthropic) -> Iterator[AshSystem]:
    """One embedded Ash server for the whole test session."""
    with running_server(fake) as system:
        yield system


@pytest.fixture
def api(ash: AshSystem, fake: FakeAnthropic) -> Api:
    """The default tenant's client; the fake's script starts empty for every test."""
    reset_script(fake)
    assert ash.api is not None
    return ash.api


@pytest.fixture(scope="session")
def other_api(ash: AshSystem) -> Iterator[Api]:
    """A second tenant's client."""
    key = manage(ash.env, "createapikey", "--tenant", "other").strip().splitlines()[-1]
    client = Api(ash.base_url, key)
    yield client
    client.close()


@pytest.fixture
def agent(api: Api) -> str:
    """A freshly deployed agent (its own name, so tests do not see each other's sessions)."""
    name = f"agent-{uuid.uuid4().hex[:10]}"
    api.deploy(name, files={"CLAUDE.md": "# Test agent\n", "notes/hello.txt": "hello from the agent\n"})
    return name


@pytest.fixture
def session(api: Api, agent: str) -> dict:
    return api.create_session(agent)


# -- the distributed topology ----------------------------------------------------------------

@pytest.fixture(scope="module")
def distributed(fake: FakeAnthropic) -> Iterator[AshSystem]:
    """PostgreSQL + Redis, a web process (no local runner) and a separate runner `r1`."""
    import psycopg
    import redis

    db_name = f"ash_e2e_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(PG_ADMIN_DSN, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{db_name}"')
    redis_url = f"redis://127.0.0.1:6379/{REDIS_DB}"
    r = redis.Redis.from_url(redis_url)
    r.flushdb()
    system = _system(fake, DATABASE_URL=f"postgresql://postgres@127.0.0.1:5432/{db_name}", REDIS_URL=redis_url,
                     ASH_TURN_START_TIMEOUT="4")
    try:
        system.start_web()
        system.start_runner("r1")
        wait_until(lambda: system.health().get("remoteRunners") == 1, timeout=60, interval=0.2,
                   what="runner r1 to register")
        yield system
    finally:
        system.close()
        r.flushdb()
        r.close()
        with psycopg.connect(PG_ADMIN_DSN, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{db_name}" WITH (FORCE)')
        shutil.rmtree(system.data_dir, ignore_errors=True)
