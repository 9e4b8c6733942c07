"""Paths inside an app's root resolved as the app will see them, and made where missing.

A volume's mount point is a path the image chooses, and an image may make any component of it
a symlink, to ``/etc`` or ``../../..``. ``open_in_root`` resolves the path one component at a
time from an fd on the root, as ``openat2(RESOLVE_IN_ROOT)`` would: an absolute link starts
again at the root and ``..`` never climbs above it, so the result is always inside the root.
What is missing is made on the way (directories 0755, as rkt; the last component a directory
or an empty file); every step is an ``*at`` call on an fd already held, never a path the
kernel resolves again, so a link swapped in meanwhile cannot redirect it. The caller gets an
``O_PATH`` fd of the target, to mount on.
"""

from __future__ import annotations

import errno
import os
import stat

MAX_LINKS = 40  # the kernel's own limit on links followed in one lookup
_PATH = os.O_PATH | os.O_NOFOLLOW | os.O_CLOEXEC


def open_in_root(root: str, path: str, *, make: str = "dir") -> int:
    """An ``O_PATH`` fd of ``path`` inside ``root``, its links resolved inside ``root``.
    ``make``: what the last component must be, made if missing: ``"dir"`` (a file there is
    replaced by a directory, as appc's executor does), ``"file"`` (an empty regular file; an
    empty directory there is replaced), or ``""`` (what is there, nothing made). A missing
    parent is made as a directory; a parent that is a file is an error (ENOTDIR), and so is a
    path that resolves to the root itself (EINVAL): nothing may be mounted over it."""
    todo = [p for p in path.split("/") if p]
    stack = [os.open(root, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)]
    hops = 0
    try:
        while todo:
            name = todo.pop(0)
            if name == ".":
                continue
            if name == "..":
                if len(stack) > 1:
                    os.close(stack.pop())
                continue
            cur = stack[-1]
            st = _lstat(cur, name)
            if st is not None and stat.S_ISLNK(st.st_mode):
                hops += 1
                if hops > MAX_LINKS:
                    raise OSError(errno.ELOOP, os.strerror(errno.ELOOP), path)
                target = os.readlink(name, dir_fd=cur)
                if target.startswith("/"):
                    while len(stack) > 1:
                        os.close(stack.pop())
                todo[:0] = [p for p in target.split("/") if p]
                continue
            last = not todo
            st = _make(cur, name, st, make if last or not make else "dir", last, path)
            fd = os.open(name, _PATH | (os.O_DIRECTORY if stat.S_ISDIR(st.st_mode) else 0), dir_fd=cur)
            if last:
                return fd
            stack.append(fd)
        if make and len(stack) == 1:
            raise OSError(errno.EINVAL, "resolves to the root itself", path)
        return os.dup(stack[-1])
    finally:
        for fd in stack:
            os.close(fd)


def _lstat(dir_fd: int, name: str) -> os.stat_result | None:
    try:
        return os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
    except FileNotFoundError:
        return None


def _make(dir_fd: int, name: str, st: os.stat_result | None, want: str, last: bool, path: str) -> os.stat_result:
    """``name`` in ``dir_fd`` as ``want`` says (the last component may be replaced; a parent
    in the way is an error); its stat."""
    if st is not None:
        is_dir = stat.S_ISDIR(st.st_mode)
        if not want or (want == "dir") == is_dir:
            return st
        if not last:
            raise OSError(errno.ENOTDIR, os.strerror(errno.ENOTDIR), path)
        if is_dir:
            os.rmdir(name, dir_fd=dir_fd)
        else:
            os.unlink(name, dir_fd=dir_fd)
    if want == "file":
        os.close(os.open(name, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o644,
                         dir_fd=dir_fd))
    elif want == "dir":
        os.mkdir(name, 0o755, dir_fd=dir_fd)
    else:
        raise OSError(errno.ENOENT, os.strerror(errno.ENOENT), path)
    return os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
