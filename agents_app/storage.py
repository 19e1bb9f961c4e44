"""Where agent folders live on disk: one immutable folder per (tenant, agent, version)."""

from __future__ import annotations

import base64
import binascii
import hashlib
import os
import secrets
import shutil
import stat
import tempfile
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from django.conf import settings

from ash.errors import BadRequest, PayloadTooLarge

SYSTEM_PROMPT_FILE = "CLAUDE.md"


@dataclass(frozen=True)
class AgentFile:
    path: str  # relative POSIX path
    data: bytes


@dataclass(frozen=True)
class WrittenFolder:
    path: Path
    file_count: int
    total_bytes: int
    sha256: str


def agents_root() -> Path:
    return settings.ASH_DATA_DIR / "agents"


def agent_dir(tenant_id: str, name: str) -> Path:
    return agents_root() / tenant_id / name


def clean_relative_path(raw: str, *, field: str) -> str:
    """A relative POSIX path with no '..', no absolute root, no NUL; else a 400 naming FIELD."""
    if not isinstance(raw, str) or not raw or "\x00" in raw or "\\" in raw:
        raise BadRequest(f"{field}: invalid file path")
    pure = PurePosixPath(raw)
    if pure.is_absolute() or any(part in ("..", "") for part in pure.parts) or len(raw) > 1024:
        raise BadRequest(f"{field}: invalid file path {raw!r}")
    parts = [p for p in pure.parts if p != "."]
    if not parts:
        raise BadRequest(f"{field}: invalid file path {raw!r}")
    return "/".join(parts)


def decode_files(files: list[dict[str, str]]) -> list[AgentFile]:
    decoded: list[AgentFile] = []
    seen: set[str] = set()
    total = 0
    if len(files) > settings.ASH_AGENT_MAX_FILES:
        raise BadRequest(f"files: at most {settings.ASH_AGENT_MAX_FILES} files per agent")
    for index, item in enumerate(files):
        path = clean_relative_path(item["path"], field=f"files[{index}].path")
        try:
            data = base64.b64decode(item["content"], validate=True)
        except (binascii.Error, ValueError):
            raise BadRequest(f"files[{index}].content: not valid base64") from None
        if path in seen:
            raise BadRequest(f"files[{index}].path: duplicate path {path!r}")
        seen.add(path)
        total += len(data)
        if total > settings.ASH_AGENT_MAX_BYTES:
            raise PayloadTooLarge(f"files: agent larger than {settings.ASH_AGENT_MAX_BYTES} bytes")
        decoded.append(AgentFile(path=path, data=data))
    # A file may not also be a directory of another file (a/b and a/b/c).
    for f in decoded:
        for parent in PurePosixPath(f.path).parents:
            if str(parent) != "." and str(parent) in seen:
                raise BadRequest(f"files: {str(parent)!r} is both a file and a directory")
    return decoded


def read_source_folder(source: Path) -> list[AgentFile]:
    """Every regular file under SOURCE, without following symlinks (links are refused)."""
    files: list[AgentFile] = []
    total = 0
    for dirpath, dirnames, filenames in os.walk(source, followlinks=False):
        for name in list(dirnames):
            full = Path(dirpath) / name
            if full.is_symlink():
                raise BadRequest(f"path: symbolic links are not allowed in agent folders ({full.relative_to(source)})")
        for name in filenames:
            full = Path(dirpath) / name
            st = full.lstat()
            rel = full.relative_to(source).as_posix()
            if stat.S_ISLNK(st.st_mode):
                raise BadRequest(f"path: symbolic links are not allowed in agent folders ({rel})")
            if not stat.S_ISREG(st.st_mode):
                continue
            total += st.st_size
            if total > settings.ASH_AGENT_MAX_BYTES:
                raise PayloadTooLarge(f"path: agent folder larger than {settings.ASH_AGENT_MAX_BYTES} bytes")
            if len(files) >= settings.ASH_AGENT_MAX_FILES:
                raise BadRequest(f"path: more than {settings.ASH_AGENT_MAX_FILES} files")
            fd = os.open(full, os.O_RDONLY | os.O_NOFOLLOW)
            with os.fdopen(fd, "rb") as fh:
                files.append(AgentFile(path=rel, data=fh.read()))
    return files


def resolve_deploy_path(raw: str) -> Path:
    """The folder to deploy from: only under ASH_AGENTS_ROOT, and it must hold CLAUDE.md."""
    if not settings.ASH_AGENTS_ROOT:
        raise BadRequest("path: deploying from a server path is disabled (ASH_AGENTS_ROOT is not set)")
    if not raw or "\x00" in raw or len(raw) > 4096:
        raise BadRequest("path: invalid path")
    root = Path(settings.ASH_AGENTS_ROOT).resolve()
    candidate = Path(raw) if os.path.isabs(raw) else root / raw
    resolved = candidate.resolve()
    if resolved != root and root not in resolved.parents:
        raise BadRequest("path: must be inside ASH_AGENTS_ROOT")
    if not resolved.is_dir():
        raise BadRequest("path: not a directory")
    claude = resolved / SYSTEM_PROMPT_FILE
    if claude.is_symlink() or not claude.is_file():
        raise BadRequest("Agent directory must contain CLAUDE.md")
    return resolved


def write_version_folder(*, tenant_id: str, name: str, version: int, files: list[AgentFile]) -> WrittenFolder:
    """Write FILES into a fresh folder atomically (temp dir + rename); returns where and a digest."""
    base = agent_dir(tenant_id, name)
    base.mkdir(parents=True, exist_ok=True)
    # A unique name: two racing first deploys both try version 1 until the database says which
    # one lost; the loser must not replace the winner's files.
    final = base / f"v{version}-{secrets.token_hex(4)}"
    staging = Path(tempfile.mkdtemp(prefix=f".v{version}-", dir=base))
    digest = hashlib.sha256()
    total = 0
    try:
        for f in sorted(files, key=lambda f: f.path):
            target = staging / f.path
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(f.data)
            os.chmod(target, 0o644)
            digest.update(f.path.encode() + b"\x00" + hashlib.sha256(f.data).digest())
            total += len(f.data)
        os.chmod(staging, 0o755)
        os.rename(staging, final)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return WrittenFolder(path=final, file_count=len(files), total_bytes=total, sha256=digest.hexdigest())


def remove_version_folder(path: Path) -> None:
    """Drop a folder whose deploy transaction rolled back."""
    shutil.rmtree(path, ignore_errors=True)


def remove_agent_folders(tenant_id: str, name: str) -> None:
    shutil.rmtree(agent_dir(tenant_id, name), ignore_errors=True)
