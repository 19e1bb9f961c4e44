"""Exec, logs, files, attachments and workspace bundles of a live session (one shared session)."""

from __future__ import annotations

import base64
import io
import tarfile
import time
import uuid

import pytest

from tests.e2e.support import Api, assert_error, b64

pytestmark = pytest.mark.slow

ZERO = "00000000-0000-4000-8000-000000000000"


@pytest.fixture(scope="module")
def sid(ash) -> str:
    api: Api = ash.api
    name = f"ws-{uuid.uuid4().hex[:8]}"
    api.deploy(name, files={"CLAUDE.md": "# Workspace agent\n", "data/seed.json": '{"seed": 1}\n'})
    return api.create_session(name)["id"]


def _tar(members: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


# -- exec and logs -----------------------------------------------------------------------------

def test_exec_returns_stdout_stderr_and_exit_code(api: Api, sid: str) -> None:
    out = api.exec(sid, "echo hi; echo err >&2; exit 3")
    assert {k: out[k] for k in ("exitCode", "stdout", "stderr")} == {"exitCode": 3, "stdout": "hi\n", "stderr": "err\n"}
    assert out.get("timedOut", False) is False
    assert api.exec(sid, "pwd; ls")["stdout"].splitlines()[1:] == ["CLAUDE.md", "data"]


def test_exec_timeout_ends_quickly_with_nonzero_exit(api: Api, sid: str) -> None:
    started = time.monotonic()
    out = api.exec(sid, "echo before; sleep 30", timeout=500)
    assert time.monotonic() - started < 10
    assert out["exitCode"] != 0 and out["stdout"] == "before\n"
    assert out.get("timedOut", True) is True


def test_exec_validates_timeout_bounds_and_command(api: Api, sid: str) -> None:
    assert_error(api.post(f"/api/sessions/{sid}/exec", {"command": "true", "timeout": 0}), 400)
    assert_error(api.post(f"/api/sessions/{sid}/exec", {"command": "true", "timeout": 300_001}), 400)
    assert_error(api.post(f"/api/sessions/{sid}/exec", {}), 400)
    assert_error(api.post(f"/api/sessions/{ZERO}/exec", {"command": "true"}), 404)


def test_exec_on_paused_session_is_400(api: Api, agent: str) -> None:
    paused = api.create_session(agent)["id"]
    api.lifecycle(paused, "pause")
    assert_error(api.post(f"/api/sessions/{paused}/exec", {"command": "true"}), 400, "Session is paused")


def test_logs_have_index_level_text_ts(api: Api, sid: str) -> None:
    r = api.get(f"/api/sessions/{sid}/logs")
    assert r.status_code == 200
    body = r.json()
    assert body["source"] == "sandbox" and body["logs"]
    entry = body["logs"][0]
    assert set(entry) >= {"index", "level", "text", "ts"} and entry["index"] == 0
    assert entry["level"] in ("system", "stdout", "stderr")
    indexes = [e["index"] for e in body["logs"]]
    assert indexes == sorted(indexes)
    later = api.get(f"/api/sessions/{sid}/logs", params={"after": indexes[-1]}).json()["logs"]
    assert all(e["index"] > indexes[-1] for e in later)


# -- files -----------------------------------------------------------------------------------

def test_files_list_read_json_and_raw(api: Api, sid: str) -> None:
    body = api.get(f"/api/sessions/{sid}/files").json()
    assert body["source"] == "sandbox"
    paths = {f["path"] for f in body["files"]}
    assert {"CLAUDE.md", "data/seed.json"} <= paths
    assert all(set(f) == {"path", "size", "modifiedAt"} for f in body["files"])
    j = api.get(f"/api/sessions/{sid}/files/data/seed.json", params={"format": "json"}).json()
    assert j == {"path": "data/seed.json", "content": '{"seed": 1}\n', "size": 12, "source": "sandbox"}
    raw = api.get(f"/api/sessions/{sid}/files/CLAUDE.md")
    assert raw.status_code == 200 and raw.content == b"# Workspace agent\n"
    assert raw.headers["content-type"].startswith("text/markdown")
    assert raw.headers["x-ash-source"] == "sandbox"
    assert "attachment" in raw.headers["content-disposition"]
    assert api.get(f"/api/sessions/{sid}/files/data/seed.json").headers["content-type"].startswith("application/json")


def test_files_write_reports_each_file_and_rejects_escapes(api: Api, sid: str) -> None:
    r = api.post(f"/api/sessions/{sid}/files", {"files": [
        {"path": "up/a.txt", "content": b64("0123456789")},
        {"path": "../x", "content": b64("x")},
        {"path": "b.txt", "content": b64("bee")},
    ]})
    assert r.status_code == 200, r.text
    results = r.json()["files"]
    assert results[0] == {"path": "up/a.txt", "written": True, "size": 10}
    assert results[1]["path"] == "../x" and results[1]["written"] is False and results[1]["error"]
    assert results[2]["written"] is True
    assert api.exec(sid, "cat up/a.txt; ls ..")["stdout"].startswith("0123456789")
    assert "x" not in api.exec(sid, "ls ..")["stdout"].split()
    sub = api.post(f"/api/sessions/{sid}/files", {"files": [{"path": "c.txt", "content": b64("c")}], "targetPath": "sub"})
    assert sub.json()["files"][0]["written"] is True
    assert api.exec(sid, "cat sub/c.txt")["stdout"] == "c"
    assert_error(api.post(f"/api/sessions/{sid}/files", {"files": []}), 400)
    assert_error(api.post(f"/api/sessions/{sid}/files", {}), 400)


def test_files_delete_then_404(api: Api, sid: str) -> None:
    api.exec(sid, "echo bye > doomed.txt")
    r = api.delete(f"/api/sessions/{sid}/files/doomed.txt")
    assert r.status_code == 200 and r.json() == {"path": "doomed.txt", "deleted": True}
    assert_error(api.delete(f"/api/sessions/{sid}/files/doomed.txt"), 404)
    assert api.exec(sid, "test -e doomed.txt")["exitCode"] == 1


def test_files_traversal_is_400_and_unknown_is_404(api: Api, sid: str) -> None:
    assert_error(api.get(f"/api/sessions/{sid}/files/..%2F..%2Fetc%2Fpasswd"), 400)
    assert_error(api.get(f"/api/sessions/{sid}/files/a/..%2F..%2Fx"), 400)
    assert_error(api.get(f"/api/sessions/{sid}/files/nope.txt"), 404, "not found")
    assert_error(api.delete(f"/api/sessions/{sid}/files/..%2Fx"), 400)


def test_planted_symlinks_cannot_be_read_through_the_files_api(api: Api, sid: str) -> None:
    assert api.exec(sid, "ln -s /etc/passwd leak && ln -s / rootlink && mkdir -p d && ln -s /etc d/etc")["exitCode"] == 0
    for path in ("leak", "rootlink/etc/passwd", "d/etc/passwd"):
        for fmt in ("raw", "json"):
            r = api.get(f"/api/sessions/{sid}/files/{path}", params={"format": fmt})
            assert r.status_code in (400, 403, 404), (path, fmt, r.status_code)
            assert b"root:" not in r.content
    listed = {f["path"] for f in api.get(f"/api/sessions/{sid}/files").json()["files"]}
    assert not any(p.startswith(("rootlink/", "d/etc/")) for p in listed)
    # Writing through a planted link must not land outside the workspace either.
    r = api.post(f"/api/sessions/{sid}/files", {"files": [{"path": "rootlink/tmp/e2e-escape", "content": b64("x")}]})
    assert r.json()["files"][0]["written"] is False
    bundle = api.get(f"/api/sessions/{sid}/workspace").content
    with tarfile.open(fileobj=io.BytesIO(bundle), mode="r:gz") as tar:
        for member in tar.getmembers():
            if member.isfile():
                assert b"root:x:0:0" not in tar.extractfile(member).read(), member.name
    api.exec(sid, "rm -rf leak rootlink d")


# -- attachments -----------------------------------------------------------------------------

def test_attachment_upload_copies_into_workspace_and_round_trips(api: Api, other_api: Api, sid: str) -> None:
    payload = b"attachment bytes\n"
    r = api.post(f"/api/sessions/{sid}/attachments", {"filename": "../report.txt", "content": b64(payload),
                                                        "mimeType": "text/plain"})
    assert r.status_code == 201, r.text
    att = r.json()["attachment"]
    assert att["filename"] == "report.txt" and att["size"] == len(payload) and att["messageId"] == "unlinked"
    assert "storagePath" not in att
    assert api.exec(sid, "cat attachments/report.txt")["stdout"] == payload.decode()
    listed = api.get(f"/api/sessions/{sid}/attachments").json()["attachments"]
    assert att["id"] in [a["id"] for a in listed]
    got = api.get(f"/api/attachments/{att['id']}")
    assert got.status_code == 200 and got.content == payload
    assert got.headers["content-type"].startswith("text/plain")
    assert got.headers["x-content-type-options"] == "nosniff"
    assert_error(other_api.get(f"/api/attachments/{att['id']}"), 404)
    assert_error(other_api.delete(f"/api/attachments/{att['id']}"), 404)
    assert api.delete(f"/api/attachments/{att['id']}").status_code == 204
    assert_error(api.get(f"/api/attachments/{att['id']}"), 404)
    assert_error(api.delete(f"/api/attachments/{att['id']}"), 404)


def test_attachment_limits_and_validation(api: Api, sid: str) -> None:
    big = base64.b64encode(b"\0" * (10 * 1024 * 1024 + 1)).decode()
    assert_error(api.post(f"/api/sessions/{sid}/attachments", {"filename": "big.bin", "content": big}), 413)
    assert_error(api.post(f"/api/sessions/{sid}/attachments", {"filename": "x.bin", "content": "!!not base64!!"}), 400)
    assert_error(api.post(f"/api/sessions/{sid}/attachments", {"filename": "x.bin", "content": ""}), 400)
    assert_error(api.post(f"/api/sessions/{sid}/attachments", {"filename": "x.bin"}), 400)
    assert_error(api.post(f"/api/sessions/{ZERO}/attachments", {"filename": "x", "content": b64("x")}), 404)


# -- workspace bundles -----------------------------------------------------------------------

def test_workspace_download_is_targz_with_files_but_no_node_modules(api: Api, sid: str) -> None:
    api.exec(sid, "mkdir -p node_modules/pkg && echo junk > node_modules/pkg/index.js && echo kept > kept.txt")
    r = api.get(f"/api/sessions/{sid}/workspace")
    assert r.status_code == 200 and r.headers["content-type"] == "application/gzip"
    assert f"{sid}.tar.gz" in r.headers["content-disposition"]
    with tarfile.open(fileobj=io.BytesIO(r.content), mode="r:gz") as tar:
        names = {m.name.removeprefix("./") for m in tar.getmembers()}
    assert {"kept.txt", "CLAUDE.md", "data/seed.json"} <= names
    assert not any("node_modules" in n for n in names)


def test_workspace_upload_merges_a_valid_bundle(api: Api, sid: str) -> None:
    bundle = _tar({"restored/one.txt": b"one\n", "two.txt": b"two\n"})
    r = api.post(f"/api/sessions/{sid}/workspace", {"bundle": base64.b64encode(bundle).decode()})
    assert r.status_code == 200, r.text
    assert r.json() == {"message": "Workspace restored to live sandbox"}
    assert api.exec(sid, "cat restored/one.txt two.txt CLAUDE.md")["stdout"] == "one\ntwo\n# Workspace agent\n"


def test_workspace_upload_rejects_bad_bundles(api: Api, ash, sid: str) -> None:
    assert_error(api.post(f"/api/sessions/{sid}/workspace", {"bundle": b64(b"plain text, not gzip")}), 400)
    assert_error(api.post(f"/api/sessions/{sid}/workspace", {"bundle": ""}), 400)
    evil = _tar({"fine.txt": b"fine\n", "../evil": b"evil\n", "../../evil2": b"evil\n"})
    r = api.post(f"/api/sessions/{sid}/workspace", {"bundle": base64.b64encode(evil).decode()})
    assert_error(r, 400)
    assert api.exec(sid, "ls .. ; test -e ../evil")["exitCode"] != 0
    assert not list(ash.data_dir.rglob("evil")) and not list(ash.data_dir.rglob("evil2"))


def test_exec_output_lands_in_the_sandbox_log_by_level(api: Api, sid: str) -> None:
    before = api.get(f"/api/sessions/{sid}/logs").json()["logs"]
    last = before[-1]["index"] if before else -1
    api.exec(sid, "echo to-stdout; echo to-stderr >&2")
    logs = api.get(f"/api/sessions/{sid}/logs", params={"after": last}).json()["logs"]
    assert {"level": "stdout", "text": "to-stdout"} in [{"level": e["level"], "text": e["text"]} for e in logs]
    assert {"level": "stderr", "text": "to-stderr"} in [{"level": e["level"], "text": e["text"]} for e in logs]
