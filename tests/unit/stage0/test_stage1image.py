"""Stage1 images on stage0's side: which locations are trusted without a signature (rkt's
rule), the ``check_stage1`` test, and ``image gc`` seeing the stage1 image a pod uses."""

from __future__ import annotations

from pathlib import Path

import pytest

from pyrkt.config import Config
from pyrkt.errors import ImageError
from pyrkt.model.image import Image
from pyrkt.stage0.images import pods_in_use
from pyrkt.stage0.stage1image import DEFAULT_STAGE1_IMAGES_DIR, _trusted, check_stage1
from pyrkt.store import Store


@pytest.mark.parametrize(("location", "trusted"), [
    (f"{DEFAULT_STAGE1_IMAGES_DIR}/stage1.aci", True),
    (f"file://{DEFAULT_STAGE1_IMAGES_DIR}/stage1.aci", True),
    (f"{DEFAULT_STAGE1_IMAGES_DIR}/../stage1.aci", False),
    (f"{DEFAULT_STAGE1_IMAGES_DIR}-other/stage1.aci", False),
    ("/tmp/stage1.aci", False),
    ("https://example.com/usr/lib/pyrkt/stage1-images/stage1.aci", False),
])
def test_only_pyrkts_own_stage1_images_dir_is_trusted_without_a_signature(location: str, trusted: bool) -> None:
    assert _trusted(location) is trusted


def test_a_stage1_image_is_an_aci_with_a_run_entrypoint() -> None:
    labels = (("os", "linux"), ("arch", "amd64"))
    with pytest.raises(ImageError, match="'example.com/app' is not a stage1 image: its manifest has no "
                                         "coreos.com/rkt/stage1/run annotation"):
        check_stage1(Image(id="sha512-1", name="example.com/app", format="appc", labels=labels))
    with pytest.raises(ImageError, match="is not a stage1 image"):
        check_stage1(Image(id="sha256:1", name="docker.io/library/busybox", format="oci",
                           annotations=(("coreos.com/rkt/stage1/run", "/init"),)))


def test_image_gc_sees_the_stage1_image_a_prepared_pod_runs_with(tmp_path: Path) -> None:
    config = Config(data_dir=str(tmp_path))
    pod = tmp_path / "pods" / "prepared" / "0f6bd1a2-0000-4000-8000-000000000001"
    pod.mkdir(parents=True)
    (pod / "stage1ImageID").write_text("sha512-" + "ab" * 32)
    in_use = pods_in_use(config, Store.open(tmp_path / "store"))
    assert in_use.images == frozenset({"sha512-" + "ab" * 32})
