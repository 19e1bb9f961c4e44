"""Read, Write and Edit, with Claude Code's read-before-write rule and result shapes."""

from __future__ import annotations

import base64
import difflib
import os
from pathlib import Path
from typing import Any

from ash.runtime.tools import Tool, ToolContext, ToolError, ToolOutput, schema

MAX_LINES = 2000
MAX_LINE_CHARS = 2000
MAX_READ_BYTES = 256 << 10  # whole-file reads beyond this need offset/limit
IMAGE_TYPES = {".png": "image/png", ".jpg": "image/jpeg", ".jpeg": "image/jpeg",
               ".gif": "image/gif", ".webp": "image/webp"}


def _mtime(path: Path) -> float:
    return path.stat().st_mtime


def _require_fresh_read(path: Path, ctx: ToolContext) -> None:
    key = str(path)
    if key not in ctx.read_files:
        raise ToolError("File has not been read yet. Read it first before writing to it.")
    if _mtime(path) > ctx.read_files[key]:
        raise ToolError("File has been modified since read, either by the user or by a linter. "
                        "Read it again before attempting to write it.")


def _read_text(path: Path) -> str:
    data = path.read_bytes()
    if b"\0" in data[:8192]:
        raise ToolError("This tool cannot read binary files.")
    return data.decode("utf-8", errors="replace")


async def run_read(tool_input: dict[str, Any], ctx: ToolContext) -> ToolOutput:
    path = ctx.absolute(tool_input["file_path"])
    if not path.exists():
        raise ToolError(f"File does not exist. Current working directory: {ctx.shell_cwd}")
    if path.is_dir():
        raise ToolError(f"EISDIR: illegal operation on a directory, read '{path}'")
    if path.suffix.lower() in IMAGE_TYPES:
        data = path.read_bytes()
        ctx.read_files[str(path)] = _mtime(path)
        media = IMAGE_TYPES[path.suffix.lower()]
        block = {"type": "image", "source": {"type": "base64", "media_type": media,
                                             "data": base64.b64encode(data).decode()}}
        return ToolOutput([block], False, {"type": "image", "file": {
            "base64": block["source"]["data"], "type": media, "originalSize": len(data)}})
    offset = int(tool_input.get("offset") or 1)
    limit = tool_input.get("limit")
    if limit is None and path.stat().st_size > MAX_READ_BYTES:
        raise ToolError(f"File content ({path.stat().st_size} bytes) exceeds maximum allowed size "
                        f"({MAX_READ_BYTES} bytes). Please use offset and limit parameters to "
                        "read specific portions of the file.")
    text = _read_text(path)
    lines = text.splitlines()
    start = max(offset, 1)
    chosen = lines[start - 1: start - 1 + int(limit or MAX_LINES)]
    ctx.read_files[str(path)] = _mtime(path)
    structured = {"type": "text", "file": {"filePath": str(path), "content": "\n".join(chosen),
                                           "numLines": len(chosen), "startLine": start,
                                           "totalLines": len(lines)}}
    if not lines:
        return ToolOutput("<system-reminder>Warning: the file exists but the contents are empty."
                          "</system-reminder>", False, structured)
    numbered = "\n".join(f"{start + i}\t{line[:MAX_LINE_CHARS]}" for i, line in enumerate(chosen))
    return ToolOutput(numbered, False, structured)


def structured_patch(old: str, new: str) -> list[dict[str, Any]]:
    """Unified-diff hunks in the CLI's `structuredPatch` shape."""
    hunks: list[dict[str, Any]] = []
    a, b = old.splitlines(), new.splitlines()
    for group in difflib.SequenceMatcher(None, a, b).get_grouped_opcodes(3):
        i1, i2, j1, j2 = group[0][1], group[-1][2], group[0][3], group[-1][4]
        lines: list[str] = []
        for tag, a1, a2, b1, b2 in group:
            if tag == "equal":
                lines += [" " + x for x in a[a1:a2]]
                continue
            lines += ["-" + x for x in a[a1:a2]]
            lines += ["+" + x for x in b[b1:b2]]
        hunks.append({"oldStart": i1 + 1, "oldLines": i2 - i1, "newStart": j1 + 1,
                      "newLines": j2 - j1, "lines": lines})
    return hunks


def _write(path: Path, content: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.ash-tmp")
    tmp.write_text(content)
    if path.exists():
        os.chmod(tmp, path.stat().st_mode & 0o7777)
    os.replace(tmp, path)


async def run_write(tool_input: dict[str, Any], ctx: ToolContext) -> ToolOutput:
    path = ctx.absolute(tool_input["file_path"])
    content = tool_input["content"]
    if path.is_dir():
        raise ToolError(f"EISDIR: illegal operation on a directory, open '{path}'")
    original = None
    if path.exists():
        _require_fresh_read(path, ctx)
        original = _read_text(path)
    _write(path, content)
    ctx.read_files[str(path)] = _mtime(path)
    if original is None:
        return ToolOutput(f"File created successfully at: {path}", False, {
            "type": "create", "filePath": str(path), "content": content,
            "structuredPatch": [], "originalFile": None})
    return ToolOutput(f"The file {path} has been updated successfully.", False, {
        "type": "update", "filePath": str(path), "content": content,
        "structuredPatch": structured_patch(original, content), "originalFile": original})


async def run_edit(tool_input: dict[str, Any], ctx: ToolContext) -> ToolOutput:
    path = ctx.absolute(tool_input["file_path"])
    old, new = tool_input["old_string"], tool_input["new_string"]
    replace_all = bool(tool_input.get("replace_all", False))
    if old == new:
        raise ToolError("No changes to make: old_string and new_string are exactly the same.")
    if not path.exists():
        if old != "":
            raise ToolError(f"File does not exist. Current working directory: {ctx.shell_cwd}")
        original = ""  # an empty old_string on a missing file creates it
    else:
        _require_fresh_read(path, ctx)
        original = _read_text(path)
        if old == "":
            if original.strip():
                raise ToolError("Cannot create new file - file already exists.")
        else:
            count = original.count(old)
            if count == 0:
                raise ToolError(f"String to replace not found in file.\nString: {old}")
            if count > 1 and not replace_all:
                raise ToolError(
                    f"Found {count} matches of the string to replace, but replace_all is false. "
                    "To replace all occurrences, set replace_all to true. To replace only one "
                    "occurrence, please provide more context to uniquely identify the instance."
                    f"\nString: {old}")
    updated = new if old == "" else original.replace(old, new, -1 if replace_all else 1)
    _write(path, updated)
    ctx.read_files[str(path)] = _mtime(path)
    return ToolOutput(f"The file {path} has been updated successfully.", False, {
        "filePath": str(path), "oldString": old, "newString": new, "originalFile": original,
        "structuredPatch": structured_patch(original, updated), "userModified": False,
        "replaceAll": replace_all})


READ = Tool(
    name="Read",
    description=(
        "Reads a file from the local filesystem. The file_path must be absolute. By default "
        f"it reads up to {MAX_LINES} lines from the start; use offset (1-based line) and limit "
        "for long files. Lines are returned cat -n style (number, tab, text). Images are "
        "returned as images."),
    input_schema=schema({
        "file_path": {"type": "string", "description": "The absolute path to the file to read"},
        "offset": {"type": "integer", "minimum": 0, "description": "The line number to start "
                                                                   "reading from"},
        "limit": {"type": "integer", "exclusiveMinimum": 0, "description": "The number of "
                                                                           "lines to read"},
    }, ["file_path"]),
    run=run_read,
)
WRITE = Tool(
    name="Write",
    description=(
        "Writes a file to the local filesystem, overwriting it if it exists. An existing file "
        "must have been read with the Read tool first. The file_path must be absolute."),
    input_schema=schema({
        "file_path": {"type": "string", "description": "The absolute path to the file to write "
                                                       "(must be absolute, not relative)"},
        "content": {"type": "string", "description": "The content to write to the file"},
    }, ["file_path", "content"]),
    run=run_write,
)
EDIT = Tool(
    name="Edit",
    description=(
        "Performs exact string replacements in files. The file must have been read first. "
        "old_string must be unique in the file unless replace_all is true; new_string must "
        "differ from old_string."),
    input_schema=schema({
        "file_path": {"type": "string", "description": "The absolute path to the file to modify"},
        "old_string": {"type": "string", "description": "The text to replace"},
        "new_string": {"type": "string", "description": "The text to replace it with (must be "
                                                        "different from old_string)"},
        "replace_all": {"type": "boolean", "default": False,
                        "description": "Replace all occurrences of old_string (default false)"},
    }, ["file_path", "old_string", "new_string"]),
    run=run_edit,
)
