"""The locally built sandbox base image; its tag is derived from the recipe `rootfs.sh`."""

from __future__ import annotations

import hashlib
from pathlib import Path

IMAGE_REPO = "ash-sandbox"
RECIPE = Path(__file__).with_name("rootfs.sh")


def image_version() -> str:
    """First 12 hex digits of sha256(rootfs.sh), as computed by scripts/build-sandbox-image.sh."""
    return hashlib.sha256(RECIPE.read_bytes()).hexdigest()[:12]


def image_tag() -> str:
    return f"{IMAGE_REPO}:{image_version()}"
