"""Blobs: digests, verified staging, commit into place."""

from __future__ import annotations

import io
import os
from pathlib import Path

import pytest
from tests.support.images import sha256

from pyrkt.errors import ImageError, IntegrityError, NotFound
from pyrkt.store.blobs import BlobStore
from pyrkt.store.digests import digest_hex, parse_digest, short_id

HEX = "0123456789abcdef" * 4


def test_digest_parsing() -> None:
    assert parse_digest(f"sha256:{HEX}") == ("sha256", HEX)
    assert digest_hex(f"sha256:{HEX}") == HEX
    for bad in ("sha256:xyz", f"sha256:{HEX[:-1]}", f"md5:{HEX}", HEX, f"SHA256:{HEX}"):
        with pytest.raises(ImageError, match="invalid digest"):
            parse_digest(bad)


def test_short_ids_keep_twelve_hex_digits() -> None:
    assert short_id(f"sha256:{HEX}") == "sha256:0123456789ab"
    assert short_id("sha512-" + HEX * 2) == "sha512-0123456789ab"


def test_staged_blob_is_verified_then_committed(tmp_path: Path) -> None:
    blobs = BlobStore(tmp_path / "blobs")
    digest, size, staged = blobs.stage(io.BytesIO(b"data"), tmp_path, expected=sha256(b"data"), size=4)
    assert (digest, size) == (sha256(b"data"), 4) and not blobs.has(digest)
    blobs.commit(digest, staged)
    assert blobs.read(digest) == b"data" and not staged.exists()


def test_digest_mismatch_leaves_no_file(tmp_path: Path) -> None:
    blobs = BlobStore(tmp_path / "blobs")
    (tmp_path / "tmp").mkdir()
    with pytest.raises(IntegrityError, match=r"digest mismatch: expected sha256:.*, got sha256:"):
        blobs.stage(io.BytesIO(b"evil"), tmp_path / "tmp", expected=sha256(b"good"), what="layer x")
    assert os.listdir(tmp_path / "tmp") == []


def test_size_mismatch_is_refused(tmp_path: Path) -> None:
    blobs = BlobStore(tmp_path / "blobs")
    with pytest.raises(IntegrityError, match="size mismatch"):
        blobs.stage(io.BytesIO(b"abc"), tmp_path, expected=sha256(b"abc"), size=4)
    with pytest.raises(IntegrityError, match="more than the 2 bytes"):
        blobs.stage(io.BytesIO(b"abc"), tmp_path, expected=sha256(b"abc"), size=2)


def test_missing_blob_is_not_found(tmp_path: Path) -> None:
    with pytest.raises(NotFound, match="not found in the store"):
        BlobStore(tmp_path).read(sha256(b"nothing"))
