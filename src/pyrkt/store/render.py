"""Copy an image's merged filesystem (``squash.entries``) into a plain directory, or
(``render_tar``) write it as one uncompressed layer tar.

Owners (when root), modes, times, xattrs, symlinks and hardlinks are kept; sockets are skipped;
overlay metadata (whiteouts, opaque marks) is applied, not copied. What would hand a local user
the image's privileges (device nodes, setuid/setgid bits, file capabilities) is left out of a
rendered tree unless asked for (``keep_special``; devices then only when root). Directory modes
and times are set last, deepest first, since filling a dir changes them.
"""

from __future__ import annotations

import errno
import os
import stat
from pathlib import Path
from typing import IO

from pyrkt.kernel.fs import XATTR_UNSUPPORTED, mknod, set_xattr
from pyrkt.store.squash import Whitelist, entries

TYPE_CHECKING = False
if TYPE_CHECKING:
    import tarfile

    from pyrkt.model.idmap import IdRange

CHUNK = 1 << 20
LAYER_ONLY_XATTRS = ("trusted.overlay.", "user.overlay.")
FILE_CAPS_XATTR = "security.capability"
SET_ID_BITS = stat.S_ISUID | stat.S_ISGID


def image_xattrs(path: str) -> dict[str, bytes]:
    """The xattrs of a layer file that belong to the image (not overlayfs' own markers)."""
    try:
        names = os.listxattr(path, follow_symlinks=False)
    except OSError:
        return {}  # a filesystem without xattrs
    out = {}
    for name in names:
        if name.startswith(LAYER_ONLY_XATTRS):
            continue
        try:
            out[name] = os.getxattr(path, name, follow_symlinks=False)
        except OSError as e:
            if e.errno not in XATTR_UNSUPPORTED and e.errno != errno.ENODATA:
                raise
    return out


def pax_xattrs(path: str) -> dict[str, str]:
    """``image_xattrs`` as pax headers of a tar member."""
    return {f"SCHILY.xattr.{k}": v.decode("utf-8", "surrogateescape") for k, v in image_xattrs(path).items()}


def add_member(tf: tarfile.TarFile, src: str, arcname: str) -> None:
    """Append the layer file ``src`` to ``tf`` as ``arcname``: owners by number (names on this
    host mean nothing in an image), its image xattrs as pax headers."""
    info = tf.gettarinfo(src, arcname)
    info.uname = info.gname = ""
    info.pax_headers = pax_xattrs(src)
    if info.isreg():
        with open(src, "rb") as f:
            tf.addfile(info, f)
    else:
        tf.addfile(info)


def copy_xattrs(src: str, dst: str | int, *, file_caps: bool = True) -> None:
    for name, value in image_xattrs(src).items():
        if file_caps or name != FILE_CAPS_XATTR:
            set_xattr(dst, name, value)


def _copy_data(sfd: int, dfd: int, size: int) -> None:
    """In-kernel copy (reflinks where the filesystem can), plain reads and writes otherwise."""
    remaining = size
    fast = True
    while remaining > 0:
        n = 0
        if fast:
            try:
                n = os.copy_file_range(sfd, dfd, min(remaining, 1 << 30))
            except OSError as e:
                if e.errno not in (errno.EXDEV, errno.EINVAL, errno.ENOSYS, errno.EOPNOTSUPP):
                    raise
                fast = False
        if n <= 0:
            data = os.read(sfd, CHUNK)
            if not data:
                return  # the file shrank meanwhile: copy what there is
            view = memoryview(data)
            while view:
                view = view[os.write(dfd, view):]
            n = len(data)
        remaining -= n


def _copy_file(src: str, dst: str, st: os.stat_result, privileged: bool, keep_special: bool,
               ids: IdRange | None = None) -> None:
    sfd = os.open(src, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
    try:
        dfd = os.open(dst, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
        try:
            _copy_data(sfd, dfd, st.st_size)
            if privileged:
                os.fchown(dfd, *owner(st, ids))
            mode = stat.S_IMODE(st.st_mode)
            os.fchmod(dfd, mode if keep_special else mode & ~SET_ID_BITS)
            copy_xattrs(src, dfd, file_caps=keep_special)
            os.utime(dfd, ns=(st.st_atime_ns, st.st_mtime_ns))
        finally:
            os.close(dfd)
    finally:
        os.close(sfd)


def owner(st: os.stat_result, ids: IdRange | None) -> tuple[int, int]:
    """The owner a copy gets: the layer file's, shifted into ``ids`` when given."""
    if ids is None:
        return st.st_uid, st.st_gid
    return ids.host(st.st_uid), ids.host(st.st_gid)


def render_tree(layer_dirs: list[Path], dest: Path, *, keep_special: bool = False,
                root_mode: int | None = None, ids: IdRange | None = None) -> int:
    """Write the merged tree of ``layer_dirs`` (bottom first) into ``dest``, an empty dir.

    Device nodes, setuid/setgid bits of files and file capabilities are left out unless
    ``keep_special``. ``dest`` itself gets the mode of the image's root, or ``root_mode``.
    ``ids``: the owners are shifted into this range (a pod's --private-users copy, as root).
    Returns the number of entries written.
    """
    privileged = os.geteuid() == 0
    links: dict[tuple[int, int], str] = {}
    dirs: list[tuple[str, os.stat_result, int]] = []  # (path, its stat, the mode it gets)
    count = 0
    for rel, src_path, layer in entries(layer_dirs):
        src = str(src_path)
        out = os.path.join(dest, rel) if rel else str(dest)
        st = os.lstat(src)
        fmt = stat.S_IFMT(st.st_mode)
        count += 1
        if fmt == stat.S_IFDIR:
            if rel:
                os.mkdir(out, 0o700)
            copy_xattrs(src, out)
            dirs.append((out, st, stat.S_IMODE(st.st_mode) if rel or root_mode is None else root_mode))
            continue
        if st.st_nlink > 1:
            key = (layer, st.st_ino)
            if key in links:
                os.link(links[key], out, follow_symlinks=False)
                continue
            links[key] = out
        if fmt == stat.S_IFREG:
            _copy_file(src, out, st, privileged, keep_special, ids)
            continue
        if fmt == stat.S_IFLNK:
            os.symlink(os.readlink(src), out)
        elif fmt == stat.S_IFIFO:
            os.mkfifo(out, 0o600)
        elif fmt in (stat.S_IFCHR, stat.S_IFBLK) and privileged and keep_special:
            mknod(out, fmt | 0o600, st.st_rdev)
        else:
            count -= 1  # sockets; devices unless asked for, and as root
            if links.get((layer, st.st_ino)) == out:
                del links[(layer, st.st_ino)]  # a hardlink to what was left out is left out too
            continue
        if privileged:
            os.lchown(out, *owner(st, ids))
        if fmt != stat.S_IFLNK:
            os.chmod(out, stat.S_IMODE(st.st_mode))
        copy_xattrs(src, out)
        os.utime(out, ns=(st.st_atime_ns, st.st_mtime_ns), follow_symlinks=False)
    for path, st, mode in sorted(dirs, key=lambda d: d[0].count("/"), reverse=True):
        if privileged:
            os.lchown(path, *owner(st, ids))
        os.chmod(path, mode)
        os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns), follow_symlinks=False)
    return count


def render_tar(layer_dirs: list[Path], out: IO[bytes], *, keep: Whitelist | None = None) -> int:
    """Write the merged tree of ``layer_dirs`` (bottom first; ``keep``: only what the whitelist
    allows) to ``out`` as an uncompressed pax layer tar; returns the number of members.

    Names are relative (``etc/passwd``; the root is ``./``), owners by number, hardlinks of one
    layer's inode become tar hardlinks; sockets are skipped (tar has none).
    """
    import tarfile

    count = 0
    with tarfile.open(fileobj=out, mode="w|", format=tarfile.PAX_FORMAT, encoding="utf-8",
                      errors="surrogateescape") as tf:
        for rel, src_path, _ in entries(layer_dirs, keep=keep):
            src = str(src_path)
            st = os.lstat(src)
            if stat.S_ISSOCK(st.st_mode):
                continue
            add_member(tf, src, rel or ".")
            count += 1
    return count
