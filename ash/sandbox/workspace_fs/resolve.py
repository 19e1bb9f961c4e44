"""Resolve user paths beneath a root directory fd without ever following a symbolic link.

openat2(RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS) does it in one syscall;
without it, each component is opened with O_NOFOLLOW | O_DIRECTORY relative to the previous fd,
so a link planted (or swapped in mid-walk) fails the open instead of being followed.
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import os
import stat
from collections.abc import Iterator

from ash.sandbox.workspace_fs.errors import (
    AccessDenied,
    NotAFile,
    PathNotFound,
    TooLarge,
    UnsafePath,
    WorkspaceError,
)

_SYS_OPENAT2 = 437  # the same number on every architecture (new-style syscall table)
RESOLVE_NO_MAGICLINKS = 0x02
RESOLVE_NO_SYMLINKS = 0x04
RESOLVE_BENEATH = 0x08
_RESOLVE = RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS

DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
MAX_NAME_BYTES = 255
MAX_PATH_BYTES = 4096


class _OpenHow(ctypes.Structure):
    _fields_ = [("flags", ctypes.c_uint64), ("mode", ctypes.c_uint64), ("resolve", ctypes.c_uint64)]


_libc = ctypes.CDLL(None, use_errno=True)
_libc.syscall.restype = ctypes.c_long


def openat2(dirfd: int, path: str, flags: int, mode: int = 0, resolve: int = _RESOLVE) -> int:
    """The raw openat2 syscall; raises OSError like os.open."""
    how = _OpenHow(flags | os.O_CLOEXEC, mode, resolve)
    raw = os.fsencode(path)
    for _ in range(8):  # EAGAIN: a concurrent rename raced the lookup; the kernel asks to retry
        fd = int(
            _libc.syscall(
                _SYS_OPENAT2,
                ctypes.c_int(dirfd),
                ctypes.c_char_p(raw),
                ctypes.byref(how),
                ctypes.c_size_t(ctypes.sizeof(how)),
            )
        )
        if fd >= 0:
            return fd
        err = ctypes.get_errno()
        if err != errno.EAGAIN:
            raise OSError(err, os.strerror(err), path)
    raise OSError(errno.EAGAIN, os.strerror(errno.EAGAIN), path)


def _probe_openat2() -> bool:
    try:
        fd = openat2(-100, "/", os.O_PATH | os.O_DIRECTORY, resolve=RESOLVE_NO_MAGICLINKS)
    except OSError:
        return False  # ENOSYS (old kernel) or EPERM (seccomp): use the component walk
    os.close(fd)
    return True


HAVE_OPENAT2 = _probe_openat2()


def split_path(path: str, *, what: str = "path") -> tuple[str, ...]:
    """Validate a relative path and return its components ('' and '.' dropped).

    Rejects NUL bytes, absolute paths and `..` components; `a..b.txt` is a valid name."""
    if not isinstance(path, str):
        raise UnsafePath(f"Invalid file {what}")
    if "\x00" in path:
        raise UnsafePath(f"Invalid file {what}: NUL byte")
    if path.startswith("/"):
        raise UnsafePath(f"Invalid file {what}: absolute paths are not allowed")
    try:
        total = len(os.fsencode(path))
        parts = tuple(p for p in path.split("/") if p not in ("", "."))
        too_long = any(len(os.fsencode(p)) > MAX_NAME_BYTES for p in parts)
    except UnicodeError:
        raise UnsafePath(f"Invalid file {what}: not encodable") from None
    if ".." in parts:
        raise UnsafePath(f"Invalid file {what}: '..' is not allowed")
    if too_long or total > MAX_PATH_BYTES:
        raise UnsafePath(f"Invalid file {what}: name too long")
    return parts


def open_root(root: os.PathLike[str] | str) -> int:
    """Open the (host-controlled) root directory; its last component must not be a link."""
    try:
        return os.open(root, DIR_FLAGS)
    except FileNotFoundError:
        raise PathNotFound("No workspace available") from None
    except OSError as exc:
        if exc.errno in (errno.ELOOP, errno.ENOTDIR):
            raise UnsafePath("workspace root is not a directory") from None
        raise


def _open_component(dirfd: int, name: str) -> int:
    try:
        return os.open(name, DIR_FLAGS, dir_fd=dirfd)
    except NotADirectoryError:
        # O_DIRECTORY wins over O_NOFOLLOW for a link: report it as the link it is. An entry that
        # is a directory by now was swapped under us between the two calls (a link a moment ago,
        # since a directory cannot fail O_DIRECTORY): the same answer, not "not found".
        mode = os.stat(name, dir_fd=dirfd, follow_symlinks=False).st_mode
        if stat.S_ISLNK(mode) or stat.S_ISDIR(mode):
            raise OSError(errno.ELOOP, os.strerror(errno.ELOOP), name) from None
        raise


def _walk(rootfd: int, parts: tuple[str, ...], create: bool, mode: int) -> int:
    fd = os.open(".", DIR_FLAGS, dir_fd=rootfd)
    try:
        for name in parts:
            try:
                nxt = _open_component(fd, name)
            except FileNotFoundError:
                if not create:
                    raise
                with contextlib.suppress(FileExistsError):
                    os.mkdir(name, mode, dir_fd=fd)
                nxt = _open_component(fd, name)
            os.close(fd)
            fd = nxt
    except BaseException:
        os.close(fd)
        raise
    return fd


def open_dir(
    rootfd: int,
    parts: tuple[str, ...],
    *,
    create: bool = False,
    mode: int = 0o755,
    use_openat2: bool = HAVE_OPENAT2,
) -> int:
    """An O_RDONLY directory fd for `parts` beneath rootfd (mkdir -p when `create`)."""
    if not parts:
        return os.open(".", DIR_FLAGS, dir_fd=rootfd)
    if use_openat2:
        try:
            return openat2(rootfd, "/".join(parts), os.O_RDONLY | os.O_DIRECTORY)
        except FileNotFoundError:
            if not create:
                raise
    return _walk(rootfd, parts, create, mode)


@contextlib.contextmanager
def translate_errors(path: str) -> Iterator[None]:
    """Map kernel errors to workspace errors with messages that do not leak host paths."""
    try:
        yield
    except WorkspaceError:
        raise
    except OSError as exc:
        code = exc.errno
        if code in (errno.ELOOP, errno.EXDEV):
            raise UnsafePath(f"Invalid file path: {path} goes through a symbolic link") from None
        if code in (errno.ENOENT, errno.ENOTDIR):
            raise PathNotFound(f"File not found: {path}") from None
        if code in (errno.EACCES, errno.EPERM):
            raise AccessDenied(f"Permission denied: {path}") from None
        if code == errno.EISDIR:
            raise NotAFile(f"Path is a directory: {path}") from None
        if code == errno.ENAMETOOLONG:
            raise UnsafePath(f"Invalid file path: {path} is too long") from None
        if code in (errno.ENOSPC, errno.EDQUOT, errno.EFBIG):
            raise TooLarge(f"Workspace disk quota exceeded writing {path}") from None
        raise
