"""Glob and Grep (pure Python: the sandbox image has no ripgrep), with Claude Code's outputs."""

from __future__ import annotations

import os
import re
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from ash.runtime.permissions import glob_regex
from ash.runtime.tools import Tool, ToolContext, ToolError, ToolOutput, schema

GLOB_LIMIT = 100
DEFAULT_HEAD_LIMIT = 250
SKIP_DIRS = frozenset({".git", ".hg", ".svn", "node_modules", "__pycache__", ".ash"})
TYPES = {"py": ("py", "pyi"), "js": ("js", "mjs", "cjs", "jsx"), "ts": ("ts", "tsx", "mts"),
         "go": ("go",), "rust": ("rs",), "java": ("java",), "c": ("c", "h"),
         "cpp": ("cpp", "cc", "cxx", "hpp", "hh", "h"), "md": ("md", "markdown"),
         "json": ("json",), "yaml": ("yaml", "yml"), "toml": ("toml",), "sh": ("sh", "bash"),
         "html": ("html", "htm"), "css": ("css", "scss"), "rb": ("rb",), "php": ("php",),
         "sql": ("sql",), "txt": ("txt",)}


def expand_braces(pattern: str) -> list[str]:
    """`*.{ts,tsx}` -> [`*.ts`, `*.tsx`] (nested braces supported)."""
    m = re.search(r"\{([^{}]*)\}", pattern)
    if not m:
        return [pattern]
    out: list[str] = []
    for alt in m.group(1).split(","):
        out += expand_braces(pattern[: m.start()] + alt + pattern[m.end():])
    return out


def _walk(root: Path) -> Iterator[Path]:
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted(d for d in dirnames if d not in SKIP_DIRS)
        for name in sorted(filenames):
            yield Path(dirpath) / name


def _search_root(tool_input: dict[str, Any], ctx: ToolContext) -> Path:
    raw = tool_input.get("path")
    root = Path(raw) if raw else (ctx.shell_cwd or ctx.workspace)
    if not root.is_absolute():
        root = (ctx.shell_cwd or ctx.workspace) / root
    if not root.exists():
        raise ToolError(f"Path does not exist: {raw}")
    return root


def _display(path: Path, ctx: ToolContext) -> str:
    base = ctx.shell_cwd or ctx.workspace
    try:
        return str(path.relative_to(base))
    except ValueError:
        return str(path)


def _matcher(patterns: list[str]) -> re.Pattern[str]:
    return re.compile("|".join(f"(?:{glob_regex(p)})" for p in patterns))


async def run_glob(tool_input: dict[str, Any], ctx: ToolContext) -> ToolOutput:
    started = time.monotonic()
    root = _search_root(tool_input, ctx)
    pattern = tool_input["pattern"]
    patterns = expand_braces(pattern)
    regex = _matcher(patterns)
    hits = [p for p in _walk(root) if regex.fullmatch(p.relative_to(root).as_posix())]
    # Newest first, as Claude Code sorts Glob results by modification time.
    hits.sort(key=lambda p: p.stat().st_mtime, reverse=True)
    truncated = len(hits) > GLOB_LIMIT
    names = [_display(p, ctx) for p in hits[:GLOB_LIMIT]]
    structured = {"filenames": names, "numFiles": len(names), "truncated": truncated,
                  "durationMs": int((time.monotonic() - started) * 1000)}
    if not names:
        return ToolOutput("No files found", False, structured)
    text = "\n".join(names)
    if truncated:
        text += "\n(Results are truncated. Consider using a more specific path or pattern.)"
    return ToolOutput(text, False, structured)


def _candidate_files(root: Path, tool_input: dict[str, Any]) -> list[Path]:
    files = [root] if root.is_file() else list(_walk(root))
    if tool_input.get("glob"):
        globs = expand_braces(tool_input["glob"])
        name_re = _matcher([g for g in globs if "/" not in g] or ["\0"])
        path_re = _matcher([g for g in globs if "/" in g] or ["\0"])
        files = [f for f in files if name_re.fullmatch(f.name) or (
            root.is_dir() and path_re.fullmatch(f.relative_to(root).as_posix()))]
    if tool_input.get("type"):
        exts = TYPES.get(tool_input["type"])
        if exts is None:
            raise ToolError(f"unrecognized file type: {tool_input['type']}")
        files = [f for f in files if f.suffix.lstrip(".") in exts]
    return files


def _read(path: Path) -> str | None:
    try:
        data = path.read_bytes()
    except OSError:
        return None
    return None if b"\0" in data[:8192] else data.decode("utf-8", errors="replace")


async def run_grep(tool_input: dict[str, Any], ctx: ToolContext) -> ToolOutput:
    mode = tool_input.get("output_mode", "files_with_matches")
    flags = re.IGNORECASE if tool_input.get("-i") else 0
    multiline = bool(tool_input.get("multiline"))
    if multiline:
        flags |= re.DOTALL | re.MULTILINE
    try:
        regex = re.compile(tool_input["pattern"], flags)
    except re.error as exc:
        raise ToolError(f"Invalid regex: {exc}") from None
    root = _search_root(tool_input, ctx)
    head = int(tool_input.get("head_limit", DEFAULT_HEAD_LIMIT))
    skip = int(tool_input.get("offset") or 0)
    files: list[str] = []
    counts: list[tuple[str, int]] = []
    lines_out: list[str] = []
    after = int(tool_input.get("-A") or tool_input.get("-C") or tool_input.get("context") or 0)
    before = int(tool_input.get("-B") or tool_input.get("-C") or tool_input.get("context") or 0)
    numbers = tool_input.get("-n", True)
    for path in _candidate_files(root, tool_input):
        text = _read(path)
        if text is None:
            continue
        name = _display(path, ctx)
        if multiline:
            found = list(regex.finditer(text))
            hit_lines = sorted({text.count("\n", 0, m.start()) for m in found})
            n = len(found)
        else:
            hit_lines = [i for i, line in enumerate(text.split("\n")) if regex.search(line)]
            n = len(hit_lines)
        if not n:
            continue
        files.append(name)
        counts.append((name, n))
        if mode == "content":
            lines_out += _content_lines(name, text.split("\n"), hit_lines, before, after,
                                        numbers, regex if tool_input.get("-o") else None)
    return _grep_output(mode, files, counts, lines_out, head, skip)


def _content_lines(name: str, lines: list[str], hits: list[int], before: int, after: int,
                   numbers: bool, only: re.Pattern[str] | None) -> list[str]:
    shown: list[int] = []
    for i in hits:
        shown += range(max(0, i - before), min(len(lines), i + after + 1))
    out = []
    hit_set = set(hits)
    for i in sorted(set(shown)):
        sep = ":" if i in hit_set else "-"
        prefix = f"{name}{sep}{i + 1}{sep}" if numbers else f"{name}{sep}"
        if only is not None and i in hit_set:
            out += [prefix + m.group(0) for m in only.finditer(lines[i])]
        else:
            out.append(prefix + lines[i])
    return out


def _window(items: list[Any], head: int, skip: int) -> list[Any]:
    items = items[skip:]
    return items if not head else items[:head]


def _grep_output(mode: str, files: list[str], counts: list[tuple[str, int]],
                 lines_out: list[str], head: int, skip: int) -> ToolOutput:
    if mode == "content":
        shown = _window(lines_out, head, skip)
        text = "\n".join(shown) if shown else "No matches found"
        return ToolOutput(text, False, {"mode": "content", "content": "\n".join(shown),
                                        "numLines": len(shown), "filenames": [],
                                        "numFiles": len(files)})
    if mode == "count":
        shown_counts = _window(counts, head, skip)
        total = sum(n for _, n in shown_counts)
        body = "\n".join(f"{name}:{n}" for name, n in shown_counts)
        text = (f"{body}\n\nFound {total} total occurrences across {len(shown_counts)} files."
                if shown_counts else "No matches found")
        return ToolOutput(text, False, {"mode": "count", "numMatches": total,
                                        "filenames": [n for n, _ in shown_counts],
                                        "numFiles": len(shown_counts)})
    shown_files = _window(files, head, skip)
    text = (f"Found {len(shown_files)} file{'s' if len(shown_files) != 1 else ''}\n"
            + "\n".join(shown_files)) if shown_files else "No files found"
    return ToolOutput(text, False, {"mode": "files_with_matches", "filenames": shown_files,
                                    "numFiles": len(shown_files)})


GLOB = Tool(
    name="Glob",
    description=("Fast file pattern matching, e.g. \"**/*.js\" or \"src/**/*.{ts,tsx}\". Returns "
                 "matching paths sorted by modification time, newest first."),
    input_schema=schema({
        "pattern": {"type": "string", "description": "The glob pattern to match files against"},
        "path": {"type": "string", "description": "The directory to search in (default: cwd)"},
    }, ["pattern"]),
    run=run_glob,
)
GREP = Tool(
    name="Grep",
    description=("Searches file contents with a regular expression. output_mode is "
                 "files_with_matches (default), content (matching lines, with -A/-B/-C context "
                 "and -n line numbers) or count. Filter files with glob or type."),
    input_schema=schema({
        "pattern": {"type": "string"},
        "path": {"type": "string"},
        "glob": {"type": "string"},
        "output_mode": {"type": "string", "enum": ["content", "files_with_matches", "count"]},
        "-B": {"type": "number"}, "-A": {"type": "number"}, "-C": {"type": "number"},
        "context": {"type": "number"},
        "-n": {"type": "boolean"}, "-i": {"type": "boolean"}, "-o": {"type": "boolean"},
        "type": {"type": "string"},
        "head_limit": {"type": "number"}, "offset": {"type": "number"},
        "multiline": {"type": "boolean"},
    }, ["pattern"]),
    run=run_grep,
)
