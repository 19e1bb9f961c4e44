"""The runtime runs under the system interpreter with the venv's packages on PYTHONPATH,
the way a sandbox starts it (`python3 -m ash.runtime`, cwd = the workspace)."""

from __future__ import annotations

import sysconfig
from pathlib import Path

import pytest

from tests.fakes.anthropic_server import FakeAnthropic, Reply, tool_use
from tests.runtime.conftest import REPO, messages, result_of, run_query

# Each test starts the runtime as a real subprocess (about 1.5 s of imports alone).
pytestmark = pytest.mark.slow

SYSTEM_PYTHON = "/usr/bin/python3"


async def test_system_python3_with_pythonpath(start_runtime, fake_anthropic: FakeAnthropic,
                                              workspace: Path) -> None:
    site = sysconfig.get_paths()["purelib"]
    fake_anthropic.script([Reply([tool_use("Bash", {"command": "pwd; python3 -V"}, "t")]),
                           Reply.text("ok")])
    client = await start_runtime(python=SYSTEM_PYTHON, PYTHONPATH=f"{REPO}:{site}")
    events = await run_query(client, "where am I")
    stdout = messages(events, "user")[0]["tool_use_result"]["stdout"]
    assert stdout.splitlines()[0] == str(workspace)
    assert result_of(events)["subtype"] == "success"
