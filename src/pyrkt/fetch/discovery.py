"""appc discovery: names like ``example.com/app:v1.0,os=linux,arch=amd64`` (not written yet)."""

from __future__ import annotations

from pyrkt.errors import FetchError
from pyrkt.model.image import Image
from pyrkt.store import Store

TYPE_CHECKING = False
if TYPE_CHECKING:
    from pyrkt.fetch import FetchOptions


def import_discovered(store: Store, name: str, *, source: str, options: FetchOptions) -> Image:
    """Discover where the appc image ``name`` (with ``:version`` and ``,label=value``s) lives,
    fetch it and its signature, and return the stored Image."""
    raise FetchError(f"appc discovery is not supported yet: {source}")
