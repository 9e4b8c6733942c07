"""Writing a merged tree out (``pyrkt export``) without root: the ACI's members and the OCI
archive's blobs, digests and config, with an overlay upper dir merged on top."""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import os
import tarfile
from pathlib import Path

import pytest

from pyrkt.model.image import AppSpec, Image
from pyrkt.store.export import write_aci_tar, write_atomically, write_tree_oci_archive

IMAGE = Image("sha256:" + "0" * 64, "example.com/app", labels=(("version", "1.0"), ("os", "linux")),
              app=AppSpec(exec=("/bin/app",)))


@pytest.fixture
def tree(tmp_path: Path) -> tuple[Path, Path]:
    lower, upper = tmp_path / "lower", tmp_path / "upper"
    (lower / "srv").mkdir(parents=True)
    (lower / "srv" / "a").write_text("old")
    (lower / "srv" / "b").write_text("kept")
    (upper / "srv").mkdir(parents=True)
    (upper / "srv" / "a").write_text("new")
    (upper / "srv" / "c").write_text("added")
    os.link(upper / "srv" / "c", upper / "srv" / "c2")
    os.symlink("c", upper / "srv" / "link")
    os.mkfifo(upper / "srv" / "fifo")
    return lower, upper


def test_aci_holds_the_manifest_then_the_merged_tree(tree: tuple[Path, Path], tmp_path: Path) -> None:
    lower, upper = tree
    out = tmp_path / "app.aci"
    heard: list[str] = []
    write_atomically(out, lambda f: write_aci_tar(f, IMAGE, [lower], upper=upper, note=heard.append))
    with tarfile.open(out) as tf:
        names = tf.getnames()
        assert names[0] == "manifest"
        assert json.loads(tf.extractfile("manifest").read())["name"] == "example.com/app"  # type: ignore[union-attr]
        assert tf.extractfile("rootfs/srv/a").read() == b"new"  # type: ignore[union-attr]
        assert tf.extractfile("rootfs/srv/b").read() == b"kept"  # type: ignore[union-attr]
        assert tf.getmember("rootfs/srv/c2").islnk() and tf.getmember("rootfs/srv/c2").linkname == "rootfs/srv/c"
        assert tf.getmember("rootfs/srv/link").issym() and tf.getmember("rootfs/srv/fifo").isfifo()
    assert heard == []  # nothing special


def test_oci_archive_is_one_layer_whose_digests_and_config_agree(tree: tuple[Path, Path], tmp_path: Path) -> None:
    lower, upper = tree
    out = tmp_path / "app.tar"
    write_tree_oci_archive(out, [lower], upper=upper, version="1.0",
                           config=lambda diff_id: {"os": "linux", "rootfs": {"type": "layers", "diff_ids": [diff_id]}})
    assert sorted(os.listdir(tmp_path)) == ["app.tar", "lower", "upper"]  # the blobs' temp dir is gone
    with tarfile.open(out) as tf:
        def blob(digest: str) -> bytes:
            data = tf.extractfile(f"blobs/sha256/{digest.split(':')[1]}").read()  # type: ignore[union-attr]
            assert "sha256:" + hashlib.sha256(data).hexdigest() == digest
            return data

        index = json.loads(tf.extractfile("index.json").read())  # type: ignore[union-attr]
        desc = index["manifests"][0]
        assert desc["annotations"] == {"org.opencontainers.image.ref.name": "1.0"}
        manifest = json.loads(blob(desc["digest"]))
        config = json.loads(blob(manifest["config"]["digest"]))
        (layer,) = manifest["layers"]
        assert layer["mediaType"] == "application/vnd.oci.image.layer.v1.tar+gzip"
        plain = gzip.decompress(blob(layer["digest"]))
        assert config["rootfs"]["diff_ids"] == ["sha256:" + hashlib.sha256(plain).hexdigest()]
    with tarfile.open(fileobj=io.BytesIO(plain)) as layer_tar:
        assert layer_tar.getnames()[0] == "."
        assert layer_tar.extractfile("srv/a").read() == b"new"  # type: ignore[union-attr]
        assert "srv/c2" in layer_tar.getnames()


def test_a_failed_oci_archive_leaves_nothing(tree: tuple[Path, Path], tmp_path: Path) -> None:
    lower, upper = tree

    def broken(diff_id: str) -> dict[str, object]:
        raise RuntimeError("no config")

    with pytest.raises(RuntimeError):
        write_tree_oci_archive(tmp_path / "app.tar", [lower], upper=upper, config=broken)
    assert sorted(os.listdir(tmp_path)) == ["lower", "upper"]
