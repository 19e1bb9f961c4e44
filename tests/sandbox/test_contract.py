"""The sandbox contract: every backend must pass these, whatever its technology.

Degraded mode is not a security boundary by design; the few filesystem/network isolation
tests skip it with that reason, and test what it does guarantee instead (uid separation,
rlimits, a killable tree).
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import os
import socket
import tarfile
import threading
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
import zstandard

from ash.sandbox.base import ExecResult, Limits, SandboxError

from .conftest import ISOLATING_BACKEND_PARAMS, pids_with_arg


async def run(backend: Any, sb: Any, script: str, **kw: Any) -> ExecResult:
    kw.setdefault("timeout", 30)
    return await backend.exec(sb, ["sh", "-c", script], **kw)


async def one_chunk(data: bytes) -> AsyncIterator[bytes]:
    yield data


# ---- identity, visibility -------------------------------------------------------------


async def test_exec_runs_unprivileged_in_its_workspace(backend, make_sandbox):
    sb = await make_sandbox()
    r = await run(backend, sb, 'id -u; echo "$HOME"; pwd; echo data > made-here')
    assert r.exit_code == 0, r
    uid, home, cwd = r.stdout.decode().split()
    assert uid != "0"
    assert home == cwd
    assert (Path(sb.spec.workspace) / "made-here").read_text() == "data\n"


async def test_exit_code_stdin_and_stderr(backend, make_sandbox):
    sb = await make_sandbox()
    r = await run(backend, sb, "cat; echo oops >&2; exit 3", stdin=b"from stdin")
    assert (r.exit_code, r.stdout, r.stderr) == (3, b"from stdin", b"oops\n")
    assert not r.timed_out and not r.oom_killed


async def test_another_sandboxes_workspace_is_unreadable(backend, make_sandbox):
    a, b = await make_sandbox(), await make_sandbox()
    secret = uuid.uuid4().hex
    assert (await run(backend, b, f"echo {secret} > secret.txt")).exit_code == 0
    target = Path(b.spec.workspace) / "secret.txt"
    r = await run(backend, a, f"cat {target}; ls {target.parent}")
    assert r.exit_code != 0
    assert secret.encode() not in r.stdout + r.stderr


@pytest.fixture
def root_marker() -> Iterator[tuple[Path, str]]:
    secret = uuid.uuid4().hex
    path = Path("/root") / f".ash-sandbox-test-{secret[:8]}"
    path.write_text(secret)
    path.chmod(0o644)  # readable by anyone who can reach it: only /root's mode protects it
    try:
        yield path, secret
    finally:
        path.unlink()


async def test_host_root_and_shadow_are_unreadable(backend, make_sandbox, root_marker):
    marker, secret = root_marker
    sb = await make_sandbox()
    r = await run(backend, sb, f"cat {marker}; cat /etc/shadow; ls /root")
    assert secret.encode() not in r.stdout
    assert b"root:" not in r.stdout
    assert r.exit_code != 0


async def test_system_directories_are_read_only(backend, make_sandbox):
    sb = await make_sandbox()
    r = await run(
        backend, sb, "for d in /usr /etc /; do touch $d/ash-probe-$$ && echo WROTE $d; done; true"
    )
    assert b"WROTE" not in r.stdout, r


async def test_host_environment_does_not_leak(backend, make_sandbox, monkeypatch):
    monkeypatch.setenv("ASH_TEST_HOST_SECRET", "hunter2-host")
    sb = await make_sandbox(env={"FROM_SPEC": "spec-value"})
    r = await backend.exec(sb, ["env"], timeout=30, env={"FROM_CALL": "call-value"})
    assert r.exit_code == 0
    assert b"hunter2-host" not in r.stdout
    assert b"FROM_SPEC=spec-value" in r.stdout
    assert b"FROM_CALL=call-value" in r.stdout


@pytest.fixture
def host_tcp_server() -> Iterator[int]:
    srv = socket.create_server(("127.0.0.1", 0))
    srv.settimeout(0.2)
    stop = threading.Event()

    def serve() -> None:
        while not stop.is_set():
            try:
                conn, _ = srv.accept()
            except TimeoutError:
                continue
            conn.sendall(b"HOST-SERVER-REACHED")
            conn.close()

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield srv.getsockname()[1]
    finally:
        stop.set()
        thread.join()
        srv.close()


@pytest.mark.parametrize("backend_kind", ISOLATING_BACKEND_PARAMS)
async def test_host_loopback_is_unreachable(backend, make_sandbox, host_tcp_server):
    port = host_tcp_server
    with socket.create_connection(("127.0.0.1", port)) as s:  # the server really listens
        assert s.recv(64) == b"HOST-SERVER-REACHED"
    sb = await make_sandbox()
    code = (
        "import socket\n"
        "try:\n"
        f"    s = socket.create_connection(('127.0.0.1', {port}), timeout=3)\n"
        "    print(s.recv(64).decode())\n"
        "except OSError as e:\n"
        "    print('FAILED', e)\n"
    )
    r = await backend.exec(sb, ["python3", "-c", code], timeout=30)
    assert r.exit_code == 0, r
    assert b"FAILED" in r.stdout and b"HOST-SERVER-REACHED" not in r.stdout


# ---- limits ---------------------------------------------------------------------------

FORK_LOOP = """
import os, time
n = 0
try:
    for _ in range(300):
        if os.fork() == 0:
            time.sleep(1)
            os._exit(0)
        n += 1
except OSError as e:
    print('FORK-FAILED', n, e.errno, flush=True)
print('FORKED', n, flush=True)
"""


async def test_fork_bomb_is_contained(backend, make_sandbox):
    sb = await make_sandbox(limits=Limits(memory_bytes=256 << 20, pids=32))
    r = await backend.exec(sb, ["python3", "-c", FORK_LOOP], timeout=30)
    out = r.stdout.decode()
    assert "FORK-FAILED" in out, r
    assert int(out.split()[1]) < 32
    # The host is fine and the sandbox still works once the children are gone.
    assert os.fork  # noqa: S101 - the test process itself is alive
    await asyncio.sleep(0)
    for _ in range(100):
        ok = await run(backend, sb, "echo alive")
        if ok.stdout == b"alive\n":
            break
        await asyncio.sleep(0.1)
    assert ok.stdout == b"alive\n"


MEMORY_HOG = """
chunks = []
for i in range(64):
    chunks.append(bytearray(16 << 20))
    print('allocated', (i + 1) * 16, 'MiB', flush=True)
print('SURVIVED')
"""


async def test_memory_hog_is_oom_killed_and_recognised(backend, make_sandbox):
    sb = await make_sandbox(limits=Limits(memory_bytes=128 << 20, pids=64))
    r = await backend.exec(sb, ["python3", "-c", MEMORY_HOG], timeout=60)
    assert b"SURVIVED" not in r.stdout
    assert r.exit_code == 137, r
    assert r.oom_killed
    stats = await backend.stats(sb)
    assert stats.oom_kills >= 1
    assert (await run(backend, sb, "echo still-usable")).stdout == b"still-usable\n"


async def test_a_kill_is_not_mistaken_for_oom(backend, make_sandbox):
    sb = await make_sandbox()
    r = await run(backend, sb, "kill -KILL $$")
    assert r.exit_code == 137
    assert not r.oom_killed


async def test_exec_timeout_kills_the_command(backend, make_sandbox):
    sb = await make_sandbox()
    r = await run(backend, sb, "echo started; sleep 60", timeout=1.0)
    assert r.timed_out
    assert r.duration_s < 10
    assert r.stdout.startswith(b"started")


async def test_exec_output_is_capped(backend, make_sandbox):
    sb = await make_sandbox()
    r = await run(backend, sb, "head -c 3000000 /dev/zero; echo done >&2", max_output=1000)
    assert r.exit_code == 0
    assert len(r.stdout) == 1000
    assert r.stderr == b"done\n"


# ---- processes ------------------------------------------------------------------------

ECHO_SERVER = """
import sys
for line in sys.stdin:
    print(line.strip().upper(), flush=True)
    print('err:' + line.strip(), file=sys.stderr, flush=True)
"""


async def test_spawn_round_trips_lines_over_stdio(backend, make_sandbox):
    sb = await make_sandbox()
    proc = await backend.spawn(sb, ["python3", "-u", "-c", ECHO_SERVER])
    for word in ("hello", "world", "x" * 100_000):
        await proc.write(word.encode() + b"\n")
        assert await asyncio.wait_for(proc.readline(), 30) == word.upper().encode() + b"\n"
        assert await asyncio.wait_for(proc.read_stderr_line(), 30) == f"err:{word}\n".encode()
    assert proc.returncode is None
    await proc.kill()
    assert proc.returncode is not None


async def test_spawned_process_exit_code(backend, make_sandbox):
    sb = await make_sandbox()
    proc = await backend.spawn(sb, ["sh", "-c", "echo bye; exit 5"])
    assert await proc.readline() == b"bye\n"
    assert await proc.readline() == b""
    assert await asyncio.wait_for(proc.wait(), 30) == 5


async def test_pause_stops_progress_and_resume_continues(backend, make_sandbox):
    sb = await make_sandbox()
    counter = Path(sb.spec.workspace) / "counter"
    await backend.spawn(
        sb,
        [
            "sh",
            "-c",
            "i=0; while :; do i=$((i+1)); echo $i > counter.tmp; mv counter.tmp counter; sleep 0.01; done",
        ],
    )

    def value() -> int:
        return int(counter.read_text() or 0) if counter.exists() else 0

    for _ in range(300):
        if value() > 3:
            break
        await asyncio.sleep(0.02)
    await backend.pause(sb)
    frozen_at = value()
    await asyncio.sleep(0.4)
    assert value() == frozen_at
    with pytest.raises(SandboxError):
        await backend.exec(sb, ["true"], timeout=5)
    await backend.resume(sb)
    await asyncio.sleep(0.4)
    assert value() > frozen_at + 3


async def test_destroy_leaves_no_process_behind(backend, make_sandbox):
    sb = await make_sandbox()
    marker = str(900000 + uuid.uuid4().int % 99999)
    await backend.spawn(
        sb,
        [
            "sh",
            "-c",
            f"sleep {marker} & (setsid sleep {marker} &) ; nohup sleep {marker} & sleep {marker}",
        ],
    )
    for _ in range(200):
        if len(pids_with_arg(f"sleep\0{marker}")) >= 4:
            break
        await asyncio.sleep(0.02)
    assert len(pids_with_arg(f"sleep\0{marker}")) >= 4
    await backend.destroy(sb)
    for _ in range(100):
        if not pids_with_arg(f"sleep\0{marker}"):
            break
        await asyncio.sleep(0.05)
    assert pids_with_arg(f"sleep\0{marker}") == []
    assert not await backend.alive(sb)
    assert Path(sb.spec.workspace).exists()  # keep_workspace defaults to True


async def test_destroy_of_a_paused_sandbox_kills_it(backend, make_sandbox):
    sb = await make_sandbox()
    marker = str(800000 + uuid.uuid4().int % 99999)
    await backend.spawn(sb, ["sh", "-c", f"sleep {marker} & sleep {marker}"])
    for _ in range(200):
        if len(pids_with_arg(f"sleep\0{marker}")) >= 2:
            break
        await asyncio.sleep(0.02)
    await backend.pause(sb)
    await backend.destroy(sb)
    for _ in range(100):
        if not pids_with_arg(f"sleep\0{marker}"):
            break
        await asyncio.sleep(0.05)
    assert pids_with_arg(f"sleep\0{marker}") == []


async def test_destroyed_sandbox_refuses_work(backend, make_sandbox):
    sb = await make_sandbox()
    assert await backend.alive(sb)
    await backend.destroy(sb, keep_workspace=False)
    await backend.destroy(sb)  # idempotent
    assert not Path(sb.spec.workspace).exists()
    with pytest.raises(SandboxError):
        await backend.exec(sb, ["true"], timeout=5)


# ---- workspace ------------------------------------------------------------------------

TREE = (
    "mkdir -p src/pkg empty && printf 'print(1)\\n' > src/pkg/run.py && chmod 755 src/pkg/run.py"
    " && printf secret > private && chmod 600 private"
    " && printf 'a\\nb\\n' > src/notes.txt && chmod 644 src/notes.txt"
    " && head -c 200000 /dev/urandom > blob.bin && ln -s src/notes.txt link"
)
LISTING = "find . -mindepth 1 ! -type d -printf '%y %p %m %s %l\\n' | sort; find . -type d | sort; md5sum blob.bin src/pkg/run.py private"


async def test_snapshot_restore_round_trips_content_and_modes(backend, make_sandbox):
    src, dst = await make_sandbox(), await make_sandbox()
    assert (await run(backend, src, TREE)).exit_code == 0
    before = await run(backend, src, LISTING)
    chunks = [c async for c in backend.snapshot(src)]
    assert chunks and all(isinstance(c, bytes) for c in chunks)

    async def replay() -> AsyncIterator[bytes]:
        for c in chunks:
            yield c

    assert (await run(backend, dst, "echo stale > leftover")).exit_code == 0
    await backend.restore(dst, replay())
    after = await run(backend, dst, LISTING)
    assert after.exit_code == 0, after
    assert after.stdout == before.stdout
    assert b"leftover" not in after.stdout
    assert (
        await run(backend, dst, "cat private; ./src/pkg/run.py 2>/dev/null || echo x")
    ).stdout.startswith(b"secret")


def malicious_archive(tag: str) -> bytes:
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w") as tar:

        def add(name: str, data: bytes = b"pwned", **attrs: Any) -> None:
            info = tarfile.TarInfo(name)
            info.size = len(data)
            for k, v in attrs.items():
                setattr(info, k, v)
            tar.addfile(info, io.BytesIO(data) if info.isreg() else None)

        add(f"../escape-{tag}")
        add(f"/tmp/abs-{tag}")
        add("out", type=tarfile.SYMTYPE, linkname="/tmp", size=0)
        add(f"out/through-link-{tag}")
        add("dev", type=tarfile.CHRTYPE, devmajor=1, devminor=3, size=0)
    return zstandard.ZstdCompressor().compress(raw.getvalue())


async def test_restore_cannot_write_outside_the_workspace(backend, make_sandbox):
    sb = await make_sandbox()
    tag = uuid.uuid4().hex[:10]
    ws = Path(sb.spec.workspace)
    with contextlib.suppress(SandboxError):  # refusing the whole archive is fine too
        await backend.restore(sb, one_chunk(malicious_archive(tag)))
    assert not (ws.parent / f"escape-{tag}").exists()
    assert not Path(f"/tmp/abs-{tag}").exists()
    assert not Path(f"/tmp/through-link-{tag}").exists()


def symlink_chain_archive(tag: str) -> bytes:
    """Each link looks inside on its own; together they climb out (CVE-2025-4517 style)."""
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w") as tar:
        links = [("x", "."), ("a", "x/.."), ("b", "a/.."), ("c", "b/.."), ("d", "c/..")]
        for name, target in links:
            info = tarfile.TarInfo(name)
            info.type, info.linkname = tarfile.SYMTYPE, target
            tar.addfile(info)
        for name in (f"a/chain-{tag}", f"d/chain-{tag}", f"d/tmp/chain-{tag}"):
            info = tarfile.TarInfo(name)
            info.size = 5
            tar.addfile(info, io.BytesIO(b"pwned"))
    return zstandard.ZstdCompressor().compress(raw.getvalue())


async def test_restore_cannot_climb_out_through_a_symlink_chain(backend, make_sandbox):
    sb = await make_sandbox()
    tag = uuid.uuid4().hex[:10]
    with contextlib.suppress(SandboxError):
        await backend.restore(sb, one_chunk(symlink_chain_archive(tag)))
    # Wherever the chain could land: any ancestor of the workspace, or a tmp/ below one.
    ancestors = list(Path(sb.spec.workspace).parents)
    candidates = [a / f"chain-{tag}" for a in ancestors] + [
        a / "tmp" / f"chain-{tag}" for a in ancestors
    ]
    assert [c for c in candidates if c.exists()] == []


async def test_stats_report_usage(backend, make_sandbox):
    sb = await make_sandbox()
    assert (await run(backend, sb, "head -c 2000000 /dev/urandom > big")).exit_code == 0
    proc = await backend.spawn(sb, ["sleep", "30"])
    for _ in range(100):  # the process may take a moment to start
        stats = await backend.stats(sb)
        if stats.pids >= 1:
            break
        await asyncio.sleep(0.02)
    assert stats.disk_bytes >= 2_000_000
    assert stats.pids >= 1
    assert stats.memory_bytes > 0
    await proc.kill()
