"""Each built-in tool: inputs, outputs and Claude Code's rules."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from ash.runtime.tools import ToolContext, builtin_tools, run_tool

TOOLS = builtin_tools()


@pytest.fixture
def ctx(tmp_path: Path) -> ToolContext:
    ws = tmp_path / "ws"
    ws.mkdir()
    return ToolContext(workspace=ws.resolve(), bash_output_limit=200)


async def call(name: str, ctx: ToolContext, **tool_input):
    return await run_tool(TOOLS[name], tool_input, ctx)


# -- Bash ---------------------------------------------------------------------------------

async def test_bash_stdout_stderr_and_structured(ctx: ToolContext) -> None:
    out = await call("Bash", ctx, command="echo out; echo err >&2")
    assert out.content == "out\nerr" and out.is_error is False
    assert out.structured == {"stdout": "out", "stderr": "err", "interrupted": False,
                              "isImage": False, "noOutputExpected": False}


async def test_bash_exit_code_is_an_error(ctx: ToolContext) -> None:
    out = await call("Bash", ctx, command="echo nope; exit 3")
    assert out.is_error and out.content == "Exit code 3\nnope"
    assert out.structured == "Error: Exit code 3"


async def test_bash_cwd_persists_inside_the_workspace_only(ctx: ToolContext) -> None:
    await call("Bash", ctx, command="mkdir -p a/b && cd a/b")
    assert (await call("Bash", ctx, command="pwd")).content == str(ctx.workspace / "a" / "b")
    out = await call("Bash", ctx, command="cd /")
    assert "Shell cwd was reset to" in out.content
    assert (await call("Bash", ctx, command="pwd")).content == str(ctx.workspace)


async def test_bash_timeout_kills_the_process_group(ctx: ToolContext) -> None:
    out = await call("Bash", ctx, command="echo started; sleep 20 & sleep 20", timeout=300)
    assert out.is_error and "Command timed out after 0.3s" in out.content
    assert out.structured["interrupted"] is True and out.structured["stdout"] == "started"


async def test_bash_output_is_capped(ctx: ToolContext) -> None:
    out = await call("Bash", ctx, command="head -c 5000 /dev/zero | tr '\\0' x")
    assert out.structured["stdout"].startswith("x" * 200)
    assert "[output truncated: 4800 more characters]" in out.content


async def test_bash_requires_command(ctx: ToolContext) -> None:
    out = await call("Bash", ctx, cmd="ls")
    assert out.is_error and "InputValidationError" in out.content
    assert "'command' is a required property" in out.content


# -- Read / Write / Edit ------------------------------------------------------------------

async def test_read_numbers_lines_and_honours_offset_limit(ctx: ToolContext) -> None:
    f = ctx.workspace / "f.py"
    f.write_text("a\nb\nc\nd\n")
    out = await call("Read", ctx, file_path=str(f))
    assert out.content == "1\ta\n2\tb\n3\tc\n4\td"
    assert out.structured["file"]["totalLines"] == 4
    part = await call("Read", ctx, file_path=str(f), offset=2, limit=2)
    assert part.content == "2\tb\n3\tc" and part.structured["file"]["startLine"] == 2


async def test_read_errors(ctx: ToolContext) -> None:
    assert "does not exist" in (await call("Read", ctx, file_path=str(ctx.workspace / "x"))).content
    assert "absolute" in (await call("Read", ctx, file_path="rel.txt")).content
    (ctx.workspace / "empty").write_text("")
    empty = await call("Read", ctx, file_path=str(ctx.workspace / "empty"))
    assert "contents are empty" in empty.content and not empty.is_error
    (ctx.workspace / "bin").write_bytes(b"\0\1\2")
    assert "binary" in (await call("Read", ctx, file_path=str(ctx.workspace / "bin"))).content


async def test_write_creates_then_requires_a_fresh_read(ctx: ToolContext) -> None:
    path = str(ctx.workspace / "new" / "x.txt")
    out = await call("Write", ctx, file_path=path, content="one\n")
    assert out.content == f"File created successfully at: {path}"
    assert out.structured["type"] == "create" and out.structured["originalFile"] is None
    ctx.read_files.clear()
    refused = await call("Write", ctx, file_path=path, content="two\n")
    assert refused.is_error and "has not been read yet" in refused.content
    await call("Read", ctx, file_path=path)
    os.utime(path, (os.path.getmtime(path) + 5,) * 2)  # changed behind our back
    stale = await call("Write", ctx, file_path=path, content="two\n")
    assert "modified since read" in stale.content
    await call("Read", ctx, file_path=path)
    ok = await call("Write", ctx, file_path=path, content="two\n")
    assert ok.structured["type"] == "update" and ok.structured["originalFile"] == "one\n"
    assert ok.structured["structuredPatch"][0]["lines"] == ["-one", "+two"]


async def test_edit_unique_replace_all_and_errors(ctx: ToolContext) -> None:
    f = ctx.workspace / "e.txt"
    f.write_text("x = 1\ny = 1\n")
    path = str(f)
    assert "not been read" in (await call("Edit", ctx, file_path=path, old_string="1",
                                          new_string="2")).content
    await call("Read", ctx, file_path=path)
    many = await call("Edit", ctx, file_path=path, old_string="1", new_string="2")
    assert many.is_error and "Found 2 matches" in many.content
    missing = await call("Edit", ctx, file_path=path, old_string="zzz", new_string="2")
    assert "String to replace not found" in missing.content
    same = await call("Edit", ctx, file_path=path, old_string="1", new_string="1")
    assert "No changes to make" in same.content
    one = await call("Edit", ctx, file_path=path, old_string="x = 1", new_string="x = 5")
    assert one.content == f"The file {path} has been updated successfully."
    assert one.structured["structuredPatch"] == [{"oldStart": 1, "oldLines": 2, "newStart": 1,
                                                  "newLines": 2,
                                                  "lines": ["-x = 1", "+x = 5", " y = 1"]}]
    allr = await call("Edit", ctx, file_path=path, old_string="= ", new_string="== ",
                      replace_all=True)
    assert allr.structured["replaceAll"] is True
    assert f.read_text() == "x == 5\ny == 1\n"


# -- Glob / Grep --------------------------------------------------------------------------

@pytest.fixture
def tree(ctx: ToolContext) -> Path:
    ws = ctx.workspace
    (ws / "src" / "pkg").mkdir(parents=True)
    (ws / "src" / "a.py").write_text("def one():\n    return 1\n")
    (ws / "src" / "pkg" / "b.py").write_text("def two():\n    return 2\n# Marker two\n")
    (ws / "src" / "c.ts").write_text("const x = 1\n")
    (ws / ".git").mkdir()
    (ws / ".git" / "config.py").write_text("return 9\n")
    return ws


async def test_glob(ctx: ToolContext, tree: Path) -> None:
    out = await call("Glob", ctx, pattern="**/*.py")
    assert sorted(out.content.split("\n")) == ["src/a.py", "src/pkg/b.py"]
    assert out.structured["numFiles"] == 2 and out.structured["truncated"] is False
    braces = await call("Glob", ctx, pattern="*.{py,ts}", path=str(tree / "src"))
    assert sorted(braces.structured["filenames"]) == ["src/a.py", "src/c.ts"]  # cwd-relative
    assert (await call("Glob", ctx, pattern="*.rs")).content == "No files found"


async def test_grep_modes(ctx: ToolContext, tree: Path) -> None:
    files = await call("Grep", ctx, pattern=r"return \d")
    assert files.content.split("\n")[0] == "Found 2 files"
    content = await call("Grep", ctx, pattern="return 2", output_mode="content")
    assert content.content == "src/pkg/b.py:2:    return 2"
    ctx_lines = await call("Grep", ctx, pattern="return 2", output_mode="content", **{"-B": 1})
    assert ctx_lines.content == "src/pkg/b.py-1-def two():\nsrc/pkg/b.py:2:    return 2"
    count = await call("Grep", ctx, pattern="two", output_mode="count")
    assert count.content.startswith("src/pkg/b.py:2")
    assert "Found 2 total occurrences across 1 files." in count.content
    typed = await call("Grep", ctx, pattern="x", type="ts", output_mode="files_with_matches")
    assert typed.structured["filenames"] == ["src/c.ts"]
    ci = await call("Grep", ctx, pattern="MARKER", glob="*.py", **{"-i": True})
    assert ci.structured["filenames"] == ["src/pkg/b.py"]
    limited = await call("Grep", ctx, pattern="e", output_mode="content", head_limit=1)
    assert len(limited.content.split("\n")) == 1
    bad = await call("Grep", ctx, pattern="(")
    assert bad.is_error and "Invalid regex" in bad.content


# -- TodoWrite / web ----------------------------------------------------------------------

async def test_todo_write_and_offline_web_tools(ctx: ToolContext) -> None:
    todos = [{"content": "Do it", "status": "in_progress", "activeForm": "Doing it"}]
    out = await call("TodoWrite", ctx, todos=todos)
    assert out.structured == {"oldTodos": [], "newTodos": todos} and ctx.todos == todos
    bad = await call("TodoWrite", ctx, todos=[{"content": "x", "status": "later",
                                               "activeForm": "x"}])
    assert bad.is_error
    web = await call("WebFetch", ctx, url="https://example.com", prompt="summarise")
    assert web.is_error and "no internet access" in web.content
    assert (await call("WebSearch", ctx, query="python")).is_error
