"""ACI images over http(s): ``https://example.com/app-1.0.aci`` (not written yet)."""

from __future__ import annotations

from pyrkt.errors import FetchError
from pyrkt.model.image import Image
from pyrkt.store import Store

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable

    from pyrkt.fetch import FetchOptions


def import_https(store: Store, url: str, *, source: str, options: FetchOptions,
                 signature_url: str | None = None, check: Callable[[Image], None] | None = None) -> Image:
    """Fetch the ACI at ``url`` (and its signature, ``signature_url`` or ``<url>.asc``) into
    ``store`` as ``options.pull_policy`` says; returns the stored Image. ``check`` (discovery's
    name and label match) may refuse the image before anything is committed."""
    raise FetchError(f"fetching ACI images over https is not supported yet: {source}")
