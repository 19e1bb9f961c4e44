"""What the runner writes: usage from the model proxy, and workspace snapshots in storage."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import tempfile
import uuid
from pathlib import Path
from typing import TYPE_CHECKING, Any

from django.core.files import File
from django.core.files.storage import default_storage
from django.db import close_old_connections

from usage_app.services import usage_record_model_call

if TYPE_CHECKING:
    from ash.llm_proxy.metering import UsageRecord
    from ash.sandbox.pool import PoolEntry
    from sessions_app.runner.host import SessionSpec

log = logging.getLogger("ash.runner")


def _in_thread(fn: Any, *args: Any, **kwargs: Any) -> Any:
    close_old_connections()
    try:
        return fn(*args, **kwargs)
    finally:
        close_old_connections()


async def in_db_thread(fn: Any, /, *args: Any, **kwargs: Any) -> Any:
    """Run a database function from the runner loop without blocking it."""
    return await asyncio.to_thread(_in_thread, fn, *args, **kwargs)


def store_model_call_usage(*, tenant_id: str, session_id: str, agent_name: str, record: UsageRecord) -> None:
    """One metered model call → UsageEvent rows (in the caller's transaction, if any)."""
    usage_record_model_call(
        tenant_id=tenant_id,
        session_id=session_id,
        agent_name=agent_name,
        model=record.model,
        input_tokens=record.input_tokens,
        output_tokens=record.output_tokens,
        cache_creation_tokens=record.cache_creation_tokens,
        cache_read_tokens=record.cache_read_tokens,
        cost_usd=record.cost_usd,
    )


async def record_proxy_usage(spec: SessionSpec, record: UsageRecord) -> None:
    """A model call outside a turn: its usage is committed before we return."""
    await in_db_thread(
        store_model_call_usage, tenant_id=spec.tenant_id, session_id=spec.session_id, agent_name=spec.agent_name,
        record=record,
    )


def snapshot_key_for(tenant_id: str, session_id: str) -> str:
    return f"snapshots/{tenant_id}/{session_id}/{uuid.uuid4().hex}.tar.zst"


async def snapshot_to_storage(backend: Any, entry: PoolEntry, *, tenant_id: str, session_id: str) -> str:
    """Stream the sandbox's workspace snapshot into default storage; returns the storage key."""
    with tempfile.NamedTemporaryFile(prefix="ash-snap-", suffix=".tar.zst", delete=False) as tmp:
        tmp_path = Path(tmp.name)
    try:
        with tmp_path.open("wb") as fh:
            async for chunk in backend.snapshot(entry.sandbox):
                await asyncio.to_thread(fh.write, chunk)
        key = snapshot_key_for(tenant_id, session_id)

        def save() -> str:
            with tmp_path.open("rb") as fh:
                return default_storage.save(key, File(fh))

        return await asyncio.to_thread(save)
    finally:
        with contextlib.suppress(FileNotFoundError):
            tmp_path.unlink()


async def restore_from_storage(backend: Any, entry: PoolEntry, key: str) -> None:
    def chunks_sync() -> list[bytes]:
        out = []
        with default_storage.open(key, "rb") as fh:
            while chunk := fh.read(1 << 20):
                out.append(chunk)
        return out

    data = await asyncio.to_thread(chunks_sync)

    async def gen() -> Any:
        for chunk in data:
            yield chunk

    await backend.restore(entry.sandbox, gen())


async def persist_workspace_snapshot(spec: SessionSpec, entry: PoolEntry, *, backend: Any,
                                     reason: str = "idle or evicted") -> None:
    """Eviction, idle sweep or runner shutdown: snapshot first, record it on the session, mark it paused."""
    from sessions_app.services import session_snapshot_taken

    if entry.sandbox is None:
        return
    key = await snapshot_to_storage(backend, entry, tenant_id=spec.tenant_id, session_id=spec.session_id)
    await in_db_thread(session_snapshot_taken, session_id=spec.session_id, key=key, pause=True, reason=reason)
