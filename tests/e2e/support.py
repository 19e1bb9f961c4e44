"""Whole-system test support: a real Ash server subprocess, an HTTP client, strict SSE parsing."""

from __future__ import annotations

import base64
import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from tests.fakes.anthropic_server import FakeAnthropic

REPO = Path(__file__).resolve().parents[2]
PYTHON = sys.executable
# Variables of the test process that must not leak into the server (pytest-django sets the first).
SCRUBBED = ("DJANGO_SETTINGS_MODULE", "DATABASE_URL", "REDIS_URL", "ANTHROPIC_BASE_URL", "ANTHROPIC_API_KEY",
            "ANTHROPIC_AUTH_TOKEN")


def read_db(data_dir: Path, sql: str, *params: Any) -> list[tuple]:
    """Rows from an embedded server's SQLite database, opened read-only (what it persisted)."""
    import sqlite3

    with contextlib.closing(sqlite3.connect(f"file:{data_dir / 'ash.sqlite3'}?mode=ro", uri=True)) as db:
        return db.execute(sql, params).fetchall()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_until(check: Callable[[], Any], *, timeout: float = 20.0, interval: float = 0.05, what: str = "condition") -> Any:
    """Poll CHECK until it returns something truthy (bounded); returns that value."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(interval)


def b64(data: str | bytes) -> str:
    return base64.b64encode(data.encode() if isinstance(data, str) else data).decode()


def reset_script(fake: FakeAnthropic) -> None:
    """Drop replies a previous test left unconsumed."""
    with fake._lock:
        fake._script.clear()


def server_env(data_dir: Path, fake: FakeAnthropic | None, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in SCRUBBED and not k.startswith("ASH_")}
    env.update({"ASH_DATA_DIR": str(data_dir), "ASH_SSE_KEEPALIVE_SECONDS": "1", "ASH_LOG_LEVEL": "WARNING",
                "PYTHONUNBUFFERED": "1"})
    if fake is not None:
        env.update({"ANTHROPIC_BASE_URL": fake.base_url, "ANTHROPIC_API_KEY": "sk-test-fake"})
    env.update(extra)
    return env


def manage(env: dict[str, str], *args: str, timeout: float = 60) -> str:
    """Run a management command with ENV; returns its stdout (fails the test on error)."""
    done = subprocess.run([PYTHON, str(REPO / "manage.py"), *args], env=env, cwd=REPO, capture_output=True,
                          text=True, timeout=timeout)
    assert done.returncode == 0, (args, done.stdout[-2000:], done.stderr[-4000:])
    return done.stdout


def pids_mentioning(text: str) -> list[int]:
    """Processes whose command line contains TEXT (sandbox processes carry the data dir)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if text in cmdline:
            found.append(int(entry.name))
    return found


class ServerProcess:
    """One `manage.py <command>` subprocess in its own process group, its output in a log file."""

    def __init__(self, name: str, args: list[str], env: dict[str, str], log_dir: Path, repo: Path = REPO) -> None:
        self.name = name
        self.log_path = log_dir / f"{name}.log"
        self._log = self.log_path.open("ab")
        self.proc = subprocess.Popen([PYTHON, str(repo / "manage.py"), *args], env=env, cwd=repo,
                                     stdout=self._log, stderr=subprocess.STDOUT, start_new_session=True)

    def alive(self) -> bool:
        return self.proc.poll() is None

    def log(self, tail: int = 6000) -> str:
        return self.log_path.read_text(errors="replace")[-tail:]

    def stop(self, timeout: float = 20.0) -> int:
        """SIGTERM, wait, then SIGKILL the whole process group; returns the exit code."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.proc.wait(timeout)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGKILL)
        code = self.proc.wait(10)
        self._log.close()
        return code


class Api:
    """httpx against the server with a tenant's Bearer key; returns raw responses."""

    def __init__(self, base_url: str, key: str | None) -> None:
        headers = {"Authorization": f"Bearer {key}"} if key else {}
        self.base_url = base_url
        self.key = key
        self.http = httpx.Client(base_url=base_url, headers=headers, timeout=120)

    def get(self, path: str, **kw: Any) -> httpx.Response:
        return self.http.get(path, **kw)

    def post(self, path: str, body: Any = None, **kw: Any) -> httpx.Response:
        return self.http.post(path, json=body, **kw) if body is not None else self.http.post(path, **kw)

    def patch(self, path: str, body: Any, **kw: Any) -> httpx.Response:
        return self.http.patch(path, json=body, **kw)

    def delete(self, path: str, **kw: Any) -> httpx.Response:
        return self.http.delete(path, **kw)

    # -- resources ------------------------------------------------------------------------------
    def deploy(self, name: str, *, prompt: str = "You are a test agent.\n", files: dict[str, str] | None = None) -> dict:
        body: dict[str, Any] = {"name": name, "systemPrompt": prompt}
        if files:
            body["files"] = [{"path": p, "content": b64(c)} for p, c in files.items()]
        r = self.post("/api/agents", body)
        assert r.status_code == 201, r.text
        return r.json()["agent"]

    def create_session(self, agent: str, **options: Any) -> dict:
        r = self.post("/api/sessions", {"agent": agent, **options})
        assert r.status_code == 201, r.text
        session = r.json()["session"]
        assert session["status"] == "active", session
        return session

    def session(self, sid: str) -> dict:
        r = self.get(f"/api/sessions/{sid}")
        assert r.status_code == 200, r.text
        return r.json()["session"]

    def exec(self, sid: str, command: str, **kw: Any) -> dict:
        r = self.post(f"/api/sessions/{sid}/exec", {"command": command, **kw})
        assert r.status_code == 200, r.text
        return r.json()

    def messages(self, sid: str, **params: Any) -> list[dict]:
        r = self.get(f"/api/sessions/{sid}/messages", params=params)
        assert r.status_code == 200, r.text
        return r.json()["messages"]

    def events(self, sid: str, **params: Any) -> list[dict]:
        r = self.get(f"/api/sessions/{sid}/events", params=params)
        assert r.status_code == 200, r.text
        return r.json()["events"]

    def lifecycle(self, sid: str, action: str) -> dict:
        r = self.post(f"/api/sessions/{sid}/{action}")
        assert r.status_code in (200, 201), (action, r.status_code, r.text)
        return r.json()["session"]

    def turn(self, sid: str, content: Any = "hello", **options: Any) -> SseStream:
        """POST a message and read the whole SSE stream (until the server closes it)."""
        with self.http.stream("POST", f"/api/sessions/{sid}/messages", json={"content": content, **options},
                              timeout=httpx.Timeout(120, read=60)) as r:
            assert r.status_code == 200, (r.status_code, r.read())
            assert r.headers["content-type"].startswith("text/event-stream"), r.headers
            raw = b"".join(r.iter_bytes()).decode()
        return SseStream.parse(raw)

    def close(self) -> None:
        self.http.close()


def assert_error(response: httpx.Response, status: int, contains: str | None = None) -> dict:
    """The error envelope `{"error", "statusCode"}` with STATUS (and a message containing CONTAINS)."""
    assert response.status_code == status, (response.status_code, response.text[:500])
    body = response.json()
    assert set(body) == {"error", "statusCode"}, body
    assert body["statusCode"] == status and isinstance(body["error"], str) and body["error"], body
    if contains is not None:
        assert contains in body["error"], body
    return body


@dataclass
class SseFrame:
    event: str
    data: Any
    id: int | None = None


@dataclass
class SseStream:
    frames: list[SseFrame] = field(default_factory=list)
    keepalives: int = 0
    raw: str = ""

    @property
    def events(self) -> list[str]:
        return [f.event for f in self.frames]

    def of(self, event: str) -> list[Any]:
        return [f.data for f in self.frames if f.event == event]

    def messages(self, sdk_type: str | None = None) -> list[dict]:
        return [f.data for f in self.frames if f.event == "message" and (sdk_type is None or f.data.get("type") == sdk_type)]

    @classmethod
    def parse(cls, raw: str) -> SseStream:
        """Strict: every block is `[id: N\\n]event: X\\ndata: <one-line JSON>` or a `: comment`."""
        out = cls(raw=raw)
        blocks = raw.split("\n\n")
        assert blocks[-1] == "", f"stream does not end with a complete frame: {raw[-300:]!r}"
        for block in blocks[:-1]:
            if block.startswith(":"):
                assert "\n" not in block, block
                out.keepalives += 1
                continue
            lines = block.split("\n")
            frame_id = None
            if lines[0].startswith("id: "):
                frame_id = int(lines.pop(0)[4:])
            assert len(lines) == 2 and lines[0].startswith("event: ") and lines[1].startswith("data: "), block
            out.frames.append(SseFrame(lines[0][7:], json.loads(lines[1][6:]), frame_id))
        return out


def iter_sse_blocks(response: httpx.Response) -> Iterator[str]:
    """Blocks of a live SSE response as they arrive (for tests that act mid-stream)."""
    buffer = ""
    for chunk in response.iter_text():
        buffer += chunk
        while "\n\n" in buffer:
            block, buffer = buffer.split("\n\n", 1)
            yield block
