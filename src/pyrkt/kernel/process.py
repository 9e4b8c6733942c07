"""Process lifetime: a helper child that must not outlive the process that forked it."""

from __future__ import annotations

import os

from pyrkt.errors import KernelError
from pyrkt.kernel import cdata as ctypes  # ctypes' names on _ctypes, without ctypes' import cost (cdata.py)
from pyrkt.kernel import libc as L

PR_SET_PDEATHSIG = 1
PR_SET_CHILD_SUBREAPER = 36
SIGKILL = 9


def die_with_parent(parent: int) -> None:
    """In a forked child: be killed (SIGKILL) when the thread that forked us dies; and go now
    if ``parent`` (the pid before the fork) is already gone, since the signal would never come."""
    if L.libc().prctl(ctypes.c_int(PR_SET_PDEATHSIG), ctypes.c_ulong(SIGKILL), ctypes.c_ulong(0),
                      ctypes.c_ulong(0), ctypes.c_ulong(0)) < 0:
        raise KernelError("prctl", ctypes.get_errno(), "PR_SET_PDEATHSIG")
    if os.getppid() != parent:
        os._exit(1)


def child_subreaper() -> None:
    """Be the subreaper of this process's descendants: an orphan among them is re-parented to
    it (and reaped by it), not to the init of the PID namespace (kept across execve)."""
    if L.libc().prctl(ctypes.c_int(PR_SET_CHILD_SUBREAPER), ctypes.c_ulong(1), ctypes.c_ulong(0),
                      ctypes.c_ulong(0), ctypes.c_ulong(0)) < 0:
        raise KernelError("prctl", ctypes.get_errno(), "PR_SET_CHILD_SUBREAPER")


def blank_cmdline(title: str) -> None:
    """Write ``title`` over this process's argv and NULs over its environment strings, the
    memory ``/proc/PID/cmdline`` and ``/proc/PID/environ`` show (os.environ and sys.argv are
    copies; libc's environ no longer points there once os.environ has been rewritten)."""
    with open("/proc/self/stat", "rb") as f:
        fields = f.read().rsplit(b")", 1)[1].split()  # fields[0] is field 3 of proc(5)
    arg_start, arg_end, env_start, env_end = (int(x) for x in fields[45:49])
    fd = os.open("/proc/self/mem", os.O_RDWR | os.O_CLOEXEC)
    try:
        size = arg_end - arg_start
        os.pwrite(fd, title.encode()[:size - 1].ljust(size, b"\0"), arg_start)
        os.pwrite(fd, b"\0" * (env_end - env_start), env_start)
    except OSError as e:
        raise KernelError("write", e.errno or 0, "/proc/self/mem (argv and environ)") from None
    finally:
        os.close(fd)
