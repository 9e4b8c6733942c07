"""Stored images as the API shows them, and rkt's image filters, over a real (temporary) store."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest
from tests.support.images import build_oci_layout

from pyrkt.api import images
from pyrkt.api.proto import v1alpha_pb2 as pb
from pyrkt.api.service import PublicAPI
from pyrkt.config import Config
from pyrkt.errors import NotFound
from pyrkt.fetch import fetch
from pyrkt.store import Store


class Aborted(Exception):
    pass


class Context:
    """What the service's calls use of a grpc.ServicerContext."""

    def abort(self, code: grpc.StatusCode, details: str) -> None:
        raise Aborted(code, details)

    def is_active(self) -> bool:
        return True


@pytest.fixture
def api(tmp_path: Path) -> Iterator[tuple[PublicAPI, Store]]:
    config = Config(data_dir=str(tmp_path / "data"))
    store = Store.open(config.store_dir)
    fetch(store, f"oci:{build_oci_layout(tmp_path / 'busybox-oci', tag='1.0', labels={'team': 'a'})}:1.0")
    fetch(store, f"oci:{build_oci_layout(tmp_path / 'other', tag='latest', cmd=('true',))}:latest")
    yield PublicAPI(config), store
    store.close()


def test_images_are_those_of_image_list_with_rkts_fields(api: tuple[PublicAPI, Store]) -> None:
    service, store = api
    listed = service.ListImages(pb.ListImagesRequest(), Context()).images  # type: ignore[arg-type]
    records = store.list()
    assert [i.id for i in listed] == [r.id for r in records]
    busybox = listed[0]
    rec = records[0]
    assert (busybox.name, busybox.version, busybox.size) == ("busybox-oci", "1.0", rec.size)
    assert busybox.import_timestamp == rec.import_time // 1_000_000_000
    assert (busybox.base_format.type, busybox.base_format.version) == (pb.IMAGE_TYPE_OCI, "1")
    assert ("version", "1.0") in [(kv.Key, kv.value) for kv in busybox.labels]
    assert [(kv.Key, kv.value) for kv in busybox.annotations] == [("team", "a")]
    assert all(i.manifest == b"" for i in listed)
    detailed = service.ListImages(pb.ListImagesRequest(detail=True), Context()).images  # type: ignore[arg-type]
    assert [i.manifest for i in detailed] == [store.manifest(r.id) for r in records]


def test_inspect_takes_an_id_a_prefix_or_a_name_and_says_what_is_missing(api: tuple[PublicAPI, Store]) -> None:
    service, store = api
    rec = store.list()[0]
    for arg in (rec.id, rec.id[:19], "busybox-oci:1.0"):
        image = service.InspectImage(pb.InspectImageRequest(id=arg), Context()).image  # type: ignore[arg-type]
        assert (image.id, image.manifest) == (rec.id, store.manifest(rec.id))
    with pytest.raises(NotFound):
        service.InspectImage(pb.InspectImageRequest(id="sha256:0000000000"), Context())  # type: ignore[arg-type]


def test_reading_does_not_clean_up_after_a_dead_import(api: tuple[PublicAPI, Store], tmp_path: Path) -> None:
    """The service changes nothing: a killed import's leftovers wait for the next pyrkt command."""
    service, store = api
    leftover = Path(store.dir) / "tmp" / "dead-import"
    leftover.mkdir(parents=True)
    service.ListImages(pb.ListImagesRequest(), Context())  # type: ignore[arg-type]
    assert leftover.is_dir()


def image(name: str, iid: str, ts: int, labels: dict[str, str] | None = None,
          annotations: dict[str, str] | None = None) -> pb.Image:
    return pb.Image(id=iid, name=name, import_timestamp=ts,
                    labels=[pb.KeyValue(Key=k, value=v) for k, v in (labels or {}).items()],
                    annotations=[pb.KeyValue(Key=k, value=v) for k, v in (annotations or {}).items()])


IMAGES = [
    image("coreos.com/etcd", "i1", 100, {"version": "2.0", "os": "linux"}, {"team": "a"}),
    image("k8s.io/etcd", "i2", 200, {"version": "3.0"}),
    image("k8s.io/etcd-backup", "i3", 300, {"os": "linux"}),
]


def chosen(*filters: pb.ImageFilter) -> list[str]:
    return [i.id for i in IMAGES if images.matches_any(i, filters)]


@pytest.mark.parametrize("f, want", [
    (pb.ImageFilter(), ["i1", "i2", "i3"]),
    (pb.ImageFilter(ids=["i2", "i9"]), ["i2"]),
    (pb.ImageFilter(prefixes=["k8s.io/"]), ["i2", "i3"]),
    (pb.ImageFilter(base_names=["etcd"]), ["i1", "i2"]),  # not etcd-backup
    (pb.ImageFilter(keywords=["backup", "coreos"]), ["i1", "i3"]),
    (pb.ImageFilter(full_names=["k8s.io/etcd"]), ["i2"]),
    (pb.ImageFilter(imported_after=100), ["i2", "i3"]),  # exclusive
    (pb.ImageFilter(imported_before=300), ["i1", "i2"]),
    (pb.ImageFilter(labels=[pb.KeyValue(Key="os", value="linux")]), ["i1", "i3"]),
    (pb.ImageFilter(annotations=[pb.KeyValue(Key="team", value="a")]), ["i1"]),
])
def test_each_condition_of_an_image_filter(f: pb.ImageFilter, want: list[str]) -> None:
    assert chosen(f) == want


def test_conditions_of_one_image_filter_are_anded_and_filters_are_ored() -> None:
    linux_k8s = pb.ImageFilter(prefixes=["k8s.io/"], labels=[pb.KeyValue(Key="os", value="linux")])
    assert chosen(linux_k8s) == ["i3"]
    assert chosen(linux_k8s, pb.ImageFilter(ids=["i1"])) == ["i1", "i3"]
