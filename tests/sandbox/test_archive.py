"""The restore vetting pass (defence in depth before GNU tar runs as the sandbox uid)."""

from __future__ import annotations

import io
import tarfile

import pytest
import zstandard

from ash.sandbox.base import SandboxError
from ash.sandbox.process_backend.archive import check_member, scan_archive


def member(name: str, kind: bytes = tarfile.REGTYPE, link: str = "") -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type, info.linkname = kind, link
    return info


@pytest.mark.parametrize(
    "info",
    [
        member("../up"),
        member("a/../../up"),
        member("link", tarfile.SYMTYPE, "/etc"),
        member("a/link", tarfile.SYMTYPE, "../../x"),
        member("hard", tarfile.LNKTYPE, "../x"),
        member("dev", tarfile.CHRTYPE),
        member("fifo", tarfile.FIFOTYPE),
    ],
    ids=lambda i: i.name,
)
def test_escaping_or_special_members_are_refused(info):
    with pytest.raises(SandboxError):
        check_member(info)


@pytest.mark.parametrize(
    "info",
    [
        member("./src/a.py"),
        member("/abs/stripped.txt"),  # GNU tar drops the leading "/"
        member("src", tarfile.DIRTYPE),
        member("a/b/link", tarfile.SYMTYPE, "../c"),
        member("hard", tarfile.LNKTYPE, "src/a.py"),
    ],
    ids=lambda i: i.name,
)
def test_ordinary_members_pass(info):
    check_member(info)


def test_scan_enforces_the_quota(tmp_path):
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w") as tar:
        for i in range(3):
            info = tarfile.TarInfo(f"f{i}")
            info.size = 1000
            tar.addfile(info, io.BytesIO(b"x" * 1000))
    path = tmp_path / "a.tar.zst"
    path.write_bytes(zstandard.ZstdCompressor().compress(raw.getvalue()))
    assert scan_archive(path, limit=3000) == 3000
    with pytest.raises(SandboxError, match="quota"):
        scan_archive(path, limit=2999)
    path.write_bytes(b"not an archive")
    with pytest.raises(SandboxError, match="bad workspace archive"):
        scan_archive(path, limit=10**9)
