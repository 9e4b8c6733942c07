"""mount(2), the new mount API (for overlays with many layers), pivot_root and mountinfo.

Every failure raises ``KernelError`` naming the call and the paths, as crun does
("mount `/proc` to `/…/rootfs/proc`: Operation not permitted").
"""

from __future__ import annotations

import errno as E
import os

from pyrkt.errors import KernelError
from pyrkt.kernel import cdata as ctypes  # ctypes' names on _ctypes, without ctypes' import cost (cdata.py)
from pyrkt.kernel import libc as L

MS_RDONLY = 1
MS_NOSUID = 2
MS_NODEV = 4
MS_NOEXEC = 8
MS_REMOUNT = 32
MS_BIND = 4096
MS_REC = 16384
MS_PRIVATE = 1 << 18
MS_SLAVE = 1 << 19
MS_STRICTATIME = 1 << 24
MNT_DETACH = 2

# mount(2) silently truncates its data string at one page (linux-notes §2): longer overlay
# option strings go through fsconfig("lowerdir+"), which has no such limit.
MOUNT_DATA_MAX = 4000


def _b(s: str | os.PathLike[str] | None) -> bytes | None:
    return None if s is None else os.fsencode(s)


def mount(source: str | None, target: str, fstype: str | None = None, flags: int = 0, data: str | None = None) -> None:
    ret = L.libc().mount(_b(source), _b(target), _b(fstype), ctypes.c_ulong(flags), _b(data))
    if ret != 0:
        err = ctypes.get_errno()
        what = fstype or ("bind" if flags & MS_BIND else "remount" if flags & MS_REMOUNT else "mount")
        raise KernelError("mount", err, f"{what} {source or ''} to {target}".replace("  ", " "))


def umount(target: str, flags: int = MNT_DETACH, *, missing_ok: bool = False) -> None:
    ret = L.libc().umount2(_b(target), ctypes.c_int(flags))
    if ret != 0:
        err = ctypes.get_errno()
        if missing_ok and err in (E.EINVAL, E.ENOENT):
            return
        raise KernelError("umount", err, target)


def bind(source: str, target: str, *, recursive: bool = False, readonly: bool = False, flags: int = 0) -> None:
    mount(source, target, None, MS_BIND | (MS_REC if recursive else 0))
    if readonly or flags:
        mount(None, target, None, MS_BIND | MS_REMOUNT | (MS_RDONLY if readonly else 0) | flags)


def make_rprivate(path: str = "/") -> None:
    mount(None, path, None, MS_REC | MS_PRIVATE)


def overlay(lowers: list[str], upper: str, work: str, target: str) -> None:
    """Mount an overlay; ``lowers`` top first, as overlayfs lists them."""
    data = f"lowerdir={':'.join(lowers)},upperdir={upper},workdir={work}"
    if len(data) <= MOUNT_DATA_MAX and not any(":" in p or "," in p for p in lowers):
        mount("overlay", target, "overlay", 0, data)
        return
    _overlay_fsconfig(lowers, upper, work, target)


FSCONFIG_SET_STRING = 1
FSCONFIG_SET_FD = 5
FSCONFIG_CMD_CREATE = 6
MOVE_MOUNT_F_EMPTY_PATH = 4
AT_FDCWD = -100


def _overlay_fsconfig(lowers: list[str] | list[int], upper: str, work: str, target: str) -> None:
    """An overlay through the new mount API; each lower is a path, or an fd on a detached
    mount (fsconfig FSCONFIG_SET_FD)."""
    fd = L.syscall(L.NR["fsopen"], b"overlay", 1)
    if fd < 0:
        raise KernelError("fsopen", ctypes.get_errno(), "overlay")
    try:
        for p in lowers:  # the first appended is the top layer
            if isinstance(p, int):
                if L.syscall(L.NR["fsconfig"], fd, FSCONFIG_SET_FD, b"lowerdir+", None, p) < 0:
                    if ctypes.get_errno() != E.EINVAL:
                        raise KernelError("fsconfig", ctypes.get_errno(), f"lowerdir+ (a layer's fd) for overlay {target}")
                    _fsconfig(fd, b"lowerdir+", f"/proc/self/fd/{p}", target)  # a kernel before 6.13
            else:
                _fsconfig(fd, b"lowerdir+", p, target)
        _fsconfig(fd, b"upperdir", upper, target)
        _fsconfig(fd, b"workdir", work, target)
        if L.syscall(L.NR["fsconfig"], fd, FSCONFIG_CMD_CREATE, None, None, 0) < 0:
            raise KernelError("fsconfig", ctypes.get_errno(), f"create overlay for {target}")
        mfd = L.syscall(L.NR["fsmount"], fd, 1, 0)
        if mfd < 0:
            raise KernelError("fsmount", ctypes.get_errno(), f"overlay for {target}")
        move_tree(mfd, target)
    finally:
        os.close(fd)


def _fsconfig(fd: int, key: bytes, value: str, target: str) -> None:
    if L.syscall(L.NR["fsconfig"], fd, FSCONFIG_SET_STRING, key, os.fsencode(value), 0) < 0:
        raise KernelError("fsconfig", ctypes.get_errno(), f"{key.decode()}={value} for overlay {target}")


OPEN_TREE_CLONE = 1
AT_EMPTY_PATH = 0x1000
AT_RECURSIVE = 0x8000
MOUNT_ATTR_RDONLY = 0x1
MOUNT_ATTR_NOSUID = 0x2
MOUNT_ATTR_NODEV = 0x4


class _MountAttr(ctypes.Structure):
    _fields_ = [("attr_set", ctypes.c_uint64), ("attr_clr", ctypes.c_uint64),
                ("propagation", ctypes.c_uint64), ("userns_fd", ctypes.c_uint64)]


def clone_tree(path: str) -> int:
    """A read-only, nosuid, nodev copy of the tree at ``path`` (as a recursive bind would copy
    it) as a detached mount, held by the returned fd (close-on-exec): it is in no mount table,
    ``..`` stops at its top, and it goes when the last fd on it closes."""
    fd = L.syscall(L.NR["open_tree"], AT_FDCWD, os.fsencode(path), OPEN_TREE_CLONE | AT_RECURSIVE | os.O_CLOEXEC)
    if fd < 0:
        raise KernelError("open_tree", ctypes.get_errno(), path)
    attr = _MountAttr(MOUNT_ATTR_RDONLY | MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV, 0, 0, 0)
    if L.syscall(L.NR["mount_setattr"], fd, b"", AT_EMPTY_PATH | AT_RECURSIVE, ctypes.byref(attr), ctypes.sizeof(attr)) < 0:
        err = ctypes.get_errno()
        os.close(fd)
        raise KernelError("mount_setattr", err, f"read-only {path}")
    return int(fd)


MOVE_MOUNT_T_EMPTY_PATH = 4 << 4  # 0x40


def bind_fds(source_fd: int, target_fd: int, *, recursive: bool, readonly: bool, what: str,
             userns_fd: int = -1) -> None:
    """Bind what ``source_fd`` is onto what ``target_fd`` is (both ``O_PATH`` fds): a clone of
    the source tree (with its sub-mounts if ``recursive``), read-only all through if
    ``readonly``, through the id map of the user namespace ``userns_fd`` when one is given,
    moved onto the target. No path is resolved again, so neither end can be swapped for a
    link meanwhile. ``what`` names the bind in an error."""
    flags = OPEN_TREE_CLONE | os.O_CLOEXEC | AT_EMPTY_PATH | (AT_RECURSIVE if recursive else 0)
    tree = L.syscall(L.NR["open_tree"], source_fd, b"", flags)
    if tree < 0:
        raise KernelError("open_tree", ctypes.get_errno(), what)
    try:
        attrs = (MOUNT_ATTR_RDONLY if readonly else 0) | (MOUNT_ATTR_IDMAP if userns_fd >= 0 else 0)
        if attrs:
            attr = _MountAttr(attrs, 0, 0, max(userns_fd, 0))
            if L.syscall(L.NR["mount_setattr"], tree, b"", AT_EMPTY_PATH | AT_RECURSIVE, ctypes.byref(attr),
                         ctypes.sizeof(attr)) < 0:
                raise KernelError("mount_setattr", ctypes.get_errno(), f"read-only or idmapped {what}")
        if L.syscall(L.NR["move_mount"], tree, b"", target_fd, b"",
                     MOVE_MOUNT_F_EMPTY_PATH | MOVE_MOUNT_T_EMPTY_PATH) < 0:
            raise KernelError("move_mount", ctypes.get_errno(), what)
    finally:
        os.close(tree)


def clone_bind(path: str, *, recursive: bool) -> int:
    """A detached copy of the mount at ``path`` (with its sub-mounts if ``recursive``), as a
    bind would copy it, held by the returned fd (close-on-exec). It keeps its place in the
    source's peer group, so it can carry mount propagation (``attach_fds``) into another mount
    namespace: made in the host's, attached in an app's."""
    flags = OPEN_TREE_CLONE | os.O_CLOEXEC | (AT_RECURSIVE if recursive else 0)
    fd = L.syscall(L.NR["open_tree"], AT_FDCWD, os.fsencode(path), flags)
    if fd < 0:
        raise KernelError("open_tree", ctypes.get_errno(), path)
    return int(fd)


PROPAGATION = {"rslave": MS_SLAVE, "rshared": 1 << 20}  # MS_SHARED


def attach_fds(tree: int, target_fd: int, *, readonly: bool, propagation: str, what: str) -> None:
    """Attach the detached mount ``tree`` (``clone_bind``) on what ``target_fd`` is (an
    ``O_PATH`` fd), read-only all through if ``readonly``, then give the attached tree the
    ``propagation`` ("rslave": a slave of the source's peer group; "rshared": one of its peers).
    ``what`` names it in an error."""
    if readonly:
        attr = _MountAttr(MOUNT_ATTR_RDONLY, 0, 0, 0)
        if L.syscall(L.NR["mount_setattr"], tree, b"", AT_EMPTY_PATH | AT_RECURSIVE, ctypes.byref(attr),
                     ctypes.sizeof(attr)) < 0:
            raise KernelError("mount_setattr", ctypes.get_errno(), f"read-only {what}")
    if L.syscall(L.NR["move_mount"], tree, b"", target_fd, b"", MOVE_MOUNT_F_EMPTY_PATH | MOVE_MOUNT_T_EMPTY_PATH) < 0:
        raise KernelError("move_mount", ctypes.get_errno(), what)
    if propagation:
        attr = _MountAttr(0, 0, PROPAGATION[propagation], 0)
        if L.syscall(L.NR["mount_setattr"], tree, b"", AT_EMPTY_PATH | AT_RECURSIVE, ctypes.byref(attr),
                     ctypes.sizeof(attr)) < 0:
            raise KernelError("mount_setattr", ctypes.get_errno(), f"{propagation} {what}")


MOUNT_ATTR_NOEXEC = 0x8
MOUNT_ATTR_IDMAP = 0x00100000
# mount(2) flags a bind may carry and their mount_setattr(2) attributes
_ATTRS = ((MS_RDONLY, MOUNT_ATTR_RDONLY), (MS_NOSUID, MOUNT_ATTR_NOSUID), (MS_NODEV, MOUNT_ATTR_NODEV),
          (MS_NOEXEC, MOUNT_ATTR_NOEXEC))


def idmapped_tree(path: str, userns_fd: int, *, recursive: bool = False, flags: int = 0) -> int:
    """A detached copy of the mount at ``path`` (a bind: ``recursive`` for its submounts too)
    that shows its files' owners through the id map of the user namespace ``userns_fd`` (host
    id shift+N seen as N inside; what the namespace writes through it is stored unshifted),
    with the attributes of the mount(2) ``flags`` (MS_RDONLY, MS_NOSUID, ...). The fd holds it
    (close-on-exec): ``move_tree`` attaches it, or overlayfs takes it as a layer."""
    rec = AT_RECURSIVE if recursive else 0
    fd = L.syscall(L.NR["open_tree"], AT_FDCWD, os.fsencode(path), OPEN_TREE_CLONE | rec | os.O_CLOEXEC)
    if fd < 0:
        raise KernelError("open_tree", ctypes.get_errno(), path)
    attrs = MOUNT_ATTR_IDMAP
    for flag, attr in _ATTRS:
        if flags & flag:
            attrs |= attr
    attr_struct = _MountAttr(attrs, 0, 0, userns_fd)
    if L.syscall(L.NR["mount_setattr"], fd, b"", AT_EMPTY_PATH | rec, ctypes.byref(attr_struct),
                 ctypes.sizeof(attr_struct)) < 0:
        err = ctypes.get_errno()
        os.close(fd)
        raise KernelError("mount_setattr", err, f"idmap {path}")
    return int(fd)


def move_tree(fd: int, target: str) -> None:
    """Attach the detached mount ``fd`` at ``target``, then close the fd."""
    try:
        if L.syscall(L.NR["move_mount"], fd, b"", AT_FDCWD, os.fsencode(target), MOVE_MOUNT_F_EMPTY_PATH) < 0:
            raise KernelError("move_mount", ctypes.get_errno(), target)
    finally:
        os.close(fd)


def overlay_of_trees(lower_fds: list[int], upper: str, work: str, target: str) -> None:
    """Mount an overlay whose lower layers are detached mounts (``idmapped_tree``), top first,
    passed by fd; closes them."""
    try:
        _overlay_fsconfig(lower_fds, upper, work, target)
    finally:
        for lfd in lower_fds:
            os.close(lfd)


class _Statfs(ctypes.Structure):
    _fields_ = [("f_type", ctypes.c_long), ("rest", ctypes.c_byte * 112)]


def fs_type(path: str) -> int:
    """statfs(2)'s f_type (the filesystem's magic number) of ``path``, or of its nearest
    existing parent (a data dir made later is made there)."""
    buf = _Statfs()
    while L.libc().statfs(os.fsencode(path), ctypes.byref(buf)) != 0:
        err = ctypes.get_errno()
        parent = os.path.dirname(path.rstrip("/")) or ("/" if path.startswith("/") else ".")
        if err != E.ENOENT or parent == path:
            raise KernelError("statfs", err, path)
        path = parent
    return int(buf.f_type) & 0xFFFFFFFF


# Filesystems whose mounts can be idmapped on a recent kernel (FS_ALLOW_IDMAP), by magic
IDMAP_FILESYSTEMS = {0xEF53: "ext4", 0x58465342: "xfs", 0x9123683E: "btrfs", 0x01021994: "tmpfs",
                     0xF2F52010: "f2fs", 0xE0F5E1E2: "erofs", 0x4D44: "vfat"}
# Some that cannot, named in messages
OTHER_FILESYSTEMS = {0x858458F6: "ramfs", 0x6969: "nfs", 0x65735546: "fuse", 0x794C7630: "overlay",
                     0xFF534D42: "cifs", 0x01021997: "9p", 0x73717368: "squashfs"}
# Where overlayfs cannot have its upper (rkt's PathSupportsOverlay)
NO_OVERLAY_FILESYSTEMS = {0x61756673: "aufs", 0x2FC12FC1: "zfs"}


def idmap_unsupported(path: str) -> str | None:
    """Why the mounts of ``path``'s filesystem cannot be idmapped ("filesystem ramfs"), or None
    when they can."""
    magic = fs_type(path)
    if magic in IDMAP_FILESYSTEMS:
        return None
    return f"filesystem {OTHER_FILESYSTEMS.get(magic) or hex(magic)}"


def overlay_unsupported(path: str) -> str | None:
    """Why overlayfs cannot work for the data dir ``path``, or None (rkt's checks: the kernel
    has overlayfs, the filesystem is not one of those it cannot sit on)."""
    try:
        with open("/proc/filesystems", "rb") as f:
            known = b"\toverlay\n" in f.read()
    except OSError:
        known = False
    if not known:
        return "the kernel has no overlay filesystem"
    name = NO_OVERLAY_FILESYSTEMS.get(fs_type(path))
    return f"unsupported filesystem: {name}" if name else None


def pivot_root(new_root: str) -> None:
    """Make ``new_root`` (a mount point) the root and detach the old one (runc's trick)."""
    os.chdir(new_root)
    if L.syscall(L.NR["pivot_root"], b".", b".") != 0:
        raise KernelError("pivot_root", ctypes.get_errno(), new_root)
    umount(".", MNT_DETACH)
    os.chdir("/")


def mountinfo(pid: str = "self") -> list[tuple[str, str]]:
    """(mount point, fstype) of every mount in ``pid``'s mount namespace, in mount order."""
    out = []
    with open(f"/proc/{pid}/mountinfo", "rb") as f:
        for line in f:
            fields = line.split()
            sep = fields.index(b"-")
            point = fields[4].decode().replace("\\040", " ").replace("\\011", "\t").replace("\\134", "\\")
            out.append((point, fields[sep + 1].decode()))
    return out


def propagation(path: str, text: str | None = None) -> tuple[str, str]:
    """The mount ``path`` is on (links resolved) and its propagation: "shared" (a peer group's),
    "slave" (receives a master's mounts) or "private", from ``/proc/self/mountinfo`` (or
    ``text``, that file's content). The last of several mounts at one point is the one seen."""
    if text is None:
        with open("/proc/self/mountinfo") as f:
            text = f.read()
    real = os.path.realpath(path)
    best, kind = "/", "private"
    for line in text.splitlines():
        fields = line.split()
        sep = fields.index("-")
        point = fields[4].replace("\\040", " ").replace("\\011", "\t").replace("\\134", "\\")
        if real == point or real.startswith(point.rstrip("/") + "/"):
            if len(point) >= len(best):
                tags = fields[6:sep]
                best = point
                kind = ("shared" if any(t.startswith("shared:") for t in tags)
                        else "slave" if any(t.startswith("master:") for t in tags) else "private")
    return best, kind


def mounts_under(path: str) -> list[str]:
    """Mount points at or below ``path``, deepest (last mounted) first: the order to unmount."""
    root = os.path.realpath(path).rstrip("/")
    found = [p for p, _ in mountinfo() if p == root or p.startswith(root + "/")]
    return list(reversed(found))


def unmount_all_under(path: str) -> None:
    """Detach every mount below ``path``; idempotent, for gc after a crash."""
    for _ in range(3):
        points = mounts_under(path)
        if not points:
            return
        for p in points:
            umount(p, MNT_DETACH, missing_ok=True)
