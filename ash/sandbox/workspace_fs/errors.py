"""Errors of the workspace file layer; each carries the HTTP status the API should answer."""

from __future__ import annotations


class WorkspaceError(Exception):
    """Base class; `status_code` is what the API layer answers."""

    status_code = 400


class UnsafePath(WorkspaceError):
    """The path is absolute, has a `..` component or NUL, or goes through a symbolic link."""

    status_code = 400


class PathNotFound(WorkspaceError):
    status_code = 404


class NotAFile(WorkspaceError):
    """A file operation named a directory or a special file."""

    status_code = 400


class AccessDenied(WorkspaceError):
    """The sandbox user may not touch this path (the kernel said EACCES/EPERM)."""

    status_code = 403


class TooLarge(WorkspaceError):
    """A size or count limit was exceeded."""

    status_code = 413

    def __init__(self, message: str, *, size: int | None = None, limit: int | None = None):
        super().__init__(message)
        self.size = size
        self.limit = limit


class InvalidBundle(WorkspaceError):
    """The uploaded archive is not a gzip tar, or holds a member that could escape."""

    status_code = 400
