"""flock(2) locks on files and directories.

A pod dir's exclusive lock *is* its "running" state (rkt's design): the fd is inherited by pod
init and released by the kernel when the last process holding it dies. ``rename`` of a locked
directory keeps the lock (same inode).
"""

from __future__ import annotations

import errno
import fcntl
import os

from pyrkt.errors import Locked


class FileLock:
    """An open fd on a file or directory plus the flock held on it."""

    def __init__(self, fd: int, path: str) -> None:
        self.fd = fd
        self.path = path

    @classmethod
    def open(cls, path: str | os.PathLike[str], *, create: bool = False) -> FileLock:
        p = os.fspath(path)
        if os.path.isdir(p):
            fd = os.open(p, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        else:
            flags = os.O_RDONLY | os.O_CLOEXEC | (os.O_CREAT if create else 0)
            fd = os.open(p, flags, 0o644)
        return cls(fd, p)

    def try_exclusive(self) -> bool:
        return self._try(fcntl.LOCK_EX)

    def try_shared(self) -> bool:
        return self._try(fcntl.LOCK_SH)

    def exclusive(self) -> None:
        fcntl.flock(self.fd, fcntl.LOCK_EX)

    def shared(self) -> None:
        fcntl.flock(self.fd, fcntl.LOCK_SH)

    def exclusive_or_raise(self, what: str) -> None:
        if not self.try_exclusive():
            raise Locked(f"{what} is locked by another pyrkt process")

    def unlock(self) -> None:
        fcntl.flock(self.fd, fcntl.LOCK_UN)

    def close(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1

    def make_inheritable(self) -> None:
        os.set_inheritable(self.fd, True)

    def __enter__(self) -> FileLock:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _try(self, how: int) -> bool:
        try:
            fcntl.flock(self.fd, how | fcntl.LOCK_NB)
            return True
        except OSError as e:
            if e.errno in (errno.EWOULDBLOCK, errno.EAGAIN):
                return False
            raise


def is_locked(path: str | os.PathLike[str]) -> bool:
    """True when some process holds an exclusive lock on ``path`` (a shared try fails)."""
    try:
        lk = FileLock.open(path)
    except FileNotFoundError:
        return False
    try:
        if lk.try_shared():
            return False
        return True
    finally:
        lk.close()
