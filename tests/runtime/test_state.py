"""The conversation files: an append-only journal plus small state, crash-tolerant on load."""

from __future__ import annotations

import json
from pathlib import Path

from ash.runtime.state import Conversation


def _conv(tmp_path: Path) -> Conversation:
    return Conversation.load(tmp_path / ".ash" / "conversation.json")


def test_saves_append_only_what_is_new(tmp_path: Path) -> None:
    conv = _conv(tmp_path)
    conv.append({"role": "user", "content": "one"})
    conv.append({"role": "assistant", "content": [{"type": "text", "text": "a"}]})
    conv.save()
    journal = conv.journal_path.read_text()
    conv.append({"role": "user", "content": "two"})
    conv.save()
    assert conv.journal_path.read_text().startswith(journal)  # earlier lines untouched
    assert len(conv.journal_path.read_text().splitlines()) == 3
    again = _conv(tmp_path)
    assert again.messages == conv.messages and again.session_id == conv.session_id


def test_consecutive_user_messages_merge_in_memory_and_after_reload(tmp_path: Path) -> None:
    conv = _conv(tmp_path)
    conv.append({"role": "user", "content": "x"})
    conv.save()
    conv.append({"role": "user", "content": [{"type": "text", "text": "y"}]})
    conv.save()
    merged = [{"role": "user", "content": [{"type": "text", "text": "x"}, {"type": "text", "text": "y"}]}]
    assert conv.messages == merged
    assert _conv(tmp_path).messages == merged


def test_state_fields_survive_a_reload(tmp_path: Path) -> None:
    conv = _conv(tmp_path)
    conv.todos, conv.shell_cwd = [{"content": "t", "status": "pending"}], "/workspace/sub"
    conv.save()
    again = _conv(tmp_path)
    assert (again.todos, again.shell_cwd) == (conv.todos, "/workspace/sub")


def test_the_state_file_is_rewritten_only_when_it_changes(tmp_path: Path) -> None:
    conv = _conv(tmp_path)
    conv.append({"role": "user", "content": "x"})
    conv.save()
    first = conv.path.stat().st_ino
    conv.append({"role": "assistant", "content": [{"type": "text", "text": "y"}]})
    conv.save()  # only the journal grows: the state file is the same inode
    assert conv.path.stat().st_ino == first
    conv.shell_cwd = "/workspace/sub"
    conv.save()
    assert conv.path.stat().st_ino != first and _conv(tmp_path).shell_cwd == "/workspace/sub"


def test_a_torn_last_line_is_dropped_and_the_journal_repaired(tmp_path: Path) -> None:
    conv = _conv(tmp_path)
    conv.append({"role": "user", "content": "kept"})
    conv.save()
    with open(conv.journal_path, "a") as fh:
        fh.write('{"role":"assistant","content":[{"ty')  # a crash mid-write
    again = _conv(tmp_path)
    assert again.messages == [{"role": "user", "content": "kept"}]
    again.append({"role": "assistant", "content": [{"type": "text", "text": "next"}]})
    again.save()
    assert _conv(tmp_path).messages == [{"role": "user", "content": "kept"},
                                        {"role": "assistant", "content": [{"type": "text", "text": "next"}]}]


def test_the_single_file_format_is_read_and_converted(tmp_path: Path) -> None:
    path = tmp_path / ".ash" / "conversation.json"
    path.parent.mkdir()
    old = [{"role": "user", "content": "hi"}, {"role": "assistant", "content": [{"type": "text", "text": "yo"}]}]
    path.write_text(json.dumps({"version": 1, "session_id": "s-1", "messages": old, "todos": [],
                                "shell_cwd": None, "queries": 1}))
    conv = Conversation.load(path)
    assert conv.messages == old and conv.session_id == "s-1"
    conv.append({"role": "user", "content": "again"})
    conv.save()
    assert json.loads(path.read_text())["version"] == 2
    assert Conversation.load(path).messages == [*old, {"role": "user", "content": "again"}]


def test_unreadable_state_is_kept_aside_and_a_new_conversation_starts(tmp_path: Path) -> None:
    path = tmp_path / ".ash" / "conversation.json"
    path.parent.mkdir()
    path.write_text("{not json")
    conv = Conversation.load(path)
    assert conv.messages == [] and (path.parent / "conversation.json.corrupt").exists()
    conv.append({"role": "user", "content": "fresh"})
    conv.save()
    assert Conversation.load(path).messages == [{"role": "user", "content": "fresh"}]


def test_a_journal_deleted_under_the_runtime_is_written_afresh(tmp_path: Path) -> None:
    conv = _conv(tmp_path)
    conv.append({"role": "user", "content": "one"})
    conv.save()
    conv.journal_path.unlink()  # the agent's shell can: the next save must not write into the void
    conv.append({"role": "assistant", "content": [{"type": "text", "text": "a"}]})
    conv.save()
    assert _conv(tmp_path).messages == conv.messages and len(conv.messages) == 2
    import shutil

    shutil.rmtree(conv.path.parent)  # the whole state directory
    conv.append({"role": "user", "content": "two"})
    conv.save()
    assert _conv(tmp_path).messages == conv.messages and len(conv.messages) == 3


def test_a_failed_append_rewrites_the_journal_at_the_next_save(tmp_path: Path, monkeypatch) -> None:
    import pytest

    conv = _conv(tmp_path)
    conv.append({"role": "user", "content": "one"})
    conv.save()

    real = conv._journal

    class Full:
        def fileno(self) -> int:
            return real.fileno()

        def write(self, data: bytes) -> int:
            return len(data) // 2  # a short write: the disk filled up mid-line

        def close(self) -> None:
            real.close()

    conv._journal = Full()
    with conv.journal_path.open("a") as fh:
        fh.write('{"role":"assistant","con')  # what the short write left behind
    conv.append({"role": "assistant", "content": [{"type": "text", "text": "a"}]})
    with pytest.raises(OSError):
        conv.save()
    conv.save()  # the disk has room again: the journal is written whole
    assert _conv(tmp_path).messages == conv.messages and len(conv.messages) == 2
