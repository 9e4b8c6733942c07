"""Importing oci:, oci-archive: and docker-archive: images built from busybox into a temp store."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest
from tests.support.images import (
    build_docker_archive,
    build_oci_archive,
    build_oci_layout,
    image_id_of,
)
from tests.support.stores import assert_store_empty
from tests.unit.fetch.test_registry_platform import platform_image_id

from pyrkt.config import Config
from pyrkt.errors import ImageError, IntegrityError, NotFound
from pyrkt.fetch import fetch
from pyrkt.fetch.convert import appc_arch
from pyrkt.fetch.manifests import host_platform
from pyrkt.stage0.images import resolve_image
from pyrkt.store import Store

OTHER_ARCH = "s390x" if host_platform().architecture != "s390x" else "amd64"


def test_oci_layout_imports_with_its_dir_name_and_tag(store: Store, tmp_path: Path) -> None:
    layout = build_oci_layout(tmp_path / "busybox-oci", tag="1.0", cmd=("sh", "-c", "echo hi"), user="app",
                              exposed_ports=("80/tcp",))
    image = fetch(store, f"oci:{layout}:1.0")
    assert image.id == image_id_of(layout, "1.0")
    assert image.display_name == "busybox-oci:1.0"
    assert image.app is not None and image.app.exec == ("sh", "-c", "echo hi")
    assert (image.app.user, image.app.group) == ("app", "app")
    assert [p.name for p in image.app.ports] == ["80-tcp"]
    [layer] = store.layer_dirs(store.resolve("busybox-oci:1.0"))
    assert (layer / "bin" / "busybox").is_file() and os.readlink(layer / "bin" / "sh") == "busybox"
    record = store.record(image.id)
    assert record.source == f"oci:{layout}:1.0" and record.size > 0


def test_containerd_name_annotation_names_the_image(store: Store, tmp_path: Path) -> None:
    layout = build_oci_layout(tmp_path / "x", tag="3.1", name="example.com/tools/busybox")
    assert fetch(store, f"oci:{layout}").display_name == "example.com/tools/busybox:3.1"


def test_layout_with_several_tags_needs_one(store: Store, tmp_path: Path) -> None:
    layout = build_oci_layout(tmp_path / "multi", tag="a", cmd=("true",))
    build_oci_layout(layout, tag="b", cmd=("false",))
    with pytest.raises(ImageError, match=r"holds 2 images; name one with :TAG \(tags: a, b\)"):
        fetch(store, f"oci:{layout}")
    with pytest.raises(NotFound, match="no image tagged 'c'"):
        fetch(store, f"oci:{layout}:c")
    image = fetch(store, f"oci:{layout}:b")
    assert image.app is not None and image.app.exec == ("false",)


def test_nested_index_picks_the_host_platform(store: Store, tmp_path: Path) -> None:
    host = host_platform()
    other = "linux/s390x" if host.architecture != "s390x" else "linux/amd64"
    layout = build_oci_layout(tmp_path / "multiarch", platforms=(other, f"linux/{host.architecture}"))
    image = fetch(store, f"oci:{layout}")
    assert image.label("arch") == appc_arch(host.architecture, host.variant)
    assert image.id == image_id_of(layout)


@pytest.mark.parametrize("kind", ["oci", "oci-archive"])
def test_platform_chooses_from_a_local_index_as_from_a_registrys(store: Store, tmp_path: Path, kind: str) -> None:
    host, other = f"linux/{host_platform().architecture}", f"linux/{OTHER_ARCH}"
    layout = build_oci_layout(tmp_path / "layout", platforms=(host, other))
    src = layout if kind == "oci" else build_oci_archive(tmp_path / "multi.tar", platforms=(host, other))
    assert fetch(store, f"{kind}:{src}", platform=other).id == platform_image_id(layout, other) != image_id_of(layout)
    assert fetch(store, f"{kind}:{src}", platform=host).id == image_id_of(layout)
    with pytest.raises(ImageError, match=rf"^{kind}:{src}: manifest sha256:[0-9a-f]{{64}} has no image for "
                                         rf"linux/riscv64 \(it has: {', '.join(sorted((host, other)))}\)$"):
        fetch(store, f"{kind}:{src}", platform="linux/riscv64")


@pytest.mark.parametrize("kind", ["oci", "oci-archive", "docker-archive"])
def test_a_local_single_image_for_another_platform_is_refused_when_one_is_asked_for(
        store: Store, tmp_path: Path, kind: str) -> None:
    build = {"oci": build_oci_layout, "oci-archive": build_oci_archive, "docker-archive": build_docker_archive}[kind]
    src = build(tmp_path / "single", arch=OTHER_ARCH)
    host = f"linux/{host_platform().architecture}"
    with pytest.raises(ImageError, match=rf"^{kind}:{src}: (manifest sha256:[0-9a-f]{{64}}|config [0-9a-f]{{64}}\.json) "
                                         rf"is an image for linux/{OTHER_ARCH}, not for {host} "
                                         r"\(it has no index to choose from\)$"):
        fetch(store, f"{kind}:{src}", platform=host)
    assert_store_empty(store)
    assert fetch(store, f"{kind}:{src}", platform=f"linux/{OTHER_ARCH}").id == image_id_of(src)
    assert fetch(store, f"{kind}:{src}").id == image_id_of(src)  # no --platform: taken as it is, as from a registry


def test_oci_archive_imports_the_same_image_as_the_layout(store: Store, tmp_path: Path) -> None:
    archive = build_oci_archive(tmp_path / "bb.tar", tag="7", compression="zstd")
    image = fetch(store, f"oci-archive:{archive}")
    assert image.id == image_id_of(archive) and image.display_name == "bb:7"
    assert (store.layer_dirs(image)[0] / "etc" / "passwd").read_text().startswith("root:x:0:0:")


def test_docker_archive_is_named_by_its_repo_tag(store: Store, tmp_path: Path) -> None:
    archive = build_docker_archive(tmp_path / "save.tar", repo_tag="example/busybox:1.36", workdir="/tmp")
    image = fetch(store, f"docker-archive:{archive}")
    assert image.display_name == "example/busybox:1.36" and image.format == "docker"
    assert image.app is not None and image.app.working_directory == "/tmp"
    manifest = json.loads(store.manifest(image.id))
    assert manifest["config"]["digest"] == image.id
    assert manifest["mediaType"] == "application/vnd.docker.distribution.manifest.v2+json"


def test_docker_archive_with_several_images_is_picked_by_name(store: Store, tmp_path: Path) -> None:
    archive = build_docker_archive(tmp_path / "two.tar", repo_tag="example/a:1", cmd=("true",),
                                   more_images=[("example/b:2", {"cmd": ("false",)})])
    with pytest.raises(ImageError, match="holds 2 images; name one with :NAME:TAG"):
        fetch(store, f"docker-archive:{archive}")
    image = fetch(store, f"docker-archive:{archive}:example/b:2")
    assert image.display_name == "example/b:2" and image.app is not None and image.app.exec == ("false",)
    with pytest.raises(NotFound, match="no image tagged 'example/c'"):
        fetch(store, f"docker-archive:{archive}:example/c")


def test_untagged_docker_archive_is_named_after_the_file(store: Store, tmp_path: Path) -> None:
    archive = build_docker_archive(tmp_path / "anon.tar", repo_tag=None)
    assert fetch(store, f"docker-archive:{archive}").display_name == "anon:latest"


def test_corrupt_layer_blob_is_refused_and_the_store_stays_empty(store: Store, tmp_path: Path) -> None:
    layout = build_oci_layout(tmp_path / "corrupt")
    index = json.loads((layout / "index.json").read_bytes())
    manifest = json.loads((layout / "blobs" / "sha256" / index["manifests"][0]["digest"].split(":")[1]).read_bytes())
    blob = layout / "blobs" / "sha256" / manifest["layers"][0]["digest"].split(":")[1]
    data = bytearray(blob.read_bytes())
    data[100] ^= 0xFF
    blob.write_bytes(bytes(data))
    with pytest.raises(IntegrityError, match="digest mismatch"):
        fetch(store, f"oci:{layout}")
    assert_store_empty(store)


def test_missing_blob_is_not_found_and_the_store_stays_empty(store: Store, tmp_path: Path) -> None:
    layout = build_oci_layout(tmp_path / "missing")
    config_digest = image_id_of(layout)
    (layout / "blobs" / "sha256" / config_digest.split(":")[1]).unlink()
    with pytest.raises(NotFound, match=f"blobs/sha256/{config_digest.split(':')[1]} is missing"):
        fetch(store, f"oci:{layout}")
    assert_store_empty(store)


def test_docker_archive_layer_not_matching_its_diff_id_is_refused(store: Store, tmp_path: Path) -> None:
    import tarfile

    good = build_docker_archive(tmp_path / "good.tar")
    bad = tmp_path / "bad.tar"
    with tarfile.open(good) as src, tarfile.open(bad, "w") as dst:
        for m in src.getmembers():
            f = src.extractfile(m) if m.isfile() else None
            data = f.read() if f else b""
            if m.name.endswith("layer.tar"):
                data = data[:-1024] + b"\x01" + data[-1023:]  # still a tar, different bytes
            import io

            dst.addfile(m, io.BytesIO(data) if f else None)
    with pytest.raises(IntegrityError, match="digest mismatch"):
        fetch(store, f"docker-archive:{bad}")
    assert_store_empty(store)


def test_not_a_layout_and_missing_paths(store: Store, tmp_path: Path) -> None:
    (tmp_path / "plain").mkdir()
    with pytest.raises(ImageError, match="not an OCI image layout"):
        fetch(store, f"oci:{tmp_path / 'plain'}")
    with pytest.raises(NotFound, match="not found"):
        fetch(store, f"oci:{tmp_path / 'nope'}")
    with pytest.raises(NotFound, match="not found"):
        fetch(store, f"docker-archive:{tmp_path / 'nope.tar'}")
    (tmp_path / "junk.tar").write_bytes(b"not a tar at all" * 100)
    with pytest.raises(ImageError, match="not a readable tar archive"):
        fetch(store, f"oci-archive:{tmp_path / 'junk.tar'}")
    (tmp_path / "bad-json").mkdir()
    (tmp_path / "bad-json" / "oci-layout").write_text('{"imageLayoutVersion": "1.0.0"}')
    (tmp_path / "bad-json" / "index.json").write_text("{")
    with pytest.raises(ImageError, match="index.json is not valid JSON"):
        fetch(store, f"oci:{tmp_path / 'bad-json'}")
    assert_store_empty(store)


def test_reimporting_a_stored_image_reads_no_blob_again(store: Store, tmp_path: Path) -> None:
    layout = build_oci_layout(tmp_path / "again")
    first = fetch(store, f"oci:{layout}")
    for p in (layout / "blobs" / "sha256").iterdir():
        if p.stat().st_size > 10000:  # the layer blob: gone from the source, still in the store
            p.unlink()
    assert fetch(store, f"oci:{layout}").id == first.id


def test_resolve_image_imports_local_sources_whatever_the_policy(store: Store, tmp_path: Path) -> None:
    config = Config(data_dir=tmp_path / "data")
    layout = build_oci_layout(tmp_path / "pol")
    image = resolve_image(config, store, f"oci:{layout}", pull_policy="never")
    assert resolve_image(config, store, "pol", pull_policy="never").id == image.id
    with pytest.raises(NotFound, match="not found in the store"):
        resolve_image(config, store, "other", pull_policy="never")
    with pytest.raises(NotFound, match='"other" not found in the store'):
        resolve_image(config, store, "other", pull_policy="new")
    shutil.rmtree(layout)


@pytest.mark.parametrize("kind", ["oci", "oci-archive"])
def test_a_digest_chooses_the_layouts_manifest(store: Store, tmp_path: Path, kind: str) -> None:
    layout = build_oci_layout(tmp_path / "multi", tag="a", cmd=("true",))
    build_oci_layout(layout, tag="b", cmd=("false",))
    src = layout
    if kind == "oci-archive":
        import tarfile

        src = tmp_path / "multi.tar"
        with tarfile.open(src, "w") as tar:
            for p in sorted(layout.rglob("*")):
                tar.add(p, str(p.relative_to(layout)), recursive=False)
    digests = [m["digest"] for m in json.loads((layout / "index.json").read_text())["manifests"]]
    image = fetch(store, f"{kind}:{src}@{digests[1]}")
    assert image.id == image_id_of(layout, "b") and image.display_name == f"{src.name.removesuffix('.tar')}:b"
    missing = "sha256:" + "0" * 64
    with pytest.raises(NotFound, match=f"no image with digest '{missing}'"):
        fetch(store, f"{kind}:{src}@{missing}")


@pytest.mark.parametrize("kind", ["oci", "oci-archive", "docker-archive"])
@pytest.mark.parametrize("image, field", [
    ({"user": 5}, "config.User is a number (5), want a string"),
    ({"env": ["PATH=/bin", 7]}, "config.Env is an array whose item 1 is a number (7), want an array of strings"),
    ({"cmd": ["sh", 1]}, "config.Cmd is an array whose item 1 is a number (1), want an array of strings"),
    ({"workdir": ["/srv"]}, "config.WorkingDir is an array, want a string"),
    ({"labels": {"a": 1}}, "config.Labels is an object whose 'a' is a number (1), want an object of strings"),
])
def test_a_config_field_of_the_wrong_type_is_refused_and_nothing_stored(store: Store, tmp_path: Path, kind: str,
                                                                        image: dict[str, object], field: str) -> None:
    build = {"oci": build_oci_layout, "oci-archive": build_oci_archive, "docker-archive": build_docker_archive}[kind]
    src = build(tmp_path / "typed", **image)
    with pytest.raises(ImageError, match=rf"^{kind}:{src}: config [^ ]+: ") as e:
        fetch(store, f"{kind}:{src}")
    assert str(e.value).endswith(": " + field) and "\n" not in str(e.value)
    assert_store_empty(store)
