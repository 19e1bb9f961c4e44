"""Where a session's files are read from: its live sandbox (on its runner) or its last snapshot."""

from __future__ import annotations

import hashlib
import io
import shutil
import tarfile
import tempfile
import threading
from pathlib import Path
from typing import Any

import zstandard
from django.conf import settings
from django.core.files.storage import default_storage

from ash.errors import NotFound, ServiceUnavailable
from ash.sandbox.workspace_fs import WorkspaceFS
from sessions_app.models import Session
from sessions_app.runner_client import runner_call

LIVE_STATUSES = (Session.Status.ACTIVE, Session.Status.PAUSED)
SNAPSHOT_MAX_BYTES = 2 << 30
_extract_lock = threading.Lock()


def workspace_source(session: Session) -> str:
    """"sandbox" when the session's sandbox is live, else "snapshot"; 404 when there is neither."""
    if session.runner_id and session.status in LIVE_STATUSES:
        try:
            if runner_call(session, "alive", timeout=10):
                return "sandbox"
        except ServiceUnavailable:
            pass
    if session.snapshot_key:
        return "snapshot"
    raise NotFound("No workspace available for this session")


def snapshot_fs(session: Session) -> WorkspaceFS:
    """A read-only view of the session's last snapshot, extracted once into a private cache."""
    digest = hashlib.sha256(session.snapshot_key.encode()).hexdigest()[:24]
    root = settings.ASH_DATA_DIR / "snapshot-cache" / str(session.pk) / digest
    if not root.is_dir():
        with _extract_lock:
            if not root.is_dir():
                _extract_snapshot(session.snapshot_key, root)
    return WorkspaceFS.for_owner(root)


def _extract_snapshot(key: str, root: Path) -> None:
    root.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    staging = Path(tempfile.mkdtemp(prefix=".extract-", dir=root.parent))
    try:
        with default_storage.open(key, "rb") as raw:
            reader = zstandard.ZstdDecompressor().stream_reader(raw)
            # The "data" filter refuses absolute names, '..', links leaving the tree, devices.
            with tarfile.open(fileobj=_Capped(reader, SNAPSHOT_MAX_BYTES), mode="r|") as tar:
                tar.extractall(staging, filter="data")
        staging.rename(root)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    # Older extractions of this session's previous snapshots are stale now.
    for old in root.parent.iterdir():
        if old != root and not old.name.startswith(".extract-"):
            shutil.rmtree(old, ignore_errors=True)


class _Capped(io.RawIOBase):
    def __init__(self, inner: Any, limit: int) -> None:
        self.inner, self.left = inner, limit

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        data = self.inner.read(min(len(buffer), self.left + 1))
        self.left -= len(data)
        if self.left < 0:
            raise NotFound("Snapshot is larger than the extraction limit")
        buffer[: len(data)] = data
        return len(data)
