"""Content-addressed blobs: ``blobs/sha256/<hex>``, written once, never changed.

``ingest`` copies a stream into a temp file while hashing it, checks the digest (and the size
when known), fsyncs and only then renames the file into place, so a blob path that exists always
holds exactly the bytes its name promises. Staging happens in a caller-given temp dir on the same
filesystem (an import session's), which lets an import verify everything before committing.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO

from pyrkt.errors import IntegrityError, NotFound
from pyrkt.store.digests import HashingReader, check_digest, digest_hex

CHUNK = 1 << 20


class BlobStore:
    def __init__(self, root: Path) -> None:
        self.root = root  # <store>/blobs

    def path(self, digest: str) -> Path:
        return self.root / "sha256" / digest_hex(digest)

    def has(self, digest: str) -> bool:
        return self.path(digest).is_file()

    def open(self, digest: str) -> IO[bytes]:
        try:
            return open(self.path(digest), "rb")
        except FileNotFoundError:
            raise NotFound(f"blob {digest} not found in the store") from None

    def read(self, digest: str) -> bytes:
        with self.open(digest) as f:
            return f.read()

    def size(self, digest: str) -> int:
        return self.path(digest).stat().st_size

    def stage(self, stream: IO[bytes], tmp_dir: Path, *, expected: str | None, size: int | None = None,
              what: str = "blob", charge: Callable[[int, str], None] | None = None) -> tuple[str, int, Path]:
        """Copy ``stream`` into ``tmp_dir`` verifying it; returns (digest, size, staged path).
        ``charge(n, what)`` is told of each chunk before it is written (an import's budget).

        ``expected`` None means "whatever it hashes to" (a file named by its content, e.g. a
        ``docker save`` config). A mismatch raises IntegrityError and leaves nothing behind.
        """
        reader = HashingReader(stream)
        fd, name = _mkstemp(tmp_dir, "blob-")
        try:
            with os.fdopen(fd, "wb") as out:
                while True:
                    chunk = reader.read(CHUNK)
                    if not chunk:
                        break
                    if charge is not None:
                        charge(len(chunk), what)
                    out.write(chunk)
                    if size is not None and reader.count > size:
                        raise IntegrityError(f"{what}: more than the {size} bytes its descriptor declares")
                out.flush()
                os.fsync(out.fileno())
            if expected is not None:
                check_digest(what, expected, reader.digest)
            if size is not None and reader.count != size:
                raise IntegrityError(f"{what}: size mismatch: expected {size} bytes, got {reader.count}")
        except BaseException:
            _unlink(name)
            raise
        final = tmp_dir / ("blob-" + digest_hex(reader.digest))
        os.rename(name, final)
        return reader.digest, reader.count, final

    def commit(self, digest: str, staged: Path) -> None:
        """Move a verified staged file into place (a no-op when the blob is already there)."""
        dest = self.path(digest)
        if dest.exists():
            _unlink(str(staged))
            return
        dest.parent.mkdir(parents=True, exist_ok=True)
        os.chmod(staged, 0o644)
        os.rename(staged, dest)
        _fsync_dir(dest.parent)

    def delete(self, digest: str) -> None:
        _unlink(str(self.path(digest)))

    def walk(self) -> Iterator[str]:
        d = self.root / "sha256"
        try:
            names = os.listdir(d)
        except FileNotFoundError:
            return
        for name in names:
            if len(name) == 64:
                yield "sha256:" + name


def _mkstemp(tmp_dir: Path, prefix: str) -> tuple[int, str]:
    import tempfile

    return tempfile.mkstemp(prefix=prefix, suffix=".part", dir=tmp_dir)


def _unlink(path: str) -> None:
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
