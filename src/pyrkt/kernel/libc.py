"""The ctypes binding to libc, loaded once and lazily, and the raw syscall numbers glibc has no
wrapper for. Nothing outside ``pyrkt.kernel`` touches ctypes; failures become ``KernelError``
through ``check``.

This module sits on the app-setup path of stage1, so it imports ctypes and nothing heavier
(the machine comes from ``os.uname()``, which is what ``platform.machine()`` returns, without
importing ``platform``).
"""

from __future__ import annotations

import os

from pyrkt.errors import KernelError
from pyrkt.kernel import cdata as ctypes  # ctypes' names on _ctypes, without ctypes' import cost (cdata.py)

_LIBC: ctypes.CDLL | None = None

_NR_X86_64 = {
    "capget": 125, "capset": 126, "pivot_root": 155, "unshare": 272, "setns": 308, "seccomp": 317,
    "open_tree": 428, "move_mount": 429, "fsopen": 430, "fsconfig": 431, "fsmount": 432,
    "pidfd_open": 434, "openat2": 437, "mount_setattr": 442, "bpf": 321,
}
# aarch64 uses the asm-generic table; the new mount API, pidfd_open and openat2 share numbers everywhere.
_NR_AARCH64 = {
    "pivot_root": 41, "capget": 90, "capset": 91, "unshare": 97, "setns": 268, "seccomp": 277,
    "open_tree": 428, "move_mount": 429, "fsopen": 430, "fsconfig": 431, "fsmount": 432,
    "pidfd_open": 434, "openat2": 437, "mount_setattr": 442, "bpf": 280,
}

MACHINE = os.uname().machine
NR: dict[str, int] = _NR_AARCH64 if MACHINE in ("aarch64", "arm64") else _NR_X86_64
"""Syscall numbers of this machine by name, e.g. ``NR["pivot_root"]``."""


def libc() -> ctypes.CDLL:
    """The process's libc with ``use_errno=True`` (read errno with ``ctypes.get_errno()``)."""
    global _LIBC
    if _LIBC is None:
        _LIBC = ctypes.CDLL("libc.so.6", use_errno=True)
        _LIBC.syscall.restype = ctypes.c_long
    return _LIBC


def syscall(nr: int, *args: object) -> int:
    """``syscall(2)``: returns the raw result (-1 and errno set on failure).

    Plain Python ints are passed as C ``int``; wrap wider values in ``ctypes.c_long``,
    ``c_ulong`` or ``c_void_p``. ``bytes`` go as ``char *``.
    """
    return int(libc().syscall(ctypes.c_long(nr), *args))


def check(ret: int, call: str, detail: str = "") -> int:
    """``ret`` if it is not negative, else raise ``KernelError(call, errno, detail)``."""
    if ret < 0:
        raise KernelError(call, ctypes.get_errno(), detail)
    return ret
