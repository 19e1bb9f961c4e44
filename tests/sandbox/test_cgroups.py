"""cgroup drivers: against a fake cgroupfs laid out in a temp dir, then the host's real one."""

from __future__ import annotations

import os
import signal
import subprocess
import time
import uuid
from pathlib import Path

import pytest

from ash.sandbox.cgroups import (
    CgroupLimits,
    V1Driver,
    V1Group,
    V2Driver,
    V2Group,
    detect_driver,
    driver_from_layout,
    read_layout,
)
from ash.sandbox.probe import probe

LIMITS = CgroupLimits(memory_bytes=256 << 20, pids=64, cpu=0.5)

HYBRID_MOUNTS = """\
tmpfs /sys/fs/cgroup tmpfs rw,relatime,mode=755 0 0
cgroup /sys/fs/cgroup/cpu cgroup rw,relatime,cpu 0 0
cgroup /sys/fs/cgroup/cpuacct cgroup rw,relatime,cpuacct 0 0
cgroup /sys/fs/cgroup/memory cgroup rw,relatime,memory 0 0
cgroup /sys/fs/cgroup/freezer cgroup rw,relatime,freezer 0 0
cgroup /sys/fs/cgroup/pids cgroup rw,relatime,pids 0 0
cgroup2 /sys/fs/cgroup/unified cgroup2 rw,relatime 0 0
"""
HYBRID_SELF = """\
8:pids:/
6:freezer:/
4:memory:/process_api/abc
2:cpuacct:/
1:cpu:/
0::/
"""


def v1_tree(tmp_path: Path, *, with_unified: bool) -> dict[str, Path]:
    parents = {}
    for ctl in ("memory", "pids", "cpu", "freezer", "cpuacct"):
        parents[ctl] = tmp_path / ctl / ("svc" if ctl == "memory" else "")
        parents[ctl].mkdir(parents=True, exist_ok=True)
    if with_unified:
        (tmp_path / "unified").mkdir()
    return parents


def test_v1_driver_writes_limits_without_swap(tmp_path):
    parents = v1_tree(tmp_path, with_unified=False)
    group = V1Driver(parents).create("sb1", LIMITS)
    mem = parents["memory"] / "sb1"
    assert (mem / "memory.limit_in_bytes").read_text() == str(256 << 20)
    assert not (mem / "memory.memsw.limit_in_bytes").exists()  # absent file: not created
    assert (parents["pids"] / "sb1" / "pids.max").read_text() == "64"
    assert (parents["cpu"] / "sb1" / "cpu.cfs_quota_us").read_text() == "50000"
    assert (parents["cpu"] / "sb1" / "cpu.cfs_period_us").read_text() == "100000"
    assert len(group.procs_files()) == 5


def test_v1_memsw_is_capped_at_the_memory_limit(tmp_path):
    parents = v1_tree(tmp_path, with_unified=False)
    # A real memory cgroup has memsw when swap accounting is on; emulate a precreated file.
    (parents["memory"] / "sb2").mkdir()
    (parents["memory"] / "sb2" / "memory.memsw.limit_in_bytes").write_text("0")
    group = V1Group("sb2", {"memory": parents["memory"] / "sb2"}, None)
    group.apply_limits(LIMITS)
    assert (parents["memory"] / "sb2" / "memory.memsw.limit_in_bytes").read_text() == str(256 << 20)


def test_v1_freezer_counters_and_removal(tmp_path):
    parents = v1_tree(tmp_path, with_unified=False)
    group = V1Driver(parents).create("sb", LIMITS)
    group.freeze()
    assert (parents["freezer"] / "sb" / "freezer.state").read_text() == "FROZEN"
    assert group.is_frozen()
    group.thaw()
    assert not group.is_frozen()
    mem = parents["memory"] / "sb"
    (mem / "memory.oom_control").write_text("oom_kill_disable 0\nunder_oom 0\noom_kill 3\n")
    (mem / "memory.usage_in_bytes").write_text("123456\n")
    (parents["pids"] / "sb" / "pids.current").write_text("7\n")
    (parents["cpuacct"] / "sb" / "cpuacct.usage").write_text("2500000000\n")
    assert (group.oom_kills(), group.memory_bytes(), group.pid_count()) == (3, 123456, 7)
    assert group.cpu_seconds() == 2.5
    assert group.remove() is False  # fake dirs hold files: "busy", like a populated cgroup
    for path in group.paths.values():
        for f in path.iterdir():
            f.unlink()
    assert group.remove() is True
    assert not any((p / "sb").exists() for p in parents.values())


def test_v1_kill_loop_signals_every_member(tmp_path):
    parents = v1_tree(tmp_path, with_unified=False)
    group = V1Driver(parents).create("sb", LIMITS)
    child = subprocess.Popen(["sleep", "60"])
    (parents["pids"] / "sb" / "cgroup.procs").write_text(f"{child.pid}\n")
    group.kill_all()
    assert child.wait(timeout=5) == -signal.SIGKILL
    assert (parents["freezer"] / "sb" / "freezer.state").read_text() == "THAWED"


def test_hybrid_uses_v2_core_for_freeze_and_kill(tmp_path):
    parents = v1_tree(tmp_path, with_unified=True)
    del parents["freezer"]
    driver = V1Driver(parents, unified=tmp_path / "unified")
    group = driver.create("sb", LIMITS)
    assert driver.version == "hybrid"
    core = tmp_path / "unified" / "sb"
    assert core / "cgroup.procs" in group.procs_files()
    group.freeze()
    assert (core / "cgroup.freeze").read_text() == "1"
    assert not group.is_frozen()  # the kernel reports it in cgroup.events
    (core / "cgroup.events").write_text("populated 1\nfrozen 1\n")
    assert group.is_frozen()
    (core / "cgroup.kill").write_text("")
    group.kill_all()
    assert (core / "cgroup.kill").read_text() == "1"


def test_v2_driver_enables_controllers_and_writes_limits(tmp_path):
    (tmp_path / "cgroup.controllers").write_text("cpuset cpu io memory pids\n")
    driver = V2Driver(tmp_path / "ash-sandboxes")
    (tmp_path / "ash-sandboxes").mkdir()
    (tmp_path / "ash-sandboxes" / "cgroup.controllers").write_text("cpu memory pids\n")
    group = driver.create("sb", LIMITS)
    path = tmp_path / "ash-sandboxes" / "sb"
    assert (
        tmp_path / "ash-sandboxes" / "cgroup.subtree_control"
    ).read_text() == "+memory +pids +cpu"
    assert (path / "memory.max").read_text() == str(256 << 20)
    assert (path / "memory.swap.max").read_text() == "0"
    assert (path / "pids.max").read_text() == "64"
    assert (path / "cpu.max").read_text() == "50000 100000"
    (path / "memory.events").write_text("low 0\nhigh 0\nmax 4\noom 2\noom_kill 2\n")
    (path / "cpu.stat").write_text("usage_usec 1500000\nuser_usec 1000000\n")
    (path / "memory.current").write_text("4096\n")
    assert (group.oom_kills(), group.cpu_seconds(), group.memory_bytes()) == (2, 1.5, 4096)
    group.freeze()
    assert (path / "cgroup.freeze").read_text() == "1"
    group.thaw()
    assert (path / "cgroup.freeze").read_text() == "0"


def test_v2_driver_enables_missing_controllers_one_level_up(tmp_path):
    (tmp_path / "ash-sandboxes").mkdir()
    V2Driver(tmp_path / "ash-sandboxes").create("sb", LIMITS)
    assert (tmp_path / "cgroup.subtree_control").read_text() == "+cpu +memory +pids"


def test_layout_of_a_hybrid_host():
    layout = read_layout(HYBRID_MOUNTS, HYBRID_SELF)
    assert layout.v1_parent("memory") == Path("/sys/fs/cgroup/memory/process_api/abc")
    assert layout.v1_parent("pids") == Path("/sys/fs/cgroup/pids")
    assert layout.v2_parent() == Path("/sys/fs/cgroup/unified")
    assert layout.v2_controllers() <= {"hugetlb"}  # the real file on this host, or empty


def test_layout_of_a_pure_v2_host_picks_v2(tmp_path):
    (tmp_path / "cgroup.controllers").write_text("cpu io memory pids\n")
    layout = read_layout(f"cgroup2 {tmp_path} cgroup2 rw 0 0\n", "0::/init.scope\n")
    assert layout.v1_mounts == {} and layout.v2_own == "/init.scope"
    driver = driver_from_layout(layout)
    assert isinstance(driver, V2Driver)
    assert driver.parent == tmp_path / "ash-sandboxes"


def test_no_cgroups_means_no_driver():
    assert driver_from_layout(read_layout("proc /proc proc rw 0 0\n", "")) is None


# ---- the real cgroups of this host -----------------------------------------------------

needs_real = pytest.mark.skipif(
    not probe().cgroup_limits, reason="no writable cgroup hierarchy on this host"
)


def start_in(group, script: str) -> subprocess.Popen:
    """Start `sh -c script` already inside the group (it joins before exec'ing)."""
    files = " ".join(str(f) for f in group.procs_files())
    return subprocess.Popen(
        ["sh", "-c", f'for f in {files}; do echo $$ > "$f"; done; exec {script}'],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )


@pytest.fixture
def real_group():
    driver = detect_driver()
    assert driver is not None
    group = driver.create(f"ash-test-{uuid.uuid4().hex[:10]}", CgroupLimits(64 << 20, 16, 0.5))
    yield group
    group.kill_all()
    deadline = time.monotonic() + 5
    while not group.remove() and time.monotonic() < deadline:
        time.sleep(0.01)
    assert all(not f.parent.exists() for f in group.procs_files())


@needs_real
def test_real_group_limits_freeze_and_kill(real_group):
    proc = start_in(real_group, "sleep 60")
    for _ in range(100):
        if proc.pid in real_group.pids():
            break
        time.sleep(0.01)
    assert proc.pid in real_group.pids()
    assert real_group.pid_count() >= 1
    real_group.freeze()
    for _ in range(500):
        if real_group.is_frozen():
            break
        time.sleep(0.002)
    assert real_group.is_frozen()
    real_group.thaw()
    real_group.kill_all()
    assert proc.wait(timeout=5) == -signal.SIGKILL
    assert real_group.is_empty()


@needs_real
def test_real_group_oom_counter(real_group):
    hog = "python3 -c 'b=[bytearray(8<<20) for _ in range(64)]; print(\"SURVIVED\")'"
    proc = start_in(real_group, hog)
    out, _ = proc.communicate(timeout=60)
    assert proc.returncode == -signal.SIGKILL
    assert b"SURVIVED" not in out
    assert real_group.oom_kills() == 1


@needs_real
def test_real_group_pids_limit(real_group):
    script = (
        "python3 -c 'import os,time\nn=0\ntry:\n for _ in range(100):\n"
        "  (os.fork()==0) and (time.sleep(1) or os._exit(0)); n+=1\n"
        'except OSError: print("EAGAIN", n)\''
    )
    proc = start_in(real_group, script)
    out, _ = proc.communicate(timeout=30)
    assert out.startswith(b"EAGAIN")
    assert int(out.split()[1]) < 16


@needs_real
def test_real_detected_driver_matches_probe():
    driver = detect_driver()
    assert driver is not None
    assert driver.version == probe().cgroup_version
    if driver.version == "hybrid":
        assert isinstance(driver, V1Driver) and driver.core_driver is not None
        # memory groups nest under our own memory cgroup, so the host keeps accounting them
        own = read_layout().v1_own["memory"]
        assert str(driver.parents["memory"]).endswith(own.rstrip("/"))
        assert all(os.access(p, os.W_OK) for p in driver.parents.values())


def test_v2_group_pid_count_falls_back_to_procs(tmp_path):
    group = V2Group(tmp_path, "x")
    (tmp_path / "cgroup.procs").write_text("1\n2\n")
    assert group.pid_count() == 2
