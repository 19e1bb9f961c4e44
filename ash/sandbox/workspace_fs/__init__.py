"""Safe workspace access for every file-facing API: no-follow resolution beneath a root fd,
operations performed as the sandbox's uid, size limits, and escape-proof bundles."""

from ash.sandbox.workspace_fs.bundle import BUNDLE_EXCLUDE, BundleStats
from ash.sandbox.workspace_fs.errors import (
    AccessDenied,
    InvalidBundle,
    NotAFile,
    PathNotFound,
    TooLarge,
    UnsafePath,
    WorkspaceError,
)
from ash.sandbox.workspace_fs.ops import FileEntry, safe_filename
from ash.sandbox.workspace_fs.resolve import HAVE_OPENAT2, split_path
from ash.sandbox.workspace_fs.workspace import (
    ATTACHMENT_LIMIT,
    BUNDLE_LIMIT,
    BUNDLE_MAX_MEMBERS,
    JSON_READ_LIMIT,
    RAW_READ_LIMIT,
    WRITE_BATCH_LIMIT,
    WRITE_FILE_LIMIT,
    WRITE_MAX_FILES,
    Bundle,
    FileData,
    FileReader,
    WorkspaceFS,
    WriteResult,
)

__all__ = [
    "ATTACHMENT_LIMIT",
    "BUNDLE_EXCLUDE",
    "BUNDLE_LIMIT",
    "BUNDLE_MAX_MEMBERS",
    "HAVE_OPENAT2",
    "JSON_READ_LIMIT",
    "RAW_READ_LIMIT",
    "WRITE_BATCH_LIMIT",
    "WRITE_FILE_LIMIT",
    "WRITE_MAX_FILES",
    "AccessDenied",
    "Bundle",
    "BundleStats",
    "FileData",
    "FileEntry",
    "FileReader",
    "InvalidBundle",
    "NotAFile",
    "PathNotFound",
    "TooLarge",
    "UnsafePath",
    "WorkspaceError",
    "WorkspaceFS",
    "WriteResult",
    "safe_filename",
    "split_path",
]
