"""Operations a runner performs for a session (called by the `runner_op` task on its queue)."""

from __future__ import annotations

import base64
import binascii
import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

from agents_app.services import agent_version_path
from ash.errors import ApiError, BadRequest, NotFound, ServiceUnavailable
from ash.sandbox.base import SandboxError
from ash.sandbox.pool import PoolExhausted
from ash.sandbox.workspace_fs import RAW_READ_LIMIT, WorkspaceError, WorkspaceFS
from credentials_app.services import credential_plaintext
from sessions_app.models import Session
from sessions_app.runner import get_host
from sessions_app.runner.host import SessionSpec
from sessions_app.runner.persistence import restore_from_storage

log = logging.getLogger("ash.runner")

OPS: dict[str, Callable[[Session, dict[str, Any]], Any]] = {}
AGENT_COPY_SKIP = frozenset({".git", "node_modules", "__pycache__"})


def op(name: str) -> Callable[[Callable[[Session, dict[str, Any]], Any]], Callable[[Session, dict[str, Any]], Any]]:
    def register(fn: Callable[[Session, dict[str, Any]], Any]) -> Callable[[Session, dict[str, Any]], Any]:
        OPS[name] = fn
        return fn

    return register


def session_spec(session: Session) -> SessionSpec:
    credential_type = credential_key = None
    if session.credential_id:
        credential_type, credential_key = credential_plaintext(credential_id=session.credential_id, tenant_id=session.tenant_id)
    return SessionSpec(
        session_id=str(session.pk),
        tenant_id=session.tenant_id,
        agent_name=session.agent_name,
        agent_version=session.agent_version,
        agent_path=agent_version_path(agent=session.agent, version=session.agent_version),
        extra_env=dict(session.config.get("extraEnv") or {}),
        credential_type=credential_type,
        credential_key=credential_key,
    )


def _hosted_fs(session: Session) -> WorkspaceFS:
    host = get_host()
    hosted = host.get(str(session.pk))
    if hosted is None:
        raise BadRequest("Session has no running sandbox")
    return WorkspaceFS(hosted.entry.workspace, uid=hosted.entry.sandbox.uid, gid=hosted.entry.sandbox.uid)


def _place(session: Session, *, fresh: bool) -> dict[str, Any]:
    host = get_host()
    spec = session_spec(session)

    async def restore(entry: Any) -> str | None:
        if not session.snapshot_key:
            return "fresh"
        await restore_from_storage(host.backend, entry, session.snapshot_key)
        return "snapshot"

    try:
        sandbox_id, path = host.call(host.place(spec, fresh=fresh, restore=None if fresh else restore), timeout=300)
    except PoolExhausted:
        raise ServiceUnavailable("Sandbox capacity reached: every sandbox is running a turn") from None
    except SandboxError as exc:
        log.exception("sandbox for session %s could not be created", session.pk)
        raise ApiError(f"Sandbox could not be created: {exc}", status_code=500) from None
    if fresh and path != "warm":
        host.call(_copy_agent_into_workspace(host, str(session.pk), Path(spec.agent_path)), timeout=120)
    return {"sandboxId": sandbox_id, "path": path, "runnerId": host.runner_id}


async def _copy_agent_into_workspace(host: Any, session_id: str, agent_dir: Path) -> None:
    """A new workspace starts as a copy of the agent folder (written as the sandbox user)."""
    hosted = host.get(session_id)
    fs = WorkspaceFS(hosted.entry.workspace, uid=hosted.entry.sandbox.uid, gid=hosted.entry.sandbox.uid)
    files = []
    for path in sorted(agent_dir.rglob("*")):
        rel = path.relative_to(agent_dir)
        if any(part in AGENT_COPY_SKIP for part in rel.parts) or path.is_symlink() or not path.is_file():
            continue
        files.append((rel.as_posix(), path.read_bytes()))
    for rel, data in files:
        await fs.write(rel, data)


@op("place")
def place(session: Session, params: dict[str, Any]) -> dict[str, Any]:
    return _place(session, fresh=True)


@op("resume")
def resume(session: Session, params: dict[str, Any]) -> dict[str, Any]:
    host = get_host()
    if host.get(str(session.pk)) is not None:
        host.call(host.thaw(str(session.pk)), timeout=30)  # paused sandboxes are frozen
    return _place(session, fresh=False)  # warm when the sandbox lives here, else cold


@op("pause")
def pause(session: Session, params: dict[str, Any]) -> bool:
    host = get_host()
    return host.call(host.pause(str(session.pk)), timeout=30)


@op("snapshot")
def snapshot(session: Session, params: dict[str, Any]) -> str | None:
    """Persist the live workspace to storage; None when the session has no live sandbox here."""
    host = get_host()
    return host.call(host.snapshot(str(session.pk)), timeout=600)


@op("release")
def release(session: Session, params: dict[str, Any]) -> str | None:
    """Snapshot (unless told not to), then destroy the sandbox. Returns the snapshot key."""
    host = get_host()
    key = snapshot(session, params) if params.get("snapshot", True) else None
    host.call(host.release(str(session.pk), keep_workspace=False), timeout=120)
    return key


@op("exec")
def exec_command(session: Session, params: dict[str, Any]) -> dict[str, Any]:
    host = get_host()
    if host.get(str(session.pk)) is None:
        raise BadRequest("Session has no running sandbox")
    return host.call(host.exec(str(session.pk), params["command"], params["timeout_ms"] / 1000), timeout=params["timeout_ms"] / 1000 + 30)


@op("interrupt")
def interrupt(session: Session, params: dict[str, Any]) -> bool:
    host = get_host()
    return host.call(host.interrupt(str(session.pk)), timeout=10)


@op("logs")
def logs(session: Session, params: dict[str, Any]) -> list[dict[str, Any]]:
    return get_host().logs(str(session.pk), int(params.get("after", -1))) or []


@op("alive")
def alive(session: Session, params: dict[str, Any]) -> bool:
    return get_host().get(str(session.pk)) is not None


@op("files_list")
def files_list(session: Session, params: dict[str, Any]) -> list[dict[str, Any]]:
    fs = _hosted_fs(session)
    host = get_host()
    entries = host.call(fs.list(include_hidden=params.get("include_hidden", True)), timeout=60)
    return [e.to_dict() for e in entries if e.type == "file"]


@op("file_read")
def file_read(session: Session, params: dict[str, Any]) -> dict[str, Any]:
    fs = _hosted_fs(session)
    host = get_host()
    data = host.call(fs.read(params["path"], max_bytes=params.get("max_bytes", RAW_READ_LIMIT)), timeout=120)
    return {"path": data.entry.path, "size": data.entry.size, "content_b64": base64.b64encode(data.data).decode()}


@op("files_write")
def files_write(session: Session, params: dict[str, Any]) -> list[dict[str, Any]]:
    fs = _hosted_fs(session)
    host = get_host()
    items: list[tuple[str, bytes]] = []
    bad: dict[int, dict[str, Any]] = {}
    for index, f in enumerate(params["files"]):
        try:
            items.append((f["path"], base64.b64decode(f["content"], validate=True)))
        except (ValueError, binascii.Error):
            bad[index] = {"path": f["path"], "written": False, "error": "content is not valid base64"}
    results = iter(host.call(fs.write_many(items, target_path=params.get("target", ".")), timeout=300))
    return [bad[i] if i in bad else next(results).to_dict() for i in range(len(params["files"]))]


@op("file_delete")
def file_delete(session: Session, params: dict[str, Any]) -> str:
    fs = _hosted_fs(session)
    host = get_host()
    return host.call(fs.delete(params["path"]), timeout=60)


@op("bundle")
def bundle(session: Session, params: dict[str, Any]) -> str:
    fs = _hosted_fs(session)
    host = get_host()

    async def make() -> bytes:
        with await fs.bundle() as b:
            return b.read_all()

    return base64.b64encode(host.call(make(), timeout=180)).decode()


@op("extract_bundle")
def extract_bundle(session: Session, params: dict[str, Any]) -> dict[str, Any]:
    fs = _hosted_fs(session)
    host = get_host()
    stats = host.call(fs.extract_bundle(base64.b64decode(params["bundle_b64"])), timeout=300)
    return {"files": getattr(stats, "files", None)}


@op("copy_in")
def copy_in(session: Session, params: dict[str, Any]) -> str:
    fs = _hosted_fs(session)
    host = get_host()
    return host.call(fs.copy_in(params["filename"], base64.b64decode(params["content_b64"])), timeout=120)


def run(op_name: str, session_id: str, params: dict[str, Any]) -> Any:
    fn = OPS.get(op_name)
    if fn is None:
        raise ValueError(f"unknown runner op {op_name!r}")
    session = Session.objects.select_related("agent").filter(pk=session_id).first()
    if session is None:
        raise NotFound("Session not found")
    try:
        return fn(session, params)
    except WorkspaceError as exc:
        raise ApiError(str(exc), status_code=exc.status_code) from None
