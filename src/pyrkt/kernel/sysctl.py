"""Writing a sysctl of the calling process's namespaces through /proc/sys, so that a refusal
(a key this kernel lacks, a value it rejects) surfaces as an error naming the key."""

from __future__ import annotations

import os

from pyrkt.errors import KernelError

PROC_SYS = "/proc/sys"


def write(key: str, path: str, value: str) -> None:
    """Set ``key`` (the file ``path`` below /proc/sys) to ``value`` with one write(2)."""
    full = f"{PROC_SYS}/{path}"
    try:
        fd = os.open(full, os.O_WRONLY | os.O_CLOEXEC | os.O_NOFOLLOW)
    except OSError as e:
        raise KernelError(f"sysctl {key}", e.errno or 0, f"open {full}") from None
    try:
        os.write(fd, value.encode())
    except OSError as e:
        raise KernelError(f"sysctl {key}={value}", e.errno or 0, f"write {full}") from None
    finally:
        os.close(fd)
