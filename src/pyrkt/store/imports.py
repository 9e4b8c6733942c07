"""One import into the store: stage and verify everything, then commit it all or nothing.

    with store.begin_import(source="oci:/srv/img:1.0") as imp:
        cfg = imp.add_blob(stream, expected="sha256:…", size=123)   # staged in tmp, verified
        imp.add_layer(blob_digest, diff_id, media_type)             # unpacked in tmp, verified
        imp.add_layers([(blob_digest, diff_id, media_type), …])     # the same, side by side
        record = imp.commit(image, manifest_digest=…, …)            # rename into place + index row

Until ``commit``, nothing outside the session's temp dir changes; leaving the ``with`` block
without committing (an error, a signal) discards the temp dir. What the session writes is
charged to its ``ImportBudget`` (``store.limits``): the store's ``store.d`` settings bound it. The session holds the store lock
*shared* throughout, so ``remove``/``gc`` (exclusive) never delete what an import relies on.
"""

from __future__ import annotations

import errno
import io
import os
from dataclasses import dataclass
from pathlib import Path
from typing import IO, TYPE_CHECKING

from pyrkt.errors import ImageError
from pyrkt.model.image import Image
from pyrkt.store.aci import ACI_MEDIA_TYPE
from pyrkt.store.digests import digest_hex
from pyrkt.store.index import ImageRecord, LayerRow, now_ns
from pyrkt.store.layers import file_tree_size, unpack
from pyrkt.store.limits import ImportBudget, read_import_limits
from pyrkt.store.parallel import BlobFeed, ForkedUnpacks, UnpackJob, adopt_lower_dirs, unpack_all
from pyrkt.store.staging import new_session_dir, remove_tree, store_lock

if TYPE_CHECKING:
    from pyrkt.store import Store


MAX_STREAMED_LAYERS = 4  # layers unpacked while they download, a process each, at most


@dataclass
class _StagedLayer:
    path: Path | None  # None: already in the store
    row: LayerRow


class ImportSession:
    def __init__(self, store: Store, source: str) -> None:
        self.store = store
        self.source = source
        self.budget = ImportBudget(read_import_limits(store.config_dirs), store.dir, source)
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
        self.streams: ForkedUnpacks | None = None  # stream_layers' processes, until add_layers
        self.streamed: dict[str, tuple[str, UnpackJob]] = {}  # diff id -> (blob digest, job)
        self.committed = False

    def __enter__(self) -> ImportSession:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        try:
            if self.streams is not None:  # stop unpacking before removing what it writes into
                self.streams.close()
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
        try:
            digest, n, path = self.store.blobs.stage(stream, self.dir, expected=expected, size=size, what=what,
                                                     charge=self.budget.charge)
        except OSError as e:
            if e.errno not in (errno.ENOSPC, errno.EDQUOT):
                raise
            raise ImageError(f"{what}: no space left on the store's filesystem ({e.strerror})") from None
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
                      lowers=list(reversed(self.chain)), aci=media_type == ACI_MEDIA_TYPE, budget=self.budget)
        self.layers[diff_id] = _StagedLayer(dest, LayerRow(diff_id, blob_digest, media_type, size))
        self.chain.append(dest)
        return size

    def stream_layers(self, layers: list[tuple[str, str, str]]) -> dict[str, BlobFeed]:
        """Start unpacking, before their blobs are fetched, the layers (blob digest, diff id,
        media type) that are new to the store: one process each, reading its blob's bytes as
        they are written into the feed returned for its blob digest. Whoever fetches a blob
        writes each byte it stages into that feed and closes it at the end, even on failure;
        ``add_layers`` collects the results, and nothing counts before the blob is staged.

        At most ``MAX_STREAMED_LAYERS`` are streamed, the first ones given (pass the largest
        first); the others are unpacked by ``add_layers`` once fetched. Call it before any other
        thread runs (the processes are forked). Returns {} and starts nothing when streaming
        cannot help: fewer than two such layers, a single core, or threads running.
        """
        import threading

        jobs: dict[str, tuple[str, UnpackJob]] = {}
        for blob_digest, diff_id, media_type in layers:
            if diff_id in self.layers or diff_id in jobs or self.store.layers.has(diff_id):
                continue
            if self.has_blob(blob_digest) or any(b == blob_digest for b, _ in jobs.values()):
                continue  # held already, or a second diff id for one blob: unpacked from the file
            jobs[diff_id] = (blob_digest, UnpackJob(None, self.dir / f"layer-{digest_hex(diff_id)}", diff_id,
                                                    blob_digest, aci=media_type == ACI_MEDIA_TYPE))
            if len(jobs) == MAX_STREAMED_LAYERS:
                break
        if (len(jobs) < 2 or len(os.sched_getaffinity(0)) < 2 or threading.active_count() > 1
                or self.streams is not None):
            return {}
        for _, job in jobs.values():
            job.dest.mkdir(mode=0o700)
        self.streams = ForkedUnpacks([job for _, job in jobs.values()], len(jobs), budget=self.budget)
        self.streamed = {diff_id: (blob_digest, job) for diff_id, (blob_digest, job) in jobs.items()}
        feeds = self.streams.stream()
        return {blob_digest: feeds[i] for i, (blob_digest, _) in enumerate(jobs.values())}

    def add_layers(self, layers: list[tuple[str, str, str]]) -> list[int]:
        """``add_layer`` for each (blob digest, diff id, media type), bottom first, with the
        layers to unpack unpacked side by side (one process per core), or collected from
        ``stream_layers``; returns their sizes."""
        unpacked: dict[str, tuple[UnpackJob, tuple[int, set[str]]]] = {}
        if self.streams is not None:
            streams, self.streams = self.streams, None
            for (blob_digest, job), result in zip(self.streamed.values(), streams.run(), strict=True):
                if blob_digest not in self.staged:
                    raise ImageError(f"layer {blob_digest} was unpacked but its blob was not fetched")
                unpacked[job.diff_id] = (job, result)
        jobs: dict[str, UnpackJob] = {}
        for blob_digest, diff_id, media_type in layers:
            if diff_id in self.layers or diff_id in jobs or diff_id in unpacked or self.store.layers.has(diff_id):
                continue
            jobs[diff_id] = UnpackJob(self.blob_path(blob_digest), self.dir / f"layer-{digest_hex(diff_id)}",
                                      diff_id, blob_digest, aci=media_type == ACI_MEDIA_TYPE)
        if len(jobs) > 1:
            for job in jobs.values():
                job.dest.mkdir(mode=0o700)
            results = unpack_all(list(jobs.values()), budget=self.budget)
            for (diff_id, job), result in zip(jobs.items(), results, strict=True):
                unpacked[diff_id] = (job, result)
        sizes = []
        for blob_digest, diff_id, media_type in layers:
            if diff_id in unpacked and diff_id not in self.layers:
                job, (size, implicit) = unpacked[diff_id]
                adopt_lower_dirs(job.dest, implicit, list(reversed(self.chain)))
                self.layers[diff_id] = _StagedLayer(job.dest, LayerRow(diff_id, blob_digest, media_type, size))
                self.chain.append(job.dest)
                sizes.append(size)
            else:
                sizes.append(self.add_layer(blob_digest, diff_id, media_type))
        return sizes

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
