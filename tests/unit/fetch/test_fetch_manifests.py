"""Manifests and indexes: what is accepted, what is refused, which platform is chosen."""

from __future__ import annotations

import json

import pytest

from pyrkt.errors import ImageError
from pyrkt.fetch.manifests import Index, Manifest, Platform, choose_platform, parse_manifest

D = "sha256:" + "a" * 64


def manifest(**over: object) -> bytes:
    m = {"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
         "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": D, "size": 2},
         "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar+zstd", "digest": D, "size": 3}]}
    m.update(over)
    return json.dumps(m).encode()


def test_oci_manifest_parses() -> None:
    m = parse_manifest(manifest(), "m")
    assert isinstance(m, Manifest) and m.layers[0].size == 3


def test_docker_schema1_is_refused_clearly() -> None:
    with pytest.raises(ImageError, match="schema 1"):
        parse_manifest(json.dumps({"schemaVersion": 1, "fsLayers": []}).encode(), "m")


def test_unknown_layer_media_type_is_refused() -> None:
    bad = manifest(layers=[{"mediaType": "application/x-helm", "digest": D, "size": 1}])
    with pytest.raises(ImageError, match="unknown media type 'application/x-helm'"):
        parse_manifest(bad, "m")


def test_non_image_config_is_refused() -> None:
    with pytest.raises(ImageError, match="not a container image"):
        parse_manifest(manifest(config={"mediaType": "application/vnd.cncf.helm.config", "digest": D, "size": 1}), "m")


def test_corrupt_json_and_bad_digests_are_image_errors() -> None:
    with pytest.raises(ImageError, match="not valid JSON"):
        parse_manifest(b"{nope", "m")
    with pytest.raises(ImageError, match="invalid digest"):
        parse_manifest(manifest(config={"mediaType": "application/vnd.oci.image.config.v1+json",
                                        "digest": "sha256:zz", "size": 1}), "m")


def index(*platforms: tuple[str, str, str]) -> Index:
    data = {"schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json",
            "manifests": [{"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": "sha256:" + str(i) * 64,
                           "size": 1, "platform": {"os": o, "architecture": a, "variant": v}}
                          for i, (o, a, v) in enumerate(platforms)]}
    parsed = parse_manifest(json.dumps(data).encode(), "idx")
    assert isinstance(parsed, Index)
    return parsed


def test_platform_choice_prefers_the_variant() -> None:
    idx = index(("linux", "arm", "v6"), ("linux", "arm", "v7"), ("linux", "amd64", ""))
    assert choose_platform(idx, "idx", Platform("linux", "arm", "v7")).digest == "sha256:" + "1" * 64
    assert choose_platform(idx, "idx", Platform("linux", "amd64")).digest == "sha256:" + "2" * 64


def test_no_image_for_the_platform_lists_what_there_is() -> None:
    with pytest.raises(ImageError, match=r"no image for linux/s390x \(it has: linux/amd64, windows/amd64\)"):
        choose_platform(index(("linux", "amd64", ""), ("windows", "amd64", "")), "idx", Platform("linux", "s390x"))
