"""WorkspaceFS: no-follow containment, sandbox-uid identity, limits, escape-proof bundles."""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import io
import os
import select
import stat
import tarfile
import threading
import time
from pathlib import Path

import pytest

from ash.sandbox.workspace_fs import (
    HAVE_OPENAT2,
    AccessDenied,
    InvalidBundle,
    NotAFile,
    PathNotFound,
    TooLarge,
    UnsafePath,
    WorkspaceFS,
    identity,
)

UID = 310_777
GID = 310_778
SECRET = b"root-only secret\n"


@pytest.fixture
def layout(tmp_path: Path) -> dict[str, Path]:
    """A sandbox-owned 0700 workspace next to root-owned 0600 files and a root-owned dir."""
    ws = tmp_path / "ws"
    ws.mkdir()
    os.chown(ws, UID, GID)
    ws.chmod(0o700)
    secret = tmp_path / "secret.txt"
    secret.write_bytes(SECRET)
    secret.chmod(0o600)
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "keep.txt").write_bytes(b"keep")
    return {"ws": ws, "secret": secret, "outside": outside}


@pytest.fixture(params=[True, False] if HAVE_OPENAT2 else [False], ids=lambda v: f"openat2={v}")
def fs(request: pytest.FixtureRequest, layout: dict[str, Path]) -> WorkspaceFS:
    return WorkspaceFS(layout["ws"], UID, GID, use_openat2=request.param)


def plant(ws: Path, rel: str, target: str | Path) -> None:
    """What an agent can do inside its workspace: create a symlink."""
    p = ws / rel
    p.parent.mkdir(parents=True, exist_ok=True)
    p.symlink_to(target)
    while p != ws:
        os.lchown(p, UID, GID)
        p = p.parent


# -- paths ------------------------------------------------------------------------------------


@pytest.mark.parametrize("bad", ["../x", "/etc/passwd", "a/../../x", "a/..", "a\x00b", ".."])
async def test_traversal_absolute_and_nul_are_rejected_everywhere(
    fs: WorkspaceFS, bad: str
) -> None:
    with pytest.raises(UnsafePath):
        await fs.read(bad)
    with pytest.raises(UnsafePath):
        await fs.delete(bad)
    with pytest.raises(UnsafePath):
        await fs.list(bad)
    (result,) = await fs.write_many([(bad, b"x")])
    assert not result.written and "Invalid file path" in (result.error or "")


async def test_names_containing_dotdot_are_valid(fs: WorkspaceFS, layout: dict[str, Path]) -> None:
    names = ["a..b.txt", "..hidden", "trail..", "dir..x/f...txt"]
    results = await fs.write_many([(n, n.encode()) for n in names])
    assert all(r.written for r in results)
    for n in names:
        assert (await fs.read(n)).data == n.encode()
        assert (layout["ws"] / n).read_bytes() == n.encode()


async def test_missing_and_non_file_paths(fs: WorkspaceFS, layout: dict[str, Path]) -> None:
    (layout["ws"] / "d").mkdir()
    with pytest.raises(PathNotFound):
        await fs.read("nope.txt")
    with pytest.raises(NotAFile):
        await fs.read("d")
    with pytest.raises(NotAFile):
        await fs.read(".")
    os.mkfifo(layout["ws"] / "fifo")
    with pytest.raises(NotAFile):
        await fs.read("fifo")  # never blocks on a planted fifo
    with pytest.raises(UnsafePath):
        await fs.delete(".")


# -- planted symlinks -------------------------------------------------------------------------


async def test_symlink_to_outside_file_is_never_followed(
    fs: WorkspaceFS, layout: dict[str, Path]
) -> None:
    ws = layout["ws"]
    plant(ws, "link.txt", layout["secret"])
    plant(ws, "rel.txt", "../secret.txt")
    for name in ("link.txt", "rel.txt"):
        with pytest.raises(UnsafePath):
            await fs.read(name)
        with pytest.raises(UnsafePath):
            await fs.open_read(name)
    # Writing replaces the link itself; the target is untouched.
    (result,) = await fs.write_many([("link.txt", b"mine")])
    assert result.written
    assert not (ws / "link.txt").is_symlink() and (ws / "link.txt").read_bytes() == b"mine"
    assert layout["secret"].read_bytes() == SECRET
    assert await fs.delete("rel.txt") == "symlink"
    assert layout["secret"].read_bytes() == SECRET


async def test_symlinked_directory_cannot_be_entered_by_any_operation(
    fs: WorkspaceFS, layout: dict[str, Path]
) -> None:
    ws, outside = layout["ws"], layout["outside"]
    plant(ws, "dirlink", outside)
    plant(ws, "sub/deeper/up", "../../..")  # a symlinked parent, several levels down
    for path in ("dirlink/keep.txt", "sub/deeper/up/secret.txt"):
        with pytest.raises(UnsafePath):
            await fs.read(path)
        with pytest.raises(UnsafePath):
            await fs.delete(path)
    results = await fs.write_many([("dirlink/new.txt", b"x"), ("sub/deeper/up/new.txt", b"x")])
    assert [r.written for r in results] == [False, False]
    with pytest.raises(UnsafePath):
        await fs.list("dirlink")
    assert sorted(os.listdir(outside)) == ["keep.txt"]
    assert not (layout["ws"].parent / "new.txt").exists()
    listed = {e.path: e.type for e in await fs.list()}
    assert listed == {"dirlink": "symlink", "sub/deeper/up": "symlink"}
    with await fs.bundle() as bundle, tarfile.open(fileobj=io.BytesIO(bundle.read_all())) as tf:
        names = {m.name: m for m in tf.getmembers()}
    assert names["dirlink"].issym() and names["dirlink"].linkname == str(outside)
    assert not any("keep.txt" in n or "secret" in n for n in names)
    # Deleting a tree that holds a link to a directory removes the link, not its target.
    assert await fs.delete("sub") == "directory"
    assert (outside / "keep.txt").read_bytes() == b"keep"
    assert layout["secret"].read_bytes() == SECRET


async def test_directory_swapped_for_symlink_mid_walk_never_escapes(
    fs: WorkspaceFS, layout: dict[str, Path]
) -> None:
    ws, outside = layout["ws"], layout["outside"]
    (outside / "f.txt").write_bytes(b"OUTSIDE")
    (ws / "d").mkdir()
    (ws / "d" / "f.txt").write_bytes(b"inside")
    for p in (ws / "d", ws / "d" / "f.txt"):
        os.chown(p, UID, GID)
    plant(ws, "d.link", outside)
    libc = ctypes.CDLL(None, use_errno=True)
    at_fdcwd, rename_exchange = -100, 2
    stop = threading.Event()
    swaps = 0

    def flipper() -> None:
        # The agent's move: atomically exchange the real directory and a link to outside.
        nonlocal swaps
        a, b = os.fsencode(ws / "d"), os.fsencode(ws / "d.link")
        while not stop.is_set():
            assert libc.renameat2(at_fdcwd, a, at_fdcwd, b, rename_exchange) == 0
            swaps += 1

    thread = threading.Thread(target=flipper, daemon=True)
    thread.start()
    seen: set[bytes] = set()
    try:
        deadline = time.monotonic() + 3.0
        while time.monotonic() < deadline and (len(seen) < 2 or swaps < 200):
            try:
                seen.add((await fs.read("d/f.txt")).data)
            except UnsafePath:
                seen.add(b"refused")
            await fs.write_many([("d/planted.txt", b"x")])
    finally:
        stop.set()
        thread.join()
    assert seen == {b"inside", b"refused"}  # the race was really run, and never escaped
    assert not (outside / "planted.txt").exists()


# -- identity ---------------------------------------------------------------------------------


async def test_root_only_file_inside_the_workspace_cannot_be_read(
    fs: WorkspaceFS, layout: dict[str, Path]
) -> None:
    ws = layout["ws"]
    os.link(layout["secret"], ws / "hard.txt")  # same inode: root-owned, 0600
    (ws / "rootdir").mkdir(mode=0o700)
    with pytest.raises(AccessDenied):
        await fs.read("hard.txt")
    with pytest.raises(AccessDenied):
        await fs.open_read("hard.txt")
    (result,) = await fs.write_many([("rootdir/x.txt", b"x")])
    assert not result.written and "Permission denied" in (result.error or "")
    with await fs.bundle() as bundle:
        assert SECRET not in bundle.read_all()
        assert "hard.txt" in bundle.stats.skipped


async def test_written_files_and_dirs_are_owned_by_the_sandbox_uid(
    fs: WorkspaceFS, layout: dict[str, Path]
) -> None:
    await fs.write_many([("new/dir/file.txt", b"hello")])
    await fs.copy_in("report.pdf", b"%PDF")
    for rel in ("new", "new/dir", "new/dir/file.txt", "attachments/report.pdf"):
        st = os.lstat(layout["ws"] / rel)
        assert (st.st_uid, st.st_gid) == (UID, GID), rel
    owner = WorkspaceFS.for_owner(layout["ws"])  # a snapshot workspace with no live sandbox
    assert (owner.uid, owner.gid) == (UID, GID)


async def test_worker_threads_get_their_root_identity_back(fs: WorkspaceFS) -> None:
    await fs.write_many([("a.txt", b"a")])
    with pytest.raises(UnsafePath):
        await fs.read("../x")
    for _ in range(8):  # every pool thread
        assert await identity.submit(identity.current_fs_ids) == (0, 0)
        assert await identity.submit(os.getgroups) == os.getgroups()


# -- limits -----------------------------------------------------------------------------------


async def test_read_limits(fs: WorkspaceFS, layout: dict[str, Path]) -> None:
    big = layout["ws"] / "big.bin"
    big.write_bytes(b"x" * ((1 << 20) + 1))
    os.chown(big, UID, GID)
    with pytest.raises(TooLarge) as err:
        await fs.read("big.bin")
    assert err.value.status_code == 413 and err.value.size == (1 << 20) + 1
    reader = await fs.open_read("big.bin")
    assert reader.size == (1 << 20) + 1
    assert sum([len(c) async for c in reader]) == (1 << 20) + 1
    with pytest.raises(TooLarge):
        await fs.open_read("big.bin", max_bytes=1000)


async def test_write_limits_give_per_item_results(fs: WorkspaceFS) -> None:
    results = await fs.write_many(
        [("a.txt", b"a" * 60), ("too-big.txt", b"b" * 101), ("c.txt", b"c" * 30),
         ("d.txt", b"d" * 20), (".DS_Store", b"junk"), ("e.txt", b"e" * 10)],
        file_limit=100,
        batch_limit=100,
    )  # fmt: skip
    assert [(r.path, r.written) for r in results] == [
        ("a.txt", True), ("too-big.txt", False), ("c.txt", True),
        ("d.txt", False), (".DS_Store", False), ("e.txt", True),
    ]  # fmt: skip
    assert "File too large" in (results[1].error or "")
    assert "Batch size limit" in (results[3].error or "")
    assert results[0].to_dict() == {"path": "a.txt", "written": True, "size": 60}
    with pytest.raises(TooLarge):
        await fs.write_many([(f"f{i}", b"") for i in range(501)])


async def test_write_preserves_mode_of_replaced_file_and_target_path(
    fs: WorkspaceFS, layout: dict[str, Path]
) -> None:
    await fs.write("bin/run.sh", b"#!/bin/sh\n", mode=0o755)
    await fs.write_many([("run.sh", b"#!/bin/sh\necho\n")], target_path="bin")
    st = os.stat(layout["ws"] / "bin" / "run.sh")
    assert stat.S_IMODE(st.st_mode) == 0o755
    with pytest.raises(UnsafePath):
        await fs.write_many([("x", b"")], target_path="../elsewhere")


# -- listing ----------------------------------------------------------------------------------


async def test_listing_exclusions_hidden_toggle_and_entry_shape(
    fs: WorkspaceFS, layout: dict[str, Path]
) -> None:
    files = ["src/app.py", ".claude/settings.json", "node_modules/x/i.js", ".git/HEAD",
             "pkg/__pycache__/m.pyc", "run.pid", "a.sock", "yarn.lock", ".cache/c", "tmp/t",
             "venv/bin/python", ".DS_Store"]  # fmt: skip
    await fs.write_many([(f, b"12345") for f in files])
    listed = await fs.list()
    assert {e.path for e in listed} == {"src/app.py", ".claude/settings.json", ".cache/c",
                                       "tmp/t", "venv/bin/python"}  # fmt: skip
    hidden_off = {e.path for e in await fs.list(include_hidden=False)}
    assert hidden_off == {"src/app.py", ".claude/settings.json"}
    entry = next(e for e in listed if e.path == "src/app.py").to_dict()
    assert set(entry) == {"path", "size", "modifiedAt", "type"}
    assert entry["size"] == 5 and entry["type"] == "file"
    assert str(entry["modifiedAt"]).endswith("Z")
    with_dirs = {e.path: e.type for e in await fs.list("src", include_dirs=True)}
    assert with_dirs == {"src/app.py": "file"}
    assert len(await fs.list(max_entries=2)) == 2


# -- attachments ------------------------------------------------------------------------------


async def test_copy_in_sanitises_names_overwrites_and_respects_links(
    fs: WorkspaceFS, layout: dict[str, Path], tmp_path: Path
) -> None:
    assert await fs.copy_in("../../evil.txt", b"one") == "attachments/evil.txt"
    assert await fs.copy_in("evil.txt", b"two") == "attachments/evil.txt"
    assert (layout["ws"] / "attachments" / "evil.txt").read_bytes() == b"two"
    assert await fs.copy_in("..", b"x") == "attachments/unnamed"
    stored = tmp_path / "stored.bin"
    stored.write_bytes(b"from storage")
    stored.chmod(0o600)  # runner-owned storage: read as the runner, written as the sandbox
    assert await fs.copy_in("s.bin", stored) == "attachments/s.bin"
    assert (layout["ws"] / "attachments" / "s.bin").read_bytes() == b"from storage"
    with pytest.raises(TooLarge):
        await fs.copy_in("big", b"x" * 11, max_bytes=10)
    await fs.delete("attachments")
    plant(layout["ws"], "attachments", layout["outside"])
    with pytest.raises(UnsafePath):
        await fs.copy_in("a.txt", b"x")
    assert sorted(os.listdir(layout["outside"])) == ["keep.txt"]


async def test_agent_directory_without_uid_switch(tmp_path: Path) -> None:
    agent = tmp_path / "agent"
    agent.mkdir()
    (agent / "CLAUDE.md").write_text("hi")
    (agent / "leak").symlink_to("/etc/passwd")
    fs = WorkspaceFS(agent)
    assert (await fs.read("CLAUDE.md")).data == b"hi"
    with pytest.raises(UnsafePath):
        await fs.read("leak")


# -- bundles ----------------------------------------------------------------------------------


def targz(*members: tuple[tarfile.TarInfo, bytes | None]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tf:
        for info, data in members:
            if data is not None:
                info.size = len(data)
            tf.addfile(info, io.BytesIO(data) if data is not None else None)
    return buf.getvalue()


def member(name: str, kind: bytes = tarfile.REGTYPE, link: str = "") -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type = kind
    info.linkname = link
    info.mode = 0o644
    return info


@pytest.mark.parametrize(
    "bundle",
    [
        pytest.param(targz((member("/abs.txt"), b"x")), id="absolute"),
        pytest.param(targz((member("ok.txt"), b"ok"), (member("../up.txt"), b"x")), id="dotdot"),
        pytest.param(
            targz((member("l", tarfile.SYMTYPE, "sub"), None), (member("l/x.txt"), b"x")),
            id="file-through-symlink",
        ),
        pytest.param(
            targz((member("h", tarfile.LNKTYPE, "../secret.txt"), None)), id="hardlink-outside"
        ),
        pytest.param(
            targz((member("h", tarfile.LNKTYPE, "/etc/shadow"), None)), id="hardlink-absolute"
        ),
        pytest.param(targz((member("dev", tarfile.CHRTYPE), None)), id="device"),
        pytest.param(targz((member("p", tarfile.FIFOTYPE), None)), id="fifo"),
        pytest.param(b"PK\x03\x04 not gzip", id="not-gzip"),
        pytest.param(b"", id="empty"),
        pytest.param(b"\x1f\x8b\x08\x00garbage", id="corrupt"),
    ],
)
async def test_escaping_or_malformed_bundles_are_refused_whole(
    fs: WorkspaceFS, layout: dict[str, Path], bundle: bytes
) -> None:
    with pytest.raises(InvalidBundle):
        await fs.extract_bundle(bundle)
    assert os.listdir(layout["ws"]) == []  # validated before anything was written
    assert sorted(os.listdir(layout["ws"].parent)) == ["outside", "secret.txt", "ws"]


async def test_symlinks_pointing_outside_are_dropped_or_refused_when_strict(
    fs: WorkspaceFS, layout: dict[str, Path]
) -> None:
    data = targz(
        (member("in.txt"), b"in"),
        (member("abs", tarfile.SYMTYPE, "/etc"), None),
        (member("a/up", tarfile.SYMTYPE, "../.."), None),
        (member("a/ok", tarfile.SYMTYPE, "../in.txt"), None),
    )
    stats = await fs.extract_bundle(data)
    assert sorted(stats.skipped) == ["a/up", "abs"] and stats.symlinks == 1
    assert os.readlink(layout["ws"] / "a" / "ok") == "../in.txt"
    assert not (layout["ws"] / "abs").is_symlink()
    with pytest.raises(InvalidBundle):
        await fs.extract_bundle(data, strict=True)


async def test_extract_limits(fs: WorkspaceFS, layout: dict[str, Path]) -> None:
    data = targz(*((member(f"f{i}"), b"0123456789") for i in range(20)))
    with pytest.raises(TooLarge):
        await fs.extract_bundle(data, max_bytes=150)
    with pytest.raises(TooLarge):
        await fs.extract_bundle(data, max_members=10)
    assert os.listdir(layout["ws"]) == []
    assert (await fs.extract_bundle(data)).files == 20


async def test_extract_into_planted_symlink_directory_fails_without_escaping(
    fs: WorkspaceFS, layout: dict[str, Path]
) -> None:
    plant(layout["ws"], "d", layout["outside"])
    with pytest.raises(UnsafePath):
        await fs.extract_bundle(targz((member("d/x.txt"), b"x")))
    assert sorted(os.listdir(layout["outside"])) == ["keep.txt"]


async def test_bundle_round_trip_preserves_modes_links_and_applies_exclusions(
    fs: WorkspaceFS, layout: dict[str, Path], tmp_path: Path
) -> None:
    await fs.write("bin/tool.sh", b"#!/bin/sh\n", mode=0o755)
    await fs.write("private/key.txt", b"k", mode=0o600)
    await fs.write("notes.md", b"# notes")
    await fs.write_many([(p, b"x") for p in ("node_modules/m.js", ".git/HEAD", ".env", "sub/.env")])
    os.chmod(layout["ws"] / "private", 0o750)
    plant(layout["ws"], "latest", "notes.md")
    plant(layout["ws"], "escape", layout["secret"])
    with await fs.bundle() as bundle:
        data = bundle.read_all()
        assert bundle.size == len(data) and data[:2] == b"\x1f\x8b"
    with tarfile.open(fileobj=io.BytesIO(data)) as tf:
        names = set(tf.getnames())
    assert {"bin/tool.sh", "private/key.txt", "notes.md", "latest", "escape"} <= names
    assert not {"node_modules", ".git", ".env", "sub/.env"} & names
    assert SECRET not in data

    copy = tmp_path / "copy"
    copy.mkdir()
    os.chown(copy, UID, GID)
    stats = await WorkspaceFS(copy, UID, GID).extract_bundle(data)
    assert stats.skipped == ["escape"]
    assert stat.S_IMODE(os.stat(copy / "bin/tool.sh").st_mode) == 0o755
    assert stat.S_IMODE(os.stat(copy / "private/key.txt").st_mode) == 0o600
    assert stat.S_IMODE(os.stat(copy / "private").st_mode) == 0o750
    assert os.readlink(copy / "latest") == "notes.md"
    assert (copy / "notes.md").read_bytes() == b"# notes"
    src_mtime = os.stat(layout["ws"] / "notes.md").st_mtime
    assert abs(os.stat(copy / "notes.md").st_mtime - src_mtime) < 1.0
    assert os.stat(copy / "bin/tool.sh").st_uid == UID


async def test_bundle_size_limit(fs: WorkspaceFS) -> None:
    await fs.write("a.bin", os.urandom(4096))
    with pytest.raises(TooLarge):
        await fs.bundle(max_bytes=1000)


async def test_hardlinks_inside_a_bundle_become_copies(
    fs: WorkspaceFS, layout: dict[str, Path]
) -> None:
    data = targz((member("a.txt"), b"shared"), (member("b.txt", tarfile.LNKTYPE, "a.txt"), None))
    await fs.extract_bundle(data)
    a, b = layout["ws"] / "a.txt", layout["ws"] / "b.txt"
    assert b.read_bytes() == b"shared" and os.stat(a).st_ino != os.stat(b).st_ino


async def test_many_operations_run_concurrently(fs: WorkspaceFS) -> None:
    await asyncio.gather(*(fs.write(f"c/{i}.txt", str(i).encode()) for i in range(40)))
    datas = await asyncio.gather(*(fs.read(f"c/{i}.txt") for i in range(40)))
    assert [d.data for d in datas] == [str(i).encode() for i in range(40)]


async def test_file_api_works_in_a_forked_worker(fs: WorkspaceFS) -> None:
    """Celery prefork children inherit the module state but not the worker threads."""
    await fs.write("fork.txt", b"forked")  # the parent's pool threads now exist
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:  # child: its own event loop and, lazily, its own worker threads
        try:
            data = asyncio.run(asyncio.wait_for(fs.read("fork.txt"), 5)).data
            os.write(w, data)
        finally:
            os._exit(0)
    os.close(w)
    try:
        ready = await asyncio.to_thread(select.select, [r], [], [], 10)
        got = os.read(r, 100) if ready[0] else b""
    finally:
        os.close(r)
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, 9)
        os.waitpid(pid, 0)
    assert got == b"forked"
