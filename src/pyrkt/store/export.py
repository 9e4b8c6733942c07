"""Writing a stored image out as one file: an appc ACI or an OCI image layout archive.

ACI: a tar of exactly ``manifest`` (the appc ImageManifest, ``aci.image_manifest``) and
``rootfs/`` (the merged layers, ``squash.entries``), with owners, modes, times, xattrs and
hardlinks as pax tar keeps them. OCI archive: ``oci-layout``, ``index.json`` naming the stored
manifest (tagged with the image's version) and ``blobs/sha256/…``: the manifest, config and layer
blobs exactly as stored, each re-hashed on the way out. Both are written to a temp file next to
the output and renamed into place, so a failure never leaves a half-written output.

A pod's app (``pyrkt export``) is written the same ways with its overlay upper dir merged on
top of the layers (``upper``): an ACI, or an OCI archive of one layer (the merged tree) and a
config the caller makes (``fetch.convert.oci_config``). ``note`` is told, one line each, what
of the app's changes is special (device nodes, exported as they are) or left out (sockets).
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
from typing import IO, Protocol

from pyrkt.errors import ImageError, PyrktError, UsageError
from pyrkt.model.image import Image
from pyrkt.store.aci import manifest_bytes
from pyrkt.store.digests import HashingReader, check_digest, digest_hex
from pyrkt.store.render import add_member
from pyrkt.store.squash import entries

MT_OCI_INDEX = "application/vnd.oci.image.index.v1+json"
MT_OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
MT_OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
MT_OCI_LAYER_GZIP = "application/vnd.oci.image.layer.v1.tar+gzip"
OCI_LAYOUT = b'{"imageLayoutVersion":"1.0.0"}'
REF_NAME = "org.opencontainers.image.ref.name"


EXPORT_FORMATS = ("aci", "oci-archive")


def export_output(output: str, fmt: str, *, overwrite: bool) -> Path:
    """The absolute path to export to as ``fmt``, checked: a format pyrkt writes, an ACI's
    ``.aci`` extension (rkt's ``export``), and rkt's overwrite rule (``check_output``)."""
    if fmt not in EXPORT_FORMATS:
        raise UsageError(f"invalid --format {fmt!r}: want aci or oci-archive")
    if not output:
        raise UsageError("the output file name is empty")
    if fmt == "aci" and not output.endswith(".aci"):
        raise UsageError(f"extension must be .aci (given {output})")
    out = Path(os.path.abspath(output))
    check_output(out, overwrite=overwrite)
    return out


def check_output(path: Path, *, overwrite: bool) -> None:
    """rkt's rule: an existing output is replaced only with ``--overwrite``."""
    if os.path.lexists(path) and not overwrite:
        raise PyrktError(f"output file {path} exists (try --overwrite)")
    if os.path.isdir(path):
        raise PyrktError(f"output {path} is a directory")
    if os.path.lexists(path) and (os.path.islink(path) or not os.path.isfile(path)):
        # the new file is renamed over it: never over a device node (/dev/null) or a link (/dev/stdout)
        raise PyrktError(f"output {path} is not a regular file")


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


Note = Callable[[str], None]


def write_aci_tar(out: IO[bytes], image: Image, layer_dirs: list[Path], *, upper: Path | None = None,
                  mount_points: frozenset[str] = frozenset(), note: Note | None = None) -> None:
    """The ACI of ``image`` (its layers ``layer_dirs``, bottom first; ``upper``: an overlay
    upper dir on top, ``mount_points`` as ``squash.entries`` takes them), as an uncompressed tar."""
    with tarfile.open(fileobj=out, mode="w|", format=tarfile.PAX_FORMAT, encoding="utf-8",
                      errors="surrogateescape") as tf:
        data = manifest_bytes(image)
        info = tarfile.TarInfo("manifest")
        info.size = len(data)
        info.mode = 0o644
        info.mtime = int(time.time())
        tf.addfile(info, io.BytesIO(data))
        _add_tree(tf, layer_dirs, upper, mount_points, note, "rootfs/", "rootfs")


def _add_tree(tf: tarfile.TarFile, layer_dirs: list[Path], upper: Path | None, mount_points: frozenset[str],
              note: Note | None, prefix: str, root: str) -> None:
    """The merged tree as members ``prefix + path`` (the root as ``root``). ``note`` hears of
    the special entries of the upper dir (of every layer when there is no upper)."""
    noted = len(layer_dirs) if upper is not None else 0
    for rel, src, layer in entries(layer_dirs, upper=upper, mount_points=mount_points):
        st = os.lstat(src)
        special = _special(st)
        if special and note is not None and layer >= noted:
            what, kept = special
            note(f"/{rel} is {what}: {'exported as it is' if kept else 'left out (tar cannot hold one)'}")
        if special and not special[1]:
            continue
        add_member(tf, str(src), prefix + rel if rel else root)


def _special(st: os.stat_result) -> tuple[str, bool] | None:
    """(what it is, whether tar keeps it) for a socket or a device node; None for the rest."""
    if stat.S_ISSOCK(st.st_mode):
        return "a socket", False
    if stat.S_ISCHR(st.st_mode) or stat.S_ISBLK(st.st_mode):
        kind = "character" if stat.S_ISCHR(st.st_mode) else "block"
        return f"a {kind} device {os.major(st.st_rdev)}:{os.minor(st.st_rdev)}", True
    return None


def write_tree_oci_archive(path: Path, layer_dirs: list[Path], *, config: Callable[[str], dict[str, object]],
                           version: str = "", upper: Path | None = None, mount_points: frozenset[str] = frozenset(),
                           note: Note | None = None) -> None:
    """An OCI image layout archive at ``path`` of one gzip layer (the merged tree of
    ``layer_dirs`` and ``upper``) and the image config ``config(diff id of that layer)``,
    tagged ``version``; written atomically.

    The blobs are made first in a temp dir next to ``path`` (the layer's digests are known
    only once it is written), then copied into the archive by ``write_oci_archive``."""
    import gzip
    import tempfile

    with tempfile.TemporaryDirectory(prefix=f".{path.name}.", suffix=".blobs", dir=path.parent) as tmp:
        blobs = Path(tmp)
        layer_tmp = blobs / "layer"
        with open(layer_tmp, "wb") as raw:
            packed = _HashingWriter(raw)
            with gzip.GzipFile(fileobj=packed, mode="wb", mtime=0, compresslevel=6) as gz:  # type: ignore[arg-type]
                plain = _HashingWriter(gz)
                with tarfile.open(fileobj=plain, mode="w|", format=tarfile.PAX_FORMAT,  # type: ignore[call-overload]
                                  encoding="utf-8", errors="surrogateescape") as tf:
                    _add_tree(tf, layer_dirs, upper, mount_points, note, "", ".")
        layer = {"mediaType": MT_OCI_LAYER_GZIP, "digest": packed.digest, "size": packed.size}
        os.rename(layer_tmp, blobs / digest_hex(packed.digest))
        config_data = _json_bytes(config(plain.digest))
        config_digest = _put_blob(blobs, config_data)
        manifest = _json_bytes({
            "schemaVersion": 2, "mediaType": MT_OCI_MANIFEST,
            "config": {"mediaType": MT_OCI_CONFIG, "digest": config_digest, "size": len(config_data)},
            "layers": [layer],
        })
        manifest_digest = _put_blob(blobs, manifest)
        write_atomically(path, lambda f: write_oci_archive(
            f, manifest_digest=manifest_digest, manifest_media_type=MT_OCI_MANIFEST,
            version=version, blobs=[manifest_digest, config_digest, str(layer["digest"])],
            open_blob=lambda d: open(blobs / digest_hex(d), "rb")))


class _Sink(Protocol):
    def write(self, data: bytes, /) -> int: ...
    def flush(self) -> None: ...


class _HashingWriter:
    """A write-only file that hashes (sha256) and counts what passes through to ``raw``."""

    def __init__(self, raw: _Sink) -> None:
        import hashlib

        self.raw = raw
        self.hasher = hashlib.sha256()
        self.size = 0

    def write(self, data: bytes) -> int:
        self.hasher.update(data)
        self.size += len(data)
        self.raw.write(data)
        return len(data)

    def flush(self) -> None:
        self.raw.flush()

    @property
    def digest(self) -> str:
        return "sha256:" + self.hasher.hexdigest()


def _json_bytes(value: object) -> bytes:
    return json.dumps(value, separators=(",", ":"), sort_keys=True).encode()


def _put_blob(blobs: Path, data: bytes) -> str:
    import hashlib

    digest = "sha256:" + hashlib.sha256(data).hexdigest()
    (blobs / digest_hex(digest)).write_bytes(data)
    return digest


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
