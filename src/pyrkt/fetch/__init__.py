"""Bringing images into the store. The one place a source kind is dispatched to its fetcher.

``fetch(store, arg)`` imports what ``arg`` names and returns the stored ``Image``:

    sources.py    what kind of source an argument is (oci:, oci-archive:, docker-archive:, docker://, ...)
    local.py      local OCI layouts and archives, Docker `docker save` archives
    manifests.py  OCI/Docker manifests and indexes, platform choice
    convert.py    an OCI/Docker config -> pyrkt.model.image.Image

Hacking: a new source kind is a ``Source.kind`` in sources.py plus one entry in ``_FETCHERS``
below; a fetcher takes (store, source, arg, insecure) and returns the stored Image. Registries
(``docker://``) and HTTPS/appc are not written yet and refuse with a FetchError.
"""

from __future__ import annotations

from pyrkt.errors import FetchError
from pyrkt.fetch.sources import LOCAL_KINDS, Source, parse_source
from pyrkt.model.image import Image
from pyrkt.store import Store

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable

__all__ = ["LOCAL_KINDS", "Source", "fetch", "parse_source"]


def _local(store: Store, source: Source, arg: str, insecure: frozenset[str]) -> Image:
    from pyrkt.fetch.local import import_local

    return import_local(store, source, arg=arg)


def _not_yet(what: str) -> Callable[[Store, Source, str, frozenset[str]], Image]:
    def refuse(store: Store, source: Source, arg: str, insecure: frozenset[str]) -> Image:
        raise FetchError(f"{what} is not supported yet: {arg}")

    return refuse


_FETCHERS: dict[str, Callable[[Store, Source, str, frozenset[str]], Image]] = {
    "oci": _local,
    "oci-archive": _local,
    "docker-archive": _local,
    "docker": _not_yet("fetching from registries"),
    "https": _not_yet("fetching from registries"),
    "aci-file": _not_yet("importing ACI files"),
}


def fetch(store: Store, arg: str, *, source: Source | None = None, insecure: frozenset[str] = frozenset()) -> Image:
    """Import the image ``arg`` names into ``store`` from its source; returns the stored Image."""
    source = source or parse_source(arg)
    fetcher = _FETCHERS.get(source.kind)
    if fetcher is None:
        raise FetchError(f"no fetcher for {arg!r}: it names an image in the store, not a source")
    return fetcher(store, source, arg, insecure)
