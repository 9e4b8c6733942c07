"""OCI and Docker schema 2 manifests, image indexes and descriptors, parsed once and validated.

Media types pyrkt accepts are listed here and nowhere else. Docker schema 1 is refused with a
clear message; an index (or Docker manifest list) is narrowed to one platform by
``choose_platform``, preferring the host's ``linux/<arch>[/<variant>]``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from pyrkt.errors import ImageError
from pyrkt.model import jsonio
from pyrkt.store.digests import parse_digest

MT_OCI_INDEX = "application/vnd.oci.image.index.v1+json"
MT_OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
MT_OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
MT_DOCKER_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
MT_DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
MT_DOCKER_CONFIG = "application/vnd.docker.container.image.v1+json"
MT_DOCKER_SCHEMA1 = ("application/vnd.docker.distribution.manifest.v1+json",
                     "application/vnd.docker.distribution.manifest.v1+prettyjws")
MT_DOCKER_LAYER_GZIP = "application/vnd.docker.image.rootfs.diff.tar.gzip"
MT_DOCKER_LAYER_TAR = "application/vnd.docker.image.rootfs.diff.tar"

INDEX_TYPES = (MT_OCI_INDEX, MT_DOCKER_LIST)
MANIFEST_TYPES = (MT_OCI_MANIFEST, MT_DOCKER_MANIFEST)
CONFIG_TYPES = (MT_OCI_CONFIG, MT_DOCKER_CONFIG)
LAYER_TYPES = frozenset({
    "application/vnd.oci.image.layer.v1.tar",
    "application/vnd.oci.image.layer.v1.tar+gzip",
    "application/vnd.oci.image.layer.v1.tar+zstd",
    "application/vnd.oci.image.layer.nondistributable.v1.tar",
    "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip",
    "application/vnd.oci.image.layer.nondistributable.v1.tar+zstd",
    MT_DOCKER_LAYER_GZIP,
    MT_DOCKER_LAYER_TAR,
    "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip",
})

# Go architecture names (OCI, Docker) of the machines pyrkt knows.
_HOST_ARCH = {"x86_64": ("amd64", ""), "aarch64": ("arm64", "v8"), "armv7l": ("arm", "v7"),
              "armv6l": ("arm", "v6"), "i686": ("386", ""), "i386": ("386", ""), "ppc64le": ("ppc64le", ""),
              "s390x": ("s390x", ""), "riscv64": ("riscv64", "")}


@dataclass(frozen=True, slots=True)
class Platform:
    os: str
    architecture: str
    variant: str = ""

    def __str__(self) -> str:
        return "/".join(p for p in (self.os, self.architecture, self.variant) if p)


@dataclass(frozen=True, slots=True)
class Descriptor:
    media_type: str
    digest: str
    size: int
    platform: Platform | None = None
    annotations: tuple[tuple[str, str], ...] = ()

    def annotation(self, key: str) -> str | None:
        for k, v in self.annotations:
            if k == key:
                return v
        return None


@dataclass(frozen=True, slots=True)
class Manifest:
    media_type: str
    config: Descriptor
    layers: tuple[Descriptor, ...]


@dataclass(frozen=True, slots=True)
class Index:
    media_type: str
    manifests: tuple[Descriptor, ...]


def host_platform() -> Platform:
    import platform

    arch, variant = _HOST_ARCH.get(platform.machine(), (platform.machine(), ""))
    return Platform("linux", arch, variant)


def load_json(data: bytes, what: str) -> Any:
    try:
        return jsonio.loads(data)
    except (ValueError, UnicodeDecodeError) as e:
        raise ImageError(f"{what} is not valid JSON: {e}") from None


def _obj(value: Any, what: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise ImageError(f"{what} is not a JSON object")
    return value


def parse_descriptor(value: Any, what: str) -> Descriptor:
    d = _obj(value, what)
    media_type, digest, size = d.get("mediaType"), d.get("digest"), d.get("size")
    if not isinstance(media_type, str) or not isinstance(digest, str) or not isinstance(size, int) or size < 0:
        raise ImageError(f"{what} needs a mediaType, a digest and a size")
    try:
        parse_digest(digest)
    except ImageError:
        raise ImageError(f"{what} has an invalid digest {digest!r}") from None
    plat = None
    if isinstance(d.get("platform"), dict):
        p = d["platform"]
        plat = Platform(str(p.get("os", "")), str(p.get("architecture", "")), str(p.get("variant", "") or ""))
    annotations = d.get("annotations") or {}
    if not isinstance(annotations, dict):
        raise ImageError(f"{what} has invalid annotations")
    return Descriptor(media_type, digest, size, plat, tuple((str(k), str(v)) for k, v in annotations.items()))


def parse_index(data: bytes, what: str) -> Index:
    d = _obj(load_json(data, what), what)
    manifests = d.get("manifests")
    if not isinstance(manifests, list):
        raise ImageError(f"{what} has no manifests list")
    media_type = d.get("mediaType") or MT_OCI_INDEX
    return Index(media_type, tuple(parse_descriptor(m, f"{what}: manifests[{i}]") for i, m in enumerate(manifests)))


def parse_manifest(data: bytes, what: str, media_type: str | None = None) -> Manifest | Index:
    """A manifest or, when ``data`` is an index/manifest list, an Index."""
    d = _obj(load_json(data, what), what)
    mt = d.get("mediaType") or media_type
    if d.get("schemaVersion") == 1 or mt in MT_DOCKER_SCHEMA1:
        raise ImageError(f"{what} is a Docker schema 1 manifest, which pyrkt does not support")
    if mt in INDEX_TYPES or (mt is None and "manifests" in d):
        return parse_index(data, what)
    if mt is None and "config" in d:
        mt = MT_OCI_MANIFEST
    if mt not in MANIFEST_TYPES:
        raise ImageError(f"{what} has unknown media type {mt!r}")
    if d.get("schemaVersion") != 2:
        raise ImageError(f"{what} has unsupported schemaVersion {d.get('schemaVersion')!r}")
    config = parse_descriptor(d.get("config"), f"{what}: config")
    if config.media_type not in CONFIG_TYPES:
        raise ImageError(f"{what} is not a container image (config media type {config.media_type!r})")
    layers_raw = d.get("layers")
    if not isinstance(layers_raw, list):
        raise ImageError(f"{what} has no layers list")
    layers = tuple(parse_descriptor(x, f"{what}: layers[{i}]") for i, x in enumerate(layers_raw))
    for ly in layers:
        if ly.media_type not in LAYER_TYPES:
            raise ImageError(f"{what}: layer {ly.digest} has unknown media type {ly.media_type!r}")
    return Manifest(mt, config, layers)


def choose_platform(index: Index, what: str, want: Platform | None = None) -> Descriptor:
    """The index entry for ``want`` (default: the host); a variant match is preferred."""
    want = want or host_platform()
    matches = [d for d in index.manifests
               if d.platform is not None and d.platform.os == want.os and d.platform.architecture == want.architecture]
    if not matches:
        have = ", ".join(sorted({str(d.platform) for d in index.manifests if d.platform})) or "none"
        raise ImageError(f"{what} has no image for {want.os}/{want.architecture} (it has: {have})")
    for d in matches:
        if d.platform is not None and d.platform.variant == want.variant:
            return d
    return matches[0]


def check_platform(config: dict[str, Any], want: Platform | None, what: str) -> None:
    """Refuse an image whose config names another os/architecture than ``--platform``'s
    ``want`` (an index entry was chosen by those already, so this refuses only a single-platform
    image); with no ``--platform`` (None), a single image is taken whatever it was built for."""
    if want is None:
        return
    have = Platform(str(config.get("os") or ""), str(config.get("architecture") or ""),
                    str(config.get("variant") or ""))
    if not have.os or not have.architecture:
        return  # a config that does not say: nothing to check
    if (have.os, have.architecture) != (want.os, want.architecture):
        raise ImageError(f"{what} is an image for {have}, not for {want} (it has no index to choose from)")
