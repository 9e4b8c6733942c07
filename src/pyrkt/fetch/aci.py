"""Importing appc ACI files (``./app.aci``, ``file:///…/app.aci``), natively.

An ACI is a tar (plain, gzip, bzip2 or xz) of exactly ``manifest`` (an appc ImageManifest)
and ``rootfs/``. The uncompressed tar is kept as one blob and is also the image's only layer
(unpacked with ``rootfs/`` stripped, see ``store.layers.unpack(aci=True)``). The image id is
rkt's store key: ``sha512-`` + the first 64 hex of the sha512 of the uncompressed tar. The
detached signature (``X.aci.asc`` or ``--signature``) is checked against the trusted keys
(``trust.py``) unless ``--insecure-options=image``. Any failure leaves the store as it was.

``image_from_manifest`` is the pure mapping of an ImageManifest onto ``pyrkt.model.image.Image``
(the reverse of ``pyrkt.store.aci.image_manifest``).
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from pyrkt.errors import ImageError, NotFound
from pyrkt.model.image import AppSpec, Image
from pyrkt.store import Store
from pyrkt.store.aci import ACI_MEDIA_TYPE

MANIFEST_LIMIT = 1 << 20
MT_APPC_MANIFEST = "application/vnd.appc.image-manifest+json"
_AC_IDENTIFIER = re.compile(r"^[a-z0-9]+([-._~/][a-z0-9]+)*$")
_AC_NAME = re.compile(r"^[a-z0-9]+([-./][a-z0-9]+)*$")
_SEMVER = re.compile(r"^\d+\.\d+\.\d+(-[0-9A-Za-z.-]+)?(\+[0-9A-Za-z.-]+)?$")
# appc's valid os/arch pairs (schema/types/labels.go) for the one os pyrkt runs.
LINUX_ARCHES = ("amd64", "i386", "aarch64", "aarch64_be", "armv6l", "armv7l", "armv7b",
                "ppc64", "ppc64le", "s390x")
ID_HEX = 64  # rkt's store key: half of the sha512


def import_aci(store: Store, path: Path, *, source: str, signature: Path | None = None,
               verify: bool = True, system_dir: Path | None = None, local_dir: Path | None = None) -> Image:
    """Import the ACI file at ``path``; with ``verify``, its signature must check against the
    keys trusted in ``system_dir``/``local_dir`` (``signature`` defaults to ``<path>.asc``)."""
    if not path.is_file():
        raise NotFound(f"ACI file {str(path)!r} not found")
    with store.begin_import(source) as imp:
        blob, sha512 = _stage_tar(imp, path, source)
        raw_manifest = _read_manifest(imp.blob_path(blob), source)
        image = image_from_manifest(raw_manifest, image_id=f"sha512-{sha512[:ID_HEX]}", diff_id=blob, where=source)
        if verify:
            from pyrkt.fetch.trust import verify_signature

            sig = signature or path.with_name(path.name + ".asc")
            verify_signature(path, sig, image.name, system_dir=system_dir or Path("/nonexistent"),
                             local_dir=local_dir or Path("/nonexistent"))
        imp.add_layer(blob, blob, ACI_MEDIA_TYPE)
        manifest_digest = imp.add_bytes(raw_manifest, what=f"{source}: manifest")
        image = image.replace(extra={"manifest_digest": manifest_digest, "sha512": sha512})
        imp.commit(image, manifest_digest=manifest_digest, manifest_media_type=MT_APPC_MANIFEST,
                   config_digest=manifest_digest, name=image.name, version=image.label("version") or "latest")
    return image


def _stage_tar(imp: Any, path: Path, where: str) -> tuple[str, str]:
    """Stage the uncompressed tar as a blob; (its sha256 digest, its sha512 hex)."""
    import zlib

    from pyrkt.store.digests import HashingReader
    from pyrkt.store.layers import open_decompressed

    with open(path, "rb") as raw:
        reader = HashingReader(open_decompressed(raw, where), "sha512")
        try:
            digest: str = imp.add_blob(reader, expected=None, what=f"{where}: ACI")
            reader.drain()
        except (EOFError, zlib.error) as e:
            raise ImageError(f"{where}: corrupt ACI file: {e}") from None
        except OSError as e:
            if e.errno is not None:
                raise
            raise ImageError(f"{where}: corrupt ACI file: {e}") from None
        except Exception as e:
            if type(e).__name__ == "LZMAError":
                raise ImageError(f"{where}: corrupt ACI file: {e}") from None
            raise
    return digest, reader.hasher.hexdigest()


def _read_manifest(tar_path: Path, where: str) -> bytes:
    """The ``manifest`` member's bytes; the tar must hold only ``manifest`` and ``rootfs/``."""
    import tarfile

    from pyrkt.store.members import aci_member_path

    manifest: bytes | None = None
    try:
        with tarfile.open(tar_path, "r:") as tf:
            for info in tf:
                if aci_member_path(info.name, layer=where, member=info.name) is not None:
                    continue
                if info.name.strip("./") != "manifest":
                    continue
                if not info.isfile():
                    raise ImageError(f"{where}: the ACI's manifest is not a regular file")
                if manifest is not None:
                    raise ImageError(f"{where}: the ACI holds two manifests")
                if info.size > MANIFEST_LIMIT:
                    raise ImageError(f"{where}: the ACI's manifest is too large ({info.size} bytes)")
                f = tf.extractfile(info)
                manifest = f.read() if f is not None else b""
    except tarfile.TarError as e:
        raise ImageError(f"{where}: not an ACI: not a readable tar: {e}") from None
    if manifest is None:
        raise ImageError(f"{where}: not an ACI: it has no manifest")
    return manifest


# -- the manifest ----------------------------------------------------------------------------


def _name_values(value: Any, what: str, where: str) -> list[tuple[str, str]]:
    if value is None:
        return []
    if not isinstance(value, list):
        raise ImageError(f"{where}: manifest {what} must be a list")
    out: list[tuple[str, str]] = []
    seen: set[str] = set()
    for item in value:
        if not isinstance(item, dict) or not isinstance(item.get("name"), str) or not isinstance(item.get("value"), str):
            raise ImageError(f"{where}: manifest {what} entries need a string name and value")
        name = item["name"]
        if not _AC_NAME.match(name):
            raise ImageError(f"{where}: manifest {what[:-1]} name {name!r} is not a valid AC Name")
        if name in seen:
            raise ImageError(f"{where}: manifest has duplicate {what[:-1]} {name!r}")
        seen.add(name)
        out.append((name, item["value"]))
    return out


def check_os_arch(labels: list[tuple[str, str]], where: str) -> None:
    """As rkt: an image must say it is for linux on an arch appc knows."""
    values = dict(labels)
    os_name = values.get("os")
    if os_name is None:
        raise ImageError(f"{where}: missing os label in the image manifest")
    if os_name != "linux":
        raise ImageError(f"{where}: bad os {os_name!r}")
    arch = values.get("arch")
    if arch is None:
        raise ImageError(f"{where}: missing arch label in the image manifest")
    if arch not in LINUX_ARCHES:
        raise ImageError(f"{where}: bad arch {arch!r} for linux")


def _app(d: Any, where: str) -> AppSpec | None:
    if d is None:
        return None
    if not isinstance(d, dict):
        raise ImageError(f"{where}: manifest app must be an object")
    for key in ("user", "group"):
        if not isinstance(d.get(key), str) or not d[key]:
            raise ImageError(f"{where}: manifest app needs a {key}")
    exec_ = d.get("exec")
    if exec_ is not None and (not isinstance(exec_, list) or not all(isinstance(a, str) for a in exec_)):
        raise ImageError(f"{where}: manifest app exec must be a list of strings")
    wd = d.get("workingDirectory")
    if wd and (not isinstance(wd, str) or not wd.startswith("/")):
        raise ImageError(f"{where}: manifest app workingDirectory {wd!r} must be absolute")
    if d.get("eventHandlers"):
        raise ImageError(f"{where}: ACI event handlers are not supported yet")
    try:
        return AppSpec.from_appc(d)
    except (KeyError, TypeError, ValueError, AttributeError) as e:
        raise ImageError(f"{where}: invalid manifest app section: {type(e).__name__} {e}") from None


def image_from_manifest(data: bytes, *, image_id: str, diff_id: str, where: str) -> Image:
    """The ``Image`` an ImageManifest describes (one layer, ``diff_id``); ImageError when invalid."""
    try:
        m = json.loads(data)
    except (ValueError, UnicodeDecodeError) as e:
        raise ImageError(f"{where}: the ACI manifest is not valid JSON: {e}") from None
    if not isinstance(m, dict):
        raise ImageError(f"{where}: the ACI manifest is not a JSON object")
    if m.get("acKind") != "ImageManifest":
        raise ImageError(f"{where}: manifest acKind is {m.get('acKind')!r}, want 'ImageManifest'")
    version = m.get("acVersion")
    if not isinstance(version, str) or not _SEMVER.match(version):
        raise ImageError(f"{where}: manifest acVersion {version!r} is missing or not a semantic version")
    name = m.get("name")
    if not isinstance(name, str) or not name:
        raise ImageError(f"{where}: manifest has no name")
    if not _AC_IDENTIFIER.match(name):
        raise ImageError(f"{where}: manifest name {name!r} is not a valid AC Identifier")
    labels = _name_values(m.get("labels"), "labels", where)
    if any(k == "name" for k, _ in labels):
        raise ImageError(f"{where}: manifest has a label called 'name', which appc forbids")
    check_os_arch(labels, where)
    if m.get("dependencies"):
        raise ImageError(f"{where}: ACI dependencies are not supported yet")
    if m.get("pathWhitelist"):
        raise ImageError(f"{where}: ACI pathWhitelist is not supported yet")
    return Image(
        id=image_id, name=name, labels=tuple(labels), layers=(diff_id,), app=_app(m.get("app"), where),
        annotations=tuple(_name_values(m.get("annotations"), "annotations", where)), format="appc",
    )
