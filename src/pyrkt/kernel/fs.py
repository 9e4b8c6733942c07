"""Files that are never half-written: temp file + fsync + rename, and paths kept under a root."""

from __future__ import annotations

import os

TYPE_CHECKING = False
if TYPE_CHECKING:
    from pathlib import Path
    from typing import Any


def atomic_write(path: str | os.PathLike[str], data: bytes | str, *, mode: int = 0o644, sync: bool = True) -> None:
    """Write ``data`` to ``path`` so that readers see the old file or the new one, never a part."""
    path = os.fspath(path)
    if isinstance(data, str):
        data = data.encode()
    tmp = f"{path}.tmp-{os.getpid()}"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, mode)
    try:
        os.write(fd, data)
        if sync:
            os.fsync(fd)
    finally:
        os.close(fd)
    try:
        os.rename(tmp, path)
    except BaseException:
        unlink_quiet(tmp)
        raise


def unlink_quiet(path: str | os.PathLike[str]) -> None:
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass


def touch(path: str | os.PathLike[str], mode: int = 0o644) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_CLOEXEC, mode)
    os.close(fd)
    os.utime(path)


def read_file(path: str | os.PathLike[str]) -> str:
    """The text of ``path`` (as ``Path.read_text``, without pathlib)."""
    with open(path) as f:
        return f.read()


def read_bytes(path: str | os.PathLike[str]) -> bytes:
    with open(path, "rb") as f:
        return f.read()


def read_json(path: str | os.PathLike[str]) -> Any:
    """The JSON document in ``path``; a damaged one (bad syntax, nested too deep) is one
    PyrktError naming the file. OSErrors pass through for the caller to judge."""
    from pyrkt.model import jsonio

    data = read_bytes(path)
    try:
        return jsonio.loads(data)
    except ValueError as e:
        from pyrkt.errors import PyrktError

        raise PyrktError(f"{os.fspath(path)}: invalid JSON: {e}") from None


def read_text(path: str | os.PathLike[str], default: str | None = None) -> str | None:
    try:
        with open(path) as f:
            return f.read()
    except FileNotFoundError:
        return default


def safe_join(root: str | os.PathLike[str], member: str) -> Path:
    """``root/member`` lexically, refusing anything that would step outside ``root``.

    Symlinks are not followed here; callers that must resolve links inside a root do so one
    component at a time (see store.layers).
    """
    parts: list[str] = []
    for part in member.split("/"):
        if part in ("", "."):
            continue
        if part == "..":
            if not parts:
                raise ValueError(f"path {member!r} escapes its root")
            parts.pop()
            continue
        parts.append(part)
    from pathlib import Path

    return Path(root, *parts)


def mknod(path: str, mode: int, device: int) -> None:
    """mknod(2): a device node (``mode`` is its S_IFCHR/S_IFBLK type and permissions, through the
    umask), or a whiteout (0:0). The one place outside the Kernel that makes nodes: the store's
    layer unpacking and rendering."""
    os.mknod(path, mode, device)


def make_dir_in(root: str, rel: str, mode: int = 0o755, owner: int = -1) -> str:
    """``root/rel`` as a real directory, made component by component without leaving ``root``:
    a file or symlink where a directory must be is replaced (in the app's writable layer).
    ``owner``: the uid and gid of what is made (a pod's root with --private-users)."""
    import stat

    path = root
    for part in rel.strip("/").split("/"):
        if part in ("", "."):
            continue
        if part == "..":
            raise ValueError(f"path {rel!r} escapes its root")
        path = os.path.join(path, part)
        try:
            st = os.lstat(path)
        except FileNotFoundError:
            _made_dir(path, mode, owner)
            continue
        if not stat.S_ISDIR(st.st_mode):
            os.unlink(path)
            _made_dir(path, mode, owner)
    return path


def _made_dir(path: str, mode: int, owner: int) -> None:
    os.mkdir(path, mode)
    if owner >= 0:
        os.lchown(path, owner, owner)


def make_file_in(root: str, rel: str, mode: int = 0o644, owner: int = -1) -> str:
    """``root/rel`` as a regular file (empty if made now), its parents made by ``make_dir_in``;
    a directory or link standing there is replaced. ``owner``: as for ``make_dir_in``."""
    import stat

    parent, name = os.path.split(rel.strip("/"))
    d = make_dir_in(root, parent, owner=owner) if parent else root
    path = os.path.join(d, name)
    try:
        st = os.lstat(path)
        if stat.S_ISREG(st.st_mode):
            return path
        if stat.S_ISDIR(st.st_mode):
            os.rmdir(path)
        else:
            os.unlink(path)
    except FileNotFoundError:
        pass
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_CLOEXEC | os.O_NOFOLLOW, mode)
    try:
        if owner >= 0:
            os.fchown(fd, owner, owner)
    finally:
        os.close(fd)
    return path


# errnos of an xattr namespace a file system or user cannot hold (trusted.* when not root,
# security.selinux without SELinux): the file itself is still right, so they are skipped
XATTR_UNSUPPORTED = (1, 95, 13)  # EPERM, ENOTSUP/EOPNOTSUPP, EACCES


def set_xattr(target: int | str, name: str, value: bytes) -> None:
    """setxattr on an fd, or on a path without following a symlink; namespaces the target
    cannot hold are skipped."""
    try:
        if isinstance(target, int):
            os.setxattr(target, name, value)
        else:
            os.setxattr(target, name, value, follow_symlinks=False)
    except OSError as e:
        if e.errno not in XATTR_UNSUPPORTED:
            raise
