"""Agent writes: deploy (create or redeploy as a new version) and delete."""

from __future__ import annotations

import logging
from typing import Any

from django.db import IntegrityError, transaction

from agents_app import storage
from agents_app.models import Agent, AgentVersion
from agents_app.selectors import agent_get

log = logging.getLogger("ash.agents")

SYSTEM_PROMPT_MAX_BYTES = 1 << 20


def _placeholder_prompt(name: str) -> bytes:
    return f"# {name}\n".encode()


def agent_deploy(
    *,
    tenant_id: str,
    name: str,
    path: str | None = None,
    system_prompt: str | None = None,
    files: list[dict[str, str]] | None = None,
) -> Agent:
    """Create the agent, or redeploy it as version + 1 (same id). Files land in a new version folder."""
    if path is not None:
        source = storage.resolve_deploy_path(path)
        agent_files = storage.read_source_folder(source)
        origin = "path"
    else:
        agent_files = storage.decode_files(files or [])
        if any(f.path == storage.SYSTEM_PROMPT_FILE for f in agent_files):
            origin = "files"
        elif system_prompt is not None:
            data = system_prompt.encode()
            agent_files.append(storage.AgentFile(path=storage.SYSTEM_PROMPT_FILE, data=data))
            origin = "systemPrompt"
        else:
            agent_files.append(storage.AgentFile(path=storage.SYSTEM_PROMPT_FILE, data=_placeholder_prompt(name)))
            origin = "placeholder"

    for attempt in range(3):
        folder: storage.WrittenFolder | None = None
        try:
            with transaction.atomic():
                agent = Agent.objects.select_for_update().filter(tenant_id=tenant_id, name=name).first()
                version = agent.version + 1 if agent else 1
                folder = storage.write_version_folder(
                    tenant_id=tenant_id, name=name, version=version, files=agent_files
                )
                if agent is None:
                    agent = Agent.objects.create(tenant_id=tenant_id, name=name, version=version, path=str(folder.path))
                else:
                    agent.version = version
                    agent.path = str(folder.path)
                    agent.save(update_fields=["version", "path", "updated_at"])
                AgentVersion.objects.create(
                    agent=agent,
                    tenant_id=tenant_id,
                    version=version,
                    path=str(folder.path),
                    source=origin,
                    file_count=folder.file_count,
                    total_bytes=folder.total_bytes,
                    sha256=folder.sha256,
                )
            return agent
        except BaseException as exc:
            if folder is not None:
                storage.remove_version_folder(folder.path)
            # Two first deploys of one name raced; the loser retries as a redeploy.
            if not isinstance(exc, IntegrityError) or attempt == 2:
                raise
    raise AssertionError("unreachable")


def agent_delete(*, tenant_id: str, name: str) -> None:
    """Delete the agent with its sessions' rows; live sandboxes are destroyed, pending queue items cancelled."""
    from queue_app.services import queue_items_cancel_for_agent
    from sessions_app.services import sessions_end_for_agent

    agent = agent_get(tenant_id=tenant_id, name=name)
    sessions_end_for_agent(agent=agent)
    queue_items_cancel_for_agent(tenant_id=tenant_id, agent_name=name, reason=f'Agent "{name}" was deleted')
    with transaction.atomic():
        agent.delete()
    transaction.on_commit(lambda: storage.remove_agent_folders(tenant_id, name))


def agent_version_path(*, agent: Agent, version: int | None = None) -> str:
    if version is None or version == agent.version:
        return agent.path
    row: Any = AgentVersion.objects.filter(agent=agent, version=version).first()
    return row.path if row else agent.path
