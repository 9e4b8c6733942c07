"""Importing local images: ``oci:`` layout dirs, ``oci-archive:`` tars and ``docker-archive:`` tars.

Every blob read is verified against its digest as it is staged (``ImportSession``); a Docker
archive has no manifest, so its config is checked against its file name, its layers against
the config's diff ids, and a Docker schema 2 manifest is written for it (``cat-manifest``).
Any failure leaves the store as it was.
"""

from __future__ import annotations

import errno
import json
import os
import re
from pathlib import Path
from typing import IO, Any

from pyrkt.errors import ImageError, NotFound
from pyrkt.fetch.convert import check_config, diff_ids, image_from_config, sanitize_name
from pyrkt.fetch.manifests import (
    MT_DOCKER_CONFIG,
    MT_DOCKER_LAYER_GZIP,
    MT_DOCKER_LAYER_TAR,
    MT_DOCKER_MANIFEST,
    Descriptor,
    Index,
    Manifest,
    Platform,
    check_platform,
    choose_platform,
    load_json,
    parse_index,
    parse_manifest,
)
from pyrkt.fetch.sources import Source
from pyrkt.model.image import Image
from pyrkt.store import Store
from pyrkt.store.digests import digest_hex
from pyrkt.store.imports import ImportSession
from pyrkt.store.lookup import DEFAULT_TAG, name_candidates, split_name

JSON_LIMIT = 64 << 20
MAX_INDEX_DEPTH = 4
REF_NAME = "org.opencontainers.image.ref.name"
CONTAINERD_NAME = "io.containerd.image.name"
_HEX_NAME = re.compile(r"(?:^|/)(?:sha256/)?([0-9a-f]{64})(?:\.json)?$")


def import_local(store: Store, source: Source, *, arg: str, platform: Platform | None = None) -> Image:
    """Import the image ``source`` names into ``store``; returns it as stored. ``platform``
    (``--platform``) is the one to choose from an index (default: the host's); a single image
    for another platform is refused when one is given, as from a registry."""
    path = Path(source.location)
    if source.kind == "oci":
        if not path.exists():
            raise NotFound(f"oci layout {str(path)!r} not found")
        if not path.is_dir():
            raise ImageError(f"{arg}: {str(path)!r} is not a directory (an OCI layout is; use oci-archive: for a tar)")
        with LayoutDir(path, arg) as layout:
            return import_oci(store, layout, ref=source.ref, source=arg, default_name=path.resolve().name,
                              platform=platform)
    if not path.exists():
        raise NotFound(f"{source.kind} file {str(path)!r} not found")
    with Archive(path, arg) as files:
        try:
            if source.kind == "oci-archive":
                return import_oci(store, files, ref=source.ref, source=arg, default_name=path.name, platform=platform)
            return import_docker_archive(store, files, ref=source.ref, source=arg, default_name=path.name,
                                         platform=platform)
        except decode_errors() as e:  # a member's compressed bytes went bad after the listing read fine
            raise ImageError(f"{arg}: the archive is corrupt: {_one_line(e)}") from None


# -- where the files come from ---------------------------------------------------------------


def open_regular_file(path: str, where: str, *, beneath: int | None = None, what: str = "") -> IO[bytes]:
    """``path`` opened for reading if it is a regular file (within the directory ``beneath``,
    through no symlink, when given); a one-line error naming it otherwise. Nothing of the
    file is read here, and no error ever quotes what is in it."""
    from pyrkt.kernel.beneath import NotRegularFile, open_regular

    what = what or path
    try:
        return os.fdopen(open_regular(path, beneath=beneath), "rb")
    except NotRegularFile as e:
        raise ImageError(f"{where}: {what} is {e.kind}, not a regular file") from None
    except OSError as e:
        if e.errno in (errno.ENOENT, errno.ENOTDIR):
            raise NotFound(f"{where}: {what} is missing") from None
        if beneath is not None and e.errno == errno.ELOOP:
            raise ImageError(f"{where}: {what} is a symbolic link or lies under one; pyrkt follows no links "
                             "in an OCI layout") from None
        if beneath is not None and e.errno == errno.EXDEV:
            raise ImageError(f"{where}: {what} is outside the layout") from None
        raise ImageError(f"{where}: cannot open {what}: {e.strerror}") from None


class LayoutDir:
    """Files of an OCI layout directory, opened beneath it: never through a symlink, never a
    FIFO or device (``open_regular_file``). Skopeo and umoci write no links, so a layout that
    holds one is refused rather than followed."""

    def __init__(self, root: Path, where: str) -> None:
        self.root = root
        self.where = where
        try:
            self.fd = os.open(root, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        except OSError as e:
            raise ImageError(f"{where}: cannot open the layout {str(root)!r}: {e.strerror}") from None

    def __enter__(self) -> LayoutDir:
        return self

    def __exit__(self, *exc: object) -> None:
        os.close(self.fd)

    def open(self, name: str) -> IO[bytes]:
        return open_regular_file(name, self.where, beneath=self.fd)

    def read(self, name: str) -> bytes:
        with self.open(name) as f:
            data = f.read(JSON_LIMIT + 1)
        if len(data) > JSON_LIMIT:
            raise ImageError(f"{self.where}: {name} is too large")
        return data


class Archive:
    """Files of a tar (plain or compressed), looked up by name; links inside it are followed
    within its own members (``docker save`` links repeated layers), never to the host's files.

    The archive itself must be a regular file (a FIFO such as a pipe on ``/dev/stdin`` is
    refused): its members are looked up by name, so it is read more than once."""

    def __init__(self, path: Path, where: str) -> None:
        import tarfile

        self.where = where
        self.file = open_regular_file(str(path), where, what="the archive")
        unreadable: tuple[type[BaseException], ...] = (*decode_errors(), OSError)
        try:
            if os.fstat(self.file.fileno()).st_size == 0:
                raise ImageError(f"{where}: the archive is empty")
            try:
                self.tf = tarfile.open(fileobj=self.file, mode="r:*")
            except tarfile.ReadError as e:
                if str(e).startswith("file could not be opened"):  # no method of tarfile's fits
                    raise ImageError(f"{where}: not a readable tar archive (plain, gzip, bzip2 or xz)") from None
                raise
            self.members = {_norm(m.name): m for m in self.tf.getmembers()}
        except unreadable as e:
            self.file.close()
            raise ImageError(f"{where}: not a readable tar archive: {_one_line(e)}") from None
        except BaseException:
            self.file.close()
            raise

    def __enter__(self) -> Archive:
        return self

    def __exit__(self, *exc: object) -> None:
        self.tf.close()
        self.file.close()

    def open(self, name: str) -> IO[bytes]:
        key = _norm(name)
        for _ in range(16):
            m = self.members.get(key)
            if m is None:
                break
            if m.issym():
                key = _norm(os.path.normpath(os.path.join(os.path.dirname(key), m.linkname.lstrip("/"))))
                continue
            if m.islnk():
                key = _norm(m.linkname)
                continue
            f = self.tf.extractfile(m) if m.isfile() else None
            if f is not None:
                return f
            kind = "a directory" if m.isdir() else "a FIFO" if m.isfifo() else "a device" if m.isdev() else "of an unknown kind"
            raise ImageError(f"{self.where}: {name} is {kind} in the archive, not a regular file")
        raise NotFound(f"{self.where}: {name} is missing")

    def read(self, name: str) -> bytes:
        data = self.open(name).read(JSON_LIMIT + 1)
        if len(data) > JSON_LIMIT:
            raise ImageError(f"{self.where}: {name} is too large")
        return data


def decode_errors() -> tuple[type[BaseException], ...]:
    """What reading a corrupt tar or compressed stream raises, besides OSError."""
    import lzma
    import tarfile
    import zlib

    return tarfile.TarError, EOFError, zlib.error, lzma.LZMAError


def _one_line(e: BaseException) -> str:
    """An exception's text on one line, for the user's error."""
    text = " ".join(str(e).split()) or type(e).__name__
    return text[:200]


def _norm(name: str) -> str:
    parts = [p for p in name.split("/") if p not in ("", ".")]
    return "/".join(parts)


Files = LayoutDir | Archive


def _stage(imp: ImportSession, files: Files, desc: Descriptor, where: str) -> None:
    if imp.has_blob(desc.digest):
        return
    name = f"blobs/sha256/{digest_hex(desc.digest)}"
    with files.open(name) as stream:
        imp.add_blob(stream, expected=desc.digest, size=desc.size, what=f"{where}: blob {desc.digest}")


# -- OCI layouts -----------------------------------------------------------------------------


def import_oci(store: Store, files: Files, *, ref: str | None, source: str, default_name: str,
               platform: Platform | None = None) -> Image:
    where = source
    try:
        layout = load_json(files.read("oci-layout"), f"{where}: oci-layout")
    except NotFound:
        raise ImageError(f"{where} is not an OCI image layout: it has no oci-layout file") from None
    if not isinstance(layout, dict) or not str(layout.get("imageLayoutVersion", "")).startswith("1."):
        raise ImageError(f"{where}: oci-layout has no imageLayoutVersion 1.x (pyrkt reads version 1 layouts)")
    index = parse_index(files.read("index.json"), f"{where}: index.json")
    top = select_ref(index, ref, where)
    name, tag = oci_name(top, ref, sanitize_name(default_name))
    with store.begin_import(source) as imp:
        desc, manifest = _resolve_manifest(imp, files, top, where, platform)
        config = _load_config(imp, files, manifest, where)
        check_platform(config, platform, f"{where}: manifest {desc.digest}")
        _import_layers(imp, files, manifest, diff_ids(config, f"{where}: config {manifest.config.digest}"), where)
        fmt = "docker" if manifest.media_type == MT_DOCKER_MANIFEST else "oci"
        image = image_from_config(config, image_id=manifest.config.digest, name=name, tag=tag, fmt=fmt,
                                  manifest_digest=desc.digest, what=f"{where}: config")
        imp.commit(image, manifest_digest=desc.digest, manifest_media_type=manifest.media_type,
                   config_digest=manifest.config.digest, name=name, version=tag)
    return image


def _tags(index: Index) -> str:
    names = [d.annotation(REF_NAME) or d.annotation(CONTAINERD_NAME) or d.digest for d in index.manifests]
    return ", ".join(names) or "none"


def _matches(desc: Descriptor, ref: str) -> bool:
    if ":" in ref:  # a digest (oci:DIR@sha256:...; a tag has no colon): the entry's own
        return desc.digest == ref
    ref_name = desc.annotation(REF_NAME)
    full = desc.annotation(CONTAINERD_NAME)
    if ref in (ref_name, full):
        return True
    for candidate in (full, ref_name):
        if candidate and (":" in candidate or "/" in candidate):
            _, tag, _ = split_name(candidate)
            if tag == ref:
                return True
    return False


def select_ref(index: Index, ref: str | None, where: str) -> Descriptor:
    """The index entry ``ref`` names; without one, the only entry (or the one tagged latest)."""
    if not index.manifests:
        raise ImageError(f"{where} holds no images")
    if ref is None:
        if len(index.manifests) == 1:
            return index.manifests[0]
        latest = [d for d in index.manifests if _matches(d, DEFAULT_TAG)]
        if len(latest) == 1:
            return latest[0]
        raise ImageError(f"{where} holds {len(index.manifests)} images; name one with :TAG (tags: {_tags(index)})")
    found = [d for d in index.manifests if _matches(d, ref)]
    if not found:
        what = "with digest" if ":" in ref else "tagged"
        raise NotFound(f"{where}: no image {what} {ref!r} (tags: {_tags(index)})")
    return found[-1]


def oci_name(desc: Descriptor, ref: str | None, default_name: str) -> tuple[str, str]:
    """(name, tag) from the entry's annotations; a bare tag names the layout's base name."""
    for full in (desc.annotation(CONTAINERD_NAME), desc.annotation(REF_NAME)):
        if full and ("/" in full or ":" in full):
            name, tag, _ = split_name(full)
            if name:
                return name, tag or DEFAULT_TAG
    tag = ref if ref and ":" not in ref else None  # not a digest
    return default_name, desc.annotation(REF_NAME) or tag or DEFAULT_TAG


def _resolve_manifest(imp: ImportSession, files: Files, desc: Descriptor, where: str,
                      platform: Platform | None) -> tuple[Descriptor, Manifest]:
    for _ in range(MAX_INDEX_DEPTH):
        _stage(imp, files, desc, where)
        what = f"{where}: manifest {desc.digest}"
        parsed = parse_manifest(imp.read_blob(desc.digest), what, desc.media_type)
        if isinstance(parsed, Index):
            desc = choose_platform(parsed, what, platform)
            continue
        return desc, parsed
    raise ImageError(f"{where}: image indexes nested more than {MAX_INDEX_DEPTH} deep")


def _load_config(imp: ImportSession, files: Files, manifest: Manifest, where: str) -> dict[str, Any]:
    _stage(imp, files, manifest.config, where)
    what = f"{where}: config {manifest.config.digest}"
    config = load_json(imp.read_blob(manifest.config.digest), what)
    if not isinstance(config, dict):
        raise ImageError(f"{what} is not a JSON object")
    check_config(config, what)  # before any layer is read
    return config


def _import_layers(imp: ImportSession, files: Files, manifest: Manifest, ids: tuple[str, ...], where: str) -> None:
    if len(ids) != len(manifest.layers):
        raise ImageError(f"{where}: the manifest has {len(manifest.layers)} layers but the config "
                         f"lists {len(ids)} diff ids")
    for desc in manifest.layers:
        _stage(imp, files, desc, where)
    imp.add_layers([(desc.digest, diff_id, desc.media_type) for desc, diff_id in zip(manifest.layers, ids, strict=True)])


# -- docker save archives --------------------------------------------------------------------


def import_docker_archive(store: Store, files: Archive, *, ref: str | None, source: str,
                          default_name: str, platform: Platform | None = None) -> Image:
    where = source
    try:
        data = files.read("manifest.json")
    except NotFound:
        raise ImageError(f"{where} is not a docker archive: it has no manifest.json "
                         "(archives from docker < 1.10 are not supported)") from None
    entry, repo_tag = select_docker_entry(load_json(data, f"{where}: manifest.json"), ref, where)
    if repo_tag:
        name, tag, _ = split_name(repo_tag)
        tag = tag or DEFAULT_TAG
    else:
        name, tag = sanitize_name(default_name), DEFAULT_TAG
    with store.begin_import(source) as imp:
        config_name = entry["Config"]
        m = _HEX_NAME.search(config_name)
        with files.open(config_name) as stream:
            config_digest = imp.add_blob(stream, expected=f"sha256:{m.group(1)}" if m else None,
                                         what=f"{where}: config {config_name}")
        what = f"{where}: config {config_name}"
        config = load_json(imp.read_blob(config_digest), what)
        if not isinstance(config, dict):
            raise ImageError(f"{what} is not a JSON object")
        check_config(config, what)  # before any layer is read
        check_platform(config, platform, what)
        ids = diff_ids(config, what)
        layer_names = entry["Layers"]
        if len(ids) != len(layer_names):
            raise ImageError(f"{where}: manifest.json lists {len(layer_names)} layers but the config "
                             f"lists {len(ids)} diff ids")
        layers = []
        staged: list[tuple[str, str, str]] = []
        for lname, diff_id in zip(layer_names, ids, strict=True):
            m = re.search(r"(?:^|/)blobs/sha256/([0-9a-f]{64})$", lname)  # only new-style names are digests
            with files.open(lname) as stream:
                digest = imp.add_blob(stream, expected=f"sha256:{m.group(1)}" if m else None,
                                      what=f"{where}: layer {lname}")
            media_type = _docker_layer_type(imp.blob_path(digest))
            staged.append((digest, diff_id, media_type))
            layers.append({"mediaType": media_type, "digest": digest, "size": imp.blob_size(digest)})
        imp.add_layers(staged)  # unpacked side by side
        manifest = json.dumps({
            "schemaVersion": 2,
            "mediaType": MT_DOCKER_MANIFEST,
            "config": {"mediaType": MT_DOCKER_CONFIG, "digest": config_digest, "size": imp.blob_size(config_digest)},
            "layers": layers,
        }, indent=3).encode()
        manifest_digest = imp.add_bytes(manifest, what=f"{where}: manifest")
        image = image_from_config(config, image_id=config_digest, name=name, tag=tag, fmt="docker",
                                  manifest_digest=manifest_digest, what=what)
        imp.commit(image, manifest_digest=manifest_digest, manifest_media_type=MT_DOCKER_MANIFEST,
                   config_digest=config_digest, name=name, version=tag)
    return image


def _docker_layer_type(blob: Path) -> str:
    with open(blob, "rb") as f:
        head = f.read(4)
    if head.startswith(b"\x1f\x8b"):
        return MT_DOCKER_LAYER_GZIP
    if head == b"\x28\xb5\x2f\xfd":
        return "application/vnd.oci.image.layer.v1.tar+zstd"
    return MT_DOCKER_LAYER_TAR


def _same_ref(a: str, b: str) -> bool:
    an, at, _ = split_name(a)
    bn, bt, _ = split_name(b)
    return (at or DEFAULT_TAG) == (bt or DEFAULT_TAG) and (an in name_candidates(bn) or bn in name_candidates(an))


def select_docker_entry(entries: Any, ref: str | None, where: str) -> tuple[dict[str, Any], str | None]:
    """The manifest.json entry ``ref`` (NAME[:TAG]) names, or the only one; with its RepoTag."""
    if not isinstance(entries, list) or not entries:
        raise ImageError(f"{where}: manifest.json lists no images")
    checked = []
    for i, e in enumerate(entries):
        if (not isinstance(e, dict) or not isinstance(e.get("Config"), str) or not isinstance(e.get("Layers"), list)
                or not all(isinstance(x, str) for x in e["Layers"])):
            raise ImageError(f"{where}: manifest.json entry {i} needs Config and Layers")
        tags = e.get("RepoTags") or []
        if not isinstance(tags, list):
            raise ImageError(f"{where}: manifest.json entry {i} has invalid RepoTags")
        checked.append((e, [str(t) for t in tags]))
    if ref is None:
        if len(checked) > 1:
            names = ", ".join(t for _, tags in checked for t in tags) or "untagged"
            raise ImageError(f"{where} holds {len(checked)} images; name one with :NAME:TAG ({names})")
        e, tags = checked[0]
        return e, tags[0] if tags else None
    for e, tags in checked:
        for t in tags:
            if _same_ref(t, ref):
                return e, t
    names = ", ".join(t for _, tags in checked for t in tags) or "untagged"
    raise NotFound(f"{where}: no image tagged {ref!r} (it has: {names})")
