"""The store as its users see it: import, resolve, list, touch, remove, and crash leftovers."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from tests.support.images import Entry, compress, layer_tar, sha256

from pyrkt.errors import Ambiguous, ImageError, IntegrityError, NotFound, UsageError
from pyrkt.model.image import AppSpec, Image
from pyrkt.store import Store, short_id


def add_image(store: Store, *, name: str = "example.com/app", tag: str = "1.0", files: list[dict[str, bytes]] | None = None,
              salt: str = "") -> Image:
    """Import a tiny image (one layer per dict in ``files``) straight through an ImportSession."""
    layers = files if files is not None else [{"hello": b"world"}]
    with store.begin_import(source=f"test:{name}:{tag}") as imp:
        diff_ids, descs = [], []
        for spec in layers:
            tar = layer_tar([(k, Entry.file(v)) for k, v in spec.items()])
            blob = compress(tar, "gzip")
            digest = imp.add_bytes(blob, expected=sha256(blob))
            imp.add_layer(digest, sha256(tar), "application/vnd.oci.image.layer.v1.tar+gzip")
            diff_ids.append(sha256(tar))
            descs.append({"digest": digest, "size": len(blob)})
        config = json.dumps({"salt": salt, "rootfs": {"diff_ids": diff_ids}}).encode()
        config_digest = imp.add_bytes(config)
        manifest = json.dumps({"config": config_digest, "layers": descs}).encode()
        manifest_digest = imp.add_bytes(manifest)
        image = Image(id=config_digest, name=name, labels=(("version", tag), ("os", "linux")),
                      layers=tuple(diff_ids), app=AppSpec(exec=("/hello",)))
        imp.commit(image, manifest_digest=manifest_digest, manifest_media_type="application/json",
                   config_digest=config_digest, name=name, version=tag)
    return image


@pytest.fixture
def store(tmp_path: Path) -> Store:
    s = Store.open(tmp_path / "store")
    yield s  # type: ignore[misc]
    s.close()


def test_imported_image_resolves_by_name_tag_and_id(store: Store) -> None:
    image = add_image(store)
    assert store.resolve("example.com/app:1.0") == image
    assert store.resolve(image.id) == image
    assert store.resolve(short_id(image.id)) == image
    assert store.resolve(image.id.split(":")[1][:8]).id == image.id


def test_name_without_tag_means_latest(store: Store) -> None:
    image = add_image(store, tag="latest")
    assert store.resolve("example.com/app").id == image.id
    with pytest.raises(NotFound, match='"example.com/app:2.0" not found in the store'):
        store.resolve("example.com/app:2.0")


def test_docker_hub_short_names_match_long_ones(store: Store) -> None:
    image = add_image(store, name="registry-1.docker.io/library/busybox", tag="latest")
    assert store.resolve("busybox").id == image.id


def test_id_errors_follow_rkt(store: Store) -> None:
    by_prefix: dict[str, list[Image]] = {}
    for i in range(200):  # add images until two ids share their first two hex digits
        image = add_image(store, salt=str(i))
        by_prefix.setdefault(image.id[:9], []).append(image)
        if len(by_prefix[image.id[:9]]) > 1:
            break
    with pytest.raises(Ambiguous, match="ambiguous image ID"):
        store.resolve(image.id[:9])
    with pytest.raises(UsageError, match="image ID too short"):
        store.resolve("sha256:a")
    unused = next(f"sha256:{n:02x}" for n in range(256) if f"sha256:{n:02x}" not in by_prefix)
    with pytest.raises(NotFound, match="no image IDs found"):
        store.resolve(unused)


def test_reimport_under_another_tag_keeps_the_import_time_and_adds_the_ref(store: Store) -> None:
    first = add_image(store, tag="1.0")
    before = store.record(first.id)
    again = add_image(store, tag="stable")
    assert again.id == first.id
    after = store.record(first.id)
    assert after.import_time == before.import_time and after.display_name == "example.com/app:stable"
    assert store.resolve("example.com/app:1.0").label("version") == "1.0"
    assert store.resolve("example.com/app:stable").label("version") == "stable"
    assert len(store.list()) == 1


def test_layer_dirs_are_bottom_first_and_hold_the_files(store: Store) -> None:
    image = add_image(store, files=[{"a": b"bottom"}, {"b": b"top"}])
    dirs = store.layer_dirs(image)
    assert [p.name for p in dirs] == [d.split(":")[1] for d in image.layers]
    assert (dirs[0] / "a").read_bytes() == b"bottom" and (dirs[1] / "b").read_bytes() == b"top"
    assert all(str(p).startswith(str(store.root / "layers" / "sha256")) for p in dirs)


def test_a_layer_listed_twice_appears_once_at_its_top_position(store: Store) -> None:
    image = add_image(store, files=[{"a": b"x"}, {"b": b"y"}, {"a": b"x"}])
    dirs = store.layer_dirs(image)
    assert [p.name for p in dirs] == [image.layers[1].split(":")[1], image.layers[0].split(":")[1]]


def test_missing_layer_dir_is_an_image_error(store: Store) -> None:
    image = add_image(store)
    from pyrkt.store.staging import remove_tree

    remove_tree(store.layer_dirs(image)[0])
    with pytest.raises(ImageError, match="missing from the store"):
        store.layer_dirs(image)


def test_touch_updates_last_used_to_within_a_second(store: Store) -> None:
    image = add_image(store)
    before = store.record(image.id).last_used
    store.index.touch(image.id, when_ns=before + 500_000_000)
    assert store.record(image.id).last_used == before  # that soon: nothing written (the WAL stays small)
    store.index.touch(image.id, when_ns=before + 2_000_000_000)
    assert store.record(image.id).last_used == before + 2_000_000_000
    store.index.touch(image.id, when_ns=before - 3_600_000_000_000)  # set back, as a test of image gc does
    assert store.record(image.id).last_used == before - 3_600_000_000_000


def test_remove_keeps_what_another_image_still_uses(store: Store) -> None:
    a = add_image(store, name="a", files=[{"shared": b"s"}, {"only-a": b"a"}])
    b = add_image(store, name="b", files=[{"shared": b"s"}])
    shared_dir, only_a_dir = store.layer_dirs(a)
    removed = store.remove(a.id)
    assert removed.name == "a"
    assert shared_dir.is_dir() and not only_a_dir.exists()
    assert [r.id for r in store.list()] == [b.id]
    with pytest.raises(NotFound):
        store.resolve("a:1.0")
    store.remove(b.id)
    assert list(store.blobs.walk()) == [] and store.layers.walk() == []


def test_failed_import_leaves_nothing_behind(store: Store) -> None:
    with pytest.raises(IntegrityError):
        with store.begin_import(source="test") as imp:
            blob = compress(layer_tar([("f", Entry.file(b"x"))]), "gzip")
            imp.add_bytes(blob, expected=sha256(blob))
            imp.add_bytes(b"{}", expected=sha256(b"other"))
    assert list(store.blobs.walk()) == [] and store.list() == []
    assert os.listdir(store.tmp) == []


def test_leftovers_of_a_killed_import_are_cleaned_on_open(tmp_path: Path) -> None:
    store = Store.open(tmp_path / "store")
    add_image(store)
    dead = store.tmp / "import-999999-dead"
    (dead / "layer-x" / "ro").mkdir(parents=True)
    (dead / "blob-x.part").write_bytes(b"half")
    store.close()
    Store.open(tmp_path / "store").close()
    assert not dead.exists()


def test_gc_orphans_removes_unreferenced_blobs_and_layers(store: Store) -> None:
    image = add_image(store)
    orphan = store.blobs.path(sha256(b"orphan"))
    orphan.write_bytes(b"orphan")
    orphan_layer = store.layer_path(sha256(b"layer"))
    orphan_layer.mkdir()
    assert store.gc_orphans() == (1, 1)
    assert not orphan.exists() and not orphan_layer.exists()
    assert store.layer_dirs(store.get(image.id))


def test_empty_store_lists_nothing_and_finds_nothing(tmp_path: Path) -> None:
    store = Store.open(tmp_path / "never-created")
    assert store.list() == []
    with pytest.raises(NotFound):
        store.resolve("busybox")
    assert not (tmp_path / "never-created").exists()


def test_remove_waits_for_a_holder_of_the_shared_lock(store: Store) -> None:
    import threading

    image = add_image(store)
    done = threading.Event()
    with store.shared_lock():
        t = threading.Thread(target=lambda: (Store(store.root).remove(image.id), done.set()))
        t.start()
        assert not done.wait(0.3)
        assert store.layer_dirs(image)[0].is_dir()
    t.join(10)
    assert done.is_set() and store.list() == []
