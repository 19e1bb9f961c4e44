"""Generated secrets for embedded mode, kept in the data directory with mode 0600."""

from __future__ import annotations

import base64
import os
import secrets
from pathlib import Path


def new_secret() -> str:
    """32 random bytes, url-safe base64 (also a valid Fernet key)."""
    return base64.urlsafe_b64encode(secrets.token_bytes(32)).decode()


def write_private_file(path: Path, text: str) -> bool:
    """Create PATH with mode 0600 holding TEXT; False if it already exists (never overwritten)."""
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
    except FileExistsError:
        return False
    with os.fdopen(fd, "w") as fh:
        fh.write(text + "\n")
    return True


def data_dir_secret(path: Path) -> str:
    """Read the secret at PATH, generating it on first use."""
    write_private_file(path, new_secret())
    return path.read_text().strip()
