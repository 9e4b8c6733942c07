"""Stored images as the v1alpha API shows them: index records (what `image list` reads) to
``Image`` messages, and rkt's image filters.

``id``, ``size`` and the name are those of `image list`; ``version`` is the tag (appc: the
``version`` label), "latest" when there is none, as rkt; ``import_timestamp`` is in seconds.
"""

from __future__ import annotations

from collections.abc import Sequence

from pyrkt.api.pods import contains_all, image_format, key_values
from pyrkt.api.proto import v1alpha_pb2 as pb
from pyrkt.model.image import Image
from pyrkt.store import ImageRecord


def image_message(rec: ImageRecord, image: Image | None, *, manifest: bytes | None = None) -> pb.Image:
    """The ``Image`` message of one stored image; ``image``: its model (format, annotations),
    None when unreadable; ``manifest``: its stored manifest, when asked for."""
    msg = pb.Image(
        base_format=image_format(image.format if image is not None else ""),
        id=rec.id,
        name=rec.name,
        version=rec.version or "latest",
        import_timestamp=rec.import_time // 1_000_000_000,
        size=rec.size,
        labels=key_values(rec.labels),
        annotations=key_values(image.annotations if image is not None else ()),
    )
    if manifest is not None:
        msg.manifest = manifest
    return msg


def matches_any(image: pb.Image, filters: Sequence[pb.ImageFilter]) -> bool:
    """rkt's rule: no filter matches every image; else an image must match one of the filters."""
    return not filters or any(matches(image, f) for f in filters)


def matches(image: pb.Image, f: pb.ImageFilter) -> bool:
    """Whether ``image`` meets every condition ``f`` sets (an empty condition is no condition)."""
    name = image.name
    if f.ids and image.id not in f.ids:
        return False
    if f.full_names and name not in f.full_names:
        return False
    if f.prefixes and not any(name.startswith(p) for p in f.prefixes):
        return False
    if f.base_names and name.rpartition("/")[2] not in f.base_names:
        return False
    if f.keywords and not any(k in name for k in f.keywords):
        return False
    if f.imported_after > 0 and image.import_timestamp <= f.imported_after:
        return False
    if f.imported_before > 0 and image.import_timestamp >= f.imported_before:
        return False
    if f.labels and not contains_all(image.labels, f.labels):
        return False
    if f.annotations and not contains_all(image.annotations, f.annotations):
        return False
    return True
