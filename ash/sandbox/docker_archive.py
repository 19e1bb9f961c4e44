"""Workspace snapshots for the Docker backend: a zstd tar of a host directory, link-safe.

Both directions run as root on the host over a tree the agent controls while its container may
be running, so every path component is opened relative to its parent's fd with O_NOFOLLOW: a
symlink swapped in mid-walk makes the operation fail (ELOOP/ENOTDIR), it is never followed.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import stat
import tarfile
from collections.abc import Iterator
from typing import BinaryIO

import zstandard

from ash.sandbox.base import SandboxError

MAX_DEPTH = 128  # directory nesting; deeper trees are refused rather than silently cut
_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
_CHUNK = 1 << 20


class _ExactReader:
    """Reads exactly `size` bytes from an fd: pads with NULs if the file shrank meanwhile."""

    def __init__(self, fd: int, size: int) -> None:
        self._fd, self._left = fd, size

    def read(self, n: int = -1) -> bytes:
        want = self._left if n < 0 else min(n, self._left)
        if want <= 0:
            return b""
        data = os.read(self._fd, want)
        if not data:  # truncated by the agent while we read: keep the archive well-formed
            data = b"\0" * want
        self._left -= len(data)
        return data


def _info(name: str, st: os.stat_result, kind: bytes) -> tarfile.TarInfo:
    ti = tarfile.TarInfo(name)
    ti.type = kind
    ti.mode = stat.S_IMODE(st.st_mode)
    ti.mtime = int(st.st_mtime)
    ti.uid, ti.gid = st.st_uid, st.st_gid
    return ti


def write_tree_tar(root: os.PathLike[str] | str, out: BinaryIO, *, level: int = 3) -> None:
    """Write a zstd-compressed tar of the contents of `root` to `out` (names relative to it)."""
    cctx = zstandard.ZstdCompressor(level=level)
    with (
        cctx.stream_writer(out, closefd=False) as zout,
        tarfile.open(fileobj=zout, mode="w|", format=tarfile.PAX_FORMAT) as tar,
    ):
        root_fd = os.open(root, _DIR_FLAGS)
        try:
            _add_dir(tar, root_fd, "", 0)
        finally:
            os.close(root_fd)


def _add_dir(tar: tarfile.TarFile, dir_fd: int, prefix: str, depth: int) -> None:
    if depth > MAX_DEPTH:
        raise SandboxError(f"workspace nests deeper than {MAX_DEPTH} directories")
    with os.scandir(dir_fd) as it:
        names = sorted(e.name for e in it)
    for name in names:
        path = prefix + name
        try:
            st = os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
            if stat.S_ISDIR(st.st_mode):
                fd = os.open(name, _DIR_FLAGS, dir_fd=dir_fd)
                try:
                    tar.addfile(_info(path, os.fstat(fd), tarfile.DIRTYPE))
                    _add_dir(tar, fd, path + "/", depth + 1)
                finally:
                    os.close(fd)
            elif stat.S_ISREG(st.st_mode):
                # O_NONBLOCK: a FIFO swapped in after the stat must not block the open.
                flags = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC
                fd = os.open(name, flags, dir_fd=dir_fd)
                try:
                    fst = os.fstat(fd)
                    if stat.S_ISREG(fst.st_mode):
                        ti = _info(path, fst, tarfile.REGTYPE)
                        ti.size = fst.st_size
                        tar.addfile(ti, _ExactReader(fd, fst.st_size))  # type: ignore[arg-type]
                finally:
                    os.close(fd)
            elif stat.S_ISLNK(st.st_mode):
                ti = _info(path, st, tarfile.SYMTYPE)
                ti.linkname = os.readlink(name, dir_fd=dir_fd)
                tar.addfile(ti)
            # sockets, FIFOs and devices are not workspace content
        except FileNotFoundError:
            continue  # deleted by the agent while we walked


def clear_tree(root: os.PathLike[str] | str) -> None:
    """Remove everything below `root` (not root itself) without following links."""
    root_fd = os.open(root, _DIR_FLAGS)
    try:
        for name in os.listdir(root_fd):
            st = os.stat(name, dir_fd=root_fd, follow_symlinks=False)
            if stat.S_ISDIR(st.st_mode):
                # rmtree's fd-based walk is documented as safe against symlink attacks.
                shutil.rmtree(name, dir_fd=root_fd)
            else:
                os.unlink(name, dir_fd=root_fd)
    finally:
        os.close(root_fd)


def _parts(name: str) -> list[str]:
    parts = [p for p in name.split("/") if p not in ("", ".")]
    if name.startswith("/") or ".." in parts or any("\0" in p for p in parts):
        raise SandboxError(f"unsafe path in archive: {name!r}")
    return parts


class _Extractor:
    """Creates archive members beneath a root fd; every component is opened with O_NOFOLLOW."""

    def __init__(self, root_fd: int, uid: int, gid: int, max_bytes: int) -> None:
        self.root_fd, self.uid, self.gid = root_fd, uid, gid
        self.left = max_bytes
        self._cache: tuple[tuple[str, ...], int] | None = None

    def close(self) -> None:
        if self._cache:
            os.close(self._cache[1])
            self._cache = None

    def _parent(self, dirs: list[str]) -> int:
        """fd of the directory `dirs` below root, creating missing components (cached)."""
        key = tuple(dirs)
        if self._cache and self._cache[0] == key:
            return self._cache[1]
        self.close()
        fd = os.dup(self.root_fd)
        try:
            for part in dirs:
                with contextlib.suppress(FileExistsError):
                    os.mkdir(part, 0o755, dir_fd=fd)
                    os.chown(part, self.uid, self.gid, dir_fd=fd, follow_symlinks=False)
                nfd = os.open(part, _DIR_FLAGS, dir_fd=fd)
                os.close(fd)
                fd = nfd
        except BaseException:
            os.close(fd)
            raise
        self._cache = (key, fd)
        return fd

    def add(self, tar: tarfile.TarFile, m: tarfile.TarInfo) -> None:
        parts = _parts(m.name)
        if not parts:
            return  # the root entry itself: the workspace keeps its own owner and mode
        pfd, leaf = self._parent(parts[:-1]), parts[-1]
        if m.isdir():
            with contextlib.suppress(FileExistsError):
                os.mkdir(leaf, 0o700, dir_fd=pfd)
            fd = os.open(leaf, _DIR_FLAGS, dir_fd=pfd)
            try:
                os.fchown(fd, self.uid, self.gid)
                os.fchmod(fd, m.mode & 0o1777)
            finally:
                os.close(fd)
            return
        with contextlib.suppress(FileNotFoundError, IsADirectoryError):
            os.unlink(leaf, dir_fd=pfd)  # a later member of the same name replaces the earlier
        if m.isreg():
            self._write_file(tar, m, pfd, leaf)
        elif m.issym():
            os.symlink(m.linkname, leaf, dir_fd=pfd)
            os.chown(leaf, self.uid, self.gid, dir_fd=pfd, follow_symlinks=False)
        elif m.islnk():
            src = _parts(m.linkname)
            if not src:
                raise SandboxError(f"unsafe hard link in archive: {m.name!r}")
            sfd = os.dup(self._parent(src[:-1]))
            try:
                pfd = self._parent(parts[:-1])
                os.link(src[-1], leaf, src_dir_fd=sfd, dst_dir_fd=pfd, follow_symlinks=False)
            finally:
                os.close(sfd)
        # devices, FIFOs and other special members are skipped on purpose

    def _write_file(self, tar: tarfile.TarFile, m: tarfile.TarInfo, pfd: int, leaf: str) -> None:
        if m.size > self.left:
            raise SandboxError("archive exceeds the sandbox's disk limit")
        self.left -= m.size
        flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
        fd = os.open(leaf, flags, 0o600, dir_fd=pfd)
        try:
            src = tar.extractfile(m)
            assert src is not None
            while chunk := src.read(_CHUNK):
                os.write(fd, chunk)
            os.fchown(fd, self.uid, self.gid)
            os.fchmod(fd, m.mode & 0o777)  # no setuid/setgid bits from an archive
            os.utime(fd, (m.mtime, m.mtime))
        finally:
            os.close(fd)


def extract_tree_tar(
    src: BinaryIO, root: os.PathLike[str] | str, *, uid: int, gid: int, max_bytes: int
) -> None:
    """Replace the contents of `root` by the zstd tar read from `src`, owned by uid:gid."""
    clear_tree(root)
    root_fd = os.open(root, _DIR_FLAGS)
    ex = _Extractor(root_fd, uid, gid, max_bytes)
    try:
        with (
            zstandard.ZstdDecompressor().stream_reader(src, closefd=False) as zin,
            tarfile.open(fileobj=zin, mode="r|") as tar,
        ):
            for member in tar:
                ex.add(tar, member)
    except (tarfile.TarError, zstandard.ZstdError) as e:
        raise SandboxError(f"invalid workspace archive: {e}") from e
    except OSError as e:  # e.g. ELOOP: a symlink planted where the archive has a directory
        raise SandboxError(f"cannot restore workspace: {e}") from e
    finally:
        ex.close()
        os.close(root_fd)


def iter_chunks(f: BinaryIO, size: int = _CHUNK) -> Iterator[bytes]:
    while chunk := f.read(size):
        yield chunk
