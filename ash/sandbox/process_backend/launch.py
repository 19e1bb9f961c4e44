"""Command lines that start a process inside a sandbox.

Every launch goes through a tiny `sh` wrapper run as root: it moves itself into the
sandbox's cgroups and sets rlimits, then execs `setpriv` to become the sandbox uid, which
execs `bwrap` (strict) or the program itself (degraded). Nothing runs in the forked child
before exec (no `preexec_fn`, which is unsafe in threaded servers), and the process is in
its cgroups before the first instruction of sandboxed code.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from ..base import AGENT_PATH, PROXY_DIR_PATH, RUNTIME_PATH, WORKSPACE_PATH, Limits, SandboxSpec

SANDBOX_UID = 1000  # the uid/gid the agent sees inside the strict sandbox
SANDBOX_PATH = "/usr/local/bin:/usr/bin:/bin"
CGROUP_JOIN_FAILED = 120
RLIMIT_FAILED = 121

# $1: cgroup.procs files; $2-$6: nofile, nproc, fsize (512-byte blocks), cpu s, vmem KiB
# (0 = leave that limit alone).
WRAPPER = """\
for f in $1; do echo $$ > "$f" || exit 120; done
ulimit -c 0 && ulimit -n "$2" && ulimit -f "$4" || exit 121
[ "$3" = 0 ] || ulimit -p "$3" || exit 121
[ "$5" = 0 ] || ulimit -t "$5" || exit 121
[ "$6" = 0 ] || ulimit -v "$6" || exit 121
shift 6
exec "$@"
"""

# Host files the strict sandbox may read besides /usr; missing ones are skipped.
HOST_ETC_FILES = ("ld.so.cache", "alternatives", "ssl", "ca-certificates", "localtime",
                  "python3", "python3.11", "mime.types")  # fmt: skip


@dataclass(frozen=True)
class RuntimeCode:
    """Host paths of the agent runtime code, bound read-only under RUNTIME_PATH."""

    ash_package: Path  # the host's `ash/` package directory
    site_packages: Path  # the service's purelib
    degraded_src: Path  # a directory holding an `ash` symlink, for PYTHONPATH without bwrap


@dataclass(frozen=True)
class Rlimits:
    nofile: int
    nproc: int  # 0 = unchanged (when sandboxes share the service's uid)
    fsize: int  # bytes
    cpu_seconds: int = 0  # 0 = unlimited
    address_space: int = 0  # bytes, 0 = unlimited


def rlimits_for(limits: Limits, *, strict: bool, cgroups: bool, own_uid: bool = True) -> Rlimits:
    # NPROC counts per real uid, so it only means something because each sandbox has its
    # own uid; a little headroom over pids.max covers bwrap's own two processes.
    nproc = limits.pids + 8 if own_uid else 0
    if strict:
        return Rlimits(nofile=limits.nofile, nproc=nproc, fsize=limits.disk_bytes)
    # Degraded: a per-process CPU-time backstop (one CPU-hour) and, without a memory
    # cgroup, an address-space cap generous enough for Node (it reserves big ranges).
    return Rlimits(
        nofile=limits.nofile,
        nproc=nproc,
        fsize=limits.disk_bytes,
        cpu_seconds=3600,
        address_space=0 if cgroups else max(limits.memory_bytes, 4 << 30),
    )


def wrapper_argv(cgroup_files: Sequence[Path], rl: Rlimits) -> list[str]:
    return [
        "/bin/sh", "-c", WRAPPER, "ash-sandbox",
        " ".join(str(f) for f in cgroup_files),
        str(rl.nofile), str(rl.nproc), str(max(1, rl.fsize // 512)),
        str(rl.cpu_seconds), str(rl.address_space // 1024),
    ]  # fmt: skip


def setpriv_argv(uid: int, *, pdeathsig: bool) -> list[str]:
    argv = [
        "/usr/bin/setpriv", f"--reuid={uid}", f"--regid={uid}", "--clear-groups",
        "--inh-caps=-all", "--bounding-set=-all", "--no-new-privs",
    ]  # fmt: skip
    if pdeathsig:
        argv.append("--pdeathsig=KILL")
    return [*argv, "--"]


def sandbox_env(
    spec: SandboxSpec,
    extra: Mapping[str, str] | None,
    *,
    workspace: str,
    pythonpath: str,
) -> dict[str, str]:
    """The allowlisted environment: nothing from the host but LANG/TERM, then spec, then call."""
    env = {
        "PATH": SANDBOX_PATH,
        "HOME": workspace,
        "LANG": os.environ.get("LANG", "C.UTF-8"),
        "PYTHONPATH": pythonpath,
        "ASH_SANDBOX_ID": spec.sandbox_id,
        "ASH_WORKSPACE_DIR": workspace,
    }
    if "TERM" in os.environ:
        env["TERM"] = os.environ["TERM"]
    env.update(spec.env)
    if extra:
        env.update(extra)
    return env


def bwrap_argv(
    *,
    spec: SandboxSpec,
    etc_dir: Path,
    runtime: RuntimeCode,
    env: Mapping[str, str],
    cwd: str,
    seccomp_fd: int | None,
) -> list[str]:
    a = [
        "/usr/bin/bwrap",
        "--unshare-all", "--unshare-user", "--disable-userns",
        "--die-with-parent", "--new-session", "--cap-drop", "ALL",
        "--uid", str(SANDBOX_UID), "--gid", str(SANDBOX_UID), "--hostname", "sandbox",
        "--ro-bind", "/usr", "/usr",
    ]  # fmt: skip
    for name in ("bin", "lib", "lib64", "sbin"):
        if os.path.islink(f"/{name}"):
            a += ["--symlink", os.readlink(f"/{name}"), f"/{name}"]
    for name in ("passwd", "group", "hosts", "nsswitch.conf"):
        a += ["--ro-bind", str(etc_dir / name), f"/etc/{name}"]
    for name in HOST_ETC_FILES:
        a += ["--ro-bind-try", f"/etc/{name}", f"/etc/{name}"]
    a += ["--proc", "/proc", "--dev", "/dev"]
    a += ["--perms", "1777", "--size", str(spec.limits.tmp_bytes), "--tmpfs", "/tmp"]
    a += ["--bind", str(spec.workspace), WORKSPACE_PATH]
    if spec.agent_dir is not None:
        a += ["--ro-bind", str(spec.agent_dir), AGENT_PATH]
    if spec.proxy_socket_dir is not None:
        a += ["--ro-bind", str(spec.proxy_socket_dir), PROXY_DIR_PATH]
    a += ["--ro-bind", str(runtime.ash_package), f"{RUNTIME_PATH}/src/ash"]
    a += ["--ro-bind", str(runtime.site_packages), f"{RUNTIME_PATH}/site"]
    a += ["--remount-ro", "/", "--chdir", cwd, "--clearenv"]
    for key, value in env.items():
        a += ["--setenv", key, value]
    if seccomp_fd is not None:
        a += ["--seccomp", str(seccomp_fd)]
    return [*a, "--"]


def write_etc(etc_dir: Path) -> None:
    """Synthesized /etc files: the sandbox knows only its own user, not the host's."""
    etc_dir.mkdir(mode=0o755, parents=True, exist_ok=True)
    files = {
        "passwd": "root:x:0:0:root:/root:/usr/sbin/nologin\n"
        f"ash:x:{SANDBOX_UID}:{SANDBOX_UID}:ash sandbox:{WORKSPACE_PATH}:/bin/sh\n"
        "nobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin\n",
        "group": f"root:x:0:\nash:x:{SANDBOX_UID}:\nnogroup:x:65534:\n",
        "hosts": "127.0.0.1\tlocalhost sandbox\n::1\tlocalhost ip6-localhost\n",
        "nsswitch.conf": "passwd: files\ngroup: files\nhosts: files\n",
    }
    for name, text in files.items():
        path = etc_dir / name
        tmp = path.with_suffix(".tmp")
        tmp.write_text(text)
        tmp.chmod(0o644)
        tmp.replace(path)
