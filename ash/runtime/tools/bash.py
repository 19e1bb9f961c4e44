"""The Bash tool: one `bash -c` per call, with the working directory carried between calls."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import tempfile
from pathlib import Path
from typing import Any

from ash.runtime.tools import Tool, ToolContext, ToolOutput, schema

DEFAULT_TIMEOUT_MS = 120_000
MAX_TIMEOUT_MS = 600_000
_DRAIN_GRACE_S = 0.5  # background children may keep the pipes open; stop waiting after this

DESCRIPTION = (
    "Executes a given bash command and returns its output.\n\n"
    "The working directory persists between commands (within the workspace); shell state such as "
    "variables does not. Always quote file paths that contain spaces. The default timeout is "
    f"{DEFAULT_TIMEOUT_MS} ms (2 minutes); you may pass `timeout` up to {MAX_TIMEOUT_MS} ms. Very "
    "long output is truncated. Prefer the Read, Edit, Write, Glob and Grep tools for file work."
)


class _Sink:
    """Keeps the head of a stream (bounded memory) and counts what it dropped."""

    def __init__(self, cap: int) -> None:
        self.data, self.cap, self.dropped = bytearray(), cap, 0

    async def collect(self, stream: asyncio.StreamReader) -> None:
        while chunk := await stream.read(65536):
            room = max(0, self.cap - len(self.data))
            self.data.extend(chunk[:room])
            self.dropped += len(chunk) - min(room, len(chunk))

    def text(self, limit: int) -> str:
        text = self.data.decode(errors="replace").rstrip("\n")
        extra = self.dropped + max(0, len(text) - limit)
        if not extra:
            return text
        return text[:limit] + f"\n\n... [output truncated: {extra} more characters] ..."


def _kill_group(proc: asyncio.subprocess.Process) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signal.SIGKILL)


async def run_bash(tool_input: dict[str, Any], ctx: ToolContext) -> ToolOutput:
    timeout_ms = min(int(tool_input.get("timeout") or DEFAULT_TIMEOUT_MS), MAX_TIMEOUT_MS)
    fd, cwd_file = tempfile.mkstemp(prefix="ash-cwd-")
    os.close(fd)
    # Record the final directory unless the command exits the shell itself.
    script = f'{tool_input["command"]}\n__ash_status=$?\npwd -P > "$__ASH_CWD_FILE"\n' \
             'exit $__ash_status\n'
    env = {**os.environ, "__ASH_CWD_FILE": cwd_file}
    cwd = ctx.shell_cwd if ctx.shell_cwd and ctx.shell_cwd.is_dir() else ctx.workspace
    cap = ctx.bash_output_limit * 4 + 1024
    out, err = _Sink(cap), _Sink(cap)
    proc = await asyncio.create_subprocess_exec(
        "bash", "-c", script, cwd=str(cwd), env=env, stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE, start_new_session=True)
    assert proc.stdout is not None and proc.stderr is not None
    readers = [asyncio.create_task(out.collect(proc.stdout)),
               asyncio.create_task(err.collect(proc.stderr))]
    timed_out = False
    try:
        try:
            await asyncio.wait_for(proc.wait(), timeout_ms / 1000)
        except TimeoutError:
            timed_out = True
            _kill_group(proc)
            await proc.wait()
        await asyncio.wait(readers, timeout=_DRAIN_GRACE_S)
    except asyncio.CancelledError:
        _kill_group(proc)
        raise
    finally:
        for r in readers:
            r.cancel()
        new_cwd = Path(cwd_file).read_text().strip() if os.path.exists(cwd_file) else ""
        with contextlib.suppress(OSError):
            os.unlink(cwd_file)
    note = _update_cwd(ctx, new_cwd)
    stdout, stderr = out.text(ctx.bash_output_limit), err.text(ctx.bash_output_limit)
    structured = {"stdout": stdout, "stderr": stderr, "interrupted": timed_out,
                  "isImage": False, "noOutputExpected": False}
    text = "\n".join(p for p in (stdout, stderr) if p)
    if timed_out:
        text = f"{text}\nCommand timed out after {timeout_ms / 1000:g}s".lstrip("\n")
        return ToolOutput(text, True, structured)
    if proc.returncode:
        text = f"Exit code {proc.returncode}\n{text}".rstrip("\n")
        return ToolOutput(text + note, True, f"Error: Exit code {proc.returncode}")
    return ToolOutput((text or "(no output)") if not note else text + note, False, structured)


def _update_cwd(ctx: ToolContext, new_cwd: str) -> str:
    """Keep the shell's new directory if it is inside the workspace, else reset (and say so)."""
    if not new_cwd:
        return ""
    root = str(ctx.workspace.resolve())
    if new_cwd == root or new_cwd.startswith(root.rstrip("/") + "/"):
        ctx.shell_cwd = Path(new_cwd)
        return ""
    ctx.shell_cwd = ctx.workspace
    return f"\nShell cwd was reset to {ctx.workspace}"


BASH = Tool(
    name="Bash",
    description=DESCRIPTION,
    input_schema=schema({
        "command": {"type": "string", "description": "The command to execute"},
        "timeout": {"type": "number", "description": f"Optional timeout in milliseconds "
                                                     f"(max {MAX_TIMEOUT_MS})"},
        "description": {"type": "string", "description": "Clear, concise description of what "
                                                         "this command does in 5-10 words"},
    }, ["command"]),
    run=run_bash,
)
