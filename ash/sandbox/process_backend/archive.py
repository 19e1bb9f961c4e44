"""Workspace snapshots (zstd tar streams) and safe restores.

Both directions run GNU tar as the sandbox's own uid, never as root: a snapshot can hold
only what the sandbox could read, and a restore can write only where the sandbox could
write. Restores are vetted first like tarfile's "data" filter would (no escaping paths, no
links out, no devices) and the disk quota, extracted into a staging directory next to
the workspace, then swapped in with directory-fd operations that never follow a link the
agent may have planted.
"""

from __future__ import annotations

import contextlib
import os
import posixpath
import shutil
import tarfile
from pathlib import Path

import zstandard

from ..base import SandboxError

SNAPSHOT_CHUNK = 1 << 20


def snapshot_argv(workspace: Path) -> list[str]:
    return ["/usr/bin/tar", "--zstd", "-C", str(workspace), "-cf", "-", "."]


def _inside(path: str) -> bool:
    """Whether a relative path, resolved lexically, stays within its root."""
    return not posixpath.isabs(path) and not posixpath.normpath(path).startswith("..")


def check_member(member: tarfile.TarInfo) -> None:
    """Refuse what tarfile's "data" filter refuses: escapes, outward links, special files."""
    name = member.name.lstrip("/")  # GNU tar strips a leading "/" too
    if not _inside(name or "."):
        raise SandboxError(f"archive member escapes the workspace: {member.name!r}")
    if member.issym():
        target = posixpath.join(posixpath.dirname(name), member.linkname)
        if posixpath.isabs(member.linkname) or not _inside(target):
            raise SandboxError(f"archive symlink points outside: {member.name!r}")
    elif member.islnk():
        if not _inside(member.linkname.lstrip("/")):
            raise SandboxError(f"archive hard link points outside: {member.name!r}")
    elif not (member.isreg() or member.isdir()):
        raise SandboxError(f"archive holds a special file: {member.name!r}")


def scan_archive(archive: Path, *, limit: int) -> int:
    """Vet every member and the quota before anything is written; returns total bytes.

    Extraction is left to GNU tar running as the sandbox uid, so this pass is defence in
    depth, not the only barrier.
    """
    total = 0
    with open(archive, "rb") as raw:
        reader = zstandard.ZstdDecompressor().stream_reader(raw)
        try:
            with tarfile.open(fileobj=reader, mode="r|") as tar:
                for member in tar:
                    check_member(member)
                    total += member.size
                    if total > limit:
                        raise SandboxError(f"archive expands beyond the disk quota ({limit} bytes)")
        except (tarfile.TarError, zstandard.ZstdError, EOFError) as exc:
            raise SandboxError(f"bad workspace archive: {exc}") from exc
    return total


def extract_argv(staging: Path) -> list[str]:
    """GNU tar reading tar.zst from stdin; run as the sandbox uid. It keeps modes (-p) and
    delays symlinks that point outward until the end, so nothing is written through them."""
    return ["/usr/bin/tar", "--zstd", "-x", "-p", "--no-same-owner", "-f", "-", "-C", str(staging)]


def chown_tree(root: Path, uid: int, gid: int) -> None:
    """lchown every entry under `root` (a tree nobody else can touch) to the sandbox uid."""
    os.chown(root, uid, gid)
    for _dirpath, dirnames, filenames, dirfd in os.fwalk(root, follow_symlinks=False):
        for name in dirnames + filenames:
            os.chown(name, uid, gid, dir_fd=dirfd, follow_symlinks=False)


def chown_tree_if_needed(root: Path, uid: int, gid: int) -> None:
    st = os.lstat(root)
    if st.st_uid == uid and st.st_gid == gid and st.st_nlink <= 2:
        # An empty, already-owned directory (the common case): nothing to walk.
        with os.scandir(root) as it:
            if next(it, None) is None:
                return
    chown_tree(root, uid, gid)


def _open_dir(path: Path) -> int:
    return os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC)


def replace_contents(workspace: Path, staging: Path) -> None:
    """Make `workspace` hold exactly what `staging` holds (same filesystem), link-safely."""
    ws_fd = _open_dir(workspace)
    st_fd = _open_dir(staging)
    try:
        for name in os.listdir(ws_fd):
            st = os.stat(name, dir_fd=ws_fd, follow_symlinks=False)
            if (st.st_mode & 0o170000) == 0o040000:
                shutil.rmtree(name, dir_fd=ws_fd)  # fd-based, resists symlink swaps
            else:
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(name, dir_fd=ws_fd)
        for name in os.listdir(st_fd):
            os.rename(name, name, src_dir_fd=st_fd, dst_dir_fd=ws_fd)
    finally:
        os.close(ws_fd)
        os.close(st_fd)
