"""Opening a file that someone else laid out (an OCI layout, an image archive) without ever
leaving the directory it lives in, and without blocking on a FIFO.

``open_beneath`` is openat(2) confined to a directory: openat2(2) with ``RESOLVE_BENEATH |
RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS`` refuses an absolute path, a ``..`` that climbs
out and every symlink on the way (ELOOP); where the kernel has no openat2 (ENOSYS, which is
also what seccomp profiles answer) the path is walked one component at a time with O_NOFOLLOW.
``open_regular`` opens non-blocking, refuses anything that is not a regular file, then reads
normally.
"""

from __future__ import annotations

import errno
import os
import stat

RESOLVE_NO_MAGICLINKS = 0x02
RESOLVE_NO_SYMLINKS = 0x04
RESOLVE_BENEATH = 0x08
CONFINED = RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS

_have_openat2: bool | None = None  # None: not tried yet


class NotRegularFile(Exception):
    """The path names a FIFO, a device, a directory or a socket; ``kind`` says which."""

    def __init__(self, path: str, kind: str) -> None:
        super().__init__(f"{path} is {kind}, not a regular file")
        self.path = path
        self.kind = kind


def file_kind(mode: int) -> str:
    """``"a FIFO"``, ``"a directory"``…: what a file of ``mode`` is, for a message."""
    for test, kind in ((stat.S_ISREG, "a regular file"), (stat.S_ISDIR, "a directory"),
                       (stat.S_ISLNK, "a symbolic link"), (stat.S_ISFIFO, "a FIFO"),
                       (stat.S_ISCHR, "a character device"), (stat.S_ISBLK, "a block device"),
                       (stat.S_ISSOCK, "a socket")):
        if test(mode):
            return kind
    return "of an unknown type"


def open_beneath(root_fd: int, path: str, flags: int = os.O_RDONLY) -> int:
    """``openat(root_fd, path, flags)`` that never resolves outside ``root_fd`` nor through a
    symlink: OSError ELOOP for a link anywhere on the path, EXDEV for a path that leaves the
    directory, as ``os.open`` raises (with ``path`` as its filename)."""
    global _have_openat2
    flags |= os.O_CLOEXEC | os.O_NOFOLLOW
    if _have_openat2 is not False:
        fd = _openat2(root_fd, path, flags, CONFINED)
        if fd >= 0:
            _have_openat2 = True
            return fd
        err = -fd
        if err != errno.ENOSYS:
            raise OSError(err, os.strerror(err), path)
        _have_openat2 = False
    return open_walking(root_fd, path, flags)


def open_walking(root_fd: int, path: str, flags: int) -> int:
    """``open_beneath`` without openat2: ``..`` and absolute paths are refused outright, each
    directory on the way is opened O_PATH|O_NOFOLLOW and checked, the last one O_NOFOLLOW."""
    parts = [p for p in path.split("/") if p not in ("", ".")]
    if path.startswith("/") or ".." in parts:
        raise OSError(errno.EXDEV, os.strerror(errno.EXDEV), path)
    if not parts:
        parts = ["."]
    opened: list[int] = []
    try:
        cur = root_fd
        for part in parts[:-1]:
            fd = os.open(part, os.O_PATH | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=cur)
            opened.append(fd)
            mode = os.fstat(fd).st_mode
            if stat.S_ISLNK(mode):
                raise OSError(errno.ELOOP, os.strerror(errno.ELOOP), path)
            if not stat.S_ISDIR(mode):
                raise OSError(errno.ENOTDIR, os.strerror(errno.ENOTDIR), path)
            cur = fd
        try:
            return os.open(parts[-1], flags | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=cur)
        except OSError as e:
            raise OSError(e.errno, e.strerror, path) from None
    finally:
        for fd in opened:
            os.close(fd)


def open_regular(path: str, *, beneath: int | None = None) -> int:
    """An fd reading the regular file ``path`` (confined to the directory ``beneath`` when
    given, see ``open_beneath``; else following links as the caller named it). A FIFO, device,
    directory or socket raises NotRegularFile without being read (the open does not block)."""
    flags = os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC
    fd = open_beneath(beneath, path, flags) if beneath is not None else os.open(path, flags)
    try:
        mode = os.fstat(fd).st_mode
        if not stat.S_ISREG(mode):
            raise NotRegularFile(path, file_kind(mode))
        os.set_blocking(fd, True)
    except BaseException:
        os.close(fd)
        raise
    return fd


def _openat2(dirfd: int, path: str, flags: int, resolve: int) -> int:
    """The raw openat2(2): an fd, or minus the errno."""
    import ctypes

    from pyrkt.kernel.libc import NR, syscall

    how = (ctypes.c_uint64 * 3)(flags, 0, resolve)  # struct open_how {flags, mode, resolve}
    ret = syscall(NR["openat2"], dirfd, os.fsencode(path), ctypes.byref(how), ctypes.c_size_t(ctypes.sizeof(how)))
    return ret if ret >= 0 else -ctypes.get_errno()
