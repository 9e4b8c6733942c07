"""The image model's JSON: what the store index and every pod dir keep of an image."""

from __future__ import annotations

from pyrkt.model import jsonio
from pyrkt.model.image import AciOrigin, AppSpec, Image

ACI_EXTRA = {"manifest_digest": "sha256:" + "1" * 64, "sha512": "ab" * 64, "aci_blob": "sha256:" + "2" * 64,
             "path_whitelist": ["/etc/app.conf"], "dependencies": ["sha512-" + "3" * 32], "dependency_depth": 2}


def test_an_acis_origin_reads_from_and_writes_back_the_extra_object_of_stored_images() -> None:
    stored = {"id": "sha512-" + "ab" * 16, "name": "example.com/app", "labels": [{"name": "version", "value": "1"}],
              "layers": [], "app": None, "annotations": [], "format": "appc", "extra": ACI_EXTRA}
    image = Image.from_json(jsonio.loads(jsonio.dumps(stored)))
    assert image.manifest_digest == ACI_EXTRA["manifest_digest"]
    assert image.aci == AciOrigin("ab" * 64, "sha256:" + "2" * 64, ("/etc/app.conf",), ("sha512-" + "3" * 32,), 2)
    assert image.to_json() == stored


def test_an_oci_image_has_a_manifest_digest_and_no_aci_origin() -> None:
    image = Image(id="sha256:" + "a" * 64, name="busybox", app=AppSpec(exec=("sh",)), manifest_digest="sha256:" + "b" * 64)
    back = Image.from_json(image.to_json())
    assert (back.manifest_digest, back.aci) == ("sha256:" + "b" * 64, None)
    assert image.to_json()["extra"] == {"manifest_digest": "sha256:" + "b" * 64}
    assert Image.from_json({**image.to_json(), "extra": {}}).manifest_digest == ""
