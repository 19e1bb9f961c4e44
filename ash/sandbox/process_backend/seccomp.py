"""A deny-list seccomp filter, compiled once to BPF and handed to `bwrap --seccomp FD`."""

from __future__ import annotations

import errno
import functools
import logging
import os

log = logging.getLogger(__name__)

# Kernel surfaces a sandboxed agent never needs. Network sockets are not listed: the net
# namespace already leaves only a private loopback, which in-sandbox forwarders use.
DENIED_SYSCALLS = (
    "ptrace", "process_vm_readv", "process_vm_writev",
    "mount", "umount2", "pivot_root", "move_mount", "open_tree", "fsopen", "fsmount", "fsconfig",
    "unshare", "setns",
    "keyctl", "add_key", "request_key",
    "bpf", "perf_event_open", "userfaultfd",
    "kexec_load", "kexec_file_load", "init_module", "finit_module", "delete_module",
    "swapon", "swapoff", "reboot", "acct", "quotactl",
)  # fmt: skip


@functools.cache
def filter_bpf() -> bytes | None:
    """The compiled filter, or None when libseccomp/pyseccomp is not usable here."""
    try:
        import pyseccomp
    except (ImportError, OSError) as exc:
        log.warning("seccomp unavailable (%s); sandboxes run without a syscall filter", exc)
        return None
    filt = pyseccomp.SyscallFilter(defaction=pyseccomp.ALLOW)
    for name in DENIED_SYSCALLS:
        try:
            filt.add_rule(pyseccomp.ERRNO(errno.EPERM), name)
        except OSError:
            continue  # syscall unknown to this libseccomp/arch
    fd = os.memfd_create("ash-seccomp", os.MFD_CLOEXEC)
    with os.fdopen(fd, "w+b") as fobj:
        filt.export_bpf(fobj)
        fobj.seek(0)
        return fobj.read()


def bpf_fd(bpf: bytes) -> int:
    """A fresh readable fd holding the program (bwrap reads it to EOF); caller closes it."""
    fd = os.memfd_create("ash-seccomp", os.MFD_CLOEXEC)
    os.write(fd, bpf)
    os.lseek(fd, 0, os.SEEK_SET)
    return fd
