"""The remote cache: which stored image a URL gave, and the HTTP caching data that came with it.

rkt's ``remote`` table, as one small JSON file per URL under ``<store>/remotes/`` (named by the
sha256 of the URL, written atomically): the ACI URL, its signature URL, the ETag, the image id,
the ``Cache-Control: max-age`` and when the image was downloaded or last revalidated. A record
whose image has left the store is simply not used (``image rm`` and ``gc`` need not know of it).
Parsing ``Cache-Control`` and deciding freshness are pure functions here.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

from pyrkt.model import jsonio
from pyrkt.model.values import Value

REMOTES = "remotes"


class Remote(Value):
    """One URL's record; ``max_age`` in seconds (0: revalidate every time), ``download_time``
    in seconds since the epoch."""

    url: str
    image_id: str
    signature_url: str = ""
    etag: str = ""
    max_age: int = 0
    download_time: float = 0.0

    def is_fresh(self, now: float | None = None) -> bool:
        """Whether the image may be reused without asking the server (rkt's ``useCached``)."""
        now = time.time() if now is None else now
        return self.max_age > 0 and self.download_time <= now < self.download_time + self.max_age

    def to_json(self) -> bytes:
        return json.dumps({"url": self.url, "signatureUrl": self.signature_url, "etag": self.etag,
                           "imageId": self.image_id, "cacheMaxAge": self.max_age,
                           "downloadTime": self.download_time}, indent=1).encode()

    @classmethod
    def from_json(cls, data: bytes) -> Remote | None:
        """The record in ``data``, or None when it is not one (a damaged file is a cache miss)."""
        try:
            d = jsonio.loads(data)
            remote = cls(url=d["url"], image_id=d["imageId"], signature_url=d.get("signatureUrl") or "",
                         etag=d.get("etag") or "", max_age=int(d.get("cacheMaxAge") or 0),
                         download_time=float(d.get("downloadTime") or 0.0))
        except (ValueError, TypeError, KeyError, AttributeError):
            return None
        if not isinstance(remote.url, str) or not isinstance(remote.image_id, str) or not remote.image_id:
            return None
        return remote


def parse_max_age(cache_control: str | None) -> int:
    """Seconds a response may be reused for: ``max-age=N``; 0 with ``no-cache``, ``no-store``,
    no header or nonsense."""
    max_age = 0
    for directive in (cache_control or "").split(","):
        name, _, value = directive.strip().partition("=")
        name = name.strip().lower()
        if name in ("no-cache", "no-store"):
            return 0
        if name == "max-age":
            value = value.strip().strip('"')
            if not value.isdigit():
                return 0
            max_age = int(value)
    return max_age


class RemoteCache:
    """The records under ``<store dir>/remotes``."""

    def __init__(self, store_root: Path) -> None:
        self.dir = Path(store_root) / REMOTES

    def path(self, url: str) -> Path:
        import hashlib

        return self.dir / (hashlib.sha256(url.encode()).hexdigest() + ".json")

    def get(self, url: str) -> Remote | None:
        try:
            data = self.path(url).read_bytes()
        except (FileNotFoundError, NotADirectoryError):
            return None
        remote = Remote.from_json(data)
        return remote if remote is not None and remote.url == url else None

    def put(self, remote: Remote) -> None:
        from pyrkt.kernel.fs import atomic_write

        self.dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        atomic_write(self.path(remote.url), remote.to_json(), mode=0o600)

    def remove(self, url: str) -> None:
        try:
            os.unlink(self.path(url))
        except FileNotFoundError:
            pass

    def prune(self, image_ids: set[str]) -> int:
        """Remove the records of images no longer stored (and unreadable ones); how many went.
        ``image gc`` calls it under the store's exclusive lock."""
        try:
            names = os.listdir(self.dir)
        except FileNotFoundError:
            return 0
        removed = 0
        for name in names:
            path = self.dir / name
            try:
                remote = Remote.from_json(path.read_bytes())
            except OSError:
                continue
            if remote is None or remote.image_id not in image_ids:
                try:
                    os.unlink(path)
                    removed += 1
                except FileNotFoundError:
                    pass
        return removed
