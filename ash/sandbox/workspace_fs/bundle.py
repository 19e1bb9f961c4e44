"""tar.gz bundles of a workspace: links stored as links, extraction that cannot escape."""

from __future__ import annotations

import contextlib
import gzip
import os
import stat
import tarfile
import zlib
from dataclasses import dataclass, field
from typing import BinaryIO

from ash.sandbox.workspace_fs.errors import InvalidBundle, TooLarge, UnsafePath
from ash.sandbox.workspace_fs.ops import write_file
from ash.sandbox.workspace_fs.resolve import (
    DIR_FLAGS,
    HAVE_OPENAT2,
    open_dir,
    split_path,
    translate_errors,
)

# ash-behaviour §7: never shipped in a download bundle, at any depth.
BUNDLE_EXCLUDE = frozenset(
    {
        "node_modules", ".git", "__pycache__", ".cache", ".npm", ".pnpm-store", ".yarn",
        ".venv", "venv", ".tmp", "tmp",
        ".env", ".env.local", ".env.production", ".env.development", ".DS_Store",
    }
)  # fmt: skip
_CHUNK = 1 << 20


@dataclass
class BundleStats:
    files: int = 0
    dirs: int = 0
    symlinks: int = 0
    bytes: int = 0  # uncompressed file content
    skipped: list[str] = field(default_factory=list)  # specials (fifos, sockets) not stored


def create_bundle(
    rootfd: int,
    out: BinaryIO,
    *,
    exclude: frozenset[str] = BUNDLE_EXCLUDE,
    max_bytes: int,
    compresslevel: int = 6,
) -> BundleStats:
    """Write a tar.gz of the tree under rootfd to `out`; links are stored, never followed."""
    stats = BundleStats()
    with tarfile.open(
        fileobj=out, mode="w:gz", compresslevel=compresslevel, format=tarfile.PAX_FORMAT
    ) as tf:
        top = os.open(".", DIR_FLAGS, dir_fd=rootfd)
        try:
            _add_dir(tf, top, "", exclude, max_bytes, stats, 0)
        finally:
            os.close(top)
    return stats


def _info(name: str, st: os.stat_result, kind: bytes) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type = kind
    info.mode = stat.S_IMODE(st.st_mode)
    info.mtime = int(st.st_mtime)
    info.uid = info.gid = 0  # ownership is the extracting sandbox's, whatever the archive says
    info.uname = info.gname = ""
    return info


def _add_dir(
    tf: tarfile.TarFile,
    dirfd: int,
    prefix: str,
    exclude: frozenset[str],
    max_bytes: int,
    stats: BundleStats,
    depth: int,
) -> None:
    with os.scandir(dirfd) as it:
        names = sorted(d.name for d in it)
    for name in names:
        if name in exclude:
            continue
        rel = f"{prefix}{name}"
        try:
            st = os.stat(name, dir_fd=dirfd, follow_symlinks=False)
        except FileNotFoundError:
            continue
        if stat.S_ISLNK(st.st_mode):
            info = _info(rel, st, tarfile.SYMTYPE)
            info.linkname = os.readlink(name, dir_fd=dirfd)
            tf.addfile(info)
            stats.symlinks += 1
        elif stat.S_ISDIR(st.st_mode):
            if depth >= 256:
                raise TooLarge("Workspace tree is too deep to bundle")
            try:
                sub = os.open(name, DIR_FLAGS, dir_fd=dirfd)  # ELOOP if swapped for a link now
            except OSError:
                stats.skipped.append(rel)
                continue
            try:
                tf.addfile(_info(rel + "/", os.fstat(sub), tarfile.DIRTYPE))
                stats.dirs += 1
                _add_dir(tf, sub, rel + "/", exclude, max_bytes, stats, depth + 1)
            finally:
                os.close(sub)
        elif stat.S_ISREG(st.st_mode):
            _add_file(tf, dirfd, name, rel, max_bytes, stats)
        else:
            stats.skipped.append(rel)


def _add_file(
    tf: tarfile.TarFile, dirfd: int, name: str, rel: str, max_bytes: int, stats: BundleStats
) -> None:
    flags = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC
    try:
        fd = os.open(name, flags, dir_fd=dirfd)
    except OSError:
        stats.skipped.append(rel)  # unreadable by the sandbox user, or replaced by a link
        return
    with os.fdopen(fd, "rb") as f:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):  # swapped for a fifo or device between stat and open
            stats.skipped.append(rel)
            return
        if stats.bytes + st.st_size > max_bytes:
            raise TooLarge(
                f"Workspace bundle exceeds {max_bytes} bytes",
                size=stats.bytes + st.st_size,
                limit=max_bytes,
            )
        os.set_blocking(fd, True)
        info = _info(rel, st, tarfile.REGTYPE)
        info.size = st.st_size
        try:
            tf.addfile(info, f)
        except OSError as exc:  # the agent truncated the file while it was being read
            raise InvalidBundle(f"{rel} changed while the bundle was built") from exc
        stats.files += 1
        stats.bytes += st.st_size


def extract_bundle(
    rootfd: int,
    src: BinaryIO,
    *,
    target: tuple[str, ...] = (),
    max_bytes: int,
    max_members: int,
    strict: bool = False,
    use_openat2: bool = HAVE_OPENAT2,
) -> BundleStats:
    """Validate every member first (nothing is written for a bad archive), then extract.

    Links pointing outside are dropped (listed in `skipped`), or refuse the bundle if strict."""
    head = src.read(2)
    src.seek(0)
    if not head:
        raise InvalidBundle("Empty bundle")
    if head != b"\x1f\x8b":
        raise InvalidBundle("Bundle is not gzip data")
    try:
        with tarfile.open(fileobj=src, mode="r:gz") as tf:
            skipped: list[str] = []
            plan = _validate(tf, max_bytes, max_members, strict, skipped)
            stats = _apply(tf, plan, rootfd, target, use_openat2)
            stats.skipped = skipped
            return stats
    except (tarfile.TarError, EOFError, zlib.error, gzip.BadGzipFile) as exc:
        raise InvalidBundle(f"Invalid bundle: {exc}") from None


def _validate(
    tf: tarfile.TarFile, max_bytes: int, max_members: int, strict: bool, skipped: list[str]
) -> list[tuple[tarfile.TarInfo, tuple[str, ...]]]:
    plan: list[tuple[tarfile.TarInfo, tuple[str, ...]]] = []
    links: set[tuple[str, ...]] = set()
    files: dict[tuple[str, ...], int] = {}  # regular members seen so far -> size
    total = 0
    for count, member in enumerate(tf, start=1):
        if count > max_members:
            raise TooLarge(f"Bundle has more than {max_members} entries", limit=max_members)
        parts = _member_parts(member.name)
        if not parts:
            if member.isdir():
                continue  # "./" itself
            raise InvalidBundle(f"Invalid bundle member {member.name!r}")
        if any(parts[:k] in links for k in range(1, len(parts) + 1)):
            raise InvalidBundle(f"Bundle member {member.name!r} goes through a symbolic link")
        if member.isreg():
            total += member.size
            files[parts] = member.size
        elif member.islnk():
            source = _member_parts(member.linkname)
            if source not in files:
                raise InvalidBundle(f"Hard link {member.name!r} points outside the bundle")
            total += files[source]
            files[parts] = files[source]
        elif member.issym():
            if not _symlink_inside(parts, member.linkname):
                if strict:
                    raise InvalidBundle(f"Symbolic link {member.name!r} points outside")
                skipped.append("/".join(parts))  # as the reference does: escaping links dropped
                continue
            links.add(parts)
        elif not member.isdir():
            raise InvalidBundle(f"Bundle member {member.name!r} is a device or special file")
        if total > max_bytes:
            raise TooLarge(f"Bundle content exceeds {max_bytes} bytes", size=total, limit=max_bytes)
        plan.append((member, parts))
    return plan


def _member_parts(name: str) -> tuple[str, ...]:
    try:
        return split_path(name, what="name in bundle")
    except UnsafePath as exc:
        raise InvalidBundle(f"Unsafe bundle member {name!r}: {exc}") from None


def _symlink_inside(parts: tuple[str, ...], target: str) -> bool:
    """Whether a link points inside the tree, judged lexically from where it sits.

    Defence in depth: the host never follows workspace links (every open is no-follow)."""
    if not target or target.startswith("/") or "\x00" in target:
        return False
    depth = len(parts) - 1
    for comp in target.split("/"):
        if comp in ("", "."):
            continue
        depth += -1 if comp == ".." else 1
        if depth < 0:
            return False
    return True


def _apply(
    tf: tarfile.TarFile,
    plan: list[tuple[tarfile.TarInfo, tuple[str, ...]]],
    rootfd: int,
    target: tuple[str, ...],
    use_openat2: bool,
) -> BundleStats:
    stats = BundleStats()
    dir_times: list[tuple[tuple[str, ...], int, int]] = []
    if target:
        with translate_errors("/".join(target)):
            os.close(open_dir(rootfd, target, create=True, use_openat2=use_openat2))
    for member, parts in plan:
        full = target + parts
        path = "/".join(full)
        with translate_errors(path):
            if member.isdir():
                os.close(open_dir(rootfd, full, create=True, mode=0o700, use_openat2=use_openat2))
                dir_times.append((full, member.mode & 0o777, int(member.mtime * 1e9)))
                stats.dirs += 1
            elif member.issym():
                _make_symlink(rootfd, full, member.linkname, use_openat2)
                stats.symlinks += 1
            else:
                data = tf.extractfile(member)  # for hard links: the linked member's data
                if data is None:
                    raise InvalidBundle(f"Bundle member {member.name!r} has no data")
                stats.bytes += write_file(
                    rootfd,
                    full,
                    iter(lambda d=data: d.read(_CHUNK), b""),
                    mode=member.mode & 0o777,
                    mtime_ns=int(member.mtime * 1e9),
                    use_openat2=use_openat2,
                )
                stats.files += 1
    # Directory modes last (deepest first) so a read-only directory can still be filled.
    for full, mode, mtime_ns in reversed(dir_times):
        with translate_errors("/".join(full)):
            fd = open_dir(rootfd, full, use_openat2=use_openat2)
            try:
                os.fchmod(fd, mode)
                os.utime(fd, ns=(mtime_ns, mtime_ns))
            finally:
                os.close(fd)
    return stats


def _make_symlink(rootfd: int, full: tuple[str, ...], linkname: str, use_openat2: bool) -> None:
    dirfd = open_dir(rootfd, full[:-1], create=True, use_openat2=use_openat2)
    try:
        with contextlib.suppress(FileNotFoundError):
            st = os.stat(full[-1], dir_fd=dirfd, follow_symlinks=False)
            if stat.S_ISDIR(st.st_mode):
                raise InvalidBundle(f"Symbolic link {'/'.join(full)!r} would replace a directory")
            os.unlink(full[-1], dir_fd=dirfd)
        os.symlink(linkname, full[-1], dir_fd=dirfd)
    finally:
        os.close(dirfd)
