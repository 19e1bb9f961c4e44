"""ProcessBackend: sandboxes made of bubblewrap + a per-sandbox uid + cgroups.

Strict mode isolates with user/mount/pid/net/ipc/uts namespaces, seccomp and cgroup
limits. Degraded mode (no bwrap or no user namespaces) keeps the uid separation, rlimits,
process group and cgroups if writable, and says loudly that it is not a security boundary.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import re
import secrets
import shutil
import signal
import sysconfig
import time
from collections.abc import Mapping, Sequence
from pathlib import Path

from ..base import (
    AGENT_PATH,
    RUNTIME_PATH,
    WORKSPACE_PATH,
    ExecResult,
    Isolation,
    SandboxError,
    SandboxGone,
    SandboxSpec,
    compile_runtime_code,
)
from ..cgroups import CgroupDriver, CgroupLimits, detect_driver
from ..probe import choose_isolation
from . import archive, launch, seccomp
from .ops import StateOps
from .proc import (
    STREAM_LIMIT,
    ProcessHandle,
    path_is_traversable,
    read_capped,
)
from .sandbox import SANDBOX_ID_RE, ProcessSandbox
from .uids import DEFAULT_LOCK_DIR, UidAllocator

log = logging.getLogger(__name__)

DEGRADED_WARNING = (
    "SANDBOX ISOLATION IS DEGRADED: no filesystem, pid or network isolation; sandboxed code "
    "runs as a separate uid with rlimits only and can read anything that uid can read and "
    "reach the network. Set ASH_ISOLATION=strict to refuse to run like this."
)
KILL_TIMEOUT = 5.0
ORPHAN_RE = re.compile(r"^ash-(\d+)-")
OUTPUT_GRACE = 0.5  # after exit, how long to wait for pipes held open by orphans


class ProcessBackend(StateOps):
    name = "process"

    def __init__(
        self,
        *,
        base_dir: Path,
        uid_range: tuple[int, int] = (300000, 365535),
        strict: bool | None = None,
        cgroups: bool | None = None,
        uid_lock_dir: Path = DEFAULT_LOCK_DIR,
        disk_check_interval: float = 15.0,
        seccomp_filter: bool = True,
    ) -> None:
        """`strict=None` chooses by probe; `cgroups=False` forces the no-cgroup fallback."""
        required = None if strict is None else ("strict" if strict else "degraded")
        self.isolation = choose_isolation(required)
        self.strict = self.isolation is Isolation.STRICT
        self.base_dir = Path(base_dir)
        self.base_dir.mkdir(parents=True, exist_ok=True)
        # Sandbox uids must pass through base_dir (to /etc files) but not list it.
        self.base_dir.chmod(0o711)
        self.state_root = self.base_dir / "state"
        self.state_root.mkdir(mode=0o700, exist_ok=True)
        self.etc_dir = self.base_dir / "etc"
        launch.write_etc(self.etc_dir)
        self.runtime = self._prepare_runtime()
        # Only root can hand each sandbox its own uid; otherwise (degraded only, since the
        # probe demands root for strict) sandboxes run as the service's own uid.
        self.switch_uid = os.geteuid() == 0
        self.uids = UidAllocator(uid_range, uid_lock_dir)
        self.driver: CgroupDriver | None = detect_driver() if cgroups is not False else None
        if self.strict and self.driver is None:
            raise SandboxError("strict isolation needs writable cgroups")
        self.bpf = seccomp.filter_bpf() if (self.strict and seccomp_filter) else None
        self.disk_check_interval = disk_check_interval
        self._sandboxes: dict[str, ProcessSandbox] = {}
        self._guard: asyncio.Task[None] | None = None
        if self.driver is not None:
            self.sweep_orphans()
        if not self.strict:
            log.warning(DEGRADED_WARNING)
        log.info(
            "process sandboxes: isolation=%s cgroups=%s seccomp=%s",
            self.isolation.value,
            self.driver.describe() if self.driver else None,
            self.bpf is not None,
        )

    def sweep_orphans(self) -> int:
        """Remove empty sandbox cgroups whose owning service process is gone.

        Sandboxes die with their service (--die-with-parent / pdeathsig), so leftovers are
        empty; a group that still has tasks is left alone, as it may not be ours at all.
        """
        assert self.driver is not None
        removed = 0
        for name in self.driver.names():
            match = ORPHAN_RE.match(name)
            if not match or Path(f"/proc/{match.group(1)}").exists():
                continue
            group = self.driver.attach(name)
            with contextlib.suppress(OSError):
                if group.is_empty() and group.remove():
                    removed += 1
        if removed:
            log.warning("removed %d sandbox cgroups left by dead services", removed)
        return removed

    def _prepare_runtime(self) -> launch.RuntimeCode:
        import ash

        ash_pkg = Path(ash.__file__).resolve().parent
        compile_runtime_code()
        src = self.base_dir / "runtime-src"
        src.mkdir(mode=0o755, exist_ok=True)
        link = src / "ash"
        if not link.is_symlink() or os.readlink(link) != str(ash_pkg):
            tmp = src / f".ash-{secrets.token_hex(4)}"
            tmp.symlink_to(ash_pkg)
            tmp.replace(link)
        site = Path(sysconfig.get_paths()["purelib"]).resolve()
        return launch.RuntimeCode(ash_package=ash_pkg, site_packages=site, degraded_src=src)

    # ---- lifecycle -------------------------------------------------------------------

    async def create(self, spec: SandboxSpec) -> ProcessSandbox:
        if not SANDBOX_ID_RE.match(spec.sandbox_id):
            raise SandboxError(f"invalid sandbox id {spec.sandbox_id!r}")
        if spec.sandbox_id in self._sandboxes:
            raise SandboxError(f"sandbox {spec.sandbox_id} already exists")
        ws = Path(spec.workspace)
        uid = self.uids.acquire() if self.switch_uid else os.getuid()
        group = None
        try:
            ws.mkdir(mode=0o700, parents=True, exist_ok=True)
            if self.switch_uid:
                blocked = path_is_traversable(ws)
                if blocked:
                    raise SandboxError(f"sandbox uids cannot traverse {blocked} (needs o+x)")
                archive.chown_tree_if_needed(ws, uid, uid)
            ws.chmod(0o700)
            if self.driver is not None:
                # The owner's pid in the name lets a later service sweep our leftovers
                # should we die without cleaning up (see sweep_orphans).
                name = f"ash-{os.getpid()}-{spec.sandbox_id}-{secrets.token_hex(4)}"
                lim = spec.limits
                group = self.driver.create(name, CgroupLimits(lim.memory_bytes, lim.pids, lim.cpu))
            state = self.state_root / f"{spec.sandbox_id}-{uid}"
            state.mkdir(mode=0o700, exist_ok=True)
        except BaseException:
            if group is not None:
                group.remove()
            if self.switch_uid:
                self.uids.release(uid)
            raise
        sb = ProcessSandbox(spec.sandbox_id, spec, uid, state, group, own_uid=self.switch_uid)
        self._sandboxes[sb.id] = sb
        self._ensure_guard()
        return sb

    async def destroy(self, sb: ProcessSandbox, *, keep_workspace: bool = True) -> None:  # type: ignore[override]
        if sb.destroyed and self._sandboxes.get(sb.id) is not sb:
            return
        sb.destroyed = True
        await self._kill_everything(sb)
        if sb.group is not None:
            deadline = time.monotonic() + KILL_TIMEOUT
            while not sb.group.remove() and time.monotonic() < deadline:
                await asyncio.sleep(0.01)
        # Hand the uid back only when nothing of it is left running anywhere.
        if sb.own_uid and sb.host_pids():
            log.error("sandbox %s: processes of uid %s survived; uid retired", sb.id, sb.host_uid)
        elif sb.own_uid:
            self.uids.release(sb.host_uid)
        shutil.rmtree(sb.state_dir, ignore_errors=True)
        if not keep_workspace:
            await asyncio.to_thread(shutil.rmtree, sb.spec.workspace, True)
        self._sandboxes.pop(sb.id, None)
        if not self._sandboxes and self._guard is not None:
            with contextlib.suppress(RuntimeError):  # its event loop may be closed already
                self._guard.cancel()
            self._guard = None

    async def _kill_everything(self, sb: ProcessSandbox) -> None:
        deadline = time.monotonic() + KILL_TIMEOUT
        for proc in list(sb.procs):
            proc.signal(signal.SIGKILL)
        while time.monotonic() < deadline:
            if sb.group is not None:
                sb.group.kill_all()
            sb.signal_all(signal.SIGKILL)
            if (sb.group is None or sb.group.is_empty()) and not sb.host_pids():
                break
            await asyncio.sleep(0.005)
        if sb.group is not None and sb.paused:
            sb.group.thaw()
        sb.paused = False
        for proc in list(sb.procs):
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(proc.wait(), KILL_TIMEOUT)

    async def alive(self, sb: ProcessSandbox) -> bool:  # type: ignore[override]
        if sb.destroyed or sb.breach is not None:
            return False
        if sb.group is not None:
            return all(f.parent.is_dir() for f in sb.group.procs_files())
        return Path(sb.spec.workspace).is_dir()

    def _live(self, sb: ProcessSandbox) -> None:
        if sb.destroyed:
            raise SandboxGone(f"sandbox {sb.id} was destroyed")
        if sb.breach is not None:
            raise SandboxGone(f"sandbox {sb.id} was killed: {sb.breach} quota exceeded")

    # ---- processes -------------------------------------------------------------------

    def _command(
        self, sb: ProcessSandbox, argv: Sequence[str], env: Mapping[str, str] | None, cwd: str
    ) -> tuple[list[str], dict[str, str], str | None, int | None]:
        """argv for Popen, its env and cwd, and the seccomp fd to pass (caller closes it)."""
        spec = sb.spec
        files = sb.group.procs_files() if sb.group is not None else []
        rl = launch.rlimits_for(
            spec.limits, strict=self.strict, cgroups=sb.group is not None, own_uid=sb.own_uid
        )
        head = launch.wrapper_argv(files, rl) + self.become(sb, pdeathsig=not self.strict)
        if not self.strict:
            ws = str(spec.workspace)
            pythonpath = f"{self.runtime.degraded_src}:{self.runtime.site_packages}"
            full_env = launch.sandbox_env(spec, env, workspace=ws, pythonpath=pythonpath)
            return head + list(argv), full_env, self._host_path(spec, cwd), None
        full_env = launch.sandbox_env(
            spec,
            env,
            workspace=WORKSPACE_PATH,
            pythonpath=f"{RUNTIME_PATH}/src:{RUNTIME_PATH}/site",
        )
        fd = seccomp.bpf_fd(self.bpf) if self.bpf is not None else None
        bw = launch.bwrap_argv(
            spec=spec,
            etc_dir=self.etc_dir,
            runtime=self.runtime,
            env=full_env,
            cwd=cwd,
            seccomp_fd=fd,
        )
        return head + bw + list(argv), {"PATH": "/usr/bin:/bin"}, None, fd

    def become(self, sb: ProcessSandbox, *, pdeathsig: bool) -> list[str]:
        """argv prefix that switches to the sandbox uid (nothing when running as ourselves)."""
        return launch.setpriv_argv(sb.host_uid, pdeathsig=pdeathsig) if sb.own_uid else []

    @staticmethod
    def _host_path(spec: SandboxSpec, path: str) -> str:
        """Degraded mode has no mount namespace: map sandbox paths onto host paths."""
        for inside, host in ((WORKSPACE_PATH, spec.workspace), (AGENT_PATH, spec.agent_dir)):
            if host is not None and (path == inside or path.startswith(inside + "/")):
                return str(host) + path[len(inside) :]
        return path

    async def _start(
        self,
        sb: ProcessSandbox,
        argv: Sequence[str],
        env: Mapping[str, str] | None,
        cwd: str,
        stdin: int,
    ) -> ProcessHandle:
        self._live(sb)
        if sb.paused:
            raise SandboxError(f"sandbox {sb.id} is paused")
        if not argv:
            raise ValueError("empty argv")
        cmd, popen_env, popen_cwd, fd = self._command(sb, argv, env, cwd)
        try:
            proc = await asyncio.create_subprocess_exec(
                *cmd,
                stdin=stdin,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.PIPE,
                env=popen_env,
                cwd=popen_cwd,
                pass_fds=(fd,) if fd is not None else (),
                start_new_session=True,
                limit=STREAM_LIMIT,
            )
        finally:
            if fd is not None:
                os.close(fd)
        handle: ProcessHandle
        handle = ProcessHandle(
            proc, own_group=not self.strict, on_exit=lambda: sb.procs.discard(handle)
        )
        sb.procs.add(handle)
        return handle

    async def spawn(
        self, sb: ProcessSandbox, argv: Sequence[str], *, env: Mapping[str, str] | None = None
    ) -> ProcessHandle:  # type: ignore[override]
        return await self._start(sb, argv, env, WORKSPACE_PATH, asyncio.subprocess.PIPE)

    async def exec(  # type: ignore[override]
        self,
        sb: ProcessSandbox,
        argv: Sequence[str],
        *,
        timeout: float,
        cwd: str = WORKSPACE_PATH,
        env: Mapping[str, str] | None = None,
        stdin: bytes | None = None,
        max_output: int = 10 << 20,
    ) -> ExecResult:
        oom_before = sb.group.oom_kills() if sb.group is not None else 0
        started = time.monotonic()
        pipe = asyncio.subprocess.PIPE if stdin is not None else asyncio.subprocess.DEVNULL
        handle = await self._start(sb, argv, env, cwd, pipe)
        out, err = bytearray(), bytearray()
        out_task = asyncio.ensure_future(read_capped(handle.stdout, max_output, out))
        err_task = asyncio.ensure_future(read_capped(handle.stderr, max_output, err))
        feed_task = asyncio.ensure_future(handle.feed(stdin)) if stdin is not None else None
        timed_out = False
        try:
            await asyncio.wait_for(handle.exited(), timeout)
        except TimeoutError:
            timed_out = True
            handle.signal(signal.SIGKILL)
        except BaseException:
            handle.signal(signal.SIGKILL)
            raise
        finally:
            code = await handle.wait()
            if feed_task is not None:
                feed_task.cancel()
        # Orphans in degraded mode may hold the pipes open; do not wait for them.
        _, pending = await asyncio.wait({out_task, err_task}, timeout=OUTPUT_GRACE)
        for task in pending:
            task.cancel()
        oom = sb.group is not None and sb.group.oom_kills() > oom_before
        return ExecResult(
            exit_code=code,
            stdout=bytes(out),
            stderr=bytes(err),
            timed_out=timed_out,
            oom_killed=oom,
            duration_s=time.monotonic() - started,
        )
