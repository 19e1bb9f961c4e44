"""Run filesystem work as the sandbox's uid: per-thread fsuid/fsgid, no supplementary groups.

Linux keeps credentials per thread; the raw syscalls change only the calling thread (the glibc
wrappers for setgroups broadcast to every thread, so they are avoided). A thread whose fsuid is
not 0 loses CAP_DAC_OVERRIDE, CAP_DAC_READ_SEARCH, CAP_FOWNER and CAP_CHOWN, so the kernel checks
permissions exactly as it would for the sandbox user.
"""

from __future__ import annotations

import asyncio
import ctypes
import os
import platform
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

T = TypeVar("T")

_SYSCALLS = {
    "x86_64": {"setgroups": 116, "setfsuid": 122, "setfsgid": 123},
    "aarch64": {"setgroups": 159, "setfsuid": 151, "setfsgid": 152},
}
_NR = _SYSCALLS.get(platform.machine())
_libc = ctypes.CDLL(None, use_errno=True)
_libc.syscall.restype = ctypes.c_long

# Filesystem work for every workspace in this process; threads keep root identity between jobs.
# Made per pid: a pool inherited over fork (Celery prefork) has no live threads in the child.
_executor: tuple[int, ThreadPoolExecutor] | None = None


def _get_executor() -> ThreadPoolExecutor:
    global _executor
    if _executor is None or _executor[0] != os.getpid():
        _executor = (os.getpid(), ThreadPoolExecutor(max_workers=4, thread_name_prefix="ash-wsfs"))
    return _executor[1]


class IdentityError(RuntimeError):
    """The filesystem identity could not be switched or restored."""


def _syscall(name: str, *args: int | ctypes.Array[ctypes.c_uint]) -> int:
    if _NR is None:
        raise IdentityError(f"fsuid switching is not supported on {platform.machine()}")
    return int(_libc.syscall(_NR[name], *args))


def _set_groups(groups: list[int]) -> None:
    arr = (ctypes.c_uint * max(1, len(groups)))(*groups)
    if _syscall("setgroups", len(groups), arr) != 0:
        err = ctypes.get_errno()
        raise IdentityError(f"setgroups failed: {os.strerror(err)}")


def _set_fs_ids(uid: int, gid: int) -> None:
    # setfsuid/setfsgid report the previous id and never fail loudly: verify by re-reading.
    _syscall("setfsgid", gid)
    _syscall("setfsuid", uid)
    if _syscall("setfsgid", -1) != gid or _syscall("setfsuid", -1) != uid:
        raise IdentityError(f"could not switch filesystem identity to {uid}:{gid}")


def can_switch(uid: int | None) -> bool:
    """True when this process may act as `uid` (root, or `uid` is already ours)."""
    return uid is None or uid == os.geteuid() or (os.geteuid() == 0 and _NR is not None)


def run_as(uid: int | None, gid: int | None, fn: Callable[[], T]) -> T:
    """Call `fn` in the current thread with fsuid/fsgid = uid/gid; restore afterwards."""
    if uid is None or (uid == os.geteuid() and (gid is None or gid == os.getegid())):
        return fn()
    gid = uid if gid is None else gid
    saved_groups = os.getgroups()
    saved_uid, saved_gid = os.geteuid(), os.getegid()
    _set_groups([])
    try:
        _set_fs_ids(uid, gid)
        return fn()
    finally:
        try:
            _set_fs_ids(saved_uid, saved_gid)
            _set_groups(saved_groups)
        except BaseException:
            # A pool thread stuck with a sandbox identity would act for the wrong tenant later.
            os.abort()


async def submit(fn: Callable[..., T], *args: object) -> T:
    """Run `fn(*args)` on the workspace thread pool (fn calls run_as for the switch)."""
    loop = asyncio.get_running_loop()
    return await loop.run_in_executor(_get_executor(), fn, *args)


def current_fs_ids() -> tuple[int, int]:
    """(fsuid, fsgid) of the calling thread, for tests and diagnostics."""
    return _syscall("setfsuid", -1), _syscall("setfsgid", -1)
