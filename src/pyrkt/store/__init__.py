"""The local image store: blobs by digest, unpacked layers, and an SQLite index of images.

Knows nothing of pods, HTTP or CNI. On disk, under ``<data dir>/store`` (mode 0700, since layers
may hold setuid files)::

    blobs/sha256/<hex>          manifests, configs and layer blobs exactly as fetched (blobs.py)
    layers/sha256/<hex>/        one unpacked layer per diff id: an overlayfs lower dir (layers.py)
    index.db                    SQLite (WAL): images, refs, blobs and layers they use (index.py)
    tmp/<session>/              what imports stage before committing (staging.py, imports.py)
    lock                        flock: imports, prepare, export, extract shared;
                                remove, gc, verify exclusive

Writing an image out: ``squash.py`` merges layers as overlayfs shows them, ``render.py`` copies
the result into a dir, ``export.py`` writes an ACI or OCI archive (``aci.py``: the appc
manifest); ``verify.py`` checks and repairs what is stored.

Reading (``resolve``, ``get``, ``layer_dirs``, ``list``) opens the db lazily and takes no lock.
Pods are not the store's business, but what they use is: ``remove`` and ``collect`` ask an
``in_use`` callback (called under the exclusive lock, so no prepare can slip in between) which
images and layer dirs pods still hold, and keep those.
"""

from __future__ import annotations

import builtins
import os

from pyrkt.errors import Ambiguous, ImageError, NotFound, quote, undecodable
from pyrkt.model.image import Image
from pyrkt.model.values import Value
from pyrkt.store.digests import digest_hex, short_id
from pyrkt.store.index import ImageRecord, Index
from pyrkt.store.lookup import Candidate, Lookup, check_id_prefix, choose, name_candidates, parse_lookup

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable
    from pathlib import Path

    from pyrkt.kernel.lock import FileLock
    from pyrkt.store.blobs import BlobStore
    from pyrkt.store.imports import ImportSession
    from pyrkt.store.layers import LayerStore

__all__ = ["Collected", "ImageRecord", "InUse", "Store", "short_id"]


class InUse(Value):
    """What pods hold: image ids (kept by ``collect``) and layer diff ids (never deleted)."""

    images: frozenset[str] = frozenset()
    layers: frozenset[str] = frozenset()


class Collected(Value):
    """What ``collect`` did: images removed, orphan blobs and layer dirs deleted, temp dirs cleaned."""

    removed: tuple[ImageRecord, ...] = ()
    kept_in_use: tuple[ImageRecord, ...] = ()
    blobs: int = 0
    layers: int = 0
    temp: int = 0


def _nothing_in_use() -> InUse:
    return InUse()


class Store:
    """``dir`` is the store's path as a string (the run path does without pathlib); ``root``
    and ``tmp`` are Paths for the code that imports, exports and collects."""

    def __init__(self, root: str | os.PathLike[str], *, config_dirs: tuple[str, ...] = ()) -> None:
        self.dir = os.fspath(root)
        self.config_dirs = config_dirs  # whose store.d bounds imports (store.limits)
        self.index = Index(os.path.join(self.dir, "index.db"))
        self._blobs: BlobStore | None = None
        self._layers: LayerStore | None = None

    # Paths, blob and layer handling (and their imports) are only loaded by commands that
    # need them (functools.cached_property would cost the run path its import).
    @property
    def root(self) -> Path:
        from pathlib import Path

        return Path(self.dir)

    @property
    def tmp(self) -> Path:
        return self.root / "tmp"

    @property
    def blobs(self) -> BlobStore:
        if self._blobs is None:
            from pyrkt.store.blobs import BlobStore

            self._blobs = BlobStore(self.root / "blobs")
        return self._blobs

    @property
    def layers(self) -> LayerStore:
        if self._layers is None:
            from pyrkt.store.layers import LayerStore

            self._layers = LayerStore(self.root / "layers")
        return self._layers

    def layer_path(self, diff_id: str) -> Path:
        """Where the unpacked layer ``diff_id`` lives (whether or not it is there)."""
        return self.root / "layers" / "sha256" / digest_hex(diff_id)

    def layer_dir(self, diff_id: str) -> str:
        """``layer_path`` as a string."""
        return os.path.join(self.dir, "layers", "sha256", digest_hex(diff_id))

    @classmethod
    def open(cls, store_dir: str | os.PathLike[str], *, config_dirs: tuple[str, ...] = ()) -> Store:
        """The store at ``store_dir`` (created on first import); cleans a dead import's leftovers.
        ``config_dirs`` (system, local, user) hold the ``store.d`` settings that bound imports."""
        store = cls(store_dir, config_dirs=config_dirs)
        try:
            leftovers = bool(os.listdir(os.path.join(store.dir, "tmp")))
        except OSError:  # no tmp yet, or a user who may only read the store
            leftovers = False
        if leftovers:
            store.gc_temp()
        return store

    def close(self) -> None:
        self.index.close()

    # -- lookups ---------------------------------------------------------------------------

    def find(self, arg: str) -> ImageRecord:
        """The record ``arg`` names: an id prefix, ``name[:tag]`` or ``name@digest``."""
        image_id, _ = self._lookup(arg)
        rec = self.index.record(image_id)
        if rec is None:
            raise NotFound(f"image {quote(arg)} not found in the store")
        return rec

    def resolve(self, arg: str) -> Image:
        """The image ``arg`` names; looked up by name it carries that name and tag."""
        image_id, ref = self._lookup(arg)
        image = self.get(image_id)
        if ref is None:
            return image
        name, version = ref
        labels = tuple((k, v) for k, v in image.labels if k != "version")
        return image.replace(name=name, labels=(("version", version), *labels) if version else labels)

    def _lookup(self, arg: str) -> tuple[str, tuple[str, str] | None]:
        look = parse_lookup(arg)
        if look.id_prefix is not None:
            check_id_prefix(look.id_prefix)
            ids = self.index.ids_with_prefix(look.id_prefix)
            if len(ids) > 1:
                raise Ambiguous(f"ambiguous image ID: {quote(arg)} matches {len(ids)} images")
            if ids:
                return ids[0], None
            if look.name is None:
                raise NotFound(f"no image IDs found matching {quote(arg)}")
        assert look.name is not None
        found = self.find_named(look)
        if found is None:
            raise NotFound(f"image {quote(str(look))} not found in the store")
        return found

    def find_named(self, look: Lookup) -> tuple[str, tuple[str, str]] | None:
        """(id, (name, version)) of the image a name lookup means, as rkt's store chose (``lookup.choose``)."""
        assert look.name is not None
        if undecodable(look.name):
            return None  # no stored name has bytes that are not UTF-8
        for name in name_candidates(look.name):
            if look.digest is not None:
                found = self.index.by_manifest(name, look.digest)
                if found is not None:
                    return found, (name, "")
                continue
            refs = [Candidate(*row) for row in self.index.refs_named(name)]
            best = choose(refs, look.version, look.labels)
            if best is not None:
                return best.image_id, (name, best.version)
        return None

    def get(self, image_id: str) -> Image:
        data = self.index.image_json(image_id)
        if data is None:
            raise NotFound(f"image {image_id} not found in the store")
        return Image.from_json(data)

    def record(self, image_id: str) -> ImageRecord:
        rec = self.index.record(image_id)
        if rec is None:
            raise NotFound(f"image {image_id} not found in the store")
        return rec

    def list(self) -> list[ImageRecord]:
        return self.index.records()

    def lower_dirs(self, image: Image) -> builtins.list[str]:
        """The image's unpacked layer dirs, bottom first, ready as overlay lower dirs.

        A diff id listed twice (e.g. empty layers) appears once, at its topmost position: the
        merged view is the same, and overlayfs needs distinct lower dirs.
        """
        out: builtins.list[str] = []
        seen: set[str] = set()
        for diff_id in reversed(image.layers):
            if diff_id in seen:
                continue
            seen.add(diff_id)
            path = self.layer_dir(diff_id)
            if not os.path.isdir(path):
                raise ImageError(f"layer {diff_id} of image {short_id(image.id)} is missing from the store; "
                                 "fetch the image again")
            out.append(path)
        out.reverse()
        return out

    def layer_dirs(self, image: Image) -> builtins.list[Path]:
        """``lower_dirs`` as Paths."""
        from pathlib import Path

        return [Path(d) for d in self.lower_dirs(image)]

    def manifest(self, image_id: str) -> bytes:
        """The image's manifest, byte for byte as stored."""
        rec = self.record(image_id)
        try:
            return self.blobs.read(rec.manifest_digest)
        except NotFound:
            raise ImageError(f"manifest {rec.manifest_digest} of image {short_id(image_id)} "
                             "is missing from the store") from None

    # -- changes ---------------------------------------------------------------------------

    def begin_import(self, source: str) -> ImportSession:
        from pyrkt.store.imports import ImportSession

        return ImportSession(self, source)

    def shared_lock(self) -> FileLock:
        """Hold this (``with store.shared_lock():``) while using layer dirs that must not vanish:
        ``remove``, ``collect``, ``gc_orphans`` and verify wait for it, as they wait for imports."""
        from pyrkt.store.staging import store_lock

        os.makedirs(self.dir, mode=0o700, exist_ok=True)
        lock = store_lock(self.dir)
        lock.shared()
        return lock

    def touch(self, image_id: str) -> None:
        self.index.touch(image_id)

    def blobs_of(self, image_id: str) -> builtins.list[str]:
        """The image's blobs: manifest, config, then its layer blobs bottom first."""
        roles = dict(self.index.blobs(image_id))
        order = {"manifest": 0, "config": 1}
        layers = [row.blob_digest for row in self.index.layers(image_id)]
        rest = sorted((d for d, r in roles.items() if r in order), key=lambda d: order[roles[d]])
        return rest + [d for i, d in enumerate(layers) if d in roles and d not in layers[:i]]

    def exclusive_lock(self) -> FileLock:
        """The store lock, held exclusively (``with store.exclusive_lock():``): no import,
        prepare, remove or gc runs meanwhile."""
        from pyrkt.store.staging import store_lock

        self.root.mkdir(mode=0o700, parents=True, exist_ok=True)
        lock = store_lock(self.root)
        lock.exclusive()
        return lock

    def remove(self, image_id: str, *, in_use: Callable[[], InUse] = _nothing_in_use) -> ImageRecord:
        """Forget the image and delete the blobs and layer dirs no other image uses.

        Layer dirs a pod uses (``in_use().layers``) stay, unreferenced, until ``collect`` finds
        no pod using them: a prepared pod whose image was removed still runs, as in rkt.
        """
        rec = self.record(image_id)
        with self.exclusive_lock():
            keep = in_use().layers
            blobs, layers = self.index.remove(image_id)
            self._delete(blobs, layers - keep)
            self._prune_remotes()
        return rec

    def _prune_remotes(self) -> None:
        """The https URLs recorded for images no longer stored are forgotten (rkt's remote rows)."""
        from pyrkt.store.remotes import RemoteCache

        RemoteCache(self.root).prune({rec.id for rec in self.index.records()})

    def gc_orphans(self, *, keep_layers: frozenset[str] = frozenset()) -> tuple[int, int]:
        """Delete blobs and layer dirs no image refers to (left by a killed import or remove)."""
        from pyrkt.store.staging import clean_tmp

        if not self.root.is_dir():
            return 0, 0
        with self.exclusive_lock():
            clean_tmp(self.tmp)
            return self._delete_orphans(keep_layers)

    def _delete_orphans(self, keep_layers: frozenset[str]) -> tuple[int, int]:
        blobs = set(self.blobs.walk()) - self.index.referenced_blobs()
        layers = set(self.layers.walk()) - self.index.referenced_layers() - keep_layers
        self._delete(blobs, layers)
        return len(blobs), len(layers)

    def collect(self, *, unused_since_ns: int, in_use: Callable[[], InUse] = _nothing_in_use) -> Collected:
        """``image gc``: remove images last used before ``unused_since_ns`` that no pod uses,
        then orphan blobs and layer dirs no image nor pod uses, and dead imports' temp dirs."""
        from pyrkt.store.staging import clean_tmp

        if not self.root.is_dir():
            return Collected()
        with self.exclusive_lock():
            temp = clean_tmp(self.tmp)
            used = in_use()
            removed, kept = [], []
            for rec in self.index.records():
                if rec.last_used >= unused_since_ns:
                    continue
                if rec.id in used.images:
                    kept.append(rec)
                    continue
                self.index.remove(rec.id)
                removed.append(rec)
            blobs, layers = self._delete_orphans(used.layers)
            self._prune_remotes()
        return Collected(tuple(removed), tuple(kept), blobs, layers, temp)

    def _delete(self, blobs: set[str], layers: set[str] | frozenset[str]) -> None:
        for digest in blobs:
            self.blobs.delete(digest)
        if layers:
            self.tmp.mkdir(mode=0o700, parents=True, exist_ok=True)
            for diff_id in layers:
                self.layers.remove(diff_id, self.tmp)

    def gc_temp(self) -> int:
        """Remove what killed imports left in ``tmp``, unless an import is running right now."""
        from pyrkt.store.staging import clean_tmp, store_lock

        if not self.root.is_dir():
            return 0
        with store_lock(self.root) as lock:
            if not lock.try_exclusive():
                return 0
            return clean_tmp(self.tmp)
