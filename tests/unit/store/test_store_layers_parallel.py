"""The fast paths of unpacking: files written by threads, layers unpacked side by side in
forked processes, gzip inflated in large steps. Each must give what the plain path gives."""

from __future__ import annotations

import errno
import gzip
import os
import stat
import threading
from pathlib import Path

import pytest
from tests.support.images import Entry, compress, layer_tar, sha256

from pyrkt.errors import ImageError
from pyrkt.store import Store, filewriters, layers
from pyrkt.store.filewriters import FileWriters
from pyrkt.store.layers import unpack
from pyrkt.store.parallel import UnpackJob, unpack_all

BLOB = "sha256:" + "cd" * 32


def blob_of(tmp_path: Path, name: str, tar: bytes, compression: str = "gzip") -> Path:
    path = tmp_path / name
    path.write_bytes(compress(tar, compression))
    return path


def unpack_tar(tmp_path: Path, tar: bytes, blob: bytes | None = None, *, threads: int = 2) -> Path:
    path = tmp_path / "blob"
    path.write_bytes(compress(tar, "gzip") if blob is None else blob)
    dest = tmp_path / "layer"
    dest.mkdir()
    unpack(path, dest, diff_id=sha256(tar), layer=BLOB, privileged=False, writer_threads=threads)
    return dest


def many_files(prefix: str, n: int = 60) -> list[tuple[str, Entry]]:
    return [(f"{prefix}/f{i:03d}", Entry.file(f"{prefix} {i}\n".encode() * (i + 1), mtime=1000 + i))
            for i in range(n)]


def children_of_this_process() -> list[int]:
    me = str(os.getpid())
    out = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            with open(f"/proc/{pid}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if fields[1] == me:
            out.append(int(pid))
    return out


# -- files written by threads --------------------------------------------------------------

def test_member_order_holds_while_threads_write_the_files(tmp_path: Path) -> None:
    tar = layer_tar([
        *many_files("a"),
        ("f", Entry.file(b"first")),
        ("f", Entry.file(b"second", 0o600)),
        ("hard", Entry.hardlink("f")),
        *many_files("d"),
        ("d", Entry.file(b"a file replaced the dir and its queued files")),
        ("x", Entry.file(b"a file")),
        ("x", Entry.dir(0o750)),
        ("x/inside", Entry.file(b"in the dir that replaced a file")),
    ])
    d = unpack_tar(tmp_path, tar)
    assert (d / "f").read_bytes() == b"second" and stat.S_IMODE(os.lstat(d / "f").st_mode) == 0o600
    assert os.lstat(d / "hard").st_ino == os.lstat(d / "f").st_ino
    assert (d / "d").read_bytes().startswith(b"a file replaced")
    assert (d / "x/inside").read_bytes() == b"in the dir that replaced a file"
    assert stat.S_IMODE(os.lstat(d / "x").st_mode) == 0o750
    for i in (0, 59):
        st = os.lstat(d / f"a/f{i:03d}")
        assert st.st_mtime == 1000 + i and st.st_size == len(f"a {i}\n") * (i + 1)


def test_a_member_below_a_queued_file_is_refused_as_not_a_directory(tmp_path: Path) -> None:
    tar = layer_tar([*many_files("a"), ("x", Entry.file(b"file")), ("x/y", Entry.file(b"below a file"))])
    with pytest.raises(ImageError, match="'x' is not a directory"):
        unpack_tar(tmp_path, tar)


def test_threads_and_no_threads_unpack_the_same_tree(tmp_path: Path) -> None:
    tar = layer_tar([("etc", Entry.dir(0o700, mtime=5)), *many_files("etc"), ("bin", Entry.symlink("etc")),
                     ("bin/tool", Entry.file(b"via the link", 0o4755)), ("big", Entry.file(b"z" * 300_000))])

    def tree(d: Path) -> dict[str, tuple[int, int, bytes]]:
        out = {}
        for dirpath, dirs, files in os.walk(d):
            for name in dirs + files:
                p = os.path.join(dirpath, name)
                st = os.lstat(p)
                data = Path(p).read_bytes() if stat.S_ISREG(st.st_mode) else b""
                out[os.path.relpath(p, d)] = (st.st_mode, int(st.st_mtime), data)
        return out

    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    assert tree(unpack_tar(tmp_path / "a", tar, threads=0)) == tree(unpack_tar(tmp_path / "b", tar, threads=2))


def test_files_over_the_queue_limits_are_written_whole(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(layers, "QUEUED_FILE_MAX", 1000)
    monkeypatch.setattr(filewriters, "QUEUE_BUDGET", 3000)
    monkeypatch.setattr(layers, "CHUNK", 4096)
    tar = layer_tar([*many_files("q", 40), ("huge", Entry.file(os.urandom(50_000)))])
    d = unpack_tar(tmp_path, tar)
    assert (d / "q/f039").read_bytes() == b"q 39\n" * 40
    assert len((d / "huge").read_bytes()) == 50_000


def test_the_first_write_error_is_raised_and_later_files_are_dropped() -> None:
    writers = FileWriters(1)
    ran: list[str] = []
    gate = threading.Event()

    def fail() -> None:
        gate.wait(5)
        raise OSError(errno.ENOSPC, "No space left on device")

    try:
        writers.submit("/l/a", 1, fail)
        writers.submit("/l/b", 1, lambda: ran.append("b"))
        assert writers.is_pending("/l/a")
        gate.set()
        with pytest.raises(OSError, match="No space left"):
            writers.drain()
        with pytest.raises(OSError, match="No space left"):
            writers.submit("/l/c", 1, lambda: ran.append("c"))
    finally:
        writers.close()
    assert ran == []


# -- gzip ----------------------------------------------------------------------------------

def test_gzip_members_one_after_another_and_zero_padding_unpack(tmp_path: Path) -> None:
    tar = layer_tar([("a", Entry.file(b"x" * 70_000)), ("b", Entry.file(os.urandom(300_000)))])
    cut = len(tar) // 3
    blob = gzip.compress(tar[:cut]) + gzip.compress(tar[cut:]) + b"\0" * 700
    d = unpack_tar(tmp_path, tar, blob)
    assert (d / "a").read_bytes() == b"x" * 70_000 and len((d / "b").read_bytes()) == 300_000


def test_gzip_followed_by_other_bytes_is_refused_as_corrupt(tmp_path: Path) -> None:
    tar = layer_tar([("a", Entry.file(b"x"))])
    with pytest.raises(ImageError, match=f"layer {BLOB}: corrupt"):
        unpack_tar(tmp_path, tar, gzip.compress(tar) + b"trailing junk")


def test_gzip_with_a_wrong_checksum_is_refused_as_corrupt(tmp_path: Path) -> None:
    tar = layer_tar([("a", Entry.file(b"x" * 1000))])
    blob = bytearray(gzip.compress(tar))
    blob[-8] ^= 0xFF  # the CRC32 in the trailer
    with pytest.raises(ImageError, match=f"layer {BLOB}: corrupt"):
        unpack_tar(tmp_path, tar, bytes(blob))


# -- layers side by side -------------------------------------------------------------------

def three_layers() -> list[bytes]:
    return [
        layer_tar([("tmp", Entry.dir(0o1777, mtime=1234)), ("srv", Entry.dir(0o700, mtime=99)), *many_files("opt")]),
        layer_tar([("tmp/new", Entry.file(b"x")), ("srv/site", Entry.file(b"y")), ("etc/conf", Entry.file(b"z"))]),
        layer_tar([*many_files("opt/more", 30), ("opt/link", Entry.hardlink("opt/more/f001"))]),
    ]


def test_layers_unpacked_side_by_side_keep_the_lower_layers_dir_attributes(tmp_path: Path) -> None:
    tars = three_layers()
    store = Store.open(tmp_path / "store")
    try:
        with store.begin_import("test") as imp:
            digests = [imp.add_bytes(compress(t, "gzip")) for t in tars]
            sizes = imp.add_layers([(b, sha256(t), "application/vnd.oci.image.layer.v1.tar+gzip")
                                    for b, t in zip(digests, tars, strict=True)])
            upper = imp.chain[1]
            assert stat.S_IMODE(os.lstat(upper / "tmp").st_mode) == 0o1777
            assert os.lstat(upper / "tmp").st_mtime == 1234
            assert stat.S_IMODE(os.lstat(upper / "srv").st_mode) == 0o700
            assert stat.S_IMODE(os.lstat(upper / "etc").st_mode) == 0o755  # no lower has it
            assert (imp.chain[2] / "opt/link").read_bytes() == (imp.chain[2] / "opt/more/f001").read_bytes()
        with store.begin_import("test") as imp:
            digests = [imp.add_bytes(compress(t, "gzip")) for t in tars]
            one_by_one = [imp.add_layer(b, sha256(t), "application/vnd.oci.image.layer.v1.tar+gzip")
                          for b, t in zip(digests, tars, strict=True)]
        assert sizes == one_by_one
    finally:
        store.close()


def test_an_unsafe_member_in_one_of_the_layers_is_refused_and_no_process_is_left(tmp_path: Path) -> None:
    tars = three_layers()
    tars[2] = layer_tar([*many_files("opt"), ("evil", Entry.symlink("/etc")), ("evil/passwd", Entry.file(b"!"))])
    jobs = []
    for i, tar in enumerate(tars):
        dest = tmp_path / f"l{i}"
        dest.mkdir()
        jobs.append(UnpackJob(blob_of(tmp_path, f"b{i}", tar), dest, sha256(tar), f"sha256:{i:064x}"))
    with pytest.raises(ImageError, match=f"layer sha256:{2:064x}: member 'evil/passwd'"):
        unpack_all(jobs, workers=2)
    assert children_of_this_process() == []


def test_a_diff_id_mismatch_in_a_forked_unpack_is_an_integrity_error(tmp_path: Path) -> None:
    tars = three_layers()
    jobs = []
    for i, tar in enumerate(tars):
        dest = tmp_path / f"l{i}"
        dest.mkdir()
        jobs.append(UnpackJob(blob_of(tmp_path, f"b{i}", tar), dest, sha256(tar if i else b"other"), BLOB))
    with pytest.raises(ImageError, match="digest mismatch"):
        unpack_all(jobs, workers=2)


def test_an_implicit_dir_a_later_member_replaced_takes_nothing_from_below(tmp_path: Path) -> None:
    tars = [layer_tar([("a", Entry.dir(0o700)), ("a/b", Entry.dir(0o700))]),
            layer_tar([("a/b/f", Entry.file(b"in a dir the tar never listed")), ("a", Entry.file(b"now a file"))]),
            layer_tar([("c/f", Entry.file(b"c"))])]
    store = Store.open(tmp_path / "store")
    try:
        with store.begin_import("test") as imp:
            digests = [imp.add_bytes(compress(t, "gzip")) for t in tars]
            imp.add_layers([(b, sha256(t), "application/vnd.oci.image.layer.v1.tar+gzip")
                            for b, t in zip(digests, tars, strict=True)])
            assert (imp.chain[1] / "a").read_bytes() == b"now a file"
            assert stat.S_IMODE(os.lstat(imp.chain[1] / "a").st_mode) == 0o644
    finally:
        store.close()


def test_several_layers_are_unpacked_in_child_processes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    forks: list[int] = []
    real_fork = os.fork

    def counting_fork() -> int:
        forks.append(1)
        return real_fork()

    monkeypatch.setattr(os, "fork", counting_fork)
    jobs = []
    for i, tar in enumerate(three_layers()):
        dest = tmp_path / f"l{i}"
        dest.mkdir()
        jobs.append(UnpackJob(blob_of(tmp_path, f"b{i}", tar), dest, sha256(tar), BLOB))
    results = unpack_all(jobs, workers=2)
    assert len(forks) == 3
    assert results[1][1] == {"tmp", "srv", "etc"}  # the dirs layer 1 never listed
    assert (tmp_path / "l2/opt/more/f029").read_bytes() == b"opt/more 29\n" * 30
    assert children_of_this_process() == []
