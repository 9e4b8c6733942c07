"""Unpacked layers: ``layers/sha256/<diff id hex>/``, each an overlayfs lower dir, never written again.

A layer is unpacked once, into a temp dir of the import session, and renamed into place only
after its uncompressed bytes matched the diff id; an interrupted unpack therefore never leaves
a half layer, and two importers of the same layer each unpack privately and the first rename
wins. The layer dir *is* the layer's root: pass it as it is to overlayfs.

Unpacking (``unpack``) keeps owners (when root), modes, mtimes, xattrs, hardlinks and symlinks,
makes device nodes only when root, and turns OCI whiteouts into overlayfs ones: ``.wh.NAME``
becomes a character device 0:0 called NAME, ``.wh..wh..opq`` sets ``trusted.overlay.opaque=y``
on its directory. It refuses any member that would land outside the layer: ``..``, absolute
paths, writing through a symlink that leaves the layer, hardlinks to outside.

GNU sparse files are written sparse: their holes stay holes, and so do whole chunks of zeros in
a large file. With a ``budget`` (``store.limits``) the tar stream is charged as it is read, a
member's size is checked before its file is created and a sparse file's holes count too, so a
layer that would expand past the import's limit is stopped before it is written.

Decompression is in ``store.decompress``, the writer threads in ``store.filewriters``, and
unpacking several layers at once, in forked processes, in ``store.parallel``.
"""

from __future__ import annotations

import errno
import os
import stat
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any, cast

from pyrkt.errors import ImageError
from pyrkt.kernel.fs import mknod, set_xattr
from pyrkt.store.decompress import open_decompressed
from pyrkt.store.digests import HashingReader, check_digest, digest_hex
from pyrkt.store.filewriters import FileWriters
from pyrkt.store.limits import ChargedStream, ImportBudget
from pyrkt.store.members import MemberPlan, aci_member_path, plan_member
from pyrkt.store.overlay import OPAQUE_XATTR
from pyrkt.store.staging import remove_tree

# Overlay metadata a layer must not be able to forge (redirects, fake whiteouts, origins).
FORBIDDEN_XATTR_PREFIXES = ("trusted.overlay.", "user.overlay.")
MAX_SYMLINK_HOPS = 40
CHUNK = 1 << 20
TAR_BUFSIZE = 256 << 10  # tarfile's read size: larger reads cost it a copy of the rest per header
WRITER_THREADS = 2        # threads creating files beside the tar parsing
QUEUED_FILE_MAX = 4 << 20  # a larger file is written by the parsing thread itself, streamed
RECENT_DIRS = 64  # whole resolve_dir results kept (keys are tuples as long as the path is deep)


class LayerStore:
    def __init__(self, root: Path) -> None:
        self.root = root  # <store>/layers

    def path(self, diff_id: str) -> Path:
        return self.root / "sha256" / digest_hex(diff_id)

    def has(self, diff_id: str) -> bool:
        return self.path(diff_id).is_dir()

    def commit(self, diff_id: str, unpacked: Path) -> None:
        """Rename a verified unpacked dir into place; if another importer won, drop ours."""
        dest = self.path(diff_id)
        dest.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        try:
            os.rename(unpacked, dest)
        except OSError as e:
            if e.errno not in (errno.EEXIST, errno.ENOTEMPTY):
                raise
            remove_tree(unpacked)

    def remove(self, diff_id: str, trash: Path) -> None:
        """Move the layer out of sight first (atomic), then delete it."""
        src = self.path(diff_id)
        dest = trash / f"layer-{digest_hex(diff_id)}"
        try:
            os.rename(src, dest)
        except FileNotFoundError:
            return
        remove_tree(dest)

    def walk(self) -> list[str]:
        try:
            return ["sha256:" + n for n in os.listdir(self.root / "sha256") if len(n) == 64]
        except FileNotFoundError:
            return []


def unpack(blob: Path | IO[bytes], dest: Path, *, diff_id: str, layer: str, privileged: bool | None = None,
           lowers: list[Path] | None = None, implicit_dirs: set[str] | None = None, aci: bool = False,
           writer_threads: int = WRITER_THREADS, budget: ImportBudget | None = None) -> int:
    """Unpack the layer blob at ``blob`` (a path, or a stream of its bytes) into the empty dir
    ``dest``; returns its size in bytes.

    ``layer`` names the layer in errors (its blob digest). The uncompressed stream must hash to
    ``diff_id``; a mismatch, a corrupt stream or an unsafe member raises ImageError and leaves
    ``dest`` for the caller to discard. ``lowers`` (the image's layers below, top first) give
    a parent dir the tar does not list its owner, mode and time: overlayfs shows the topmost
    layer's copy of a dir, so a made-up 0755 ``tmp`` would hide a lower 1777 one. The paths
    (relative to ``dest``) of such dirs are added to ``implicit_dirs`` when it is given.
    ``aci``: the blob is a whole appc ACI: ``rootfs/`` is the layer, ``manifest`` is skipped,
    anything else (and any OCI whiteout, which ACIs do not have) is refused.
    ``writer_threads``: threads that create the regular files (``FileWriters``); 0 for none.
    ``budget``: the import's, charged with what the layer expands to (ImageError when it is spent).
    """
    import tarfile
    import zlib

    privileged = os.geteuid() == 0 if privileged is None else privileged
    import contextlib

    with open(blob, "rb") if isinstance(blob, Path) else contextlib.nullcontext(blob) as raw:
        stream = open_decompressed(raw, layer)
        if budget is not None:
            stream = cast(IO[bytes], ChargedStream(stream, budget, f"layer {layer}"))
        reader = HashingReader(stream)
        writers = FileWriters(writer_threads) if writer_threads > 0 else None
        unpacker = Unpacker(dest, layer=layer, privileged=privileged, lowers=lowers or [], aci=aci, writers=writers,
                            budget=budget)
        try:
            with tarfile.open(fileobj=reader, mode="r|", encoding="utf-8", errors="surrogateescape",  # type: ignore[call-overload]
                              bufsize=TAR_BUFSIZE) as tf:
                for info in tf:
                    try:
                        unpacker.member(info, tf)
                    except OSError as e:
                        if _is_stream_error(e):
                            raise
                        raise unpacker.member_error(info.name, e) from None
            reader.drain()
            if writers is not None:
                writers.drain()
        except (tarfile.TarError, EOFError, zlib.error, OSError) as e:
            if isinstance(e, OSError) and not _is_stream_error(e):
                raise unpacker.member_error(None, e) from None
            raise ImageError(f"layer {layer}: corrupt layer tar: {e}") from None
        except Exception as e:
            if type(e).__name__ in ("ZstdError", "LZMAError"):
                raise ImageError(f"layer {layer}: corrupt compressed stream: {e}") from None
            raise
        finally:
            if writers is not None:
                writers.close()  # on an error: queued files are dropped, running ones end first
    check_digest(f"layer {layer}", diff_id, reader.digest)
    try:
        unpacker.finish()
    except OSError as e:
        raise unpacker.member_error(None, e) from None
    if implicit_dirs is not None:
        implicit_dirs.update(os.path.relpath(p, unpacker.root) for p in unpacker.implicit)
    return unpacker.size


def _is_stream_error(e: OSError) -> bool:
    # gzip.BadGzipFile and lzma/bz2 errors are OSErrors without an errno; real I/O errors have one.
    return e.errno is None


class Unpacker:
    """Applies planned members to one layer dir, resolving paths strictly inside it."""

    def __init__(self, root: Path, *, layer: str, privileged: bool, lowers: list[Path] | None = None,
                 aci: bool = False, writers: FileWriters | None = None, budget: ImportBudget | None = None) -> None:
        self.root = str(root)
        self.writers = writers
        self.budget = budget
        # A new file gets our euid/egid (the layer's dirs are not setgid while we unpack) and
        # open()'s mode minus the umask: when those are already right, fchown/fchmod are skipped.
        root_st = os.lstat(root)
        self.own_ids = (os.geteuid(), os.getegid()) if not root_st.st_mode & stat.S_ISGID else None
        self.umask = _umask()
        self.aci = aci
        self.lowers = [str(p) for p in lowers or []]
        self.layer = layer
        self.privileged = privileged
        self.size = 0
        self.dirs: dict[str, Any] = {}  # path -> TarInfo of a dir member, applied at the end
        self.whiteouts: set[str] = set()
        self.implicit: set[str] = set()  # dirs the tar never listed (made as parents)
        # (real dir, name) -> the real dir it holds under that name, and the last parts ->
        # real dir results, as resolve_dir found them; forgotten whenever clear() removes anything
        self.resolved: dict[tuple[str, str], str] = {}
        self.recent: dict[tuple[str, ...], str] = {}

    # -- members ---------------------------------------------------------------------------

    def member(self, info: Any, tf: Any) -> None:
        if self.aci:
            name = aci_member_path(info.name, layer=self.layer, member=info.name)
            if name is None:
                return  # the manifest
            linkname = info.linkname
            if info.type == b"1":
                target = aci_member_path(linkname, layer=self.layer, member=info.name)
                if target is None or target == ".":
                    raise ImageError(f"layer {self.layer}: member {info.name!r} is a hardlink to {linkname!r}, "
                                     "outside rootfs/")
                linkname = target
            plan = plan_member(name, info.type, linkname, layer=self.layer)
            if plan.kind in ("whiteout", "opaque", "skip"):
                raise ImageError(f"layer {self.layer}: member {info.name!r} is an OCI whiteout, which an ACI cannot hold")
        else:
            plan = plan_member(info.name, info.type, info.linkname, layer=self.layer)
        if plan.kind == "skip":
            return
        if plan.kind == "opaque":
            d = self.resolve_dir(plan.parts, info.name)
            self.need_root(info.name, "an opaque-directory marker")
            os.setxattr(d, OPAQUE_XATTR, b"y", follow_symlinks=False)
            return
        if not plan.parts:  # "./": the layer root's own metadata
            self.dirs[self.root] = info
            return
        parent = self.resolve_dir(plan.parts[:-1], info.name)
        path = os.path.join(parent, plan.parts[-1])
        if plan.kind == "whiteout":
            self.whiteout(path, info.name)
            return
        if not self.clear(path, plan.kind):
            self.dirs[path] = info  # an existing dir: later metadata wins
            self.implicit.discard(path)
            self.set_xattrs(path, info)
            return
        self.create(plan, path, info, tf)

    def create(self, plan: MemberPlan, path: str, info: Any, tf: Any) -> None:
        kind = plan.kind
        mode = info.mode & 0o7777
        if kind == "dir":
            os.mkdir(path, 0o700)
            self.dirs[path] = info
            self.set_xattrs(path, info)
            return
        if kind == "file":
            self.size += info.size
            sparse = info.sparse  # GNU sparse: the stream holds only these (offset, length) blocks
            if self.budget is not None:
                what = f"layer {self.layer}"
                self.budget.check_fits(info.size, what)
                if sparse is not None:  # the holes count as written: a copy of the file writes them
                    self.budget.charge(info.size - sum(length for _, length in sparse), what)
            src = tf.extractfile(info)
            if self.writers is not None and info.size <= QUEUED_FILE_MAX and sparse is None:
                data = src.read() if src is not None and info.size else b""
                fill: Callable[[int], None] = lambda fd: write_all(fd, data)  # noqa: E731
                self.writers.submit(path, len(data), lambda: self.write_file(path, info, fill, mode))
            elif sparse is not None:
                self.write_file(path, info, lambda fd: _write_sparse(fd, tf.fileobj, info, sparse), mode)
            else:
                self.write_file(path, info, lambda fd: _write_stream(fd, src), mode)
            return
        if kind == "symlink":
            os.symlink(info.linkname, path)
        elif kind == "hardlink":
            os.link(self.link_source(plan, info.name), path, follow_symlinks=False)
            return  # a hardlink shares the inode's owner, mode, times and xattrs
        elif kind == "fifo":
            os.mkfifo(path, 0o600)
        else:  # char, block
            if not self.privileged:
                return  # device nodes only when root: rootless engines drop them too
            fmt = stat.S_IFCHR if kind == "char" else stat.S_IFBLK
            mknod(path, fmt | 0o600, os.makedev(info.devmajor, info.devminor))
        if self.privileged:
            os.lchown(path, info.uid, info.gid)
        if kind != "symlink":
            os.chmod(path, mode)
        self.set_xattrs(path, info)
        os.utime(path, ns=(_ns(info.mtime), _ns(info.mtime)), follow_symlinks=False)

    def write_file(self, path: str, info: Any, fill: Callable[[int], None], mode: int) -> None:
        """Create the regular file ``path``, its contents written by ``fill(fd)`` (called from the
        writer threads too: no shared state; an OSError becomes the member's ImageError)."""
        try:
            self._write_file(path, info, fill, mode)
        except OSError as e:
            if _is_stream_error(e):
                raise
            raise self.member_error(info.name, e) from None

    def _write_file(self, path: str, info: Any, fill: Callable[[int], None], mode: int) -> None:
        chmod = bool(mode & 0o7000 or mode & self.umask)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC,
                     0o600 if chmod else mode)
        try:
            fill(fd)
            if self.privileged and (info.uid, info.gid) != self.own_ids:
                os.fchown(fd, info.uid, info.gid)
            if chmod:
                os.fchmod(fd, mode)  # after chown, which clears setuid bits
            self.set_xattrs(fd, info)
            os.utime(fd, ns=(_ns(info.mtime), _ns(info.mtime)))
        finally:
            os.close(fd)

    def whiteout(self, path: str, member: str) -> None:
        self.settle(path)
        try:
            st = os.lstat(path)
        except FileNotFoundError:
            st = None
        if st is not None:
            # OCI: a whiteout hides lower layers only; an entry of this same layer stays.
            return
        self.need_root(member, "a whiteout")
        mknod(path, stat.S_IFCHR | 0o000, os.makedev(0, 0))
        self.whiteouts.add(path)

    def link_source(self, plan: MemberPlan, member: str) -> str:
        parent = self.resolve_dir(plan.link_parts[:-1], member, create=False)
        src = os.path.join(parent, plan.link_parts[-1])
        self.settle(src)
        try:
            st = os.lstat(src)
        except FileNotFoundError:
            raise ImageError(f"layer {self.layer}: member {member!r} is a hardlink to {'/'.join(plan.link_parts)!r}, "
                             "which is not in the layer") from None
        if stat.S_ISDIR(st.st_mode):
            raise ImageError(f"layer {self.layer}: member {member!r} is a hardlink to a directory")
        return src

    # -- paths -----------------------------------------------------------------------------

    def resolve_dir(self, parts: tuple[str, ...], member: str, *, create: bool = True) -> str:
        """The real dir for ``parts`` inside the layer, following symlinks only while they stay inside.

        Each real dir met is remembered by (its parent's real path, its name), and the last few
        results whole: a member whose parent dir came just before it costs one lookup, any other
        one lookup per component, so unpacking stays linear in the size of the tar however deep
        its tree is. A real dir's path holds no symlink, so ``..`` is its lexical parent.
        """
        known = self.recent.get(parts)
        if known is not None:
            return known
        cur, todo = self.root, list(reversed(parts))  # popped from the end
        start = self.recent.get(parts[:-1]) if len(parts) > 1 else None
        if start is not None:
            cur, todo = start, [parts[-1]]
        hops = 0
        while todo:
            comp = todo.pop()
            if comp in ("", "."):
                continue
            if comp == "..":
                if cur == self.root:
                    raise self.escape(member, parts)
                cur = cur[:cur.rfind("/")]
                continue
            known = self.resolved.get((cur, comp))
            if known is not None:
                cur = known
                continue
            path = f"{cur}/{comp}"
            self.settle(path)
            try:
                st = os.lstat(path)
            except FileNotFoundError:
                if not create:
                    raise ImageError(f"layer {self.layer}: member {member!r} refers to {'/'.join(parts)!r}, "
                                     "which is not in the layer") from None
                os.mkdir(path, 0o755)
                self.implicit.add(path)
                self.implicit_dir(path, self.rel(path).split("/"))
                st = None
            if st is None or stat.S_ISDIR(st.st_mode):
                self.resolved[(cur, comp)] = path
                cur = path
            elif stat.S_ISLNK(st.st_mode):
                hops += 1
                target = os.readlink(path)
                if target.startswith("/") or hops > MAX_SYMLINK_HOPS:
                    raise ImageError(f"layer {self.layer}: member {member!r} would be written through symlink "
                                     f"{self.rel(path)!r} -> {target!r}, outside the layer")
                todo.extend(reversed(target.split("/")))
            else:
                raise ImageError(f"layer {self.layer}: member {member!r}: {self.rel(path)!r} is not a directory")
        if len(self.recent) >= RECENT_DIRS:
            self.recent.clear()
        self.recent[parts] = cur
        return cur

    def rel(self, path: str) -> str:
        """``path`` (a real path in the layer) relative to the layer's root."""
        return path[len(self.root) + 1:]

    def escape(self, member: str, parts: tuple[str, ...]) -> ImageError:
        return ImageError(f"layer {self.layer}: member {member!r} would be written through a symlink "
                          f"in {'/'.join(parts)!r} that leads outside the layer")

    def clear(self, path: str, kind: str) -> bool:
        """Make room for a new entry at ``path``; False when an existing dir is simply kept."""
        self.settle(path)
        try:
            st = os.lstat(path)
        except FileNotFoundError:
            return True
        if stat.S_ISDIR(st.st_mode) and kind == "dir":
            return False
        self.resolved.clear()  # what goes may be a dir or a symlink that some resolution went through
        self.recent.clear()
        if stat.S_ISDIR(st.st_mode):
            if self.writers is not None:
                self.writers.drain()  # files may still be on their way into it
            remove_tree(Path(path))
            self.dirs = {p: i for p, i in self.dirs.items() if p != path and not p.startswith(path + "/")}
            self.implicit = {p for p in self.implicit if p != path and not p.startswith(path + "/")}
        else:
            os.unlink(path)
            self.whiteouts.discard(path)
        return True

    def implicit_dir(self, path: str, parts: list[str]) -> None:
        """A parent the tar did not list takes its attributes from the lower layers, if they have it."""
        for lower in self.lowers:
            try:
                st = os.lstat(os.path.join(lower, *parts))
            except OSError:
                continue
            if stat.S_ISDIR(st.st_mode):
                self.dirs[path] = _DirAttrs(st.st_uid, st.st_gid, stat.S_IMODE(st.st_mode), st.st_mtime)
            return

    def settle(self, path: str) -> None:
        """Before looking at ``path``: let a file queued for it be written first."""
        if self.writers is not None and self.writers.is_pending(path):
            self.writers.drain()

    def member_error(self, member: str | None, e: OSError) -> ImageError:
        """The one line for an OSError while unpacking ``member`` (None: not known)."""
        if e.errno in (errno.ENOSPC, errno.EDQUOT):
            return ImageError(f"layer {self.layer}: no space left on the store's filesystem ({e.strerror})")
        if member is None:
            where = os.path.relpath(e.filename, self.root) if isinstance(e.filename, str) else "a member"
            return ImageError(f"layer {self.layer}: {_shown(where)!r} cannot be unpacked: {e.strerror}")
        return ImageError(f"layer {self.layer}: member {_shown(member)!r} cannot be unpacked: {e.strerror}")

    def need_root(self, member: str, what: str) -> None:
        if not self.privileged:
            raise ImageError(f"layer {self.layer}: member {member!r} is {what}, which only root can unpack")

    # -- metadata --------------------------------------------------------------------------

    def set_xattrs(self, target: str | int, info: Any) -> None:
        for key, value in (info.pax_headers or {}).items():
            if not key.startswith("SCHILY.xattr."):
                continue
            name = key[len("SCHILY.xattr."):]
            if name.startswith(FORBIDDEN_XATTR_PREFIXES):
                continue  # only pyrkt's own whiteout handling writes overlay metadata
            data = value.encode("utf-8", "surrogateescape") if isinstance(value, str) else bytes(value)
            try:
                set_xattr(target, name, data)
            except OSError as e:
                raise ImageError(f"layer {self.layer}: member {_shown(info.name)!r}: xattr {_shown(name)!r} "
                                 f"cannot be set: {e.strerror}") from None

    def finish(self) -> None:
        """Directory modes and times last, deepest first: creating children changes both."""
        if self.writers is not None:
            self.writers.drain()
        root_info = self.dirs.pop(self.root, None)
        for path in sorted(self.dirs, key=lambda p: p.count("/"), reverse=True):
            self.apply_dir(path, self.dirs[path])
        if root_info is not None:
            self.apply_dir(self.root, root_info)
        else:
            os.chmod(self.root, 0o755)

    def apply_dir(self, path: str, info: Any) -> None:
        if self.privileged:
            os.lchown(path, info.uid, info.gid)
        os.chmod(path, info.mode & 0o7777)
        os.utime(path, ns=(_ns(info.mtime), _ns(info.mtime)), follow_symlinks=False)


class _DirAttrs:
    """What ``apply_dir`` needs of a TarInfo, for a dir copied from a lower layer."""

    def __init__(self, uid: int, gid: int, mode: int, mtime: float) -> None:
        self.uid, self.gid, self.mode, self.mtime = uid, gid, mode, mtime
        self.pax_headers: dict[str, str] = {}


def _umask() -> int:
    """The process umask, read without changing it (os.umask would, for every thread)."""
    try:
        with open("/proc/self/status", "rb") as f:
            for line in f:
                if line.startswith(b"Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    return 0o7777  # unknown: always chmod


def _ns(mtime: float) -> int:
    return int(mtime * 1_000_000_000)


def _shown(name: str, limit: int = 80) -> str:
    """A member name short enough for a one-line error."""
    return name if len(name) <= limit else f"{name[:limit]}… ({len(name)} characters)"


def _write_stream(fd: int, src: IO[bytes] | None) -> None:
    """Copy a file's bytes; a chunk of nothing but zeros becomes a hole (seek over it)."""
    if src is None:
        return
    hole_at_end = False
    for chunk in iter(lambda: src.read(CHUNK), b""):
        if len(chunk) == CHUNK and chunk.count(0) == CHUNK:
            os.lseek(fd, CHUNK, os.SEEK_CUR)
            hole_at_end = True
        else:
            write_all(fd, chunk)
            hole_at_end = False
    if hole_at_end:
        os.ftruncate(fd, os.lseek(fd, 0, os.SEEK_CUR))


def _write_sparse(fd: int, stream: Any, info: Any, blocks: list[tuple[int, int]]) -> None:
    """Write a GNU sparse file's data blocks where they belong; the rest stays holes.

    The blocks' data follow one another in the archive from ``info.offset_data``, in the map's
    order; they are read from tarfile's stream directly (its file object for the member would
    make up the holes' zeros, and cannot seek on a stream)."""
    stream.seek(info.offset_data)  # forward: tarfile's stream cannot go back
    for offset, length in blocks:
        while length > 0:
            data = stream.read(min(CHUNK, length))
            if not data:
                raise EOFError("the data of a sparse file ends early")
            view = memoryview(data)
            while view:
                n = os.pwrite(fd, view, offset)
                view, offset = view[n:], offset + n
            length -= len(data)
    os.ftruncate(fd, info.size)


def write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        n = os.write(fd, view)
        view = view[n:]


def file_tree_size(path: Path) -> int:
    """Bytes of the regular files under ``path`` (hardlinks counted once)."""
    from pyrkt.kernel.trees import walk

    seen: set[tuple[int, int]] = set()
    total = 0
    for entry in walk(path):
        st = entry.st
        if stat.S_ISREG(st.st_mode) and (st.st_dev, st.st_ino) not in seen:
            seen.add((st.st_dev, st.st_ino))
            total += st.st_size
    return total
