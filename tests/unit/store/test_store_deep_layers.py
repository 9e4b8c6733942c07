"""A layer of 1500 nested dirs: unpacked in linear time, then listed, merged, compared, rendered,
sized and removed without recursion (no root needed)."""

from __future__ import annotations

import io
import os
import sys
import tarfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from tests.support.images import Entry, layer_tar, sha256

from pyrkt.kernel.trees import remove_tree
from pyrkt.store.layers import file_tree_size, unpack
from pyrkt.store.render import render_tar, render_tree
from pyrkt.store.squash import entries, list_layer
from pyrkt.store.verify import first_difference, tree_facts

BLOB = "sha256:" + "de" * 32
DEPTH = 1500  # past the recursion limit; "d/" * 1500 stays below PATH_MAX


@pytest.fixture(autouse=True)
def removed_after(tmp_path: Path) -> Iterator[None]:
    """Deep trees go even when a test fails: pytest's own clean-up of tmp dirs recurses."""
    yield
    for name in os.listdir(tmp_path):
        remove_tree(tmp_path / name)


def deep_layer(depth: int, *, list_dirs: bool = True) -> bytes:
    members: list[tuple[str, Entry]] = []
    path = ""
    for _ in range(depth):
        path = f"{path}/d" if path else "d"
        if list_dirs:
            members.append((path, Entry.dir(0o750)))
    members.append((f"{path}/bottom", Entry.file(b"at the bottom\n")))
    return layer_tar(members)


def unpack_deep(tmp_path: Path, name: str, tar: bytes) -> tuple[Path, float]:
    blob = tmp_path / f"{name}.tar"
    blob.write_bytes(tar)
    dest = tmp_path / name
    dest.mkdir()
    start = time.process_time()
    unpack(blob, dest, diff_id=sha256(tar), layer=BLOB, privileged=False)
    return dest, time.process_time() - start


def test_a_1500_deep_layer_unpacks_and_every_reader_of_it_works(tmp_path: Path) -> None:
    assert DEPTH > sys.getrecursionlimit()
    tar = deep_layer(DEPTH)
    layer, cpu = unpack_deep(tmp_path, "layer", tar)
    print(f"unpacking {DEPTH} nested dirs took {cpu:.2f}s of CPU")  # 130 s before; ~1.5 s on 2 shared cores
    deep_rel = "/".join(["d"] * DEPTH) + "/bottom"
    assert (layer / deep_rel).read_bytes() == b"at the bottom\n"
    assert oct(os.lstat(layer / "d" / "d").st_mode & 0o777) == oct(0o750)

    listing = list_layer(layer)
    assert len(listing.kinds) == DEPTH + 2 and listing.kinds[deep_rel] == "other"
    merged = list(entries([layer]))
    assert [rel for rel, _, _ in merged][:3] == ["", "d", "d/d"] and merged[-1][0] == deep_rel

    again, _ = unpack_deep(tmp_path, "again", tar)
    assert first_difference(tree_facts(layer), tree_facts(again)) is None
    os.unlink(again / deep_rel)
    assert first_difference(tree_facts(layer), tree_facts(again)) == f"/{deep_rel} should not be there"

    assert file_tree_size(layer) == len(b"at the bottom\n")
    out = tmp_path / "rendered"
    out.mkdir()
    assert render_tree([layer], out) == DEPTH + 2
    assert (out / deep_rel).read_bytes() == b"at the bottom\n"
    buf = io.BytesIO()
    assert render_tar([layer], buf) == DEPTH + 2
    with tarfile.open(fileobj=io.BytesIO(buf.getvalue())) as tf:
        assert tf.extractfile(deep_rel).read() == b"at the bottom\n"  # type: ignore[union-attr]

    for tree in (layer, again, out):
        remove_tree(tree)
        assert not tree.exists()


def test_a_deep_layer_that_lists_no_dirs_unpacks_too(tmp_path: Path) -> None:
    layer, _ = unpack_deep(tmp_path, "layer", deep_layer(DEPTH, list_dirs=False))
    assert (layer / ("d/" * DEPTH + "bottom")).read_bytes() == b"at the bottom\n"
    remove_tree(layer)
