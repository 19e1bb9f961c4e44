"""WorkspaceFS: the async file API over one workspace (or agent) directory.

Every operation opens the trusted root as the runner, then works beneath that fd on a worker
thread whose filesystem identity is the sandbox's uid/gid, never following a link.
"""

from __future__ import annotations

import asyncio
import io
import os
import tempfile
from collections.abc import AsyncIterator, Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, TypeVar

from ash.sandbox.workspace_fs import identity
from ash.sandbox.workspace_fs.bundle import (
    BUNDLE_EXCLUDE,
    BundleStats,
    create_bundle,
    extract_bundle,
)
from ash.sandbox.workspace_fs.errors import TooLarge, WorkspaceError
from ash.sandbox.workspace_fs.ops import (
    FileEntry,
    delete_path,
    list_tree,
    open_file,
    read_fd,
    safe_filename,
    write_file,
)
from ash.sandbox.workspace_fs.resolve import HAVE_OPENAT2, open_root, split_path

T = TypeVar("T")

# Limits (ash-behaviour §7).
JSON_READ_LIMIT = 1 << 20
RAW_READ_LIMIT = 100 << 20
WRITE_MAX_FILES = 500
WRITE_FILE_LIMIT = 50 << 20
WRITE_BATCH_LIMIT = 100 << 20
BUNDLE_LIMIT = 100 << 20
BUNDLE_MAX_MEMBERS = 100_000
ATTACHMENT_LIMIT = 10 << 20
LIST_MAX_ENTRIES = 100_000
SKIP_ON_WRITE = frozenset({".DS_Store"})


@dataclass(frozen=True)
class WriteResult:
    path: str
    written: bool
    size: int | None = None
    error: str | None = None

    def to_dict(self) -> dict[str, object]:
        if self.written:
            return {"path": self.path, "written": True, "size": self.size}
        return {"path": self.path, "written": False, "error": self.error}


@dataclass(frozen=True)
class FileData:
    entry: FileEntry
    data: bytes


class FileReader:
    """An open regular file streamed in chunks (`size` bytes exactly, for Content-Length)."""

    def __init__(self, fd: int, entry: FileEntry) -> None:
        self._fd: int | None = fd
        self.entry = entry

    @property
    def size(self) -> int:
        return self.entry.size

    async def __aiter__(self) -> AsyncIterator[bytes]:
        try:
            chunks = read_fd(self._fd_or_raise(), self.entry.size)
            while chunk := await asyncio.to_thread(next, chunks, b""):
                yield chunk
        finally:
            self.close()

    def _fd_or_raise(self) -> int:
        if self._fd is None:
            raise ValueError("reader is closed")
        return self._fd

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None

    async def __aenter__(self) -> FileReader:
        return self

    async def __aexit__(self, *exc: object) -> None:
        self.close()


class Bundle:
    """A finished tar.gz in an anonymous temporary file; close() discards it."""

    def __init__(self, file: BinaryIO, size: int, stats: BundleStats) -> None:
        self.file = file
        self.size = size
        self.stats = stats

    def read_all(self) -> bytes:
        self.file.seek(0)
        return self.file.read()

    async def chunks(self, chunk_size: int = 1 << 20) -> AsyncIterator[bytes]:
        self.file.seek(0)
        while chunk := await asyncio.to_thread(self.file.read, chunk_size):
            yield chunk

    def close(self) -> None:
        self.file.close()

    def __enter__(self) -> Bundle:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class WorkspaceFS:
    """Safe file access beneath `root`, acting as `uid`/`gid` (None: the runner's own identity,
    for directories the platform owns, e.g. agent folders)."""

    def __init__(
        self,
        root: Path | str,
        uid: int | None = None,
        gid: int | None = None,
        *,
        use_openat2: bool | None = None,
    ) -> None:
        if not identity.can_switch(uid):
            raise PermissionError(f"this process cannot act as uid {uid}")
        self.root = Path(root)
        self.uid = uid
        self.gid = uid if gid is None and uid is not None else gid
        self._openat2 = HAVE_OPENAT2 if use_openat2 is None else (use_openat2 and HAVE_OPENAT2)

    @classmethod
    def for_owner(cls, root: Path | str, **kwargs: bool | None) -> WorkspaceFS:
        """Act as whoever owns `root` (e.g. a snapshot workspace with no live sandbox)."""
        st = os.stat(root)
        return cls(root, st.st_uid, st.st_gid, **kwargs)  # type: ignore[arg-type]

    # -- plumbing ---------------------------------------------------------------------------

    def _job(self, op: Callable[[int], T]) -> T:
        rootfd = open_root(self.root)  # as the runner: the root's parents are not the agent's
        try:
            return identity.run_as(self.uid, self.gid, lambda: op(rootfd))
        finally:
            os.close(rootfd)

    async def _run(self, op: Callable[[int], T]) -> T:
        return await identity.submit(self._job, op)

    # -- reads ------------------------------------------------------------------------------

    async def list(
        self,
        path: str = ".",
        *,
        include_hidden: bool = True,
        include_dirs: bool = False,
        max_entries: int = LIST_MAX_ENTRIES,
    ) -> list[FileEntry]:
        """Flat recursive listing with the §7 exclusions; symlinked dirs are not descended."""
        return await self._run(
            lambda fd: list_tree(
                fd,
                path,
                include_hidden=include_hidden,
                include_dirs=include_dirs,
                max_entries=max_entries,
                use_openat2=self._openat2,
            )
        )

    async def read(self, path: str, *, max_bytes: int = JSON_READ_LIMIT) -> FileData:
        """The whole file (regular files only, at most max_bytes)."""

        def op(rootfd: int) -> FileData:
            fd, entry = open_file(rootfd, path, max_bytes=max_bytes, use_openat2=self._openat2)
            try:
                return FileData(entry, b"".join(read_fd(fd, entry.size)))
            finally:
                os.close(fd)

        return await self._run(op)

    async def open_read(self, path: str, *, max_bytes: int = RAW_READ_LIMIT) -> FileReader:
        """Open for streaming; permission is checked at open, as the sandbox user."""
        fd, entry = await self._run(
            lambda rootfd: open_file(rootfd, path, max_bytes=max_bytes, use_openat2=self._openat2)
        )
        return FileReader(fd, entry)

    async def stat(self, path: str) -> FileEntry:
        """Entry of a regular file (no size limit), as read() would see it."""
        fd, entry = await self._run(
            lambda rootfd: open_file(rootfd, path, max_bytes=1 << 62, use_openat2=self._openat2)
        )
        os.close(fd)
        return entry

    # -- writes -----------------------------------------------------------------------------

    async def write_many(
        self,
        files: Sequence[tuple[str, bytes]],
        *,
        target_path: str = ".",
        max_files: int = WRITE_MAX_FILES,
        file_limit: int = WRITE_FILE_LIMIT,
        batch_limit: int = WRITE_BATCH_LIMIT,
    ) -> list[WriteResult]:
        """Write (path, content) pairs under target_path; one result per item, in order."""
        if len(files) > max_files:
            raise TooLarge(f"Too many files ({len(files)}, max {max_files})", limit=max_files)
        base = split_path(target_path, what="target path")
        return await self._run(
            lambda rootfd: self._write_batch(rootfd, base, files, file_limit, batch_limit)
        )

    def _write_batch(
        self,
        rootfd: int,
        base: tuple[str, ...],
        files: Iterable[tuple[str, bytes]],
        file_limit: int,
        batch_limit: int,
    ) -> list[WriteResult]:
        results: list[WriteResult] = []
        total = 0
        for path, content in files:
            try:
                parts = split_path(path)
                if parts and parts[-1] in SKIP_ON_WRITE:
                    results.append(WriteResult(path, False, error="skipped"))
                    continue
                if len(content) > file_limit:
                    raise TooLarge(f"File too large ({len(content)} bytes, max {file_limit})")
                if total + len(content) > batch_limit:
                    raise TooLarge(f"Batch size limit exceeded (max {batch_limit} bytes)")
                size = write_file(rootfd, base + parts, content, use_openat2=self._openat2)
            except WorkspaceError as exc:
                results.append(WriteResult(path, False, error=str(exc)))
                continue
            total += size
            results.append(WriteResult(path, True, size=size))
        return results

    async def write(self, path: str, content: bytes, *, mode: int | None = None) -> int:
        """Write one file (no batch semantics); raises instead of returning a result."""
        parts = split_path(path)
        return await self._run(
            lambda rootfd: write_file(rootfd, parts, content, mode=mode, use_openat2=self._openat2)
        )

    async def delete(self, path: str, *, recursive: bool = True) -> str:
        """Remove a file, link or directory tree; returns "file" | "symlink" | "directory"."""
        return await self._run(
            lambda rootfd: delete_path(rootfd, path, recursive=recursive, use_openat2=self._openat2)
        )

    async def copy_in(
        self,
        filename: str,
        content: bytes | Path,
        *,
        dest_dir: str = "attachments",
        max_bytes: int = ATTACHMENT_LIMIT,
    ) -> str:
        """Place an attachment at dest_dir/<basename>, overwriting; returns its relative path.

        A Path source is runner-owned storage: it is opened as the runner, then copied."""
        name = safe_filename(filename)
        parts = split_path(dest_dir, what="destination") + split_path(name)
        if isinstance(content, Path):
            src: BinaryIO = await asyncio.to_thread(content.open, "rb")
        else:
            src = io.BytesIO(content)
        try:
            size = os.fstat(src.fileno()).st_size if isinstance(content, Path) else len(content)
            if size > max_bytes:
                raise TooLarge(f"Attachment too large ({size} bytes, max {max_bytes})")
            chunks = iter(lambda: src.read(1 << 20), b"")
            await self._run(
                lambda rootfd: write_file(rootfd, parts, chunks, use_openat2=self._openat2)
            )
        finally:
            src.close()
        return "/".join(parts)

    # -- bundles ----------------------------------------------------------------------------

    async def bundle(
        self,
        *,
        max_bytes: int = BUNDLE_LIMIT,
        exclude: frozenset[str] = BUNDLE_EXCLUDE,
        compresslevel: int = 6,
    ) -> Bundle:
        """A tar.gz of the workspace (links stored as links). The caller closes the Bundle."""
        # Created as the runner, before any identity switch; handed to the caller in a Bundle.
        out: BinaryIO = tempfile.TemporaryFile()  # noqa: SIM115
        try:
            stats = await self._run(
                lambda rootfd: create_bundle(
                    rootfd, out, exclude=exclude, max_bytes=max_bytes, compresslevel=compresslevel
                )
            )
            size = out.tell()
            if size > max_bytes:
                raise TooLarge(f"Workspace bundle exceeds {max_bytes} bytes", size=size)
        except BaseException:
            out.close()
            raise
        out.seek(0)
        return Bundle(out, size, stats)

    async def extract_bundle(
        self,
        data: bytes | BinaryIO,
        *,
        target_path: str = ".",
        max_bytes: int = BUNDLE_LIMIT,
        max_members: int = BUNDLE_MAX_MEMBERS,
        strict: bool = False,
    ) -> BundleStats:
        """Merge a tar.gz over the workspace; a bundle that could escape is refused whole."""
        target = split_path(target_path, what="target path")
        src = io.BytesIO(data) if isinstance(data, bytes | bytearray | memoryview) else data
        return await self._run(
            lambda rootfd: extract_bundle(
                rootfd,
                src,
                target=target,
                max_bytes=max_bytes,
                max_members=max_members,
                strict=strict,
                use_openat2=self._openat2,
            )
        )
