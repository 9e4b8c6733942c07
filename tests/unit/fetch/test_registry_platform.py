"""``--platform``: choosing another platform's image from a registry's index, the one-line
errors for a platform the index lacks or a single image built for another platform, and the
flag's syntax."""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import pytest
from tests.support.images import build_oci_layout, image_id_of
from tests.support.stores import assert_store_empty
from tests.unit.fetch.test_registry_client import HOST, FakeRegistry

from pyrkt.errors import ImageError, UsageError
from pyrkt.fetch import parse_platform
from pyrkt.fetch.manifests import Platform, host_platform
from pyrkt.fetch.reference import parse_reference
from pyrkt.fetch.registry import RegistryClient, import_registry
from pyrkt.store import Store


def platform_image_id(layout: Path, platform: str) -> str:
    """The config digest of ``platform``'s image in a layout written with ``platforms=``."""
    def blob(digest: str) -> dict[str, object]:
        return json.loads((layout / "blobs" / "sha256" / digest.split(":", 1)[1]).read_bytes())  # type: ignore[no-any-return]

    top = json.loads((layout / "index.json").read_bytes())["manifests"][0]
    for entry in blob(top["digest"])["manifests"]:  # type: ignore[attr-defined]
        p = entry["platform"]
        if "/".join(x for x in (p["os"], p["architecture"], p.get("variant", "")) if x) == platform:
            return str(blob(entry["digest"])["config"]["digest"])  # type: ignore[index]
    raise AssertionError(f"{platform} not in {layout}")


def pull(store: Store, registry: FakeRegistry, platform: Platform | None) -> str:  # noqa: F811
    ref = parse_reference(f"{HOST}/busybox:latest")
    client = RegistryClient(ref, backoff=0, transport=httpx.MockTransport(registry.handle))
    return import_registry(store, ref, source="docker://x", client=client, platform=platform).id


def other_arch() -> str:
    return "s390x" if host_platform().architecture != "s390x" else "amd64"


def test_platform_chooses_another_image_from_the_index(store: Store, tmp_path: Path) -> None:  # noqa: F811
    other = f"linux/{other_arch()}"
    layout = build_oci_layout(tmp_path / "multi", platforms=(f"linux/{host_platform().architecture}", other))
    got = pull(store, FakeRegistry(layout), parse_platform(other))
    assert got == platform_image_id(layout, other) != image_id_of(layout)


def test_a_variant_is_preferred_when_the_index_has_several(store: Store, tmp_path: Path) -> None:  # noqa: F811
    layout = build_oci_layout(tmp_path / "arm", platforms=("linux/arm/v6", "linux/arm/v7"))
    assert pull(store, FakeRegistry(layout), parse_platform("linux/arm/v7")) == \
        platform_image_id(layout, "linux/arm/v7")


def test_a_platform_the_index_lacks_is_one_error_listing_those_it_has(store: Store, tmp_path: Path) -> None:  # noqa: F811
    layout = build_oci_layout(tmp_path / "multi", platforms=("linux/amd64", "linux/arm64/v8"))
    with pytest.raises(ImageError, match=r"manifest sha256:[0-9a-f]{64} has no image for linux/riscv64 "
                                         r"\(it has: linux/amd64, linux/arm64/v8\)$"):
        pull(store, FakeRegistry(layout), parse_platform("linux/riscv64"))
    assert_store_empty(store)


def test_a_single_image_for_another_platform_is_refused_when_one_is_asked_for(
        store: Store, tmp_path: Path) -> None:  # noqa: F811
    layout = build_oci_layout(tmp_path / "single", cmd=("true",))
    with pytest.raises(ImageError, match=rf"manifest sha256:[0-9a-f]{{64}} is an image for "
                                         rf"linux/{host_platform().architecture}.*, not for linux/{other_arch()}"):
        pull(store, FakeRegistry(layout), parse_platform(f"linux/{other_arch()}"))
    assert_store_empty(store)
    assert pull(store, FakeRegistry(layout), parse_platform(f"linux/{host_platform().architecture}")) == \
        image_id_of(layout)


@pytest.mark.parametrize("text", ["linux", "linux/", "/amd64", "linux/arm/v7/x", "linux//v7", ""])
def test_a_malformed_platform_is_a_usage_error(text: str) -> None:
    with pytest.raises(UsageError, match="invalid --platform=.*want os/arch or os/arch/variant"):
        parse_platform(text)


def test_a_platform_reads_as_os_arch_and_variant() -> None:
    assert parse_platform("linux/arm64/v8") == Platform("linux", "arm64", "v8")
    assert parse_platform("linux/amd64") == Platform("linux", "amd64")
