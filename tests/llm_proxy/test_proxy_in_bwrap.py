"""A process in a bubblewrap sandbox (no network, another uid) reaches the proxy socket."""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path

import pytest

from ash.llm_proxy import LOCAL_MODEL_ID, Upstream, UsageRecord
from tests.llm_proxy.conftest import ProxyFactory

PROXY_DIR = "/run/ash-proxy"
CLIENT = f"""
import anthropic, httpx2
client = anthropic.Anthropic(api_key="placeholder", base_url="http://ash-proxy", max_retries=0,
                             http_client=httpx2.Client(transport=httpx2.HTTPTransport(
                                 uds="{PROXY_DIR}/llm.sock", verify=False)))
msg = client.messages.create(model="claude-sonnet-4-6", max_tokens=50,
                             messages=[{{"role": "user", "content": "hello from the sandbox"}}])
import json, os
print(json.dumps({{"model": msg.model, "uid": os.getuid(), "text": msg.content[0].text}}))
"""


@pytest.mark.slow
async def test_sandboxed_process_uses_the_read_only_bound_socket(
        make_proxy: ProxyFactory, usage_records: list[UsageRecord]) -> None:
    proxy = await make_proxy(Upstream.local())
    venv = Path(sys.executable).parent.parent
    argv = ["bwrap", "--unshare-all", "--unshare-user", "--uid", "1000", "--gid", "1000",
            "--die-with-parent", "--ro-bind", "/usr", "/usr", "--ro-bind", "/etc", "/etc",
            "--symlink", "usr/lib", "/lib", "--symlink", "usr/lib64", "/lib64",
            "--symlink", "usr/bin", "/bin", "--ro-bind", str(venv), str(venv),
            "--ro-bind", "/root/.pyenv", "/root/.pyenv",
            "--ro-bind", str(Path(__file__).resolve().parents[2]), "/src",
            "--proc", "/proc", "--dev", "/dev", "--tmpfs", "/tmp",
            "--ro-bind", str(proxy.socket_dir), PROXY_DIR,
            "--setenv", "PYTHONPATH", "/src",
            sys.executable, "-c", CLIENT]
    proc = await asyncio.create_subprocess_exec(*argv, stdout=asyncio.subprocess.PIPE,
                                                stderr=asyncio.subprocess.PIPE)
    out, err = await asyncio.wait_for(proc.communicate(), 60)
    assert proc.returncode == 0, err.decode()[-2000:]
    result = json.loads(out)
    assert result["uid"] == 1000
    assert result["model"] == LOCAL_MODEL_ID
    assert "hello from the sandbox" in result["text"]
    assert [r.local for r in usage_records] == [True]
