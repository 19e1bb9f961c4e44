"""Test overlay: an isolated data dir per test process, then the real settings."""

import os
import tempfile

os.environ.setdefault("ASH_DATA_DIR", tempfile.mkdtemp(prefix="ash-test-"))
os.environ.setdefault("ASH_LOG_LEVEL", "WARNING")

from ash.settings import *  # noqa: E402,F403

PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
