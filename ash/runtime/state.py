"""The conversation (history + SDK session id) persisted in the workspace.

Two files under `.ash/`: `conversation.json`, small state rewritten atomically when it changes
(session id, todos, shell cwd), and `conversation.jsonl`, the Messages API history as an
append-only journal of the messages in the order they were added. A save appends only what is
new (to the journal, kept open between saves), so a turn costs the same on the first query and
the thousandth; loading replays the journal (merging consecutive user messages, as `append`
does). A line torn by a crash mid-write is dropped on load. Nothing is fsynced: a host crash is
covered by the runner's workspace snapshots.
"""

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
STATE_VERSION = 2
LEGACY_VERSION = 1  # one JSON file holding the messages too


@dataclass
class Conversation:
    path: Path
    session_id: str = field(default_factory=lambda: str(uuid.uuid4()))
    messages: list[dict[str, Any]] = field(default_factory=list)  # Messages API history
    todos: list[dict[str, Any]] = field(default_factory=list)
    shell_cwd: str | None = None
    _unsaved: list[dict[str, Any]] = field(default_factory=list, repr=False)  # journal lines to write
    _rewrite: bool = field(default=False, repr=False)  # the journal must be written afresh
    _written_state: str = field(default="", repr=False)
    _journal: Any = field(default=None, repr=False)  # the journal, kept open for appending

    @property
    def journal_path(self) -> Path:
        return self.path.with_suffix(".jsonl")

    @classmethod
    def load(cls, path: Path) -> Conversation:
        """The saved conversation, or a new one (unreadable files are kept aside, not lost)."""
        try:
            data = json.loads(path.read_text())
            version = data.get("version")
            if version not in (STATE_VERSION, LEGACY_VERSION):
                raise ValueError(f"unsupported state version {version!r}")
            conv = cls(path, str(data["session_id"]), [], list(data.get("todos") or []),
                       data.get("shell_cwd"))
            if version == LEGACY_VERSION:
                conv.messages = list(data["messages"])
                conv._rewrite = True  # into the journal at the next save
            else:
                conv._replay_journal()
            return conv
        except FileNotFoundError:
            return cls(path, _rewrite=True)
        except (OSError, ValueError, KeyError, TypeError) as exc:
            log.error("conversation state %s unreadable (%s); starting afresh", path, exc)
            for old in (path, path.with_suffix(".jsonl")):
                with contextlib.suppress(OSError):
                    os.replace(old, old.with_name(old.name + ".corrupt"))
            return cls(path, _rewrite=True)

    def _replay_journal(self) -> None:
        try:
            raw = self.journal_path.read_bytes()
        except FileNotFoundError:
            return
        lines = raw.split(b"\n")
        if lines[-1]:  # no newline at the end: a write cut short by a crash
            log.warning("conversation journal %s ends in a torn line; dropped", self.journal_path)
            self._rewrite = True
        for line in lines[:-1]:
            self._add(json.loads(line))

    def save(self) -> None:
        """Append the new messages to the journal; rewrite the small state file if it changed."""
        if self._journal is not None and os.fstat(self._journal.fileno()).st_nlink == 0:
            # Deleted from under us (the agent's shell can): both files are written afresh.
            self._rewrite, self._written_state = True, ""
        if self._unsaved and not self._rewrite and self._journal is None:
            try:
                self._journal = _open_for_append(self.journal_path, create=False)
            except FileNotFoundError:
                self._rewrite = True  # gone since it was loaded
        if self._rewrite:
            self._close_journal()
            self.path.parent.mkdir(parents=True, exist_ok=True)
            _replace(self.journal_path, "".join(_line(m) for m in self.messages))
            self._rewrite = False
            self._journal = _open_for_append(self.journal_path, create=True)
        elif self._unsaved:
            self._append("".join(_line(m) for m in self._unsaved).encode())
        self._unsaved.clear()
        state = json.dumps({"version": STATE_VERSION, "session_id": self.session_id,
                            "todos": self.todos, "shell_cwd": self.shell_cwd}, separators=(",", ":"))
        if state != self._written_state:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            _replace(self.path, state)
            self._written_state = state

    def _append(self, data: bytes) -> None:
        try:
            if self._journal.write(data) != len(data):
                raise OSError(f"short write to {self.journal_path}")
        except BaseException:
            self._rewrite = True  # where the journal ends is unknown now: written afresh next time
            self._close_journal()
            raise

    def _close_journal(self) -> None:
        journal, self._journal = self._journal, None
        if journal is not None:
            with contextlib.suppress(OSError):
                journal.close()

    def append(self, message: dict[str, Any]) -> None:
        """Add a Messages API message (merging consecutive user turns); `save` persists."""
        self._add(message)
        self._unsaved.append(message)

    def _add(self, message: dict[str, Any]) -> None:
        last = self.messages[-1] if self.messages else None
        if last is not None and last["role"] == "user" == message["role"]:
            # A new dict: the journal keeps the messages as they were added.
            self.messages[-1] = {**last, "content": _blocks(last["content"]) + _blocks(message["content"])}
        else:
            self.messages.append(message)


def _line(message: dict[str, Any]) -> str:
    return json.dumps(message, separators=(",", ":")) + "\n"


def _open_for_append(path: Path, *, create: bool) -> Any:
    """PATH, unbuffered, for appending across saves (so a failed write leaves nothing behind in
    a buffer to go out later)."""
    flags = os.O_WRONLY | os.O_APPEND | (os.O_CREAT if create else 0)
    return open(os.open(path, flags, 0o666), "ab", buffering=0)  # noqa: SIM115 - kept open


def _replace(path: Path, text: str) -> None:
    """Write PATH atomically (a crash leaves the old or the new file, never half of one)."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with open(tmp, "w") as fh:
        fh.write(text)
    os.replace(tmp, path)


def _blocks(content: str | list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [{"type": "text", "text": content}] if isinstance(content, str) else list(content)
