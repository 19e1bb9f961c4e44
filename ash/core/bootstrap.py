"""First-start set-up for embedded mode: API key file, admin login, demo agent."""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from pathlib import Path

from django.contrib.auth import get_user_model

from ash.auth import INITIAL_KEY_FILENAME, api_key_bootstrap
from ash.secrets import write_private_file

ADMIN_PASSWORD_FILENAME = "admin-password"
DEMO_AGENT_NAME = "demo"
DEMO_PROMPT = """# Demo agent

You are the Ash demo agent. You work inside a sandboxed workspace at /workspace.
Use your tools (Bash, Read, Write, Edit, Glob, Grep) to help with files in the workspace.
Keep answers short.
"""


@dataclass(frozen=True)
class BootstrapResult:
    key_file: Path | None
    admin_password_file: Path | None
    demo_agent_created: bool


def bootstrap_embedded(*, data_dir: Path) -> BootstrapResult:
    key_file = api_key_bootstrap(data_dir=data_dir)
    if key_file is None and (data_dir / INITIAL_KEY_FILENAME).exists():
        key_file = data_dir / INITIAL_KEY_FILENAME
    return BootstrapResult(
        key_file=key_file,
        admin_password_file=_ensure_admin(data_dir),
        demo_agent_created=_ensure_demo_agent(),
    )


def _ensure_admin(data_dir: Path) -> Path | None:
    users = get_user_model().objects
    path = data_dir / ADMIN_PASSWORD_FILENAME
    if users.filter(is_superuser=True).exists():
        return path if path.exists() else None
    password = secrets.token_urlsafe(18)
    write_private_file(path, password)
    users.create_superuser("admin", email="", password=path.read_text().strip())
    return path


def _ensure_demo_agent() -> bool:
    from agents_app.models import Agent
    from agents_app.services import agent_deploy

    if Agent.objects.filter(tenant_id="default", name=DEMO_AGENT_NAME).exists():
        return False
    agent_deploy(tenant_id="default", name=DEMO_AGENT_NAME, system_prompt=DEMO_PROMPT)
    return True
