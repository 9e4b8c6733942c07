"""``image verify``: re-hash an image's blobs and check its unpacked layer dirs, repairing those
that can be repaired.

Blobs are re-hashed against the digest that names them. A layer dir is checked against a fresh
unpack of its (verified) blob: both trees are walked and compared entry by entry (kind, mode,
owner, size, times of non-dirs, link targets, device numbers, xattrs, content hashes). A damaged
or missing layer dir is then replaced by the fresh unpack, as rkt re-rendered a damaged tree,
unless a pod uses it (a live overlay must not have its lower dir swapped): that one is reported
only. Runs with the store locked exclusively, so nothing changes the store meanwhile.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

from pyrkt.errors import ImageError, NotFound
from pyrkt.kernel.trees import walk
from pyrkt.model.values import Value
from pyrkt.store.aci import ACI_MEDIA_TYPE
from pyrkt.store.digests import HashingReader, short_id
from pyrkt.store.index import ImageRecord
from pyrkt.store.layers import unpack
from pyrkt.store.staging import new_session_dir, remove_tree

TYPE_CHECKING = False
if TYPE_CHECKING:
    from pyrkt.store import Store

CHUNK = 1 << 20
FIELDS = ("kind", "mode", "owner", "size", "mtime", "link", "device", "links", "xattrs", "content")


class Verified(Value):
    """One image's outcome: ``damage`` lists what was wrong, ``repaired`` what was fixed of it."""

    record: ImageRecord
    damage: tuple[str, ...] = ()
    repaired: tuple[str, ...] = ()

    @property
    def ok(self) -> bool:
        return not self.damage


def hash_file(path: Path | str) -> str:
    with open(path, "rb") as f:
        reader = HashingReader(f)
        reader.drain(CHUNK)
    return reader.digest


def entry_facts(path: str, st: os.stat_result | None = None) -> tuple[object, ...]:
    """What ``FIELDS`` says of one entry (``st``: its lstat, when known); a dir's mtime and link
    count and a whiteout's mtime are not compared (they depend on when and in which order things
    were unpacked, not on the layer)."""
    st = os.lstat(path) if st is None else st
    fmt = stat.S_IFMT(st.st_mode)
    # a whiteout's time is when it was unpacked
    no_time = fmt == stat.S_IFDIR or (fmt == stat.S_IFCHR and st.st_rdev == 0)
    is_dir = fmt == stat.S_IFDIR
    try:
        names = sorted(os.listxattr(path, follow_symlinks=False))
        xattrs = tuple((n, os.getxattr(path, n, follow_symlinks=False)) for n in names)
    except OSError:
        xattrs = ()
    return (
        fmt,
        stat.S_IMODE(st.st_mode),
        (st.st_uid, st.st_gid),
        st.st_size if fmt == stat.S_IFREG else 0,
        None if no_time else st.st_mtime_ns,
        os.readlink(path) if fmt == stat.S_IFLNK else None,
        st.st_rdev if fmt in (stat.S_IFCHR, stat.S_IFBLK) else None,
        None if is_dir else st.st_nlink,
        xattrs,
        hash_file(path) if fmt == stat.S_IFREG else None,
    )


def tree_facts(root: Path) -> dict[str, tuple[object, ...]]:
    """``entry_facts`` of every entry under ``root`` by relative path (the root's mode is kept,
    its times are not: they are the unpack's)."""
    out: dict[str, tuple[object, ...]] = {}
    for entry in walk(root):
        out[entry.rel] = entry_facts(entry.short_path, entry.st)
    out[""] = entry_facts(str(root))
    return out


def first_difference(found: dict[str, tuple[object, ...]], expected: dict[str, tuple[object, ...]],
                     implicit_dirs: frozenset[str] = frozenset()) -> str | None:
    """A one-line account of the first way ``found`` differs from ``expected``, or None.

    ``implicit_dirs`` are dirs the layer's tar never listed: their mode and owner came from
    the layers below at import time, which may have been another image's, so they are not
    compared.
    """
    for rel in sorted(expected.keys() | found.keys()):
        shown = "/" + rel
        if rel not in found:
            return f"{shown} is missing"
        if rel not in expected:
            return f"{shown} should not be there"
        if found[rel] != expected[rel]:
            fields = [f for f, a, b in zip(FIELDS, found[rel], expected[rel], strict=True) if a != b]
            if rel in implicit_dirs and found[rel][0] == expected[rel][0] == stat.S_IFDIR:
                fields = [f for f in fields if f not in ("mode", "owner")]
            if fields:
                return f"{shown} differs ({', '.join(fields)})"
    return None


def verify_image(store: Store, image_id: str, *, in_use_layers: frozenset[str] = frozenset(),
                 repair: bool = True) -> Verified:
    """Check one image; the caller holds ``store.exclusive_lock()``."""
    record = store.record(image_id)
    image = store.get(image_id)
    damage: list[str] = []
    repaired: list[str] = []
    bad_blobs: set[str] = set()
    roles = dict(store.index.blobs(image_id))
    for digest in store.blobs_of(image_id):
        what = f"{roles.get(digest, 'layer')} blob {digest}"
        path = store.blobs.path(digest)
        try:
            actual = hash_file(path)
        except FileNotFoundError:
            damage.append(f"{what} is missing")
            bad_blobs.add(digest)
            continue
        if actual != digest:
            damage.append(f"{what} is corrupt: its content hashes to {actual}")
            bad_blobs.add(digest)
    rows = {row.diff_id: row for row in store.index.layers(image_id)}
    below: list[Path] = []  # the image's layer dirs checked so far, bottom first
    seen: set[str] = set()
    session: Path | None = None
    try:
        for diff_id in image.layers:
            layer_dir = store.layer_path(diff_id)
            if diff_id in seen:
                below.append(layer_dir)
                continue
            seen.add(diff_id)
            row = rows.get(diff_id)
            if row is None or row.blob_digest in bad_blobs:
                if not layer_dir.is_dir():
                    damage.append(f"layer {diff_id} is missing and its blob is damaged: fetch the image again")
                below.append(layer_dir)
                continue
            if session is None:
                session = new_session_dir(store.tmp)
            fresh = session / f"layer-{len(seen)}"
            fresh.mkdir(mode=0o700)
            implicit: set[str] = set()
            unpack(store.blobs.path(row.blob_digest), fresh, diff_id=diff_id, layer=row.blob_digest,
                   lowers=list(reversed(below)), implicit_dirs=implicit, aci=row.media_type == ACI_MEDIA_TYPE)
            problem = f"layer {diff_id} is missing" if not layer_dir.is_dir() else None
            if problem is None:
                diff = first_difference(tree_facts(layer_dir), tree_facts(fresh), frozenset(implicit))
                problem = f"layer {diff_id} is damaged: {diff}" if diff else None
            if problem is not None:
                busy = diff_id in in_use_layers and layer_dir.is_dir()
                damage.append(problem + (" (not repaired: a pod uses it)" if repair and busy else ""))
                if repair and not busy:
                    store.layers.remove(diff_id, session)
                    store.layers.commit(diff_id, fresh)
                    repaired.append(f"layer {diff_id} repaired from its blob {row.blob_digest}")
            below.append(layer_dir)
    except NotFound as e:
        damage.append(str(e))
    except ImageError as e:
        damage.append(f"image {short_id(image_id)}: {e}")
    finally:
        if session is not None:
            remove_tree(session)
    return Verified(record, tuple(damage), tuple(repaired))
