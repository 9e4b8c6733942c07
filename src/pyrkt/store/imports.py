"""One import into the store: stage and verify everything, then commit it all or nothing.

    with store.begin_import(source="oci:/srv/img:1.0") as imp:
        cfg = imp.add_blob(stream, expected="sha256:…", size=123)   # staged in tmp, verified
        imp.add_layer(blob_digest, diff_id, media_type)             # unpacked in tmp, verified
        record = imp.commit(image, manifest_digest=…, …)            # rename into place + index row

Until ``commit``, nothing outside the session's temp dir changes; leaving the ``with`` block
without committing (an error, a signal) discards the temp dir. The session holds the store lock
*shared* throughout, so ``remove``/``gc`` (exclusive) never delete what an import relies on.
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from pathlib import Path
from typing import IO, TYPE_CHECKING

from pyrkt.errors import ImageError
from pyrkt.model.image import Image
from pyrkt.store.aci import ACI_MEDIA_TYPE
from pyrkt.store.digests import digest_hex
from pyrkt.store.index import ImageRecord, LayerRow, now_ns
from pyrkt.store.layers import file_tree_size, unpack
from pyrkt.store.staging import new_session_dir, remove_tree, store_lock

if TYPE_CHECKING:
    from pyrkt.store import Store


@dataclass
class _StagedLayer:
    path: Path | None  # None: already in the store
    row: LayerRow


class ImportSession:
    def __init__(self, store: Store, source: str) -> None:
        self.store = store
        self.source = source
        store.root.mkdir(mode=0o700, parents=True, exist_ok=True)
        self.lock = store_lock(store.root)
        self.lock.shared()
        try:
            self.dir = new_session_dir(store.tmp)
        except BaseException:
            self.lock.close()
            raise
        self.staged: dict[str, Path] = {}
        self.sizes: dict[str, int] = {}
        self.layers: dict[str, _StagedLayer] = {}
        self.chain: list[Path] = []  # dirs of the layers added so far, bottom first
        self.committed = False

    def __enter__(self) -> ImportSession:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        try:
            remove_tree(self.dir)
        finally:
            self.lock.close()

    # -- blobs -----------------------------------------------------------------------------

    def has_blob(self, digest: str) -> bool:
        return digest in self.staged or self.store.blobs.has(digest)

    def add_blob(self, stream: IO[bytes], *, expected: str | None, size: int | None = None,
                 what: str = "blob") -> str:
        """Stage ``stream`` (verified against ``expected``/``size``); a blob already held is not read."""
        if expected is not None:
            digest_hex(expected)  # refuse malformed digests before reading anything
            if self.has_blob(expected):
                return expected
        digest, n, path = self.store.blobs.stage(stream, self.dir, expected=expected, size=size, what=what)
        self.staged[digest] = path
        self.sizes[digest] = n
        return digest

    def add_bytes(self, data: bytes, *, expected: str | None = None, what: str = "blob") -> str:
        return self.add_blob(io.BytesIO(data), expected=expected, size=len(data), what=what)

    def blob_path(self, digest: str) -> Path:
        return self.staged.get(digest) or self.store.blobs.path(digest)

    def read_blob(self, digest: str, *, limit: int = 64 << 20) -> bytes:
        """A small blob's bytes (manifest, config); refuses anything larger than ``limit``."""
        path = self.blob_path(digest)
        if path.stat().st_size > limit:
            raise ImageError(f"blob {digest} is {path.stat().st_size} bytes, too large for a manifest or config")
        return path.read_bytes()

    def blob_size(self, digest: str) -> int:
        if digest in self.sizes:
            return self.sizes[digest]
        return self.blob_path(digest).stat().st_size

    # -- layers ----------------------------------------------------------------------------

    def add_layer(self, blob_digest: str, diff_id: str, media_type: str) -> int:
        """Unpack the (staged or stored) blob as layer ``diff_id``, unless the store has it.

        A blob of media type ``ACI_MEDIA_TYPE`` is a whole ACI: its ``rootfs/`` is the layer.

        Call it for an image's layers bottom first: each layer is unpacked over the ones before.
        """
        if diff_id in self.layers:
            staged = self.layers[diff_id]
            self.chain.append(staged.path or self.store.layers.path(diff_id))
            return staged.row.size
        if self.store.layers.has(diff_id):
            size = self.store.index.layer_size(diff_id)
            if size is None:
                size = file_tree_size(self.store.layers.path(diff_id))
            self.layers[diff_id] = _StagedLayer(None, LayerRow(diff_id, blob_digest, media_type, size))
            self.chain.append(self.store.layers.path(diff_id))
            return size
        dest = self.dir / f"layer-{digest_hex(diff_id)}"
        dest.mkdir(mode=0o700)
        size = unpack(self.blob_path(blob_digest), dest, diff_id=diff_id, layer=blob_digest,
                      lowers=list(reversed(self.chain)), aci=media_type == ACI_MEDIA_TYPE)
        self.layers[diff_id] = _StagedLayer(dest, LayerRow(diff_id, blob_digest, media_type, size))
        self.chain.append(dest)
        return size

    # -- commit ----------------------------------------------------------------------------

    def commit(self, image: Image, *, manifest_digest: str, manifest_media_type: str, config_digest: str,
               name: str, version: str) -> ImageRecord:
        """Move staged blobs and layers into place and record the image; returns its record."""
        missing = [d for d in image.layers if d not in self.layers]
        if missing:
            raise ImageError(f"image {image.id}: layer {missing[0]} was not imported")
        blob_roles: dict[str, str] = {manifest_digest: "manifest", config_digest: "config"}
        for d in image.layers:
            blob_roles.setdefault(self.layers[d].row.blob_digest, "layer")
        for digest in blob_roles:
            if not self.has_blob(digest):
                raise ImageError(f"image {image.id}: blob {digest} was not imported")
        size = sum(self.blob_size(d) for d in blob_roles) + sum(self.layers[d].row.size for d in set(image.layers))
        for digest in blob_roles:
            if digest in self.staged:  # other staged blobs (e.g. an index) go with the temp dir
                self.store.blobs.commit(digest, self.staged[digest])
        for diff_id, staged in self.layers.items():
            if staged.path is not None:
                self.store.layers.commit(diff_id, staged.path)
        now = now_ns()
        rec = ImageRecord(
            id=image.id, name=name, version=version, labels=image.labels,
            manifest_digest=manifest_digest, manifest_media_type=manifest_media_type,
            size=size, import_time=now, last_used=now, source=self.source,
        )
        stored = self.store.index.add(rec, image.to_json(), blob_roles.items(),
                                      [self.layers[d].row for d in image.layers])
        self.committed = True
        return stored
