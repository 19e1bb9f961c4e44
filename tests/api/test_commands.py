"""Management commands: createapikey, rotatecredentialkeys, and serve (a real Daphne process)."""

from __future__ import annotations

import http.client
import json
import os
import signal
import socket
import stat
import subprocess
import sys
import time
from io import StringIO
from pathlib import Path

import pytest
from django.core.management import CommandError, call_command

from ash.auth import hash_api_key
from ash.core.models import ApiKey
from tests.conftest import TenantClient, assert_error

REPO = Path(__file__).resolve().parents[2]


def test_createapikey_prints_a_working_key_once(db):
    out = StringIO()
    call_command("createapikey", "--tenant", "acme", "--label", "ci", stdout=out)
    key = out.getvalue().strip()
    assert key.startswith("ash_") and "\n" not in key
    row = ApiKey.objects.get()
    assert (row.tenant_id, row.label, row.key_hash) == ("acme", "ci", hash_api_key(key))
    client = TenantClient("acme", key)
    assert client.post_json("/api/agents", {"name": "acme-agent"}).json()["agent"]["tenantId"] == "acme"


def test_createapikey_mints_a_new_key_each_time(db):
    keys = set()
    for _ in range(2):
        out = StringIO()
        call_command("createapikey", "--tenant", "acme", stdout=out)
        keys.add(out.getvalue().strip())
    assert len(keys) == 2
    assert ApiKey.objects.filter(tenant_id="acme").count() == 2


@pytest.mark.parametrize("tenant", ["", "has space", "x" * 65, "a/b"])
def test_createapikey_rejects_bad_tenant_names(db, tenant):
    with pytest.raises(CommandError, match="--tenant must match"):
        call_command("createapikey", "--tenant", tenant, stdout=StringIO())
    assert not ApiKey.objects.exists()


def test_rotatecredentialkeys_with_nothing_to_do(db):
    out = StringIO()
    call_command("rotatecredentialkeys", stdout=out)
    assert out.getvalue().strip() == "re-encrypted 0 credential(s)"


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_rotatecredentialkeys_outside_a_test_transaction(settings):
    from cryptography.fernet import Fernet

    from credentials_app import crypto
    from credentials_app.models import Credential
    from credentials_app.services import credential_create

    old, new = Fernet.generate_key().decode(), Fernet.generate_key().decode()
    settings.ASH_CREDENTIAL_KEYS = [old]
    for n in range(3):
        credential_create(tenant_id="rot", type="openai", key=f"sk-{n}")
    settings.ASH_CREDENTIAL_KEYS = [new, old]
    out = StringIO()
    call_command("rotatecredentialkeys", stdout=out)
    assert out.getvalue().strip() == "re-encrypted 3 credential(s)"
    settings.ASH_CREDENTIAL_KEYS = [new]
    assert sorted(crypto.decrypt(t) for t in Credential.objects.values_list("encrypted_key", flat=True)) == ["sk-0", "sk-1", "sk-2"]


# --- serve: the real server process ------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _request(port: int, method: str, path: str, body: bytes | None = None, headers: dict | None = None, chunked: bool = False):
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        if chunked:
            conn.putrequest(method, path)
            for name, value in (headers or {}).items():
                conn.putheader(name, value)
            conn.putheader("Transfer-Encoding", "chunked")
            conn.endheaders()
            for i in range(0, len(body or b""), 4096):
                chunk = body[i : i + 4096]
                try:
                    conn.send(f"{len(chunk):x}\r\n".encode() + chunk + b"\r\n")
                except (BrokenPipeError, ConnectionResetError):
                    break  # the server answered early and closed
            else:
                conn.send(b"0\r\n\r\n")
        else:
            conn.request(method, path, body=body, headers=headers or {})
        response = conn.getresponse()
        return response.status, response.read()
    finally:
        conn.close()


@pytest.mark.slow
def test_serve_bootstraps_a_private_key_file_and_serves_the_api(tmp_path):
    port = _free_port()
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "ash.settings",
        "ASH_DATA_DIR": str(tmp_path / "data"),
        "ASH_MODE": "embedded",
        "ASH_MAX_BODY_BYTES": "65536",
        "ASH_LOG_LEVEL": "INFO",
    }
    for name in ("DATABASE_URL", "REDIS_URL", "ASH_API_KEY", "ASH_INTERNAL_SECRET"):
        env.pop(name, None)
    log = tmp_path / "serve.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "manage.py", "serve", "--host", "127.0.0.1", "--port", str(port)],
            cwd=REPO, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
        )
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                status, body = _request(port, "GET", "/health")
                if status == 200:
                    break
            except OSError:
                pass
            assert proc.poll() is None, log.read_text()
            assert time.monotonic() < deadline, log.read_text()
            time.sleep(0.2)
        assert json.loads(body)["status"] == "ok"

        key_file = tmp_path / "data" / "initial-api-key"
        assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
        key = key_file.read_text().strip()
        auth = {"Authorization": f"Bearer {key}", "Content-Type": "application/json"}
        status, body = _request(port, "GET", "/api/agents", headers=auth)
        assert status == 200
        assert [a["name"] for a in json.loads(body)["agents"]] == ["demo"]

        status, body = _request(port, "GET", "/api/agents", headers={"Authorization": "Bearer ash_wrong"})
        assert (status, json.loads(body)) == (401, {"error": "Invalid API key", "statusCode": 401})

        # A chunked body (no Content-Length) over the limit is cut off on the wire with a 413.
        status, body = _request(port, "POST", "/api/agents", body=b"x" * 200_000, headers=auth, chunked=True)
        assert (status, json.loads(body)) == (413, {"error": "Request body too large (limit 65536 bytes)", "statusCode": 413})
        status, body = _request(port, "POST", "/api/agents", body=json.dumps({"name": "chunky"}).encode(), headers=auth, chunked=True)
        assert status == 201, body
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    output = log.read_text()
    assert key not in output  # printed neither by serve nor by any logger
    assert str(key_file) in output
    assert "event loop: uvloop" in output  # Daphne's reactor runs on the loop manage.py chose


def test_assert_error_helper_is_strict(api):
    # The shared helper refuses extra keys: guards every envelope assertion in this package.
    with pytest.raises(AssertionError):
        assert_error(api.get("/api/agents"), 200)
