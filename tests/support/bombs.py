"""Layers that expand far past their size, built small and streamed (never held whole):
a tar of long runs of one byte, compressed (a decompression bomb), and GNU sparse tars of a
huge file with a few data blocks (made by GNU tar from a ``truncate``d file).

    layer = bomb_layer([("big", 256 << 20)], "gzip")        # a Layer: diff id, blob, media type
    build_oci_layout(dir, extra_layers=[layer])               # tests.support.images takes it as is
    tar = sparse_tar(tmp, 1 << 40, [(1 << 30, b"data")])     # GNU sparse, 1 TiB apparent size
"""

from __future__ import annotations

import bz2
import hashlib
import lzma
import shutil
import subprocess
import tarfile
import zlib
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path

from tests.support.images import FIXED_MTIME, LAYER_MEDIA_TYPES, Layer

CHUNK = 1 << 20
MEDIA_TYPES = {**LAYER_MEDIA_TYPES, "bzip2": "application/vnd.oci.image.layer.v1.tar", "xz":
               "application/vnd.oci.image.layer.v1.tar"}  # pyrkt tells the compression by magic bytes


def runs_tar(files: Sequence[tuple[str, int]], *, fill: bytes = b"\0",
             head: Iterable[tuple[str, bytes]] = ()) -> Iterator[bytes]:
    """The bytes of a tar: ``head`` members (name, bytes), then each (name, size) file made of
    ``fill`` repeated, in chunks; names ending in ``/`` are dirs."""
    block = fill * (CHUNK // len(fill))
    for name, data in head:
        yield _header(name, len(data)) + data + b"\0" * (-len(data) % 512)
    for name, size in files:
        if name.endswith("/"):
            yield _header(name.rstrip("/"), 0, tarfile.DIRTYPE)
            continue
        yield _header(name, size)
        left = size
        while left:
            n = min(left, CHUNK)
            yield block[:n]
            left -= n
        yield b"\0" * (-size % 512)
    yield b"\0" * 1024


def _header(name: str, size: int, kind: bytes = tarfile.REGTYPE) -> bytes:
    info = tarfile.TarInfo(name)
    info.size, info.type, info.mtime = size, kind, FIXED_MTIME
    info.mode = 0o755 if kind == tarfile.DIRTYPE else 0o644
    return info.tobuf(tarfile.PAX_FORMAT)


def compressed(chunks: Iterable[bytes], compression: str) -> tuple[bytes, str]:
    """(the compressed stream, sha256 digest of the uncompressed one), streamed chunk by chunk."""
    h = hashlib.sha256()
    if compression == "gzip":
        c: object = zlib.compressobj(6, zlib.DEFLATED, 31)
    elif compression == "zstd":
        import zstandard

        c = zstandard.ZstdCompressor(level=3).compressobj()
    elif compression == "bzip2":
        c = bz2.BZ2Compressor(9)
    elif compression == "xz":
        c = lzma.LZMACompressor()
    else:
        raise ValueError(compression)
    out = []
    for chunk in chunks:
        h.update(chunk)
        out.append(c.compress(chunk))  # type: ignore[attr-defined]
    out.append(c.flush())  # type: ignore[attr-defined]
    return b"".join(out), "sha256:" + h.hexdigest()


def bomb_layer(files: Sequence[tuple[str, int]], compression: str = "gzip", *, fill: bytes = b"\0",
               head: Iterable[tuple[str, bytes]] = ()) -> Layer:
    """A layer blob whose tar holds ``files`` of ``fill`` bytes: small, expanding to their sum."""
    blob, diff_id = compressed(runs_tar(files, fill=fill, head=head), compression)
    return Layer(diff_id, blob, MEDIA_TYPES[compression])


def have_gnu_tar() -> bool:
    tar = shutil.which("tar")
    if tar is None:
        return False
    return "GNU tar" in subprocess.run([tar, "--version"], capture_output=True, text=True).stdout


def sparse_tar(workdir: Path, size: int, blocks: Sequence[tuple[int, bytes]], *, name: str = "sparse",
               fmt: str = "gnu") -> bytes:
    """A tar (``fmt``: ``gnu`` for old GNU 'S' members, or ``0.0``, ``0.1``, ``1.0`` for the PAX
    sparse versions) of one file of apparent ``size`` holding only ``blocks`` (offset, data):
    the file is made sparse in ``workdir`` (holes take no disk) and archived by GNU tar."""
    workdir.mkdir(parents=True, exist_ok=True)
    path = workdir / name
    with open(path, "wb") as f:
        f.truncate(size)
        for offset, data in blocks:
            f.seek(offset)
            f.write(data)
    args = ["--format=gnu"] if fmt == "gnu" else ["--format=posix", f"--sparse-version={fmt}"]
    out = subprocess.run(["tar", "--sparse", *args, "--owner=0", "--group=0", "--numeric-owner",
                          f"--mtime=@{FIXED_MTIME}", "-C", str(workdir), "-cf", "-", name],
                         capture_output=True, check=True).stdout
    path.unlink()
    return out
