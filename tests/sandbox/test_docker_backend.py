"""Docker-specific checks of DockerBackend against the private engine (scripts/sandbox-engine.sh)."""

from __future__ import annotations

import asyncio
import io
import os
import socket
import stat
import subprocess
import tarfile
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import docker
import pytest
import zstandard

from ash.sandbox.base import Limits, SandboxError, SandboxGone, SandboxSpec
from ash.sandbox.docker_backend import SANDBOX_LABEL, DockerBackend, DockerSandbox
from tests.sandbox.docker_env import ENGINE_SCRIPT, docker_backend_factory, docker_environment

pytestmark = [pytest.mark.docker, pytest.mark.slow]


@pytest.fixture(scope="module")
def docker_backend(tmp_path_factory: pytest.TempPathFactory) -> DockerBackend:
    backend = docker_backend_factory(tmp_path_factory.mktemp("docker-base"))
    yield backend
    backend.close()


@pytest.fixture(scope="module")
def engine() -> docker.DockerClient:
    client = docker.DockerClient(base_url=docker_environment()[0])
    yield client
    client.close()


def _spec(tmp_path: Path, **kw: object) -> SandboxSpec:
    sid = "t" + uuid.uuid4().hex[:12]
    return SandboxSpec(sandbox_id=sid, workspace=tmp_path / f"ws-{sid}", **kw)  # type: ignore[arg-type]


@pytest.fixture
async def dsb(docker_backend: DockerBackend, tmp_path: Path) -> AsyncIterator[DockerSandbox]:
    sb = await docker_backend.create(
        _spec(tmp_path, limits=Limits(memory_bytes=256 << 20, pids=64, cpu=1.0))
    )
    yield sb
    await docker_backend.destroy(sb, keep_workspace=False)


async def _sh(backend: DockerBackend, sb: DockerSandbox, script: str, timeout: float = 20) -> str:
    res = await backend.exec(sb, ["sh", "-c", script], timeout=timeout)
    assert res.exit_code == 0, res
    return res.stdout.decode()


async def _chunks(data: bytes) -> AsyncIterator[bytes]:
    for i in range(0, len(data), 4096):
        yield data[i : i + 4096]


def test_engine_script_start_is_idempotent() -> None:
    host, _ = docker_environment()
    again = subprocess.run(
        ["bash", str(ENGINE_SCRIPT), "start"], capture_output=True, text=True, check=True
    )
    assert again.stdout.strip() == f"export DOCKER_HOST={host}"
    status = subprocess.run(["bash", str(ENGINE_SCRIPT), "status"], capture_output=True)
    assert status.returncode == 0


async def test_container_flags_are_applied(
    docker_backend: DockerBackend, engine: docker.DockerClient, dsb: DockerSandbox
) -> None:
    attrs = engine.api.inspect_container(dsb.container_id)
    hc = attrs["HostConfig"]
    assert hc["NetworkMode"] == "none"
    assert hc["ReadonlyRootfs"] is True
    assert hc["CapDrop"] == ["ALL"]
    assert "no-new-privileges" in hc["SecurityOpt"]
    assert hc["Memory"] == hc["MemorySwap"] == 256 << 20
    assert hc["PidsLimit"] == 64
    assert hc["NanoCpus"] == 10**9
    assert hc["Init"] is True
    assert "size=" in hc["Tmpfs"]["/tmp"]
    assert attrs["Config"]["User"] == "1000:1000"
    assert attrs["Config"]["Labels"][SANDBOX_LABEL] == dsb.id
    out = await _sh(
        docker_backend,
        dsb,
        "id -u; grep -E '^(CapEff|NoNewPrivs)' /proc/self/status; ls /sys/class/net;"
        " touch /etc/x 2>&1 || true; touch /opt/ash/src/ash/x 2>&1 || true",
    )
    assert out.splitlines()[0] == "1000"
    assert "CapEff:\t0000000000000000" in out
    assert "NoNewPrivs:\t1" in out
    assert out.split("NoNewPrivs:\t1\n")[1].splitlines()[0] == "lo"  # the only interface
    assert out.count("Read-only file system") == 2


async def test_sandbox_cannot_reach_host_loopback(
    docker_backend: DockerBackend, dsb: DockerSandbox
) -> None:
    accepted: list[object] = []
    server = await asyncio.start_server(
        lambda r, w: accepted.append(w), "127.0.0.1", 0, family=socket.AF_INET
    )
    port = server.sockets[0].getsockname()[1]
    try:
        res = await docker_backend.exec(
            dsb,
            [
                "python3",
                "-c",
                "import socket,sys\n"
                "try:\n"
                f" socket.create_connection(('127.0.0.1', {port}), timeout=3)\n"
                "except OSError as e:\n"
                " print(type(e).__name__); sys.exit(0)\n"
                "sys.exit(9)",
            ],
            timeout=20,
        )
    finally:
        server.close()
        await server.wait_closed()
    assert res.exit_code == 0, res
    assert res.stdout.strip() == b"ConnectionRefusedError"  # its own empty loopback
    assert accepted == []


async def test_proxy_socket_dir_is_the_way_out(
    docker_backend: DockerBackend, tmp_path: Path
) -> None:
    sock_dir = tmp_path / "proxy"
    sock_dir.mkdir()
    path = sock_dir / "llm.sock"

    async def answer(r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
        w.write(b"proxy:" + await r.readline())
        await w.drain()
        w.close()

    server = await asyncio.start_unix_server(answer, path=str(path))
    os.chmod(path, 0o666)  # the sandbox user is uid 1000
    sb = await docker_backend.create(_spec(tmp_path, proxy_socket_dir=sock_dir))
    try:
        res = await docker_backend.exec(
            sb,
            [
                "python3",
                "-c",
                "import socket\ns=socket.socket(socket.AF_UNIX)\n"
                "s.connect('/run/ash-proxy/llm.sock'); s.sendall(b'hi\\n'); print(s.recv(100))",
            ],
            timeout=20,
        )
        assert res.stdout.strip() == b"b'proxy:hi\\n'", res
    finally:
        await docker_backend.destroy(sb, keep_workspace=False)
        server.close()
        await server.wait_closed()


async def test_memory_limit_oom_is_detected(
    docker_backend: DockerBackend, dsb: DockerSandbox
) -> None:
    res = await docker_backend.exec(
        dsb,
        ["python3", "-c", "x = []\nwhile True: x.append(bytearray(16 << 20))"],
        timeout=60,
    )
    assert res.oom_killed is True
    assert res.exit_code == 137
    assert (await docker_backend.stats(dsb)).oom_kills >= 1
    assert await docker_backend.alive(dsb)  # the sandbox survives its process's OOM


async def test_pids_limit_stops_fork_bomb(
    docker_backend: DockerBackend, dsb: DockerSandbox
) -> None:
    res = await docker_backend.exec(
        dsb,
        [
            "python3",
            "-c",
            "import os, time\nn = 0\ntry:\n while n < 500:\n"
            "  if os.fork() == 0:\n   time.sleep(5); os._exit(0)\n  n += 1\n"
            "except OSError as e:\n print('stopped', n, e.errno)",
        ],
        timeout=30,
    )
    words = res.stdout.split()
    assert words[0] == b"stopped" and int(words[1]) < 64 and words[2] == b"11", res


async def test_pause_stops_progress(docker_backend: DockerBackend, dsb: DockerSandbox) -> None:
    proc = await docker_backend.spawn(
        dsb,
        [
            "sh",
            "-c",
            "i=0; while true; do i=$((i+1)); echo $i > n.tmp; mv n.tmp n; sleep 0.01; done",
        ],
    )
    counter = Path(dsb.spec.workspace) / "n"
    await asyncio.sleep(0.5)
    await docker_backend.pause(dsb)
    await docker_backend.pause(dsb)  # idempotent
    frozen = counter.read_text()
    await asyncio.sleep(0.5)
    assert counter.read_text() == frozen
    with pytest.raises(SandboxError):
        await docker_backend.exec(dsb, ["true"], timeout=5)
    await docker_backend.resume(dsb)
    await asyncio.sleep(0.3)
    assert int(counter.read_text()) > int(frozen)
    await proc.kill()
    assert proc.returncode == -9


async def test_snapshot_restore_round_trip_keeps_modes(
    docker_backend: DockerBackend, dsb: DockerSandbox
) -> None:
    await _sh(
        docker_backend,
        dsb,
        "mkdir -p src/pkg && printf '#!/usr/bin/python3\\nprint(1)\\n' > src/run.py && chmod 755 src/run.py &&"
        " printf secret > src/key && chmod 600 src/key && chmod 750 src/pkg &&"
        " head -c 300000 /dev/urandom > src/pkg/blob && ln -s run.py src/link &&"
        " ln -s /etc/passwd abs",
    )
    before = await _sh(
        docker_backend, dsb, "cd /workspace && find . | sort | xargs stat -c '%n %a %s %U'"
    )
    blob = (Path(dsb.spec.workspace) / "src/pkg/blob").read_bytes()
    archive = b"".join([c async for c in docker_backend.snapshot(dsb)])
    await _sh(docker_backend, dsb, "rm -rf src abs && echo junk > junk")
    await docker_backend.restore(dsb, _chunks(archive))
    after = await _sh(
        docker_backend, dsb, "cd /workspace && find . | sort | xargs stat -c '%n %a %s %U'"
    )
    assert after == before
    ws = Path(dsb.spec.workspace)
    assert (ws / "src/pkg/blob").read_bytes() == blob
    assert os.readlink(ws / "src/link") == "run.py"
    assert os.readlink(ws / "abs") == "/etc/passwd"
    assert (ws / "src/key").stat().st_uid == 1000
    assert await _sh(docker_backend, dsb, "./src/run.py") == "1\n"


async def test_snapshot_stores_planted_links_as_links(
    docker_backend: DockerBackend, dsb: DockerSandbox, tmp_path: Path
) -> None:
    host_secret = tmp_path / "host-secret"
    host_secret.write_text("host only")
    ws = Path(dsb.spec.workspace)
    os.symlink(host_secret, ws / "leak")  # as if the agent knew a host path
    archive = b"".join([c async for c in docker_backend.snapshot(dsb)])
    raw = zstandard.ZstdDecompressor().stream_reader(io.BytesIO(archive)).read()
    with tarfile.open(fileobj=io.BytesIO(raw)) as tar:
        member = tar.getmember("leak")
        assert member.issym() and member.linkname == str(host_secret)
    assert b"host only" not in raw


def _evil_archive(entries: list[tarfile.TarInfo], payload: bytes = b"pwned") -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for ti in entries:
            if ti.isreg():
                ti.size = len(payload)
                tar.addfile(ti, io.BytesIO(payload))
            else:
                tar.addfile(ti)
    return zstandard.ZstdCompressor().compress(buf.getvalue())


@pytest.mark.parametrize("case", ["dotdot", "absolute", "through-symlink"])
async def test_restore_cannot_escape_the_workspace(
    docker_backend: DockerBackend, dsb: DockerSandbox, tmp_path: Path, case: str
) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    if case == "dotdot":
        entries = [tarfile.TarInfo(f"../../{outside.name}/f")]
    elif case == "absolute":
        entries = [tarfile.TarInfo(str(outside / "f"))]
    else:
        link = tarfile.TarInfo("out")
        link.type, link.linkname = tarfile.SYMTYPE, str(outside)
        entries = [link, tarfile.TarInfo("out/f")]
    with pytest.raises(SandboxError):
        await docker_backend.restore(dsb, _chunks(_evil_archive(entries)))
    assert list(outside.iterdir()) == []


async def test_destroy_leaves_no_container(
    docker_backend: DockerBackend, engine: docker.DockerClient, tmp_path: Path
) -> None:
    sb = await docker_backend.create(_spec(tmp_path))
    assert await docker_backend.alive(sb)
    await docker_backend.destroy(sb, keep_workspace=False)
    assert engine.containers.list(all=True, filters={"label": f"{SANDBOX_LABEL}={sb.id}"}) == []
    assert not await docker_backend.alive(sb)
    assert not Path(sb.spec.workspace).exists()
    with pytest.raises(SandboxGone):
        await docker_backend.exec(sb, ["true"], timeout=5)
    await docker_backend.destroy(sb)  # twice is fine


async def test_orphan_sweep_removes_only_unknown_sandboxes(
    docker_backend: DockerBackend, tmp_path: Path
) -> None:
    keep = await docker_backend.create(_spec(tmp_path))
    orphan = await docker_backend.create(_spec(tmp_path, labels={"ash.session": "s1"}))
    try:
        removed = await docker_backend.sweep_orphans(keep={keep.id})
        assert orphan.id in removed and keep.id not in removed
        assert await docker_backend.alive(keep)
        assert not await docker_backend.alive(orphan)
    finally:
        await docker_backend.destroy(keep, keep_workspace=False)
        await docker_backend.destroy(orphan, keep_workspace=False)


async def test_spawn_line_round_trip(docker_backend: DockerBackend, dsb: DockerSandbox) -> None:
    proc = await docker_backend.spawn(
        dsb,
        [
            "python3",
            "-c",
            "import sys, os\nprint('ready', os.environ['GREETING'], flush=True)\n"
            "for line in sys.stdin:\n"
            " print(line.strip().upper(), flush=True); print('log', file=sys.stderr, flush=True)\n"
            "sys.exit(4)",
        ],
        env={"GREETING": "hello"},
    )
    assert await proc.readline() == b"ready hello\n"
    big = b"x" * 200_000
    await proc.write(b"one\n" + big + b"\n")
    assert await proc.readline() == b"ONE\n"
    assert await proc.read_stderr_line() == b"log\n"
    assert await proc.readline() == big.upper() + b"\n"
    assert proc.returncode is None
    await proc.kill()
    assert proc.returncode == -9
    assert await proc.readline() == b""


async def test_spawn_exit_code_is_reported(
    docker_backend: DockerBackend, dsb: DockerSandbox
) -> None:
    proc = await docker_backend.spawn(dsb, ["sh", "-c", "read x; echo got $x; exit 4"])
    await proc.write(b"it\n")
    assert await proc.readline() == b"got it\n"
    assert await proc.wait() == 4
    assert proc.returncode == 4


async def test_exec_timeout_kills_the_whole_tree(
    docker_backend: DockerBackend, dsb: DockerSandbox
) -> None:
    res = await docker_backend.exec(dsb, ["sh", "-c", "sleep 300 & sleep 301"], timeout=1)
    assert res.timed_out and res.exit_code == -9
    left = await _sh(docker_backend, dsb, "ps -eo args")
    assert "sleep 30" not in left


async def test_exec_output_cap_and_stdin(docker_backend: DockerBackend, dsb: DockerSandbox) -> None:
    res = await docker_backend.exec(
        dsb,
        ["sh", "-c", "head -c 100000 /dev/zero; cat >&2"],
        timeout=20,
        stdin=b"in",
        max_output=1000,
    )
    assert res.exit_code == 0
    assert res.stdout == b"\0" * 1000
    assert res.stderr == b"in"


async def test_runtime_packages_import_in_container(
    docker_backend: DockerBackend, dsb: DockerSandbox
) -> None:
    res = await docker_backend.exec(
        dsb,
        [
            "python3",
            "-c",
            "import anthropic, httpx, mcp, ash.sandbox.base as b; print(b.WORKSPACE_PATH)",
        ],
        timeout=120,
    )
    assert res.exit_code == 0, res.stderr[-2000:]
    assert res.stdout == b"/workspace\n"


async def test_stats_report_usage(docker_backend: DockerBackend, dsb: DockerSandbox) -> None:
    await _sh(docker_backend, dsb, "head -c 2000000 /dev/zero > big")
    st = await docker_backend.stats(dsb)
    assert st.memory_bytes > 0 and st.pids >= 2  # init + sleep
    assert st.disk_bytes >= 2_000_000
    assert stat.S_IMODE(os.stat(dsb.spec.workspace).st_mode) == 0o700


async def test_disk_quota_caps_files_and_kills_an_overgrown_workspace(
    docker_backend: DockerBackend, tmp_path: Path
) -> None:
    sb = await docker_backend.create(_spec(tmp_path, limits=Limits(disk_bytes=1 << 20)))
    try:
        await _sh(docker_backend, sb, "head -c 500000 /dev/zero > small")
        assert not await docker_backend.check_disk(sb)
        too_big = await docker_backend.exec(
            sb, ["sh", "-c", "head -c 2000000 /dev/zero > big"], timeout=20
        )
        assert too_big.exit_code != 0  # RLIMIT_FSIZE: SIGXFSZ at the quota
        assert (Path(sb.spec.workspace) / "big").stat().st_size == 1 << 20
        assert await docker_backend.check_disk(sb)
        assert not await docker_backend.alive(sb)
        with pytest.raises(SandboxGone):
            await docker_backend.exec(sb, ["true"], timeout=5)
    finally:
        await docker_backend.destroy(sb, keep_workspace=False)


async def test_a_timeout_kill_spares_concurrent_commands(
    docker_backend: DockerBackend, dsb: DockerSandbox
) -> None:
    slow = asyncio.create_task(
        docker_backend.exec(dsb, ["sh", "-c", "sleep 1.5; echo survived"], timeout=20)
    )
    doomed = await docker_backend.exec(dsb, ["sleep", "60"], timeout=0.5)
    fresh = await docker_backend.exec(dsb, ["echo", "fresh"], timeout=10)
    assert doomed.timed_out
    assert fresh.stdout == b"fresh\n"
    assert (await slow).stdout == b"survived\n"


async def test_kill_of_a_paused_sandboxs_process_lands_on_resume(
    docker_backend: DockerBackend, dsb: DockerSandbox
) -> None:
    proc = await docker_backend.spawn(dsb, ["sleep", "600"])
    await docker_backend.pause(dsb)
    await asyncio.wait_for(proc.kill(), 10)
    await docker_backend.resume(dsb)
    assert await asyncio.wait_for(proc.wait(), 10) == -9
    assert "sleep 600" not in await _sh(docker_backend, dsb, "ps -eo args")


async def test_cancelled_exec_does_not_leave_its_command_running(
    docker_backend: DockerBackend, dsb: DockerSandbox
) -> None:
    task = asyncio.create_task(docker_backend.exec(dsb, ["sleep", "777"], timeout=60))
    await asyncio.sleep(0.5)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert "sleep 777" not in await _sh(docker_backend, dsb, "ps -eo args")


async def test_pause_racing_exec_starts_never_wedges_and_destroy_works_paused(
    docker_backend: DockerBackend, engine: docker.DockerClient, tmp_path: Path
) -> None:
    # Freezing while runc starts an exec would wedge the container in the engine for good.
    sb = await docker_backend.create(_spec(tmp_path))
    procs = await asyncio.gather(*(docker_backend.spawn(sb, ["sleep", "500"]) for _ in range(3)))
    for _ in range(4):
        ran, paused = await asyncio.wait_for(
            asyncio.gather(
                docker_backend.exec(sb, ["true"], timeout=10),
                docker_backend.pause(sb),
                return_exceptions=True,
            ),
            30,
        )
        assert paused is None
        assert isinstance(ran, SandboxError) or ran.exit_code == 0, ran
        await docker_backend.resume(sb)
    await docker_backend.pause(sb)
    assert all(p.returncode is None for p in procs)
    await asyncio.wait_for(docker_backend.destroy(sb, keep_workspace=False), 30)
    assert engine.containers.list(all=True, filters={"label": f"{SANDBOX_LABEL}={sb.id}"}) == []
