"""Claude Code permission rules (`Bash(git:*)`, `Edit(src/**)`, `mcp__srv__*`) and modes.

Evaluation order is deny, then ask, then allow, then the permission mode, as Claude Code does.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

# Tools that never prompt (read-only or harmless bookkeeping).
READ_ONLY_TOOLS = frozenset({"Read", "Glob", "Grep", "TodoWrite", "Agent", "Task",
                             "StructuredOutput", "ListMcpResources", "ReadMcpResource"})
EDIT_TOOLS = frozenset({"Edit", "Write", "NotebookEdit", "MultiEdit"})
PATH_KEYS = ("file_path", "notebook_path", "path")
_SYNONYMS = {"Task": "Agent", "Agent": "Agent"}

ALLOW, ASK, DENY = "allow", "ask", "deny"


@dataclass(frozen=True)
class Rule:
    tool: str
    spec: str | None = None  # the text inside the parentheses

    @classmethod
    def parse(cls, text: str) -> Rule:
        text = text.strip()
        m = re.fullmatch(r"([^()\s]+)\((.*)\)", text, re.S)
        if m:
            return cls(m.group(1), m.group(2))
        return cls(text)

    def __str__(self) -> str:
        return self.tool if self.spec is None else f"{self.tool}({self.spec})"

    @property
    def whole_tool(self) -> bool:
        """True when the rule names a tool (or MCP server) without restricting its input."""
        return self.spec is None or self.spec in ("", "*")

    def matches(self, tool: str, tool_input: dict[str, Any] | None, cwd: Path) -> bool:
        if not _tool_matches(self.tool, tool):
            return False
        if self.whole_tool or tool_input is None:
            return self.whole_tool
        if tool == "Bash":
            return bash_spec_matches(self.spec or "", str(tool_input.get("command", "")))
        if tool in ("WebFetch",) and self.spec and self.spec.startswith("domain:"):
            from urllib.parse import urlparse
            host = urlparse(str(tool_input.get("url", ""))).hostname or ""
            want = self.spec[len("domain:"):]
            return host == want or host.endswith("." + want)
        path = next((tool_input[k] for k in PATH_KEYS if isinstance(tool_input.get(k), str)), None)
        if path is None:
            return False
        return path_spec_matches(self.spec or "", path, cwd)


def _tool_matches(rule_tool: str, tool: str) -> bool:
    if _SYNONYMS.get(rule_tool, rule_tool) == _SYNONYMS.get(tool, tool):
        return True
    # Edit rules cover every file-editing tool, as in Claude Code.
    if rule_tool == "Edit" and tool in EDIT_TOOLS:
        return True
    if rule_tool.startswith("mcp__"):
        parts = rule_tool.split("__")
        if len(parts) == 2 or (len(parts) == 3 and parts[2] in ("", "*")):
            return tool.startswith(f"mcp__{parts[1]}__")
        if "*" in rule_tool:
            return re.fullmatch(glob_regex(rule_tool, slash=False), tool) is not None
    return False


def bash_spec_matches(spec: str, command: str) -> bool:
    """`git:*` (legacy prefix form), `git *` (wildcards) or an exact command."""
    command = command.strip()
    if spec.endswith(":*"):
        prefix = spec[:-2]
        return command == prefix or command.startswith(prefix + " ")
    if "*" in spec:
        pattern = "".join(".*" if ch == "*" else re.escape(ch) for ch in spec)
        # "git *" also matches a bare "git", as Claude Code's word-boundary wildcard does.
        if spec.endswith(" *") and command == spec[:-2]:
            return True
        return re.fullmatch(pattern, command, re.S) is not None
    return command == spec


def glob_regex(pattern: str, slash: bool = True) -> str:
    out, i = [], 0
    while i < len(pattern):
        ch = pattern[i]
        if pattern.startswith("**/", i):
            out.append("(?:.*/)?")
            i += 3
            continue
        if pattern.startswith("**", i):
            out.append(".*")
            i += 2
            continue
        if ch == "*":
            out.append("[^/]*" if slash else ".*")
        elif ch == "?":
            out.append("[^/]" if slash else ".")
        else:
            out.append(re.escape(ch))
        i += 1
    return "".join(out)


def path_spec_matches(spec: str, path: str, cwd: Path) -> bool:
    """gitignore-style path rules as Claude Code reads them.

    `//abs/**` is an absolute path, `~/x` is under $HOME, `/x` and `./x` and `a/b` are relative
    to the project root (the cwd), and a pattern without a slash matches a name at any depth.
    """
    target = os.path.normpath(path if os.path.isabs(path) else os.path.join(cwd, path))
    body = spec.rstrip("/")
    if body.startswith("//"):
        anchored = body[1:]
    elif body.startswith("~/"):
        anchored = os.path.expanduser("~") + body[1:]
    elif "/" not in body:
        return re.fullmatch(glob_regex(body), os.path.basename(target)) is not None
    else:
        rel = body[2:] if body.startswith("./") else body.lstrip("/")
        anchored = os.path.join(str(cwd), rel)
    regex = glob_regex(anchored)
    # A directory rule also covers everything below it.
    return re.fullmatch(regex, target) is not None or re.fullmatch(regex + "/.*", target) \
        is not None


@dataclass
class Decision:
    behavior: str  # allow | ask | deny
    reason: str = ""  # which rule or mode decided
    rule: str | None = None


@dataclass
class PermissionPolicy:
    mode: str = "bypassPermissions"
    allow: list[Rule] = field(default_factory=list)
    deny: list[Rule] = field(default_factory=list)
    ask: list[Rule] = field(default_factory=list)
    cwd: Path = Path("/workspace")

    @classmethod
    def build(cls, mode: str, allow: Iterable[str], deny: Iterable[str], ask: Iterable[str],
              cwd: Path) -> PermissionPolicy:
        return cls(mode, [Rule.parse(r) for r in allow], [Rule.parse(r) for r in deny],
                   [Rule.parse(r) for r in ask], cwd)

    def removed(self, tool: str) -> bool:
        """A whole-tool deny rule takes the tool out of the model's context."""
        return any(r.whole_tool and _tool_matches(r.tool, tool) for r in self.deny)

    def decide(self, tool: str, tool_input: dict[str, Any]) -> Decision:
        for kind, rules in ((DENY, self.deny), (ASK, self.ask), (ALLOW, self.allow)):
            for rule in rules:
                if rule.matches(tool, tool_input, self.cwd):
                    return Decision(kind, "rule", str(rule))
        return self._by_mode(tool, tool_input)

    def _by_mode(self, tool: str, tool_input: dict[str, Any]) -> Decision:
        if self.mode == "bypassPermissions":
            return Decision(ALLOW, "mode")
        if tool in READ_ONLY_TOOLS:
            return Decision(ALLOW, "mode")
        if self.mode == "acceptEdits" and tool in EDIT_TOOLS and self._inside_cwd(tool_input):
            return Decision(ALLOW, "mode")
        if self.mode in ("plan", "dontAsk"):
            return Decision(DENY, "mode")
        return Decision(ASK, "mode")

    def _inside_cwd(self, tool_input: dict[str, Any]) -> bool:
        path = next((tool_input[k] for k in PATH_KEYS if isinstance(tool_input.get(k), str)), "")
        full = os.path.normpath(os.path.join(self.cwd, path))
        return full == str(self.cwd) or full.startswith(str(self.cwd).rstrip("/") + "/")


def denial_message(tool: str, tool_input: dict[str, Any]) -> str:
    """What `claude -p` says when a prompt cannot be answered."""
    if tool in EDIT_TOOLS:
        target = next((tool_input[k] for k in PATH_KEYS if isinstance(tool_input.get(k), str)),
                      "a file")
        what = f"write to {target}"
    else:
        what = f"use {tool}"
    return f"Claude requested permissions to {what}, but you haven't granted it yet."


def describe(tool: str, tool_input: dict[str, Any]) -> str:
    """One-line description shown with a permission request."""
    if tool == "Bash":
        return str(tool_input.get("description") or tool_input.get("command", ""))
    path = next((tool_input[k] for k in PATH_KEYS if isinstance(tool_input.get(k), str)), None)
    return os.path.basename(path) if path else tool
