"""The conversation (history + SDK session id) persisted in the workspace, written atomically."""

from __future__ import annotations

import contextlib
import json
import logging
import os
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

log = logging.getLogger("ash.runtime")
STATE_VERSION = 1


@dataclass
class Conversation:
    path: Path
    session_id: str = field(default_factory=lambda: str(uuid.uuid4()))
    messages: list[dict[str, Any]] = field(default_factory=list)  # Messages API history
    todos: list[dict[str, Any]] = field(default_factory=list)
    shell_cwd: str | None = None
    queries: int = 0

    @classmethod
    def load(cls, path: Path) -> Conversation:
        """The saved conversation, or a new one (a corrupt file is kept aside, not lost)."""
        try:
            data = json.loads(path.read_text())
            if data.get("version") != STATE_VERSION:
                raise ValueError(f"unsupported state version {data.get('version')!r}")
            return cls(path, str(data["session_id"]), list(data["messages"]),
                       list(data.get("todos") or []), data.get("shell_cwd"),
                       int(data.get("queries") or 0))
        except FileNotFoundError:
            return cls(path)
        except (OSError, ValueError, KeyError, TypeError) as exc:
            log.error("conversation state %s unreadable (%s); starting afresh", path, exc)
            with contextlib.suppress(OSError):
                os.replace(path, path.with_suffix(".corrupt"))
            return cls(path)

    def save(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_name(f".{self.path.name}.{os.getpid()}.tmp")
        payload = {"version": STATE_VERSION, "session_id": self.session_id,
                   "messages": self.messages, "todos": self.todos, "shell_cwd": self.shell_cwd,
                   "queries": self.queries}
        # Atomic against a runtime or sandbox crash (rename), deliberately without fsync: three
        # fsyncs per turn cost ~10 ms, and a host crash is covered by the runner's workspace
        # snapshots, which are taken after every turn.
        with open(tmp, "w") as fh:
            json.dump(payload, fh, separators=(",", ":"))
        os.replace(tmp, self.path)

    def append(self, message: dict[str, Any]) -> None:
        """Add a Messages API message (merging consecutive user turns) and persist."""
        last = self.messages[-1] if self.messages else None
        if last is not None and last["role"] == "user" == message["role"]:
            last["content"] = _blocks(last["content"]) + _blocks(message["content"])
        else:
            self.messages.append(message)
        self.save()


def _blocks(content: str | list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [{"type": "text", "text": content}] if isinstance(content, str) else list(content)
