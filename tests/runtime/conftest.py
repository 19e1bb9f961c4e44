"""Fixtures: the runtime as a real `python -m ash.runtime` subprocess against the fake API."""

from __future__ import annotations

import os
import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest

from ash.runtime import protocol as p
from ash.runtime.client import LocalProcess, RuntimeClient
from tests.fakes.anthropic_server import FakeAnthropic
from tests.fakes.fixtures import fake_anthropic  # noqa: F401

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def workspace(tmp_path: Path) -> Path:
    path = tmp_path / "workspace"
    path.mkdir()
    return path


@pytest.fixture
def agent_dir(tmp_path: Path) -> Path:
    path = tmp_path / "agent"
    (path / ".claude").mkdir(parents=True)
    return path


def runtime_env(fake: FakeAnthropic, workspace: Path, agent_dir: Path,
                **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ASH_", "ANTHROPIC_"))}
    env.update({"PYTHONPATH": str(REPO), "ASH_MODEL_BASE_URL": fake.base_url,
                "ASH_WORKSPACE": str(workspace), "ASH_AGENT_DIR": str(agent_dir),
                "ASH_MODEL_MAX_RETRIES": "0", "ASH_MODEL": "claude-sonnet-4-6",
                "ASH_LOG_LEVEL": "DEBUG"})
    env.update(extra)
    return env


StartRuntime = Callable[..., Awaitable[RuntimeClient]]


@pytest.fixture
async def start_runtime(fake_anthropic: FakeAnthropic, workspace: Path,  # noqa: F811
                        agent_dir: Path) -> AsyncIterator[StartRuntime]:
    clients: list[RuntimeClient] = []

    async def start(python: str = sys.executable, **extra: str) -> RuntimeClient:
        proc = await LocalProcess.spawn(
            [python, "-m", "ash.runtime"],
            env=runtime_env(fake_anthropic, workspace, agent_dir, **extra), cwd=str(workspace))
        client = RuntimeClient(proc)
        clients.append(client)
        await client.wait_ready(20)
        return client

    yield start
    for client in clients:
        if client.proc.returncode is None:
            await client.shutdown(5)
        else:
            await client.aclose()


async def run_query(client: RuntimeClient, prompt: Any, options: dict | None = None,
                    **kw: Any) -> list[p.Event]:
    return [ev async for ev in client.query(prompt, options or {}, **kw)]


def messages(events: list[p.Event], kind: str | None = None) -> list[dict[str, Any]]:
    out = [e.data for e in events if isinstance(e, p.MessageEv)]
    return [m for m in out if kind is None or m["type"] == kind]


def result_of(events: list[p.Event]) -> dict[str, Any]:
    results = messages(events, "result")
    assert len(results) == 1, results
    return results[0]
