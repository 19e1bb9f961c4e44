"""Reading an agent's deployed folder through the safe workspace layer (no links followed)."""

from __future__ import annotations

import os
from typing import Any

from django.http import FileResponse

from agents_app.models import Agent
from ash.content_types import attachment_disposition, content_type_for
from ash.errors import BadRequest, PayloadTooLarge
from ash.sandbox.workspace_fs import ops
from ash.sandbox.workspace_fs.resolve import open_root

JSON_READ_MAX_BYTES = 1 << 20
RAW_READ_MAX_BYTES = 100 << 20
LIST_MAX_ENTRIES = 10_000


def agent_file_list(*, agent: Agent) -> list[dict[str, Any]]:
    rootfd = open_root(agent.path)
    try:
        entries = ops.list_tree(rootfd, "", include_hidden=True, include_dirs=False, max_entries=LIST_MAX_ENTRIES)
    finally:
        os.close(rootfd)
    return [{"path": e.path, "size": e.size, "modifiedAt": e.modified_at_iso} for e in entries if e.type == "file"]


def agent_file_json(*, agent: Agent, path: str) -> dict[str, Any]:
    rootfd = open_root(agent.path)
    try:
        fd, entry = ops.open_file(rootfd, path, max_bytes=JSON_READ_MAX_BYTES)
    except ops.TooLarge as exc:
        raise PayloadTooLarge(f"{exc}; use format=raw") from None
    finally:
        os.close(rootfd)
    with os.fdopen(fd, "rb") as fh:
        data = fh.read(entry.size)
    try:
        content = data.decode("utf-8")
    except UnicodeDecodeError:
        raise BadRequest("File is not UTF-8 text; use format=raw") from None
    return {"path": entry.path, "content": content, "size": entry.size}


def agent_file_raw_response(*, agent: Agent, path: str) -> FileResponse:
    rootfd = open_root(agent.path)
    try:
        fd, entry = ops.open_file(rootfd, path, max_bytes=RAW_READ_MAX_BYTES)
    finally:
        os.close(rootfd)
    response = FileResponse(os.fdopen(fd, "rb"), content_type=content_type_for(entry.path))
    response["Content-Length"] = str(entry.size)
    response["Content-Disposition"] = attachment_disposition(entry.path.rsplit("/", 1)[-1])
    response["X-Content-Type-Options"] = "nosniff"
    return response
