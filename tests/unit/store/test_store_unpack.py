"""Unpacking one layer tar into a dir: what is kept, and what is refused (no root needed)."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest
from tests.support.images import Entry, compress, layer_tar, sha256

from pyrkt.errors import ImageError, IntegrityError
from pyrkt.store.layers import file_tree_size, unpack

BLOB = "sha256:" + "cd" * 32


def unpack_entries(tmp_path: Path, entries: list[tuple[str, Entry]], *, compression: str = "gzip",
                   diff_id: str | None = None) -> Path:
    tar = layer_tar(entries)
    blob = tmp_path / "blob"
    blob.write_bytes(compress(tar, compression))
    dest = tmp_path / "layer"
    dest.mkdir()
    unpack(blob, dest, diff_id=diff_id or sha256(tar), layer=BLOB, privileged=False)
    return dest


def test_files_dirs_and_links_keep_content_modes_and_times(tmp_path: Path) -> None:
    d = unpack_entries(tmp_path, [
        ("bin", Entry.dir(0o711, mtime=1000)),
        ("bin/tool", Entry.file(b"#!/bin/sh\n", 0o4755, mtime=2000)),
        ("bin/alias", Entry.symlink("tool")),
        ("bin/hard", Entry.hardlink("bin/tool")),
        ("ro", Entry.dir(0o555)),
        ("ro/inside", Entry.file(b"x", 0o600)),
    ])
    tool = os.lstat(d / "bin/tool")
    assert (d / "bin/tool").read_bytes() == b"#!/bin/sh\n"
    assert stat.S_IMODE(tool.st_mode) == 0o4755 and tool.st_mtime == 2000
    assert stat.S_IMODE(os.lstat(d / "bin").st_mode) == 0o711 and os.lstat(d / "bin").st_mtime == 1000
    assert os.readlink(d / "bin/alias") == "tool"
    assert os.lstat(d / "bin/hard").st_ino == tool.st_ino
    assert (d / "ro/inside").read_bytes() == b"x" and stat.S_IMODE(os.lstat(d / "ro").st_mode) == 0o555
    assert stat.S_IMODE(os.lstat(d).st_mode) == 0o755


def test_parents_missing_from_the_tar_are_made(tmp_path: Path) -> None:
    d = unpack_entries(tmp_path, [("a/b/c", Entry.file(b"deep"))])
    assert (d / "a/b/c").read_bytes() == b"deep"


def test_later_member_replaces_earlier_one(tmp_path: Path) -> None:
    d = unpack_entries(tmp_path, [("x", Entry.dir()), ("x/y", Entry.file(b"1")), ("x", Entry.file(b"file now"))])
    assert (d / "x").read_bytes() == b"file now"


def test_writing_through_a_symlink_inside_the_layer_lands_inside(tmp_path: Path) -> None:
    d = unpack_entries(tmp_path, [("usr/lib", Entry.dir()), ("lib", Entry.symlink("usr/lib")),
                                  ("lib/libc.so", Entry.file(b"elf"))])
    assert (d / "usr/lib/libc.so").read_bytes() == b"elf"
    assert os.path.islink(d / "lib")


@pytest.mark.parametrize("target", ["/etc", "../../..", "a/../../outside"])
def test_writing_through_a_symlink_that_leaves_the_layer_is_refused(tmp_path: Path, target: str) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    with pytest.raises(ImageError) as err:
        unpack_entries(tmp_path, [("a", Entry.dir()), ("evil", Entry.symlink(target)),
                                  ("evil/passwd", Entry.file(b"owned"))])
    assert BLOB in str(err.value) and "evil/passwd" in str(err.value)
    assert not any(outside.iterdir())


def test_hardlink_to_a_path_not_in_the_layer_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ImageError, match="not in the layer"):
        unpack_entries(tmp_path, [("link", Entry.hardlink("etc/shadow"))])


def test_hardlink_through_an_escaping_symlink_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ImageError, match="outside the layer"):
        unpack_entries(tmp_path, [("etc", Entry.symlink("/etc")), ("link", Entry.hardlink("etc/passwd"))])


def test_uncompressed_and_zstd_layers_unpack(tmp_path: Path) -> None:
    for i, compression in enumerate(("none", "zstd")):
        sub = tmp_path / str(i)
        sub.mkdir()
        d = unpack_entries(sub, [("f", Entry.file(compression.encode()))], compression=compression)
        assert (d / "f").read_bytes() == compression.encode()


def test_diff_id_mismatch_is_an_integrity_error(tmp_path: Path) -> None:
    with pytest.raises(IntegrityError, match="digest mismatch"):
        unpack_entries(tmp_path, [("f", Entry.file(b"x"))], diff_id="sha256:" + "0" * 64)


def test_corrupt_gzip_stream_is_refused(tmp_path: Path) -> None:
    blob = tmp_path / "blob"
    good = compress(layer_tar([("f", Entry.file(b"x" * 5000))]), "gzip")
    blob.write_bytes(good[: len(good) // 2])
    (tmp_path / "l").mkdir()
    with pytest.raises(ImageError, match=f"layer {BLOB}: corrupt"):
        unpack(blob, tmp_path / "l", diff_id="sha256:" + "0" * 64, layer=BLOB, privileged=False)


def test_whiteouts_need_root_when_unprivileged(tmp_path: Path) -> None:
    with pytest.raises(ImageError, match="whiteout, which only root can unpack"):
        unpack_entries(tmp_path, [("etc/.wh.motd", Entry.file(b""))])


def test_device_nodes_are_skipped_when_unprivileged(tmp_path: Path) -> None:
    d = unpack_entries(tmp_path, [("dev", Entry.dir()), ("dev/null", Entry.char(1, 3))])
    assert not (d / "dev/null").exists()


def test_user_xattrs_are_kept_and_overlay_ones_dropped(tmp_path: Path) -> None:
    d = unpack_entries(tmp_path, [("f", Entry.file(b"x", xattrs={"user.note": "kept",
                                                                 "trusted.overlay.opaque": "y"}))])
    try:
        assert os.getxattr(d / "f", "user.note") == b"kept"
    except OSError:
        pytest.skip("this filesystem has no user xattrs")
    assert "trusted.overlay.opaque" not in os.listxattr(d / "f")


def test_tree_size_counts_hardlinked_bytes_once(tmp_path: Path) -> None:
    d = unpack_entries(tmp_path, [("a", Entry.file(b"12345")), ("b", Entry.hardlink("a"))])
    assert file_tree_size(d) == 5


def test_parent_dirs_the_tar_omits_keep_the_lower_layers_attributes(tmp_path: Path) -> None:
    (tmp_path / "lower").mkdir()
    lower = unpack_entries(tmp_path / "lower", [("tmp", Entry.dir(0o1777, mtime=1234))])
    tar = layer_tar([("tmp/new", Entry.file(b"x")), ("srv/new", Entry.file(b"y"))])
    blob = tmp_path / "upper.tar"
    blob.write_bytes(tar)
    upper = tmp_path / "upper"
    upper.mkdir()
    unpack(blob, upper, diff_id=sha256(tar), layer=BLOB, privileged=False, lowers=[lower])
    st = os.lstat(upper / "tmp")
    assert stat.S_IMODE(st.st_mode) == 0o1777 and st.st_mtime == 1234
    assert stat.S_IMODE(os.lstat(upper / "srv").st_mode) == 0o755
