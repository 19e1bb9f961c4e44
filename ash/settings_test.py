"""Test overlay: an isolated data dir per test process, then the real settings."""

import atexit
import os
import shutil
import tempfile

if "ASH_DATA_DIR" not in os.environ:
    os.environ["ASH_DATA_DIR"] = tempfile.mkdtemp(prefix="ash-test-")
    # Only the directory this process created is removed, never one given from outside.
    atexit.register(shutil.rmtree, os.environ["ASH_DATA_DIR"], ignore_errors=True)
os.environ.setdefault("ASH_LOG_LEVEL", "WARNING")
# In-process API tests have no runner; the consumer is exercised against real servers (tests/e2e).
os.environ.setdefault("ASH_QUEUE_ENABLED", "false")

from ash.settings import *  # noqa: E402,F403

PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]

if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":  # noqa: F405
    # A file, like production: the default shared-cache in-memory test DB answers concurrent
    # writers with "database table is locked" instead of waiting (WAL + busy timeout).
    DATABASES["default"]["TEST"] = {"NAME": str(ASH_DATA_DIR / "test.sqlite3")}  # noqa: F405
