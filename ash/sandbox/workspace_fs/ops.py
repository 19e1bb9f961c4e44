"""Synchronous file operations beneath a root fd; run them through WorkspaceFS (right identity)."""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
import stat
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime

from ash.sandbox.workspace_fs.errors import NotAFile, TooLarge, UnsafePath
from ash.sandbox.workspace_fs.resolve import (
    DIR_FLAGS,
    HAVE_OPENAT2,
    open_dir,
    split_path,
    translate_errors,
)

# Listing exclusions (ash-behaviour §7): always hidden, and hidden unless includeHidden.
ALWAYS_SKIP = frozenset({"node_modules", ".git", "__pycache__", ".DS_Store"})
ALWAYS_SKIP_SUFFIXES = (".sock", ".lock", ".pid")
HIDDEN_SKIP = frozenset({".cache", ".npm", ".pnpm-store", ".yarn", ".venv", "venv", ".tmp", "tmp"})
MAX_LIST_DEPTH = 64
READ_FLAGS = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC


@dataclass(frozen=True)
class FileEntry:
    path: str  # relative to the workspace root, "/"-separated
    size: int
    modified_at: float  # epoch seconds
    type: str  # "file" | "directory" | "symlink"
    mode: int = 0

    @property
    def modified_at_iso(self) -> str:
        stamp = datetime.fromtimestamp(self.modified_at, UTC)
        return stamp.isoformat(timespec="milliseconds").replace("+00:00", "Z")

    def to_dict(self) -> dict[str, object]:
        """The API's file entry: {path, size, modifiedAt, type}."""
        return {
            "path": self.path,
            "size": self.size,
            "modifiedAt": self.modified_at_iso,
            "type": self.type,
        }


def _entry(path: str, st: os.stat_result) -> FileEntry:
    if stat.S_ISLNK(st.st_mode):
        kind = "symlink"
    elif stat.S_ISDIR(st.st_mode):
        kind = "directory"
    else:
        kind = "file"
    return FileEntry(path, st.st_size, st.st_mtime, kind, stat.S_IMODE(st.st_mode))


def _skipped(name: str, include_hidden: bool) -> bool:
    if name in ALWAYS_SKIP or name.endswith(ALWAYS_SKIP_SUFFIXES):
        return True
    return not include_hidden and name in HIDDEN_SKIP


def list_tree(
    rootfd: int,
    path: str,
    *,
    include_hidden: bool,
    include_dirs: bool,
    max_entries: int,
    use_openat2: bool = HAVE_OPENAT2,
) -> list[FileEntry]:
    """Flat recursive listing; symlinks are listed as links and never descended into."""
    parts = split_path(path)
    out: list[FileEntry] = []
    with translate_errors(path):
        fd = open_dir(rootfd, parts, use_openat2=use_openat2)
    try:
        _list_dir(fd, "/".join(parts), include_hidden, include_dirs, max_entries, out, 0)
    finally:
        os.close(fd)
    return out


def _list_dir(
    fd: int,
    prefix: str,
    include_hidden: bool,
    include_dirs: bool,
    max_entries: int,
    out: list[FileEntry],
    depth: int,
) -> None:
    with os.scandir(fd) as it:
        children = sorted(it, key=lambda d: d.name)
    for child in children:
        if len(out) >= max_entries:
            return
        if _skipped(child.name, include_hidden):
            continue
        rel = f"{prefix}/{child.name}" if prefix else child.name
        try:
            st = child.stat(follow_symlinks=False)
        except OSError:
            continue  # vanished or unreadable: the agent owns this tree
        if stat.S_ISDIR(st.st_mode):
            if include_dirs:
                out.append(_entry(rel, st))
            if depth >= MAX_LIST_DEPTH:
                continue
            try:
                sub = os.open(child.name, DIR_FLAGS, dir_fd=fd)  # ELOOP if swapped for a link
            except OSError:
                continue
            try:
                _list_dir(sub, rel, include_hidden, include_dirs, max_entries, out, depth + 1)
            finally:
                os.close(sub)
        elif stat.S_ISREG(st.st_mode) or stat.S_ISLNK(st.st_mode):
            out.append(_entry(rel, st))


def open_file(
    rootfd: int, path: str, *, max_bytes: int, use_openat2: bool = HAVE_OPENAT2
) -> tuple[int, FileEntry]:
    """(fd, entry) for a regular file, refusing links, specials and files over max_bytes."""
    parts = split_path(path)
    if not parts:
        raise NotAFile("Path is not a file")
    with translate_errors(path):
        dirfd = open_dir(rootfd, parts[:-1], use_openat2=use_openat2)
        try:
            fd = os.open(parts[-1], READ_FLAGS, dir_fd=dirfd)
        finally:
            os.close(dirfd)
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise NotAFile("Path is not a file")
        if st.st_size > max_bytes:
            raise TooLarge(
                f"File too large ({st.st_size} bytes, max {max_bytes})",
                size=st.st_size,
                limit=max_bytes,
            )
        os.set_blocking(fd, True)
    except BaseException:
        os.close(fd)
        raise
    return fd, _entry("/".join(parts), st)


def read_fd(fd: int, size: int, chunk: int = 1 << 20) -> Iterator[bytes]:
    """Yield at most `size` bytes (the size announced to the client, even if the file grows)."""
    left = size
    while left > 0:
        data = os.read(fd, min(chunk, left))
        if not data:
            return
        left -= len(data)
        yield data


def write_file(
    rootfd: int,
    parts: tuple[str, ...],
    data: bytes | Iterator[bytes],
    *,
    mode: int | None = None,
    mtime_ns: int | None = None,
    use_openat2: bool = HAVE_OPENAT2,
) -> int:
    """Write a file, creating parents (mkdir -p, no-follow); returns bytes written.

    An existing entry is replaced atomically by rename, which never writes through a link."""
    if not parts:
        raise NotAFile("Path is not a file")
    path = "/".join(parts)
    name = parts[-1]
    with translate_errors(path):
        dirfd = open_dir(rootfd, parts[:-1], create=True, use_openat2=use_openat2)
        try:
            try:
                old = os.stat(name, dir_fd=dirfd, follow_symlinks=False)
            except FileNotFoundError:
                old = None
            if old is not None and stat.S_ISDIR(old.st_mode):
                raise NotAFile(f"Path is a directory: {path}")
            if mode is None:
                mode = stat.S_IMODE(old.st_mode) if old and stat.S_ISREG(old.st_mode) else 0o644
            return _write_atomic(dirfd, name, data, mode & 0o777, mtime_ns, exists=old is not None)
        finally:
            os.close(dirfd)


_CREATE = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC


def _write_atomic(
    dirfd: int,
    name: str,
    data: bytes | Iterator[bytes],
    mode: int,
    mtime_ns: int | None,
    *,
    exists: bool,
) -> int:
    """New names are created in place (O_EXCL: fails on anything planted meanwhile); existing
    ones are replaced by rename from a temp file, so a link there is replaced, not followed."""
    if not exists:
        try:
            fd = os.open(name, _CREATE, 0o600, dir_fd=dirfd)
        except FileExistsError:
            exists = True
        else:
            return _fill(fd, dirfd, name, None, data, mode, mtime_ns)
    tmp = f".{name[:180]}.ash-{secrets.token_hex(6)}.tmp"
    fd = os.open(tmp, _CREATE, 0o600, dir_fd=dirfd)
    return _fill(fd, dirfd, tmp, name, data, mode, mtime_ns)


def _fill(
    fd: int,
    dirfd: int,
    created: str,
    rename_to: str | None,
    data: bytes | Iterator[bytes],
    mode: int,
    mtime_ns: int | None,
) -> int:
    written = 0
    try:
        try:
            for chunk in [data] if isinstance(data, bytes) else data:
                view = memoryview(chunk)
                while view:
                    n = os.write(fd, view)
                    view = view[n:]
                    written += n
            os.fchmod(fd, mode)
            if mtime_ns is not None:
                os.utime(fd, ns=(mtime_ns, mtime_ns))
        finally:
            os.close(fd)
        if rename_to is not None:
            os.rename(created, rename_to, src_dir_fd=dirfd, dst_dir_fd=dirfd)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(created, dir_fd=dirfd)  # never leave a half-written file behind
        raise
    return written


def delete_path(
    rootfd: int, path: str, *, recursive: bool = True, use_openat2: bool = HAVE_OPENAT2
) -> str:
    """Remove a file, link or (recursively) a directory; returns the type removed."""
    parts = split_path(path)
    if not parts:
        raise UnsafePath("Invalid file path: refusing to delete the workspace root")
    with translate_errors(path):
        dirfd = open_dir(rootfd, parts[:-1], use_openat2=use_openat2)
        try:
            st = os.stat(parts[-1], dir_fd=dirfd, follow_symlinks=False)
            if not stat.S_ISDIR(st.st_mode):
                os.unlink(parts[-1], dir_fd=dirfd)
                return "symlink" if stat.S_ISLNK(st.st_mode) else "file"
            if not recursive:
                os.rmdir(parts[-1], dir_fd=dirfd)
            else:
                # The fd-based rmtree re-checks each directory it opens, so links are unlinked,
                # never descended into.
                shutil.rmtree(parts[-1], dir_fd=dirfd)
            return "directory"
        finally:
            os.close(dirfd)


def safe_filename(name: str) -> str:
    """An attachment's file name: basename, NULs stripped; '', '.', '..' become 'unnamed'."""
    base = name.replace("\x00", "").replace("\\", "/").rsplit("/", 1)[-1]
    return "unnamed" if base in ("", ".", "..") else base
