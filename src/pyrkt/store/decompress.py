"""Layer blob decompression: the tar stream inside a blob, gzip, zstd, xz, bzip2 or plain.

``open_decompressed`` tells the format by magic bytes, reading a pipe without seeking; gzip is
inflated by ``GzipStream`` in large steps rather than by the gzip module's small reads.
"""

from __future__ import annotations

from typing import IO, cast


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
