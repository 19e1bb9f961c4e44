"""The agent's settings as every query reads them: CLAUDE.md (workspace copy first), settings.json,
.mcp.json; a file read once is re-read when it changes."""

from __future__ import annotations

import json
import os
from pathlib import Path

from ash.runtime.config import load_agent_settings


def _dirs(tmp_path: Path) -> tuple[Path, Path]:
    workspace, agent = tmp_path / "workspace", tmp_path / "agent"
    (agent / ".claude").mkdir(parents=True)
    workspace.mkdir()
    return workspace, agent


def test_changes_between_queries_are_seen(tmp_path: Path) -> None:
    workspace, agent = _dirs(tmp_path)
    (agent / "CLAUDE.md").write_text("agent prompt")
    settings = agent / ".claude" / "settings.json"
    settings.write_text(json.dumps({"permissions": {"allow": ["Read"]}, "model": "claude-a"}))
    first = load_agent_settings(workspace, agent)
    assert (first.system_prompt, first.allow, first.model) == ("agent prompt", ["Read"], "claude-a")
    assert load_agent_settings(workspace, agent) == first  # unchanged files: the same settings

    # The agent writes its own CLAUDE.md into the workspace: it wins from the next query on.
    (workspace / "CLAUDE.md").write_text("workspace prompt")
    assert load_agent_settings(workspace, agent).system_prompt == "workspace prompt"
    # Replaced through a new file of the same size (as editors and `sed -i` do): a new inode.
    replacement = workspace / "CLAUDE.md.new"
    replacement.write_text("workspace PROMPT")
    os.replace(replacement, workspace / "CLAUDE.md")
    assert load_agent_settings(workspace, agent).system_prompt == "workspace PROMPT"
    (workspace / "CLAUDE.md").unlink()
    assert load_agent_settings(workspace, agent).system_prompt == "agent prompt"

    settings.write_text(json.dumps({"permissions": {"allow": ["Read", "Bash"]}}))
    assert load_agent_settings(workspace, agent).allow == ["Read", "Bash"]
    settings.write_text("{broken")
    assert load_agent_settings(workspace, agent).allow == []  # unreadable: ignored, as before
    settings.unlink()
    assert load_agent_settings(workspace, agent).model is None


def test_no_files_at_all(tmp_path: Path) -> None:
    workspace, agent = _dirs(tmp_path)
    got = load_agent_settings(workspace, agent)
    assert (got.system_prompt, got.allow, got.deny, got.mcp_servers) == (None, [], [], {})
