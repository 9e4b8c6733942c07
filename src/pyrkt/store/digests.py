"""Content digests: parsing ``sha256:<hex>``, hashing streams while copying, short ids.

The store is keyed by sha256 (OCI and Docker). ``sha512-<hex>`` (rkt's ACI ids) is parsed too,
so image ids of both kinds can be given as prefixes to the same lookup.
"""

from __future__ import annotations

from pyrkt.errors import ImageError, IntegrityError

TYPE_CHECKING = False
if TYPE_CHECKING:
    import hashlib
    from typing import IO

_HEX_LEN = {"sha256": 64, "sha512": 128}
HEX_DIGITS = frozenset("0123456789abcdef")
SHORT_HEX = 12


def parse_digest(text: str) -> tuple[str, str]:
    """``"sha256:<64 hex>"`` -> ("sha256", hex); anything else is an ImageError."""
    algo, _, hexpart = text.partition(":")
    if len(hexpart) != _HEX_LEN.get(algo) or not HEX_DIGITS.issuperset(hexpart):
        raise ImageError(f"invalid digest {text!r}: want sha256:<64 hex digits>")
    return algo, hexpart


def digest_hex(text: str) -> str:
    """The hex part of a sha256 digest (what names blob files and layer dirs)."""
    algo, hexpart = parse_digest(text)
    if algo != "sha256":
        raise ImageError(f"unsupported digest algorithm in {text!r}: the store keeps sha256 only")
    return hexpart


def short_id(image_id: str) -> str:
    """``sha256:`` + 12 hex, as ``fetch`` and ``image list`` print ids (``sha512-`` ids alike)."""
    for sep in (":", "-"):
        algo, found, rest = image_id.partition(sep)
        if found and algo in _HEX_LEN:
            return f"{algo}{sep}{rest[:SHORT_HEX]}"
    return image_id


def new_hasher(algo: str = "sha256") -> hashlib._Hash:
    import hashlib

    return hashlib.new(algo)


class HashingReader:
    """Wraps a binary stream; every byte read through it is hashed and counted."""

    def __init__(self, raw: IO[bytes], algo: str = "sha256") -> None:
        self.raw = raw
        self.algo = algo
        self.hasher = new_hasher(algo)
        self.count = 0

    def read(self, n: int = -1) -> bytes:
        data = self.raw.read(n)
        self.hasher.update(data)
        self.count += len(data)
        return data

    def drain(self, bufsize: int = 1 << 20) -> None:
        """Read (and hash) whatever is left, e.g. the padding after a tar's end marker."""
        while self.read(bufsize):
            pass

    @property
    def digest(self) -> str:
        return f"{self.algo}:{self.hasher.hexdigest()}"


def check_digest(what: str, expected: str, actual: str) -> None:
    if expected != actual:
        raise IntegrityError(f"{what}: digest mismatch: expected {expected}, got {actual}")
