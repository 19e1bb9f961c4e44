"""What only the process backend promises: bwrap details, uids, rlimits, degraded mode."""

from __future__ import annotations

import asyncio
import logging
import os
import stat
from pathlib import Path

import pytest

from ash.sandbox.base import Isolation, Limits, SandboxError, SandboxGone
from ash.sandbox.process_backend import DEGRADED_WARNING, ProcessBackend
from ash.sandbox.process_backend.proc import uid_pids
from ash.sandbox.process_backend.uids import UidAllocator

from .conftest import pids_with_arg


async def sh(backend, sb, script: str, **kw):
    return await backend.exec(sb, ["sh", "-c", script], timeout=30, **kw)


@pytest.fixture
async def strict(strict_backend, sandbox_factory):
    async with sandbox_factory(strict_backend) as make:
        yield strict_backend, make


@pytest.fixture
async def degraded(degraded_backend, sandbox_factory):
    async with sandbox_factory(degraded_backend) as make:
        yield degraded_backend, make


async def test_strict_sandbox_identity_and_mapping(strict):
    backend, make = strict
    sb = await make()
    ws = Path(sb.spec.workspace)
    st = os.stat(ws)
    assert (st.st_uid, st.st_gid, stat.S_IMODE(st.st_mode)) == (sb.uid, sb.uid, 0o700)
    r = await sh(backend, sb, "id -u; id -g; echo $$; hostname; touch made; cat /proc/self/status")
    out = r.stdout.decode().splitlines()
    assert out[:4] == ["1000", "1000", "2", "sandbox"]  # pid 2: bwrap is the namespace's init
    status = "\n".join(out[4:])
    assert "CapEff:\t0000000000000000" in status
    assert "NoNewPrivs:\t1" in status
    assert "Seccomp:\t2" in status
    assert os.stat(ws / "made").st_uid == sb.uid  # host side: the sandbox uid, never root
    assert sb.uid != 0 and backend.uids.low <= sb.uid <= backend.uids.high


async def test_strict_sees_only_its_binds(strict, tmp_path):
    backend, make = strict
    agent = backend.base_dir / "agent-fixture"
    agent.mkdir(mode=0o755, exist_ok=True)
    (agent / "CLAUDE.md").write_text("be nice")
    (agent / "CLAUDE.md").chmod(0o644)
    sb = await make(agent_dir=agent)
    r = await sh(backend, sb, "ls /; cat /agent/CLAUDE.md; touch /agent/x || echo AGENT-RO; "
                 "ls /root/.pyenv || echo NO-PYENV; ls /work || echo NO-WORK; ip -o link 2>/dev/null; "
                 "cat /proc/net/dev | tail -n +3 | cut -d: -f1")  # fmt: skip
    out = r.stdout.decode()
    top = set(out.split("be nice")[0].split())
    assert top == {
        "bin",
        "dev",
        "etc",
        "lib",
        "lib64",
        "opt",
        "proc",
        "sbin",
        "tmp",
        "usr",
        "workspace",
        "agent",
    }
    assert "AGENT-RO" in out and "NO-PYENV" in out and "NO-WORK" in out
    assert out.strip().splitlines()[-1].strip() == "lo"  # the only network interface


async def test_strict_runs_the_ash_runtime_python(strict):
    backend, make = strict
    sb = await make()
    code = "import ash, ash.sandbox.base, zstandard, sys; print(ash.__file__, sys.executable)"
    r = await backend.exec(sb, ["/usr/bin/python3", "-c", code], timeout=30)
    assert r.exit_code == 0, r
    assert r.stdout.decode().split() == ["/opt/ash/src/ash/__init__.py", "/usr/bin/python3"]


async def test_strict_blocks_nested_namespaces_and_ptrace(strict):
    backend, make = strict
    sb = await make()
    r = await sh(backend, sb, "unshare -U true && echo USERNS-OK; unshare -m true && echo MNT-OK;"
                 " python3 -c 'import ctypes; print(\"PTRACE\", ctypes.CDLL(None).ptrace(0,0,0,0))'")  # fmt: skip
    assert b"USERNS-OK" not in r.stdout and b"MNT-OK" not in r.stdout
    assert b"PTRACE -1" in r.stdout


async def test_strict_tmp_is_private_and_size_limited(strict):
    backend, make = strict
    sb = await make(limits=Limits(memory_bytes=256 << 20, tmp_bytes=4 << 20))
    r = await sh(backend, sb, "head -c 8000000 /dev/zero > /tmp/fill; echo rc=$?; du -k /tmp/fill")
    assert b"rc=1" in r.stdout
    assert int(r.stdout.split()[-2]) <= 4096
    other = await make()
    assert (await sh(backend, other, "ls /tmp")).stdout == b""


async def test_process_joins_cgroup_before_running(strict):
    backend, make = strict
    sb = await make()
    proc = await backend.spawn(sb, ["sh", "-c", "sleep 30 & sleep 31"])
    for _ in range(200):
        if len(uid_pids(sb.uid)) >= 4:  # bwrap, its init, sh and the sleeps
            break
        await asyncio.sleep(0.01)
    members = set(sb.group.pids())
    assert proc.pid in members
    assert set(uid_pids(sb.uid)) <= members  # every process of the uid, forks included
    await proc.kill()


async def test_single_file_larger_than_the_disk_quota_is_refused(
    any_process_backend, make_process_sandbox
):
    sb = await make_process_sandbox(limits=Limits(memory_bytes=256 << 20, disk_bytes=1 << 20))
    r = await sh(
        any_process_backend, sb, "head -c 3000000 /dev/zero > big; echo rc=$?; wc -c < big"
    )
    assert b"rc=" in r.stdout and b"rc=0" not in r.stdout
    assert int(r.stdout.split()[-1]) == 1 << 20


async def test_disk_guard_kills_a_sandbox_over_quota(any_process_backend, make_process_sandbox):
    sb = await make_process_sandbox(limits=Limits(memory_bytes=256 << 20, disk_bytes=1 << 20))
    proc = await any_process_backend.spawn(sb, ["sleep", "300"])
    assert not await any_process_backend.check_disk(sb)
    r = await sh(
        any_process_backend, sb, "for i in 1 2 3; do head -c 600000 /dev/urandom > f$i; done"
    )
    assert r.exit_code == 0
    assert await any_process_backend.check_disk(sb)
    assert await asyncio.wait_for(proc.wait(), 10) == 137
    assert not await any_process_backend.alive(sb)
    with pytest.raises(SandboxGone):
        await any_process_backend.exec(sb, ["true"], timeout=5)


async def test_degraded_mode_warns_and_reports(caplog, sandbox_root):
    with caplog.at_level(logging.WARNING):
        backend = ProcessBackend(base_dir=sandbox_root / "warn", strict=False)
    assert backend.isolation is Isolation.DEGRADED
    assert DEGRADED_WARNING in caplog.text


async def test_degraded_runs_as_the_sandbox_uid_with_rlimits(degraded):
    backend, make = degraded
    sb = await make(limits=Limits(memory_bytes=256 << 20, pids=40, nofile=256, disk_bytes=8 << 20))
    r = await sh(
        backend, sb, "id -u; id -G; ulimit -n; ulimit -p; ulimit -f; ulimit -c; ulimit -t; pwd"
    )
    uid, groups, nofile, nproc, fsize, core, cpu, cwd = r.stdout.decode().split()
    assert int(uid) == sb.uid and groups == uid  # no supplementary groups (no root group)
    assert (nofile, nproc, fsize, core, cpu) == ("256", "48", str((8 << 20) // 512), "0", "3600")
    assert cwd == str(sb.spec.workspace)


async def test_degraded_without_cgroups_still_pauses_and_kills(sandbox_root, sandbox_factory):
    backend = ProcessBackend(base_dir=sandbox_root / "nocg", strict=False, cgroups=False)
    async with sandbox_factory(backend) as make:
        sb = await make()
        assert sb.group is None
        r = await sh(backend, sb, "ulimit -v; ulimit -t")
        assert r.stdout.split() == [str((4 << 30) // 1024).encode(), b"3600"]
        marker = "987123"
        await backend.spawn(sb, ["sh", "-c", f"(setsid sleep {marker} &); sleep {marker}"])
        for _ in range(100):
            if len(pids_with_arg(f"sleep\0{marker}")) == 2:
                break
            await asyncio.sleep(0.02)
        await backend.pause(sb)
        states = {Path(f"/proc/{p}/stat").read_text().rsplit(")", 1)[1].split()[0]
                  for p in pids_with_arg(f"sleep\0{marker}")}  # fmt: skip
        assert states == {"T"}
        await backend.resume(sb)
        await backend.destroy(sb)
        for _ in range(100):
            if not pids_with_arg(f"sleep\0{marker}"):
                break
            await asyncio.sleep(0.02)
        assert pids_with_arg(f"sleep\0{marker}") == []


async def test_invalid_ids_and_untraversable_workspaces_are_refused(strict, sandbox_root):
    backend, _ = strict
    from ash.sandbox.base import SandboxSpec

    with pytest.raises(SandboxError):
        await backend.create(SandboxSpec(sandbox_id="../evil", workspace=sandbox_root / "x"))
    hidden = sandbox_root / "hidden"
    hidden.mkdir(mode=0o700)
    with pytest.raises(SandboxError, match="traverse"):
        await backend.create(SandboxSpec(sandbox_id="hid", workspace=hidden / "ws"))
    assert "hid" not in backend._sandboxes


def test_uid_allocator_is_exclusive_across_allocators(tmp_path):
    a = UidAllocator((500000, 500003), tmp_path)
    b = UidAllocator((500000, 500003), tmp_path)
    got = {a.acquire(), a.acquire(), b.acquire(), b.acquire()}
    assert got == {500000, 500001, 500002, 500003}
    with pytest.raises(SandboxError):
        b.acquire()
    uid = next(iter(a.held()))
    a.release(uid)
    assert b.acquire() == uid
    assert not (tmp_path / str(uid)).exists() or uid in b.held()


NON_ROOT_SCRIPT = """
import asyncio, os, sys
from pathlib import Path
from ash.sandbox.base import Isolation, SandboxSpec
from ash.sandbox.process_backend import ProcessBackend

async def main(base):
    b = ProcessBackend(base_dir=base / "b")
    assert b.isolation is Isolation.DEGRADED and b.driver is None, b.isolation
    sb = await b.create(SandboxSpec(sandbox_id="nr", workspace=base / "ws"))
    r = await b.exec(sb, ["sh", "-c", "id -u; echo x > f"], timeout=10)
    print("UID", r.stdout.split()[0].decode(), sb.uid)
    snap = [c async for c in b.snapshot(sb)]
    async def again():
        for c in snap:
            yield c
    await b.restore(sb, again())
    print("RESTORED", (base / "ws" / "f").read_text().strip())
    await b.spawn(sb, ["sh", "-c", "sleep 876543 & sleep 876543"])
    await asyncio.sleep(0.3)
    await b.destroy(sb)
    print("SURVIVED", os.getpid() > 0)

asyncio.run(main(Path(sys.argv[1])))
"""


@pytest.mark.slow
def test_non_root_service_runs_degraded_as_itself(tmp_path):
    """A service that is not root gets degraded mode, as its own uid, and never kills itself."""
    import subprocess
    import sysconfig
    import tempfile

    base = Path(tempfile.mkdtemp(prefix="ash-nonroot-", dir="/tmp"))
    try:
        os.chown(base, 65534, 65534)
        repo = Path(__file__).resolve().parents[2]
        env = {"PATH": "/usr/bin:/bin", "PYTHONPATH": f"{repo}:{sysconfig.get_paths()['purelib']}"}
        done = subprocess.run(
            ["/usr/bin/setpriv", "--reuid=65534", "--regid=65534", "--clear-groups",
             "/usr/bin/python3", "-c", NON_ROOT_SCRIPT, str(base)],
            capture_output=True, text=True, env=env, timeout=60, cwd="/",
        )  # fmt: skip
        assert done.returncode == 0, done.stderr
        assert "UID 65534 65534" in done.stdout
        assert "RESTORED x" in done.stdout
        assert "SURVIVED True" in done.stdout
        assert pids_with_arg("sleep\0876543") == []
    finally:
        import shutil

        shutil.rmtree(base, ignore_errors=True)


def test_cgroups_of_a_dead_service_are_swept(strict_backend):
    import subprocess

    from ash.sandbox.cgroups import CgroupLimits

    dead = subprocess.Popen(["true"])
    dead.wait()  # a pid that no longer exists
    driver = strict_backend.driver
    name = f"ash-{dead.pid}-orphan-{os.getpid()}"
    live = f"ash-{os.getpid()}-mine-{os.getpid()}"
    driver.create(name, CgroupLimits(64 << 20, 8, 0.1))
    mine = driver.create(live, CgroupLimits(64 << 20, 8, 0.1))
    try:
        assert strict_backend.sweep_orphans() >= 1
        assert name not in driver.names()
        assert live in driver.names()  # its owner (us) is alive
    finally:
        mine.remove()


async def test_exec_returns_when_the_command_exits_despite_orphans(
    any_process_backend, make_process_sandbox
):
    sb = await make_process_sandbox()
    r = await sh(any_process_backend, sb, "(setsid sleep 4 &); echo hi")
    assert (r.exit_code, r.stdout, r.timed_out) == (0, b"hi\n", False)
    assert r.duration_s < 2.5


async def test_exec_with_unread_large_stdin_still_times_out(
    any_process_backend, make_process_sandbox
):
    sb = await make_process_sandbox()
    r = await any_process_backend.exec(sb, ["sleep", "30"], timeout=1, stdin=b"x" * (4 << 20))
    assert r.timed_out and r.duration_s < 5


async def test_periodic_disk_guard_acts_on_its_own(sandbox_root, sandbox_factory):
    backend = ProcessBackend(base_dir=sandbox_root / "guard", strict=True, disk_check_interval=0.1)
    async with sandbox_factory(backend) as make:
        sb = await make(limits=Limits(memory_bytes=256 << 20, disk_bytes=1 << 20))
        r = await sh(backend, sb, "for i in 1 2 3; do head -c 600000 /dev/zero > f$i; done")
        assert r.exit_code == 0
        for _ in range(100):
            if not await backend.alive(sb):
                break
            await asyncio.sleep(0.05)
        assert sb.breach == "disk"


def test_a_backend_compiles_the_runtime_code_its_sandboxes_read_only_mount(sandbox_root):
    """Sandboxes cannot cache compiled modules (the code is mounted read-only), so the backend
    compiles them where they live: a runtime start then loads instead of compiling (~70 ms)."""
    import importlib.util

    import ash.runtime.server

    source = Path(ash.runtime.server.__file__)
    cached = Path(importlib.util.cache_from_source(str(source)))
    cached.unlink(missing_ok=True)
    ProcessBackend(base_dir=sandbox_root / "compiles", strict=False)
    header = cached.read_bytes()[:16]
    assert header[:4] == importlib.util.MAGIC_NUMBER
    st = source.stat()  # a timestamp pyc that matches the source, so Python uses it
    assert int.from_bytes(header[8:12], "little") == int(st.st_mtime) & 0xFFFFFFFF
    assert int.from_bytes(header[12:16], "little") == st.st_size & 0xFFFFFFFF
    assert Path(importlib.util.cache_from_source(str(source.parent / "engines" / "native.py"))).is_file()
