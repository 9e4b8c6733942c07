"""Process lifetime: a helper child that must not outlive the process that forked it."""

from __future__ import annotations

import ctypes
import os

from pyrkt.errors import KernelError
from pyrkt.kernel import libc as L

PR_SET_PDEATHSIG = 1
SIGKILL = 9


def die_with_parent(parent: int) -> None:
    """In a forked child: be killed (SIGKILL) when the thread that forked us dies; and go now
    if ``parent`` (the pid before the fork) is already gone, since the signal would never come."""
    if L.libc().prctl(ctypes.c_int(PR_SET_PDEATHSIG), ctypes.c_ulong(SIGKILL), ctypes.c_ulong(0),
                      ctypes.c_ulong(0), ctypes.c_ulong(0)) < 0:
        raise KernelError("prctl", ctypes.get_errno(), "PR_SET_PDEATHSIG")
    if os.getppid() != parent:
        os._exit(1)
