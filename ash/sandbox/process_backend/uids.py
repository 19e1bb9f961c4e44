"""Per-sandbox host uids, unique across every process on the host.

Each uid is claimed with an exclusive `flock` on a file in a host-wide directory, so that
two services (or test runs) sharing a machine never hand out the same uid; a crashed
holder releases its claims with its file descriptors.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import random
import threading
from pathlib import Path

from ..base import SandboxError

DEFAULT_LOCK_DIR = Path("/run/ash-sandbox-uids")


class UidAllocator:
    def __init__(self, uid_range: tuple[int, int], lock_dir: Path = DEFAULT_LOCK_DIR) -> None:
        low, high = uid_range
        if not 0 < low <= high:
            raise ValueError(f"bad uid range {uid_range}")
        self.low, self.high = low, high
        self.lock_dir = lock_dir
        self._held: dict[int, int] = {}  # uid -> lock fd
        self._mutex = threading.Lock()

    def acquire(self) -> int:
        self.lock_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        span = self.high - self.low + 1
        start = random.randrange(span)  # spread claims so concurrent services rarely collide
        with self._mutex:
            for i in range(span):
                uid = self.low + (start + i) % span
                if uid in self._held:
                    continue
                fd = os.open(self.lock_dir / str(uid), os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    # The holder unlinks the file before unlocking; if that happened between
                    # our open and our lock, we locked an orphan inode: try again.
                    if os.fstat(fd).st_ino != os.stat(self.lock_dir / str(uid)).st_ino:
                        raise BlockingIOError
                except (BlockingIOError, FileNotFoundError):
                    os.close(fd)
                    continue
                self._held[uid] = fd
                return uid
        raise SandboxError(f"no free sandbox uid in {self.low}-{self.high}")

    def release(self, uid: int) -> None:
        with self._mutex:
            fd = self._held.pop(uid, None)
        if fd is not None:
            # Unlink while still locked so lock files do not pile up (see acquire).
            with contextlib.suppress(FileNotFoundError):
                os.unlink(self.lock_dir / str(uid))
            os.close(fd)

    def held(self) -> set[int]:
        with self._mutex:
            return set(self._held)
