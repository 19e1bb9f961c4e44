"""What sandboxing this host supports, and which isolation level to run with.

`probe()` runs real checks once per process (a throwaway cgroup, a bwrap run as an
unprivileged uid) and caches them; `choose_isolation()` turns them into a decision.
"""

from __future__ import annotations

import functools
import logging
import os
import shutil
import subprocess
from dataclasses import dataclass, field

from .base import Isolation, SandboxError
from .cgroups import CgroupLimits, detect_driver

log = logging.getLogger(__name__)

PROBE_UID = 65534  # nobody: bwrap must work for an unprivileged uid, never only for root


class IsolationUnavailable(SandboxError):
    """Strict isolation was required but this host cannot provide it."""


@dataclass(frozen=True)
class Probe:
    root: bool
    bwrap: str | None  # path
    userns: bool  # unprivileged user namespaces allowed
    bwrap_works: bool  # a full --unshare-all sandbox ran as an unprivileged uid
    cgroup_version: str | None  # "v1" | "v2" | "hybrid"
    cgroup_controllers: tuple[str, ...]  # writable limit controllers
    cgroup_limits: bool  # memory and pids limits can be set
    cgroup_freeze: bool
    cgroup_kill: bool  # v2 cgroup.kill (else a signal loop)
    seccomp: bool
    problems: tuple[str, ...] = field(default=())

    @property
    def strict_available(self) -> bool:
        return not self.problems

    def as_dict(self) -> dict[str, object]:
        out = {k: getattr(self, k) for k in self.__dataclass_fields__}
        out["strict_available"] = self.strict_available
        return out


def _userns_allowed() -> bool:
    try:
        with open("/proc/sys/user/max_user_namespaces") as f:
            if int(f.read().strip() or 0) <= 0:
                return False
    except FileNotFoundError:
        return False
    try:
        with open("/proc/sys/kernel/unprivileged_userns_clone") as f:
            return f.read().strip() != "0"
    except FileNotFoundError:
        return True


def _bwrap_runs(bwrap: str, as_root: bool) -> bool:
    argv = [bwrap, "--unshare-all", "--unshare-user", "--disable-userns", "--die-with-parent",
            "--new-session", "--cap-drop", "ALL", "--ro-bind", "/usr", "/usr",
            "--symlink", "usr/bin", "/bin", "--symlink", "usr/lib", "/lib",
            "--symlink", "usr/lib64", "/lib64", "--proc", "/proc", "--dev", "/dev",
            "--", "/bin/true"]  # fmt: skip
    if as_root:
        argv = ["/usr/bin/setpriv", f"--reuid={PROBE_UID}", f"--regid={PROBE_UID}",
                "--clear-groups", "--", *argv]  # fmt: skip
    try:
        done = subprocess.run(argv, capture_output=True, timeout=10, env={"PATH": "/usr/bin:/bin"})
    except (OSError, subprocess.TimeoutExpired) as exc:
        log.info("bwrap probe failed: %s", exc)
        return False
    if done.returncode != 0:
        log.info("bwrap probe exited %s: %s", done.returncode, done.stderr[-300:])
    return done.returncode == 0


def _seccomp_ok() -> bool:
    from .process_backend.seccomp import filter_bpf

    return filter_bpf() is not None


def _probe_cgroups() -> tuple[str | None, tuple[str, ...], bool, bool, bool]:
    driver = detect_driver()
    if driver is None:
        return None, (), False, False, False
    desc = driver.describe()
    controllers = tuple(sorted(k for k in desc if k in ("memory", "pids", "cpu", "freezer")))
    try:
        group = driver.create(f"ash-probe-{os.getpid()}-{os.urandom(3).hex()}",
                              CgroupLimits(memory_bytes=64 << 20, pids=16, cpu=0.5))  # fmt: skip
    except OSError as exc:
        log.info("cgroup probe failed: %s", exc)
        return driver.version, controllers, False, False, False
    try:
        group.freeze()
        frozen = group.is_frozen()
        group.thaw()
    except OSError:
        frozen = False
    files = [str(p) for p in group.procs_files()]
    kill = any(os.path.exists(os.path.join(os.path.dirname(f), "cgroup.kill")) for f in files)
    group.remove()
    if driver.version == "v2":
        controllers = ("cpu", "memory", "pids")
    return driver.version, controllers, True, frozen, kill


@functools.cache
def probe() -> Probe:
    """Check this host once; cached for the life of the process."""
    root = os.geteuid() == 0
    bwrap = shutil.which("bwrap", path="/usr/bin:/bin:/usr/local/bin")
    userns = _userns_allowed()
    works = bool(bwrap) and userns and _bwrap_runs(bwrap, root)  # type: ignore[arg-type]
    version, controllers, limits, freeze, kill = _probe_cgroups()
    problems = []
    if not root:
        problems.append("the service is not root, so it cannot run each sandbox as its own uid")
    if not bwrap:
        problems.append("bubblewrap (bwrap) is not installed")
    elif not userns:
        problems.append("unprivileged user namespaces are disabled")
    elif not works:
        problems.append("bwrap cannot create a sandbox as an unprivileged uid")
    if not shutil.which("setpriv", path="/usr/bin:/bin"):
        problems.append("setpriv (util-linux) is missing")
    if not limits:
        problems.append("no writable cgroup hierarchy with memory and pids controllers")
    elif not freeze:
        problems.append("cgroups cannot freeze (no v1 freezer or v2 cgroup.freeze)")
    return Probe(
        root=root,
        bwrap=bwrap,
        userns=userns,
        bwrap_works=works,
        cgroup_version=version,
        cgroup_controllers=controllers,
        cgroup_limits=limits,
        cgroup_freeze=freeze,
        cgroup_kill=kill,
        seccomp=_seccomp_ok(),
        problems=tuple(problems),
    )


def choose_isolation(required: str | None) -> Isolation:
    """None/"auto": strict if possible; "strict": strict or IsolationUnavailable; "degraded"."""
    wanted = (required or "auto").strip().lower()
    if wanted in ("degraded", "best-effort"):
        return Isolation.DEGRADED
    if wanted not in ("auto", "strict"):
        raise ValueError(f"unknown isolation mode {required!r} (strict, degraded or auto)")
    found = probe()
    if found.strict_available:
        return Isolation.STRICT
    if wanted == "strict":
        raise IsolationUnavailable(
            "strict sandbox isolation is required but unavailable: " + "; ".join(found.problems)
        )
    log.warning(
        "strict sandbox isolation unavailable (%s); using degraded", "; ".join(found.problems)
    )
    return Isolation.DEGRADED
