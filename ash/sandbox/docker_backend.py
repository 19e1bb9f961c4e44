"""Docker sandbox backend: one hardened container per sandbox on a local Docker engine.

The container's main process is `sleep infinity` under the engine's init; the agent runtime and
commands run as execs in it. The agent is uid 1000 (`agent` in the image) both inside and, for
the bind-mounted workspace, on the host: `create` hands the workspace to 1000:1000. The runtime
code and its Python dependencies are bind-mounted read-only from the host at RUNTIME_PATH.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import shutil
import signal
import time
from collections.abc import Mapping, Sequence
from functools import partial
from pathlib import Path

import docker
import docker.errors
from docker.models.containers import Container
from docker.types import Mount, Ulimit

from ash.sandbox.base import (
    AGENT_PATH,
    PROXY_DIR_PATH,
    WORKSPACE_PATH,
    ExecResult,
    Isolation,
    SandboxError,
    SandboxGone,
    SandboxSpec,
    compile_runtime_code,
)
from ash.sandbox.docker_cgroup import ContainerCgroups, kill_subtree
from ash.sandbox.docker_exec import Capture, DockerProcess, feed_stdin, open_exec_stream, pump
from ash.sandbox.docker_sandbox import (
    AGENT_GID,
    AGENT_UID,
    BASE_ENV,
    DockerSandbox,
    WorkspaceOps,
    prepare_workspace,
    runtime_mounts,
)

__all__ = ["BASE_ENV", "SANDBOX_LABEL", "DockerBackend", "DockerSandbox", "runtime_mounts"]

SANDBOX_LABEL = "ash.sandbox"
CONTAINER_PREFIX = "ash-"
_ID_RE = re.compile(r"^[A-Za-z0-9_-]{1,64}$")


def _translate(e: docker.errors.DockerException, what: str) -> SandboxError:
    if isinstance(e, docker.errors.NotFound):
        return SandboxGone(f"{what}: {e.explanation or e}")
    text = str(getattr(e, "explanation", None) or e)
    if "is not running" in text:
        return SandboxGone(f"{what}: {text}")
    return SandboxError(f"{what}: {text}")


class DockerBackend(WorkspaceOps):
    """SandboxBackend on a local engine (`unix://` DOCKER_HOST); see the module docstring."""

    name = "docker"
    isolation = Isolation.STRICT

    def __init__(
        self,
        *,
        base_dir: Path,
        image: str,
        docker_host: str | None = None,
        disk_check_interval: float = 15.0,
    ) -> None:
        host = docker_host or os.environ.get("DOCKER_HOST") or "unix:///var/run/docker.sock"
        if not host.startswith("unix://"):
            # Exec streams, kills and stats use the engine's socket and host /proc directly.
            raise SandboxError(f"DockerBackend needs a local unix:// engine, got {host}")
        self.base_dir = Path(base_dir)  # spool space for restores
        self.image = image
        self.disk_check_interval = disk_check_interval
        self._socket = host.removeprefix("unix://")
        try:
            self._client = docker.DockerClient(base_url=host, version="auto", timeout=120)
        except docker.errors.DockerException as e:
            raise SandboxError(f"no Docker engine at {host}: {e}") from e
        self._api_version = self._client.api.api_version
        compile_runtime_code()  # used where the image's Python is the same minor version as ours
        self._sandboxes: dict[str, DockerSandbox] = {}
        self._guard: asyncio.Task[None] | None = None
        self._watchers: set[asyncio.Task[None]] = set()

    async def _call(self, what: str, fn, *args, **kwargs):  # type: ignore[no-untyped-def]
        """Run a blocking SDK call in a thread, mapping engine errors to sandbox errors."""
        try:
            return await asyncio.to_thread(fn, *args, **kwargs)
        except docker.errors.DockerException as e:
            raise _translate(e, what) from e

    # ---- lifecycle --------------------------------------------------------------------

    async def create(self, spec: SandboxSpec) -> DockerSandbox:
        if not _ID_RE.match(spec.sandbox_id):
            raise SandboxError(f"invalid sandbox id {spec.sandbox_id!r}")
        await asyncio.to_thread(prepare_workspace, Path(spec.workspace))
        try:
            container = await self._call(f"create {spec.sandbox_id}", self._run, spec)
        except SandboxError:
            # run() = create + start: a failed start leaves a created container behind.
            with contextlib.suppress(SandboxError):
                name = CONTAINER_PREFIX + spec.sandbox_id
                await self._call("cleanup", self._client.api.remove_container, name, force=True)
            raise
        pid = int(container.attrs["State"]["Pid"])
        groups = await asyncio.to_thread(_cgroups_or_none, pid)
        sb = DockerSandbox(spec.sandbox_id, spec, container.id, pid, groups)
        self._sandboxes[sb.id] = sb
        self._ensure_guard()
        return sb

    def _run(self, spec: SandboxSpec) -> Container:
        lim = spec.limits
        mounts = [Mount(WORKSPACE_PATH, str(spec.workspace), type="bind", read_only=False)]
        if spec.agent_dir is not None:
            mounts.append(Mount(AGENT_PATH, str(spec.agent_dir), type="bind", read_only=True))
        if spec.proxy_socket_dir is not None:
            mounts.append(
                Mount(PROXY_DIR_PATH, str(spec.proxy_socket_dir), type="bind", read_only=True)
            )
        for host_dir, target in runtime_mounts():
            mounts.append(Mount(target, str(host_dir), type="bind", read_only=True))
        container = self._client.containers.run(
            self.image,
            ["sleep", "infinity"],
            detach=True,
            name=CONTAINER_PREFIX + spec.sandbox_id,
            hostname="sandbox",
            init=True,  # reaps orphans and makes stop/kill immediate
            network_mode="none",  # explicit: the only way out is the proxy socket
            user=f"{AGENT_UID}:{AGENT_GID}",
            cap_drop=["ALL"],
            security_opt=["no-new-privileges"],
            read_only=True,
            tmpfs={"/tmp": f"size={lim.tmp_bytes},nosuid,nodev"},
            mem_limit=lim.memory_bytes,
            memswap_limit=lim.memory_bytes,  # no swap on top of the memory limit
            pids_limit=lim.pids,
            nano_cpus=int(lim.cpu * 1e9),
            ulimits=[
                Ulimit(name="nofile", soft=lim.nofile, hard=lim.nofile),
                # One file can never exceed the quota; the guard checks the whole tree.
                Ulimit(name="fsize", soft=lim.disk_bytes, hard=lim.disk_bytes),
            ],
            oom_score_adj=500,  # under host memory pressure, sandboxes go before the server
            mounts=mounts,
            working_dir=WORKSPACE_PATH,
            environment={**BASE_ENV, **spec.env},
            labels={**spec.labels, SANDBOX_LABEL: spec.sandbox_id},
        )
        container.reload()  # the create answer has no State.Pid
        return container

    async def destroy(self, sb: DockerSandbox, *, keep_workspace: bool = True) -> None:
        self._sandboxes.pop(sb.id, None)
        with contextlib.suppress(SandboxGone):
            await self._call(
                f"destroy {sb.id}", self._client.api.remove_container, sb.container_id, force=True
            )
        if not keep_workspace:
            await asyncio.to_thread(shutil.rmtree, sb.spec.workspace, ignore_errors=True)

    async def alive(self, sb: DockerSandbox) -> bool:
        try:
            info = await self._inspect(sb)
        except SandboxGone:
            return False
        return info["State"]["Status"] in ("running", "paused")

    async def sweep_orphans(self, keep: set[str]) -> list[str]:
        """Remove every Ash sandbox container whose sandbox id is not in `keep`; their ids."""
        found = await self._call(
            "list sandboxes",
            self._client.api.containers,
            all=True,
            filters={"label": SANDBOX_LABEL},
        )
        removed = []
        for c in found:
            sandbox_id = c["Labels"].get(SANDBOX_LABEL, "")
            if sandbox_id in keep:
                continue
            with contextlib.suppress(SandboxGone):
                await self._call("sweep", self._client.api.remove_container, c["Id"], force=True)
            removed.append(sandbox_id)
        return removed

    async def pause(self, sb: DockerSandbox) -> None:
        async with sb.freezer_transition():
            if await self._status(sb) != "paused":
                await self._call(f"pause {sb.id}", self._client.api.pause, sb.container_id)

    async def resume(self, sb: DockerSandbox) -> None:
        async with sb.freezer_transition():
            if await self._status(sb) == "paused":
                await self._call(f"resume {sb.id}", self._client.api.unpause, sb.container_id)

    async def _inspect(self, sb: DockerSandbox) -> dict:  # type: ignore[type-arg]
        return await self._call(
            f"inspect {sb.id}", self._client.api.inspect_container, sb.container_id
        )

    async def _status(self, sb: DockerSandbox) -> str:
        info = await self._inspect(sb)
        return str(info["State"]["Status"])

    # ---- processes --------------------------------------------------------------------

    async def _exec_create(
        self,
        sb: DockerSandbox,
        argv: Sequence[str],
        env: Mapping[str, str] | None,
        cwd: str,
        stdin: bool,
    ) -> str:
        if not argv:
            raise SandboxError("empty argv")
        if sb.breach is not None:
            raise SandboxGone(f"sandbox {sb.id} was killed: {sb.breach} quota exceeded")
        created = await self._call(
            f"exec in {sb.id}",
            self._client.api.exec_create,
            sb.container_id,
            list(argv),
            stdin=stdin,
            stdout=True,
            stderr=True,
            tty=False,
            environment=dict(env or {}),
            workdir=cwd,
            user=f"{AGENT_UID}:{AGENT_GID}",
        )
        return str(created["Id"])

    async def _start(
        self,
        sb: DockerSandbox,
        argv: Sequence[str],
        env: Mapping[str, str] | None,
        cwd: str,
        stdin: bool,
    ) -> tuple[str, asyncio.StreamReader, asyncio.StreamWriter]:
        """Create and start an attached exec; its hijacked connection's reader and writer."""
        await sb.begin_start()
        try:
            exec_id = await self._exec_create(sb, argv, env, cwd, stdin)
            reader, writer = await open_exec_stream(self._socket, self._api_version, exec_id)
        except BaseException:
            await sb.end_start()
            raise
        # The engine starts the process after answering the upgrade; until it exists no freezer
        # transition may happen (see DockerSandbox.gate). Watched in the background, so that
        # the caller can already talk to the process.
        task = asyncio.create_task(self._release_when_started(sb, exec_id))
        self._watchers.add(task)
        task.add_done_callback(self._watchers.discard)
        return exec_id, reader, writer

    async def _release_when_started(self, sb: DockerSandbox, exec_id: str) -> None:
        try:
            deadline = time.monotonic() + 30
            delay = 0.001
            while time.monotonic() < deadline:
                info = await self._call("exec inspect", self._client.api.exec_inspect, exec_id)
                # dockerd sets Running before runc has started the process; Pid after.
                if info["Pid"] or info["ExitCode"] is not None:
                    return
                await asyncio.sleep(delay)
                delay = min(delay * 2, 0.05)
        except SandboxError:
            return  # the exec or the container is gone
        finally:
            await sb.end_start()

    async def _exec_status(self, exec_id: str) -> tuple[bool, int]:
        try:
            info = await self._call("exec inspect", self._client.api.exec_inspect, exec_id)
        except SandboxGone:
            return False, -9  # the container (and with it the exec) was removed
        return bool(info["Running"]), int(info["ExitCode"] or 0)

    async def _kill_exec(self, sb: DockerSandbox, exec_id: str) -> bool:
        """SIGKILL an exec'd process and everything it started, with the container frozen.

        False if the sandbox is paused: the kill then lands when it is resumed."""
        async with sb.freezer_transition():  # also waits until the process has started
            try:
                info = await self._call("exec inspect", self._client.api.exec_inspect, exec_id)
            except SandboxGone:
                return True
            if not info["Running"] or not info["Pid"]:
                return True
            if sb.cgroups is None:  # no cgroup view of this container: the process alone
                with contextlib.suppress(ProcessLookupError):
                    os.kill(int(info["Pid"]), signal.SIGKILL)
                return True
            # The freeze is done on the cgroup directly: a docker pause/unpause around an exec's
            # death leaves containerd's shim with a wrong paused/running state for a while.
            status = await self._status(sb)
            await asyncio.to_thread(kill_subtree, sb.cgroups, int(info["Pid"]))
            if status == "paused":
                return False
        return True

    async def spawn(
        self, sb: DockerSandbox, argv: Sequence[str], *, env: Mapping[str, str] | None = None
    ) -> DockerProcess:
        exec_id, reader, writer = await self._start(sb, argv, env, WORKSPACE_PATH, stdin=True)
        return DockerProcess(
            reader,
            writer,
            status=partial(self._exec_status, exec_id),
            kill_tree=partial(self._kill_exec, sb, exec_id),
        )

    async def exec(
        self,
        sb: DockerSandbox,
        argv: Sequence[str],
        *,
        timeout: float,
        cwd: str = WORKSPACE_PATH,
        env: Mapping[str, str] | None = None,
        stdin: bytes | None = None,
        max_output: int = 10 << 20,
    ) -> ExecResult:
        started = time.monotonic()
        ooms_before = sb.cgroups.oom_kills() if sb.cgroups else 0
        exec_id, reader, writer = await self._start(sb, argv, env, cwd, stdin=stdin is not None)
        cap = Capture(max_output)
        feeder = asyncio.create_task(feed_stdin(writer, stdin)) if stdin is not None else None
        timed_out = False
        try:
            try:
                await asyncio.wait_for(pump(reader, cap.sink), timeout)
            except TimeoutError:
                timed_out = True
                await self._kill_exec(sb, exec_id)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(pump(reader, cap.sink), 2.0)
            except asyncio.CancelledError:
                # The caller gave up: the command must not keep running in the sandbox.
                with contextlib.suppress(Exception):
                    await asyncio.shield(self._kill_exec(sb, exec_id))
                raise
            code = await self._exit_code(exec_id)
        finally:
            if feeder is not None:
                feeder.cancel()
            writer.close()
        if timed_out and code in (128 + 9, -1):
            code = -9
        oom = bool(sb.cgroups) and sb.cgroups.oom_kills() > ooms_before  # type: ignore[union-attr]
        return ExecResult(
            exit_code=code,
            stdout=bytes(cap.out),
            stderr=bytes(cap.err),
            timed_out=timed_out,
            oom_killed=oom,
            duration_s=time.monotonic() - started,
        )

    async def _exit_code(self, exec_id: str) -> int:
        # The stream ends a moment before the engine records the exit.
        for delay in (0, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0, 2.0):
            await asyncio.sleep(delay)
            running, code = await self._exec_status(exec_id)
            if not running:
                return code
        return -1

    def close(self) -> None:
        self._client.close()


def _cgroups_or_none(pid: int) -> ContainerCgroups | None:
    try:
        return ContainerCgroups.of_pid(pid)
    except (OSError, ValueError):
        return None
