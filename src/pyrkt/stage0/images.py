"""Image use cases: resolve an image argument for run/prepare/fetch, list, remove, cat-manifest.

Pull policies (rkt's): ``never`` looks only in the store; ``new`` uses the store and fetches
what is missing; ``update`` always fetches from the source. Local sources (``oci:``,
``oci-archive:``, ``docker-archive:``) are always imported, whatever the policy, as rkt did for
files: importing an image the store holds already is cheap (no blob is read twice).
"""

from __future__ import annotations

from pyrkt.config import Config
from pyrkt.errors import NotFound, PyrktError, UsageError
from pyrkt.model.image import Image
from pyrkt.model.values import Value
from pyrkt.store import ImageRecord, Store

PULL_POLICIES = ("never", "new", "update")
SORT_KEYS = {"id": "id", "name": "name", "importtime": "import_time", "lastused": "last_used", "size": "size"}


def open_store(config: Config) -> Store:
    return Store.open(config.store_dir)


def check_pull_policy(policy: str) -> str:
    if policy not in PULL_POLICIES:
        raise UsageError(f"invalid pull policy {policy!r}: want never, new or update")
    return policy


def resolve_image(config: Config, store: Store, arg: str, *, pull_policy: str) -> Image:
    """The stored image ``arg`` names, fetched or imported first as the policy says."""
    from pyrkt.fetch import fetch, parse_source

    check_pull_policy(pull_policy)
    source = parse_source(arg)
    if source.is_local:
        return fetch(store, arg, source=source, insecure=config.insecure)
    if source.kind == "store":
        # Discovery of appc names is not written yet, so every policy ends at the store here.
        return store.resolve(arg)
    if pull_policy != "update":
        try:
            return store.resolve(source.location)
        except NotFound:
            if pull_policy == "never":
                raise NotFound(f"image {arg!r} not found in the store (pull policy never)") from None
    return fetch(store, arg, source=source, insecure=config.insecure)


def list_images(store: Store, *, sort: list[str] | None = None, order: str = "asc") -> list[ImageRecord]:
    """Records sorted by the given keys (rkt's ``--sort``; default import time)."""
    keys = [k.strip() for k in (sort or ["importtime"]) if k.strip()] or ["importtime"]
    for k in keys:
        if k not in SORT_KEYS:
            raise UsageError(f"invalid sort field {k!r}: want one of {', '.join(SORT_KEYS)}")
    if order not in ("asc", "desc"):
        raise UsageError(f"invalid order {order!r}: want asc or desc")
    records = store.list()
    for k in reversed(keys):
        attr = SORT_KEYS[k]
        if attr == "name":
            records.sort(key=lambda r: r.display_name)
        else:
            records.sort(key=lambda r, a=attr: getattr(r, a))  # type: ignore[misc]
    if order == "desc":
        records.reverse()
    return records


class Removal(Value):
    """The outcome of removing one argument: the record removed, or the error for it."""

    arg: str
    record: ImageRecord | None = None
    error: PyrktError | None = None


def remove_images(store: Store, args: list[str]) -> list[Removal]:
    """Remove each image (id prefix or name); an error for one argument does not stop the rest."""
    out = []
    for arg in args:
        try:
            rec = store.find(arg)
            out.append(Removal(arg, store.remove(rec.id)))
        except PyrktError as e:
            out.append(Removal(arg, error=e))
    return out


def image_manifest(store: Store, arg: str) -> bytes:
    """The stored manifest of the image ``arg`` names, byte for byte."""
    return store.manifest(store.find(arg).id)
