"""Writing a stored image out as one file: an appc ACI or an OCI image layout archive.

ACI: a tar of exactly ``manifest`` (the appc ImageManifest, ``aci.image_manifest``) and
``rootfs/`` (the merged layers, ``squash.entries``), with owners, modes, times, xattrs and
hardlinks as pax tar keeps them. OCI archive: ``oci-layout``, ``index.json`` naming the stored
manifest (tagged with the image's version) and ``blobs/sha256/…``: the manifest, config and layer
blobs exactly as stored, each re-hashed on the way out. Both are written to a temp file next to
the output and renamed into place, so a failure never leaves a half-written output.
"""

from __future__ import annotations

import io
import json
import os
import stat
import tarfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import IO

from pyrkt.errors import ImageError, PyrktError
from pyrkt.model.image import Image
from pyrkt.store.aci import manifest_bytes
from pyrkt.store.digests import HashingReader, check_digest, digest_hex
from pyrkt.store.render import add_member
from pyrkt.store.squash import entries

MT_OCI_INDEX = "application/vnd.oci.image.index.v1+json"
OCI_LAYOUT = b'{"imageLayoutVersion":"1.0.0"}'
REF_NAME = "org.opencontainers.image.ref.name"


def check_output(path: Path, *, overwrite: bool) -> None:
    """rkt's rule: an existing output is replaced only with ``--overwrite``."""
    if os.path.lexists(path) and not overwrite:
        raise PyrktError(f"output file {path} exists (try --overwrite)")
    if os.path.isdir(path):
        raise PyrktError(f"output {path} is a directory")


def write_atomically(path: Path, write: Callable[[IO[bytes]], None]) -> None:
    import tempfile

    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".part", dir=path.parent or Path("."))
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o644)
        os.rename(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise


def write_aci_tar(out: IO[bytes], image: Image, layer_dirs: list[Path]) -> None:
    """The ACI of ``image`` (its layers ``layer_dirs``, bottom first), as an uncompressed tar."""
    with tarfile.open(fileobj=out, mode="w|", format=tarfile.PAX_FORMAT, encoding="utf-8",
                      errors="surrogateescape") as tf:
        data = manifest_bytes(image)
        info = tarfile.TarInfo("manifest")
        info.size = len(data)
        info.mode = 0o644
        info.mtime = int(time.time())
        tf.addfile(info, io.BytesIO(data))
        for rel, src, _ in entries(layer_dirs):
            st = os.lstat(src)
            if stat.S_ISSOCK(st.st_mode):
                continue  # tar has no sockets
            add_member(tf, str(src), f"rootfs/{rel}" if rel else "rootfs")


def write_oci_archive(out: IO[bytes], *, manifest_digest: str, manifest_media_type: str, version: str,
                      blobs: list[str], open_blob: Callable[[str], IO[bytes]]) -> None:
    """An OCI image layout tar holding ``blobs`` (manifest, config, layers) as stored."""
    desc: dict[str, object] = {"mediaType": manifest_media_type, "digest": manifest_digest}
    with tarfile.open(fileobj=out, mode="w|", format=tarfile.PAX_FORMAT) as tf:
        _add_bytes(tf, "oci-layout", OCI_LAYOUT)
        _add_dir(tf, "blobs")
        _add_dir(tf, "blobs/sha256")
        for digest in blobs:
            with open_blob(digest) as f:
                size = os.fstat(f.fileno()).st_size
                reader = HashingReader(f)
                info = tarfile.TarInfo(f"blobs/sha256/{digest_hex(digest)}")
                info.size = size
                info.mode = 0o644
                info.mtime = int(time.time())
                tf.addfile(info, reader)  # type: ignore[arg-type]
                try:
                    check_digest(f"blob {digest}", digest, reader.digest)
                except PyrktError as e:
                    raise ImageError(f"{e}: the store is damaged; see `pyrkt image verify`") from None
            if digest == manifest_digest:
                desc["size"] = size
        if version:
            desc["annotations"] = {REF_NAME: version}
        index = {"schemaVersion": 2, "mediaType": MT_OCI_INDEX, "manifests": [desc]}
        _add_bytes(tf, "index.json", json.dumps(index, separators=(",", ":")).encode())


def _add_bytes(tf: tarfile.TarFile, name: str, data: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    info.mode = 0o644
    info.mtime = int(time.time())
    tf.addfile(info, io.BytesIO(data))


def _add_dir(tf: tarfile.TarFile, name: str) -> None:
    info = tarfile.TarInfo(name)
    info.type = tarfile.DIRTYPE
    info.mode = 0o755
    info.mtime = int(time.time())
    tf.addfile(info)
