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
"""

from __future__ import annotations

import errno
import os
import stat
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import IO, Any, cast

from pyrkt.errors import ImageError
from pyrkt.kernel.fs import set_xattr
from pyrkt.model.values import Value
from pyrkt.store.digests import HashingReader, check_digest, digest_hex
from pyrkt.store.members import MemberPlan, aci_member_path, plan_member
from pyrkt.store.overlay import OPAQUE_XATTR
from pyrkt.store.staging import remove_tree

# Overlay metadata a layer must not be able to forge (redirects, fake whiteouts, origins).
FORBIDDEN_XATTR_PREFIXES = ("trusted.overlay.", "user.overlay.")
MAX_SYMLINK_HOPS = 40
CHUNK = 1 << 20
TAR_BUFSIZE = 256 << 10  # tarfile's read size: larger reads cost it a copy of the rest per header
WRITER_THREADS = 2        # threads creating files beside the tar parsing
FORKED_WRITER_THREADS = 1  # the same in each of unpack_all's processes, which share the cores
QUEUED_FILE_MAX = 4 << 20  # a larger file is written by the parsing thread itself, streamed
QUEUE_BUDGET = 16 << 20    # bytes of file contents held for the writer threads at most


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


def open_decompressed(raw: IO[bytes], what: str) -> IO[bytes]:
    """The tar stream inside a layer blob: gzip, zstd, xz, bzip2 or plain, told by magic bytes."""
    if raw.seekable():
        head = raw.read(6)
        raw.seek(0)
    else:  # a pipe: keep the bytes looked at in front of the rest
        head = b""
        while len(head) < 6 and (more := raw.read(6 - len(head))):
            head += more
        raw = cast(IO[bytes], _Prefixed(head, raw))
    if head.startswith(b"\x1f\x8b"):
        return cast(IO[bytes], GzipStream(raw))
    if head.startswith(b"\x28\xb5\x2f\xfd"):
        import zstandard

        return cast(IO[bytes], zstandard.ZstdDecompressor().stream_reader(raw, read_across_frames=True))
    if head.startswith(b"\xfd7zXZ\x00"):
        import lzma

        return cast(IO[bytes], lzma.LZMAFile(raw))
    if head.startswith(b"BZh"):
        import bz2

        return cast(IO[bytes], bz2.BZ2File(raw))
    return raw


class _Prefixed:
    """``head`` and then the rest of ``raw``."""

    def __init__(self, head: bytes, raw: IO[bytes]) -> None:
        self.head = head
        self.raw = raw

    def read(self, n: int = -1) -> bytes:
        if not self.head:
            return self.raw.read(n)
        if n < 0:
            out, self.head = self.head + self.raw.read(), b""
            return out
        out, self.head = self.head[:n], self.head[n:]
        return out


class GzipStream:
    """The bytes of a gzip stream (members one after the other, zero padding after them
    allowed, as gzip(1) does), inflated by zlib in large steps; zlib checks each member's CRC
    and length. A truncated stream raises EOFError, a corrupt one zlib.error."""

    IN_CHUNK = 256 << 10
    OUT_MAX = 1 << 20  # inflated bytes per step at most: a small blob may inflate to gigabytes

    def __init__(self, raw: IO[bytes]) -> None:
        import zlib

        self._zlib = zlib
        self.raw = raw
        self.inflater = zlib.decompressobj(31)
        self.buf = b""
        self.pos = 0
        self.done = False

    def read(self, n: int = -1) -> bytes:
        if n < 0:
            return b"".join(iter(lambda: self.read(self.OUT_MAX), b""))
        while self.pos >= len(self.buf):
            if self.done:
                return b""
            self.buf, self.pos = self._inflate(), 0
        out = self.buf[self.pos:self.pos + n]
        self.pos += len(out)
        return out

    def _inflate(self) -> bytes:
        d = self.inflater
        if d.unconsumed_tail:
            return d.decompress(d.unconsumed_tail, self.OUT_MAX)
        if not d.eof:
            data = self.raw.read(self.IN_CHUNK)
            if not data:
                raise EOFError("compressed file ended before the end-of-stream marker was reached")
            return d.decompress(data, self.OUT_MAX)
        rest = d.unused_data.lstrip(b"\0")
        while not rest:  # the end of a member: another one, zero padding or the end
            data = self.raw.read(self.IN_CHUNK)
            if not data:
                self.done = True
                return b""
            rest = data.lstrip(b"\0")
        self.inflater = self._zlib.decompressobj(31)
        return self.inflater.decompress(rest, self.OUT_MAX)


def unpack(blob: Path | IO[bytes], dest: Path, *, diff_id: str, layer: str, privileged: bool | None = None,
           lowers: list[Path] | None = None, implicit_dirs: set[str] | None = None, aci: bool = False,
           writer_threads: int = WRITER_THREADS) -> int:
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
    """
    import tarfile
    import zlib

    privileged = os.geteuid() == 0 if privileged is None else privileged
    import contextlib

    with open(blob, "rb") if isinstance(blob, Path) else contextlib.nullcontext(blob) as raw:
        reader = HashingReader(open_decompressed(raw, layer))
        writers = FileWriters(writer_threads) if writer_threads > 0 else None
        unpacker = Unpacker(dest, layer=layer, privileged=privileged, lowers=lowers or [], aci=aci, writers=writers)
        try:
            with tarfile.open(fileobj=reader, mode="r|", encoding="utf-8", errors="surrogateescape",  # type: ignore[call-overload]
                              bufsize=TAR_BUFSIZE) as tf:
                for info in tf:
                    unpacker.member(info, tf)
            reader.drain()
            if writers is not None:
                writers.drain()
        except (tarfile.TarError, EOFError, zlib.error, OSError) as e:
            if isinstance(e, OSError) and not _is_stream_error(e):
                raise
            raise ImageError(f"layer {layer}: corrupt layer tar: {e}") from None
        except Exception as e:
            if type(e).__name__ in ("ZstdError", "LZMAError"):
                raise ImageError(f"layer {layer}: corrupt compressed stream: {e}") from None
            raise
        finally:
            if writers is not None:
                writers.close()  # on an error: queued files are dropped, running ones end first
    check_digest(f"layer {layer}", diff_id, reader.digest)
    unpacker.finish()
    if implicit_dirs is not None:
        implicit_dirs.update(os.path.relpath(p, unpacker.root) for p in unpacker.implicit)
    return unpacker.size


class UnpackJob(Value):
    """One layer to unpack (the arguments of ``unpack`` but ``lowers``, see ``unpack_all``);
    ``blob`` None: its bytes come through a pipe (``ForkedUnpacks.stream``)."""

    blob: Path | None
    dest: Path
    diff_id: str
    layer: str
    aci: bool = False


def unpack_all(jobs: list[UnpackJob], *, workers: int | None = None) -> list[tuple[int, set[str]]]:
    """``unpack`` each job at once, in up to ``workers`` (default: a core each) child processes;
    returns each job's (size, implicit dirs). The first error is raised once every child ended.

    Tar parsing holds the GIL, so layers are unpacked in forked processes rather than threads
    (only when the caller runs no other thread, which could hold a lock the child needs;
    otherwise one by one, here). They run without ``lowers``: give each job's implicit dirs
    their lower layers' attributes with ``adopt_lower_dirs`` afterwards, bottom layer first.
    """
    import threading

    if workers is None:
        workers = len(os.sched_getaffinity(0))
    if threading.active_count() > 1:
        workers = 1  # forking beside other threads could copy a lock one of them holds
    if workers <= 1 or len(jobs) <= 1:
        results = []
        for job in jobs:
            implicit: set[str] = set()
            size = unpack(cast(Path, job.blob), job.dest, diff_id=job.diff_id, layer=job.layer, aci=job.aci,
                          implicit_dirs=implicit)
            results.append((size, implicit))
        return results
    return ForkedUnpacks(jobs, workers).run()


class ForkedUnpacks:
    """Children that each unpack one layer and send back a pickled result through a pipe.

    ``run`` starts the jobs ``workers`` at a time, largest blob first, and collects them.
    ``stream`` starts every job at once, each child reading its blob's bytes from a pipe as
    a download writes them into the job's ``BlobFeed``; ``run`` then collects. ``close`` kills
    and reaps what still runs (after an error or an interrupt). Fork only while no other
    thread runs: a child could inherit a lock held by one.
    """

    def __init__(self, jobs: list[UnpackJob], workers: int) -> None:
        import tarfile  # noqa: F401  -- what a child needs is imported before it is forked
        import zlib  # noqa: F401

        self.jobs = jobs
        self.workers = workers
        self.running: dict[int, tuple[int, int, list[bytes]]] = {}  # result fd -> (job index, pid, data)
        self.feeds: dict[int, BlobFeed] = {}  # job index -> where its blob's bytes go
        self.started: set[int] = set()
        self.results: dict[int, tuple[int, set[str]]] = {}
        self.error: BaseException | None = None

    def stream(self) -> dict[int, BlobFeed]:
        for index in range(len(self.jobs)):
            self.start(index, stream=True)
        return dict(self.feeds)

    def run(self) -> list[tuple[int, set[str]]]:
        """Start the jobs not started yet and collect all; streamed ones are past their input."""
        import selectors

        for feed in self.feeds.values():
            feed.close()
        # Largest blobs first: the last to start are the shortest.
        todo = sorted((i for i in range(len(self.jobs)) if i not in self.started),
                      key=lambda i: os.path.getsize(cast(Path, self.jobs[i].blob)), reverse=True)
        sel = selectors.DefaultSelector()
        try:
            for fd in self.running:
                sel.register(fd, selectors.EVENT_READ)
            while todo or self.running:
                while todo and len(self.running) < self.workers:
                    sel.register(self.start(todo.pop(0)), selectors.EVENT_READ)
                for key, _ in sel.select():
                    fd = int(key.fd)
                    chunk = os.read(fd, 1 << 16)
                    if chunk:
                        self.running[fd][2].append(chunk)
                        continue
                    sel.unregister(fd)
                    self.reap(fd)
                if self.error is not None:
                    break
        finally:
            sel.close()
            self.close()
        if self.error is not None:
            raise self.error
        return [self.results[i] for i in range(len(self.jobs))]

    def close(self) -> None:
        """End the feeds, then kill and reap the children still running."""
        import signal

        for feed in self.feeds.values():
            feed.close()
        for fd, (_, pid, _) in list(self.running.items()):
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
            os.close(fd)
            del self.running[fd]

    def start(self, index: int, *, stream: bool = False) -> int:
        job = self.jobs[index]
        r, w = os.pipe()
        blob_r, blob_w = os.pipe() if stream else (-1, -1)
        pid = os.fork()
        if pid == 0:  # the child: unpack, report, and leave without any of the parent's cleanup
            code = 0
            try:
                for fd in (r, blob_w, *self.running, *(f.fd for f in self.feeds.values())):
                    if fd >= 0:
                        os.close(fd)
                if stream:
                    with os.fdopen(blob_r, "rb", buffering=CHUNK) as blob:
                        self.child(job, blob, w)
                else:
                    self.child(job, cast(Path, job.blob), w)
            except BaseException:
                code = 1
            finally:
                os._exit(code)
        os.close(w)
        if stream:
            os.close(blob_r)
            self.feeds[index] = BlobFeed(blob_w)
        self.running[r] = (index, pid, [])
        self.started.add(index)
        return r

    @staticmethod
    def child(job: UnpackJob, blob: Path | IO[bytes], w: int) -> None:
        import pickle

        result: tuple[str, object]
        try:
            implicit: set[str] = set()
            size = unpack(blob, job.dest, diff_id=job.diff_id, layer=job.layer, aci=job.aci,
                          implicit_dirs=implicit, writer_threads=FORKED_WRITER_THREADS)
            result = ("ok", (size, implicit))
        except BaseException as e:
            result = ("error", e)
        try:
            data = pickle.dumps(result)
        except Exception:  # an exception that does not pickle: keep its words
            data = pickle.dumps(("error", ImageError(f"layer {job.layer}: {result[1]}")))
        with os.fdopen(w, "wb") as f:
            f.write(data)

    def reap(self, fd: int) -> None:
        import pickle

        index, pid, chunks = self.running.pop(fd)
        os.close(fd)
        _, status = os.waitpid(pid, 0)
        try:
            kind, value = pickle.loads(b"".join(chunks))
        except Exception:
            kind, value = "error", ImageError(f"layer {self.jobs[index].layer}: the unpacking process ended "
                                              f"without a result (wait status {status})")
        if kind == "ok":
            self.results[index] = cast(tuple[int, set[str]], value)
        elif self.error is None:
            self.error = cast(BaseException, value)


class BlobFeed:
    """The pipe a download writes a layer blob's bytes into, for the process unpacking it.

    ``close`` when the blob is complete (its end is the unpacker's end of input). If the
    unpacker has already failed, what is written is dropped: its own error is reported.
    """

    def __init__(self, fd: int) -> None:
        import threading

        self.fd = fd
        self.lock = threading.Lock()

    def write(self, data: bytes) -> None:
        if self.fd < 0:
            return
        try:
            _write_all(self.fd, data)
        except BrokenPipeError:
            self.close()

    def close(self) -> None:
        with self.lock:
            if self.fd >= 0:
                os.close(self.fd)
                self.fd = -1


def adopt_lower_dirs(dest: Path, implicit: set[str], lowers: list[Path], *, privileged: bool | None = None) -> None:
    """Give the dirs of ``dest`` the tar did not list (``implicit``, relative paths) the owner,
    mode and time of the same dir in ``lowers`` (top first), as ``unpack(lowers=…)`` does."""
    privileged = os.geteuid() == 0 if privileged is None else privileged
    unpacker = Unpacker(dest, layer="", privileged=privileged, lowers=lowers)
    for rel in sorted(implicit, key=lambda p: p.count("/"), reverse=True):
        path = os.path.join(unpacker.root, rel)
        if stat.S_ISDIR(os.lstat(path).st_mode):
            unpacker.implicit_dir(path, rel.split("/"))
    for path, attrs in unpacker.dirs.items():
        unpacker.apply_dir(path, attrs)


def _is_stream_error(e: OSError) -> bool:
    # gzip.BadGzipFile and lzma/bz2 errors are OSErrors without an errno; real I/O errors have one.
    return e.errno is None


class Unpacker:
    """Applies planned members to one layer dir, resolving paths strictly inside it."""

    def __init__(self, root: Path, *, layer: str, privileged: bool, lowers: list[Path] | None = None,
                 aci: bool = False, writers: FileWriters | None = None) -> None:
        self.root = str(root)
        self.writers = writers
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
        # parts -> the real dir resolve_dir found; forgotten whenever clear() removes anything
        self.resolved: dict[tuple[str, ...], str] = {}

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
            src = tf.extractfile(info)
            if self.writers is not None and info.size <= QUEUED_FILE_MAX:
                data = src.read() if src is not None and info.size else b""
                self.writers.submit(path, len(data), lambda: self.write_file(path, info, (data,), mode))
            else:
                chunks = iter(lambda: src.read(CHUNK), b"") if src is not None else iter(())
                self.write_file(path, info, chunks, mode)
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
            os.mknod(path, fmt | 0o600, os.makedev(info.devmajor, info.devminor))
        if self.privileged:
            os.lchown(path, info.uid, info.gid)
        if kind != "symlink":
            os.chmod(path, mode)
        self.set_xattrs(path, info)
        os.utime(path, ns=(_ns(info.mtime), _ns(info.mtime)), follow_symlinks=False)

    def write_file(self, path: str, info: Any, chunks: Iterable[bytes], mode: int) -> None:
        """Create the regular file ``path`` (called from the writer threads too: no shared state)."""
        chmod = bool(mode & 0o7000 or mode & self.umask)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC,
                     0o600 if chmod else mode)
        try:
            for chunk in chunks:
                _write_all(fd, chunk)
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
        os.mknod(path, stat.S_IFCHR | 0o000, os.makedev(0, 0))
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
        """The real dir for ``parts`` inside the layer, following symlinks only while they stay inside."""
        known = self.resolved.get(parts)
        if known is not None:
            return known
        done: list[str] = []
        todo = list(parts)
        hops = 0
        while todo:
            comp = todo.pop(0)
            if comp in ("", "."):
                continue
            if comp == "..":
                if not done:
                    raise self.escape(member, parts)
                done.pop()
                continue
            path = os.path.join(self.root, *done, comp)
            self.settle(path)
            try:
                st = os.lstat(path)
            except FileNotFoundError:
                if not create:
                    raise ImageError(f"layer {self.layer}: member {member!r} refers to {'/'.join(parts)!r}, "
                                     "which is not in the layer") from None
                os.mkdir(path, 0o755)
                done.append(comp)
                self.implicit.add(path)
                self.implicit_dir(path, done)
                continue
            if stat.S_ISDIR(st.st_mode):
                done.append(comp)
            elif stat.S_ISLNK(st.st_mode):
                hops += 1
                target = os.readlink(path)
                if target.startswith("/") or hops > MAX_SYMLINK_HOPS:
                    raise ImageError(f"layer {self.layer}: member {member!r} would be written through symlink "
                                     f"{'/'.join([*done, comp])!r} -> {target!r}, outside the layer")
                todo = target.split("/") + todo
            else:
                raise ImageError(f"layer {self.layer}: member {member!r}: {'/'.join([*done, comp])!r} "
                                 "is not a directory")
        resolved = os.path.join(self.root, *done)
        self.resolved[parts] = resolved
        return resolved

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
            set_xattr(target, name, data)

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


class FileWriters:
    """A few threads that create and fill the regular files of one unpack.

    Creating an inode is the dearest step of an unpack (on ext4 without a journal it scans the
    recently freed inodes of the group) and, like writing, runs without the GIL, so files are
    written beside the tar parsing, on the other cores. The unpacker keeps the order that
    matters: ``is_pending`` tells it a path may not exist yet, ``drain`` waits for every queued
    file (before a dir is removed or dir metadata applied). The first error is raised by the next
    ``submit`` or ``drain``; later jobs are dropped.
    """

    def __init__(self, threads: int, budget: int | None = None) -> None:
        import threading
        from collections import deque

        self._cond = threading.Condition()
        self._jobs: deque[tuple[str, int, Callable[[], None]]] = deque()
        self._pending: set[str] = set()
        self._queued = 0  # bytes held by queued and running jobs
        self._budget = QUEUE_BUDGET if budget is None else budget
        self._busy = 0
        self._error: BaseException | None = None
        self._closing = False
        self._threads = [threading.Thread(target=self._run, name=f"pyrkt-unpack-{i}", daemon=True)
                         for i in range(threads)]
        for t in self._threads:
            t.start()

    def submit(self, path: str, size: int, job: Callable[[], None]) -> None:
        """Queue ``job`` (which creates ``path``, holding ``size`` bytes until it has run)."""
        with self._cond:
            while self._queued and self._queued + size > self._budget and self._error is None:
                self._cond.wait()
            self._raise()
            self._jobs.append((path, size, job))
            self._pending.add(path)
            self._queued += size
            self._cond.notify_all()

    def is_pending(self, path: str) -> bool:
        return path in self._pending

    def drain(self) -> None:
        with self._cond:
            while self._jobs or self._busy:
                self._cond.wait()
            self._raise()

    def close(self) -> None:
        """Stop the threads; jobs still queued (after an error) are dropped."""
        with self._cond:
            self._jobs.clear()
            self._closing = True
            self._cond.notify_all()
        for t in self._threads:
            t.join()

    def _raise(self) -> None:
        if self._error is not None:
            raise self._error

    def _run(self) -> None:
        while True:
            with self._cond:
                while not self._jobs and not self._closing:
                    self._cond.wait()
                if not self._jobs:
                    return
                path, size, job = self._jobs.popleft()
                self._busy += 1
                failed = self._error is not None
            error: BaseException | None = None
            if not failed:
                try:
                    job()
                except BaseException as e:  # handed to the unpacking thread
                    error = e
            with self._cond:
                self._busy -= 1
                self._queued -= size
                self._pending.discard(path)
                if error is not None and self._error is None:
                    self._error = error
                self._cond.notify_all()


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


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        n = os.write(fd, view)
        view = view[n:]


def file_tree_size(path: Path) -> int:
    """Bytes of the regular files under ``path`` (hardlinks counted once)."""
    seen: set[tuple[int, int]] = set()
    total = 0
    for dirpath, _, files in os.walk(path):
        for name in files:
            st = os.lstat(os.path.join(dirpath, name))
            if stat.S_ISREG(st.st_mode) and (st.st_dev, st.st_ino) not in seen:
                seen.add((st.st_dev, st.st_ino))
                total += st.st_size
    return total
