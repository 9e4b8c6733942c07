"""Directory trees of any depth: ``walk`` them and ``remove_tree`` them, one fd per level.

An app can make a directory 100 000 levels deep (``mkdir d; cd d`` in a loop): far past
PATH_MAX and Python's recursion limit. So nothing here recurses or hands the kernel a long path:
each level is opened relative to its parent (``openat``), entries are removed with
``unlinkat``, symlinks are never followed, and only the deepest ``KEEP_FDS`` levels keep their
fd open. A level whose fd was closed is opened again through its child's ``..`` and must be the
same inode as before, so any depth needs a bounded number of fds. No ``chdir``: the working dir
is shared by every thread of the process.
"""

from __future__ import annotations

import errno
import os
import stat
import sys

from pyrkt.errors import InvalidState, KernelError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Iterator

KEEP_FDS = 32  # open dir fds per walk; deeper levels are re-opened through ".." on the way up
_DIR = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK
# FS_IOC_GETFLAGS / FS_IOC_SETFLAGS (linux/fs.h) and the two flags that block unlink
_GETFLAGS, _SETFLAGS = 0x80086601, 0x40086602
_BLOCKING_FLAGS = 0x10 | 0x20  # FS_IMMUTABLE_FL | FS_APPEND_FL


class Entry:
    """One entry met by ``walk``: ``rel`` is its path below the top (``a/b``), ``dir_fd`` the
    open fd of the dir holding it, valid until the walk moves on."""

    __slots__ = ("rel", "name", "dir_fd", "st")

    def __init__(self, rel: str, name: str, dir_fd: int, st: os.stat_result) -> None:
        self.rel, self.name, self.dir_fd, self.st = rel, name, dir_fd, st

    @property
    def short_path(self) -> str:
        """A path to the entry of a few dozen bytes at any depth (through ``/proc/self/fd``), for
        calls that take no dir fd (xattrs); the last component is the entry, not followed."""
        return f"/proc/self/fd/{self.dir_fd}/{self.name}"


class _Level:
    __slots__ = ("fd", "dev", "ino", "todo", "name", "rel")

    def __init__(self, fd: int, st: os.stat_result, todo: list[tuple[str, bool]], name: str, rel: str) -> None:
        self.fd, self.dev, self.ino = fd, st.st_dev, st.st_ino
        self.todo = todo  # (name, is a dir by its d_type) still to visit, popped from the end
        self.name, self.rel = name, rel


class _Levels:
    """The dirs from the top of a tree down to the one being visited; at most ``KEEP_FDS`` of
    them hold an fd."""

    def __init__(self, top: str, first: _Level) -> None:
        self.top = top
        self.stack = [first]

    @property
    def current(self) -> _Level:
        return self.stack[-1]

    def push(self, level: _Level) -> None:
        self.stack.append(level)
        if len(self.stack) > KEEP_FDS:
            far = self.stack[-KEEP_FDS - 1]
            if far.fd >= 0:
                os.close(far.fd)
                far.fd = -1

    def pop(self) -> _Level:
        """Leave the current dir (its fd is closed); the parent holds an fd again."""
        done = self.stack.pop()
        try:
            parent = self.stack[-1] if self.stack else None
            if parent is not None and parent.fd < 0:
                fd = os.open("..", _DIR, dir_fd=done.fd)
                st = os.fstat(fd)
                if (st.st_dev, st.st_ino) != (parent.dev, parent.ino):
                    os.close(fd)
                    raise KernelError("walk", errno.ESTALE, f"{self.shown()} was moved while its tree was walked")
                parent.fd = fd
        finally:
            os.close(done.fd)
        return done

    def close(self) -> None:
        for level in self.stack:
            if level.fd >= 0:
                os.close(level.fd)
                level.fd = -1
        self.stack.clear()

    def shown(self, name: str = "") -> str:
        """The current dir (or its entry ``name``) for an error line, shortened when deep."""
        names = [lv.name for lv in self.stack[1:]] + ([name] if name else [])
        if len(names) > 6:
            names = [*names[:2], f"…{len(names) - 4} levels…", *names[-2:]]
        return "/".join([self.top, *names])


def _listing(fd: int) -> list[tuple[str, bool]]:
    # d_type is read while the listing's own fd is open (DirEntry must not outlive it)
    with os.scandir(fd) as it:
        return [(e.name, e.is_dir(follow_symlinks=False)) for e in it]


# -- walking ---------------------------------------------------------------------------------

def walk(top: str | os.PathLike[str]) -> Iterator[Entry]:
    """Every entry below ``top`` (not ``top`` itself), a dir before its entries, siblings by name;
    symlinks are entries, never followed; a dir on another file system is not entered."""
    top = os.fspath(top)
    fd = os.open(top, _DIR & ~os.O_NOFOLLOW)
    try:
        st = os.fstat(fd)
        levels = _Levels(top, _Level(fd, st, _sorted_listing(fd), "", ""))
    except BaseException:
        os.close(fd)
        raise
    dev = st.st_dev
    try:
        while levels.stack:
            level = levels.current
            if not level.todo:
                levels.pop()
                continue
            name, _ = level.todo.pop()
            try:
                est = os.stat(name, dir_fd=level.fd, follow_symlinks=False)
            except FileNotFoundError:
                continue  # removed meanwhile
            rel = f"{level.rel}/{name}" if level.rel else name
            yield Entry(rel, name, level.fd, est)
            if stat.S_ISDIR(est.st_mode) and est.st_dev == dev:
                child = os.open(name, _DIR, dir_fd=level.fd)
                try:
                    cst = os.fstat(child)
                    listing = _sorted_listing(child)
                except BaseException:
                    os.close(child)
                    raise
                levels.push(_Level(child, cst, listing, name, rel))
    except OSError as e:
        raise KernelError("walk", e.errno or errno.EIO, levels.shown()) from None
    finally:
        levels.close()


def _sorted_listing(fd: int) -> list[tuple[str, bool]]:
    return sorted(_listing(fd), reverse=True)  # popped from the end: by name


# -- removing --------------------------------------------------------------------------------

def remove_tree(path: str | os.PathLike[str]) -> None:
    """``rm -rf path`` at any depth, never following a symlink or entering another file system.

    Entries that refuse removal are made removable and tried once more: immutable and
    append-only flags are cleared; without root, a dir lacking owner rwx (an app's ``chmod
    000``, a layer's 0555) gets it. A missing ``path`` is not an error. Raises KernelError
    naming the entry that could not go, or InvalidState for a mount in the way.
    """
    path = os.fspath(path).rstrip("/") or "/"
    parent, name = os.path.split(path)
    if name in ("", ".", ".."):
        raise InvalidState(f"refusing to remove {path!r}")
    try:
        pfd = os.open(parent or ".", _DIR & ~os.O_NOFOLLOW)
    except FileNotFoundError:
        return
    try:
        _remove_entry(pfd, name, path)
    finally:
        os.close(pfd)


def _remove_entry(pfd: int, name: str, path: str) -> None:
    outside = _Levels(os.path.dirname(path) or ".", _Level(pfd, os.fstat(pfd), [], "", ""))
    if _unlink(outside, pfd, name, inside=False):
        return
    fd = _open_dir(outside, pfd, name)
    if fd is None:  # not a dir after all
        _unlink(outside, pfd, name, inside=False)
        return
    try:
        st = os.fstat(fd)
        levels = _Levels(path, _Level(fd, st, _listing(fd), name, ""))
    except BaseException:
        os.close(fd)
        raise
    try:
        _empty(levels, st.st_dev)
    except OSError as e:
        raise KernelError("remove", e.errno or errno.EIO, levels.shown()) from None
    finally:
        levels.close()
    _unlink(outside, pfd, name, rmdir=True, inside=False)


def _empty(levels: _Levels, dev: int) -> None:
    """Remove everything below the top of ``levels``, deepest first."""
    while True:
        level = levels.current
        if level.todo:
            name, is_dir = level.todo.pop()
            if not is_dir and _unlink(levels, level.fd, name):
                continue
            child = _open_dir(levels, level.fd, name)
            if child is None:
                _unlink(levels, level.fd, name)
                continue
            try:
                st = os.fstat(child)
                if st.st_dev != dev:
                    raise InvalidState(f"{levels.shown(name)} is on another file system (a mount?); "
                                       f"not removing {levels.top}")
                listing = _listing(child)
            except BaseException:
                os.close(child)
                raise
            levels.push(_Level(child, st, listing, name, ""))
            continue
        if len(levels.stack) == 1:
            return
        done = levels.pop()
        _unlink(levels, levels.current.fd, done.name, rmdir=True)


def _unlink(levels: _Levels, dir_fd: int, name: str, *, rmdir: bool = False, inside: bool = True) -> bool:
    """Remove the entry (``rmdir``: the empty dir) ``name``; False when it is a dir to empty first.

    ``inside``: ``dir_fd`` is a dir of the tree, which may be changed to let its entries go; the
    parent of the tree's top is the caller's and is left as it is."""
    for attempt in (1, 2):
        try:
            if rmdir:
                os.rmdir(name, dir_fd=dir_fd)
            else:
                os.unlink(name, dir_fd=dir_fd)
            return True
        except FileNotFoundError:
            return True
        except IsADirectoryError:
            if rmdir:
                raise
            return False
        except PermissionError as e:
            if attempt == 2:
                raise KernelError("remove", e.errno or errno.EPERM, levels.shown(name)) from None
            if inside:
                _make_writable(dir_fd)
            _unblock_entry(dir_fd, name)
    return False  # not reached


def _open_dir(levels: _Levels, dir_fd: int, name: str) -> int | None:
    """The dir ``name`` opened to be emptied (given owner rwx when not root), or None when it is
    not a dir (a symlink to one included)."""
    fd = -1
    while fd < 0:
        try:
            fd = os.open(name, _DIR, dir_fd=dir_fd)
        except (NotADirectoryError, FileNotFoundError):
            return None
        except OSError as e:
            if e.errno == errno.ELOOP:
                return None  # a symlink
            if e.errno != errno.EACCES or not _chmod_owner_rwx(dir_fd, name):
                raise KernelError("open", e.errno or errno.EIO, levels.shown(name)) from None
    if os.geteuid() != 0:
        _make_writable(fd)
    return fd


def _make_writable(fd: int) -> None:
    """Let the dir open at ``fd`` have entries removed: no immutable or append-only flag, and
    (without root, which needs neither) owner rwx."""
    _clear_blocking_flags(fd)
    if os.geteuid() != 0:
        mode = stat.S_IMODE(os.fstat(fd).st_mode)
        if mode & 0o700 != 0o700:
            try:
                os.fchmod(fd, mode | 0o700)
            except OSError:
                pass  # not ours: removing its entries reports it


def _chmod_owner_rwx(dir_fd: int, name: str) -> bool:
    """Owner rwx for a dir we may not open (mode 000), through an O_PATH fd as fchmodat has no
    no-follow flag on Linux; False when that was already so or cannot be done."""
    try:
        fd = os.open(name, os.O_PATH | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=dir_fd)
    except OSError:
        return False
    try:
        mode = stat.S_IMODE(os.fstat(fd).st_mode)
        if mode & 0o700 == 0o700:
            return False
        os.chmod(f"/proc/self/fd/{fd}", mode | 0o700)
        return True
    except OSError:
        return False  # not ours
    finally:
        os.close(fd)


def _unblock_entry(dir_fd: int, name: str) -> None:
    """Clear the flags that block unlinking ``name``; only files and dirs are opened for that
    (opening a device or fifo could have effects, and their flags never block)."""
    try:
        st = os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
    except OSError:
        return
    if not (stat.S_ISDIR(st.st_mode) or stat.S_ISREG(st.st_mode)):
        return
    try:
        fd = os.open(name, os.O_RDONLY | os.O_NONBLOCK | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NOCTTY, dir_fd=dir_fd)
    except OSError:
        return  # the retry reports the entry
    try:
        _clear_blocking_flags(fd)
    finally:
        os.close(fd)


def _clear_blocking_flags(fd: int) -> None:
    import fcntl

    try:
        buf = bytearray(4)
        fcntl.ioctl(fd, _GETFLAGS, buf, True)
        flags = int.from_bytes(buf, sys.byteorder)
        if flags & _BLOCKING_FLAGS:
            fcntl.ioctl(fd, _SETFLAGS, (flags & ~_BLOCKING_FLAGS).to_bytes(4, sys.byteorder))
    except OSError:
        pass  # no inode flags on this file system (ENOTTY) or not permitted: the retry reports it
