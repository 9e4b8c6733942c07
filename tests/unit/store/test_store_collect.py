"""Removing images while pods use their layers, `image gc`'s collect, and verify with repair."""

from __future__ import annotations

import os
import time
from pathlib import Path

from tests.unit.store.test_store_index import add_image

from pyrkt.store import InUse, Store
from pyrkt.store.verify import verify_image


def test_remove_keeps_layer_dirs_a_pod_uses_until_collect_finds_them_unused(tmp_path: Path) -> None:
    store = Store.open(tmp_path / "store")
    image = add_image(store, files=[{"a": b"1"}, {"b": b"2"}])
    dirs = store.layer_dirs(image)
    store.remove(image.id, in_use=lambda: InUse(images=frozenset({image.id}), layers=frozenset({image.layers[0]})))
    assert dirs[0].is_dir() and not dirs[1].exists()
    assert store.list() == []
    store.collect(unused_since_ns=0, in_use=lambda: InUse(layers=frozenset({image.layers[0]})))
    assert dirs[0].is_dir()
    store.collect(unused_since_ns=0)
    assert not dirs[0].exists()
    assert list(store.blobs.walk()) == []


def test_collect_removes_only_images_unused_since_the_cutoff_that_no_pod_uses(tmp_path: Path) -> None:
    store = Store.open(tmp_path / "store")
    old = add_image(store, name="old", files=[{"o": b"o"}])
    used = add_image(store, name="used", files=[{"u": b"u"}])
    recent = add_image(store, name="recent", files=[{"r": b"r"}])
    an_hour_ago = time.time_ns() - 3600 * 10**9
    for img in (old, used):
        store.index.touch(img.id, an_hour_ago - 10**9)
    done = store.collect(unused_since_ns=an_hour_ago, in_use=lambda: InUse(images=frozenset({used.id})))
    assert [r.id for r in done.removed] == [old.id]
    assert [r.id for r in done.kept_in_use] == [used.id]
    assert {r.name for r in store.list()} == {"used", "recent"}
    assert (done.layers, done.blobs) == (1, 3)
    assert store.layer_dirs(recent)[0].is_dir()


def test_verify_repairs_a_layer_dir_missing_a_file_and_reports_a_corrupt_blob(tmp_path: Path) -> None:
    store = Store.open(tmp_path / "store")
    image = add_image(store, files=[{"etc/conf": b"x" * 100}, {"top": b"t"}])
    assert verify_image(store, image.id).ok
    bottom, top = store.layer_dirs(image)
    os.unlink(bottom / "etc" / "conf")
    top_blob = store.index.layers(image.id)[1].blob_digest
    with open(store.blobs.path(top_blob), "ab") as f:
        f.write(b"junk")
    result = verify_image(store, image.id)
    assert not result.ok
    assert any(f"layer {image.layers[0]} is damaged: /etc/conf is missing" == d for d in result.damage)
    assert any(d.startswith(f"layer blob {top_blob} is corrupt") for d in result.damage)
    assert result.repaired == (f"layer {image.layers[0]} repaired from its blob "
                               f"{store.index.layers(image.id)[0].blob_digest}",)
    assert (bottom / "etc" / "conf").read_bytes() == b"x" * 100
    assert os.listdir(store.tmp) == []


def test_verify_leaves_a_damaged_layer_a_pod_uses_as_it_is(tmp_path: Path) -> None:
    store = Store.open(tmp_path / "store")
    image = add_image(store, files=[{"f": b"1"}])
    (store.layer_dirs(image)[0] / "f").write_bytes(b"2")
    result = verify_image(store, image.id, in_use_layers=frozenset(image.layers))
    assert result.damage == (f"layer {image.layers[0]} is damaged: /f differs (mtime, content) "
                             "(not repaired: a pod uses it)",)
    assert result.repaired == ()
