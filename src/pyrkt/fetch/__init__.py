"""Bringing images into the store. The one place a source kind is dispatched to its fetcher.

``fetch(store, arg)`` imports what ``arg`` names and returns the stored ``Image``:

    sources.py    what kind of source an argument is (oci:, oci-archive:, docker-archive:, docker://, ...)
    local.py      local OCI layouts and archives, Docker `docker save` archives
    aci.py        local appc ACI files (signature checked unless --insecure-options=image)
    https.py      ACI files over http(s), with a remote cache record (ETag, Cache-Control)
    discovery.py  appc discovery of names like example.com/app:v1.0,os=linux
    trust.py      the trusted-keys store, gpg signature checks, and admit_key: where a key
                  becomes trusted (``pyrkt trust`` and discovery), reviewed through the ui
    policy.py     pull policies (never, new, update): use_stored decides for every source
    ui.py         FetchUI: the progress, notices and questions a caller passes in (headless default)
    manifests.py  OCI/Docker manifests and indexes, platform choice
    convert.py    an OCI/Docker config -> pyrkt.model.image.Image

    reference.py  docker:// references (registry, repository, tag, digest)
    registry.py   the Docker Registry HTTP API v2 / OCI distribution client (its token dance)
    transport.py  the one HTTP transport (httpx) under registry.py, https.py and discovery.py:
                  TLS, plain http, retries and backoff, resumed downloads, auth per host, the
                  error phrases; nothing else imports httpx to talk to a server
    auth.py       credentials: ~/.docker/config.json (and its credential helpers), auth.d
                  dockerAuth for registries and auth for plain https; challenges
    progress.py   the download progress display on a terminal (docker:// pulls)

Hacking: a new source kind is a ``Source.kind`` in sources.py plus one entry in ``_FETCHERS``
below; a fetcher takes (store, source, arg, options) and returns the stored Image. The kind
``appc`` (a name to discover) is never parsed from an argument: ``stage0.images`` chooses it
when a name is not in the store.
"""

from __future__ import annotations

from pyrkt.config import ConfigDirs
from pyrkt.errors import FetchError, UsageError
from pyrkt.fetch.sources import LOCAL_KINDS, Source, parse_source
from pyrkt.fetch.ui import HEADLESS, FetchUI
from pyrkt.model.image import Image
from pyrkt.model.values import Value, field
from pyrkt.store import Store

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable
    from pathlib import Path

    from pyrkt.fetch.manifests import Platform

__all__ = ["LOCAL_KINDS", "FetchOptions", "Source", "fetch", "parse_platform", "parse_source"]


class FetchOptions(Value):
    """What a fetcher may need besides the source: ``--insecure-options``; the config ``dirs``
    whose ``auth.d`` holds credentials and ``trustedkeys`` the keys ACI signatures are checked
    with; ``signature``: an ACI's ``--signature`` file; ``platform``: ``--platform``
    (os/arch[/variant], "" for the host's); ``ui``: the caller's progress display and questions
    (headless by default); ``pull_policy``: never, new or update (``policy.use_stored``
    decides); ``trust_keys_from_https``: trust the keys appc discovery finds over https for a
    prefix that has none yet."""

    insecure: frozenset[str] = frozenset()
    dirs: ConfigDirs = ConfigDirs()
    signature: Path | None = None
    platform: str = ""
    ui: FetchUI = field(default=HEADLESS, compare=False)
    pull_policy: str = "update"
    trust_keys_from_https: bool = False


def parse_platform(text: str) -> Platform:
    """``--platform=os/arch[/variant]`` as a Platform; a UsageError for anything else."""
    from pyrkt.fetch.manifests import Platform

    parts = text.split("/")
    if not 2 <= len(parts) <= 3 or not all(parts) or any(p != p.strip() for p in parts):
        raise UsageError(f"invalid --platform={text!r}: want os/arch or os/arch/variant, e.g. linux/arm64")
    return Platform(*parts)


def _local(store: Store, source: Source, arg: str, options: FetchOptions) -> Image:
    from pyrkt.fetch.local import import_local

    platform = parse_platform(options.platform) if options.platform else None
    return import_local(store, source, arg=arg, platform=platform)


def _docker(store: Store, source: Source, arg: str, options: FetchOptions) -> Image:
    from pyrkt.fetch.auth import credentials_for
    from pyrkt.fetch.reference import parse_reference
    from pyrkt.fetch.registry import import_registry

    ref = parse_reference(source.location)
    credentials = credentials_for(ref.registry, options.dirs.names())
    platform = parse_platform(options.platform) if options.platform else None
    progress = options.ui.progress()
    try:
        return import_registry(store, ref, source=arg, insecure=options.insecure, credentials=credentials,
                               platform=platform, progress=progress)
    finally:
        if progress is not None:
            progress.close()


def _aci(store: Store, source: Source, arg: str, options: FetchOptions) -> Image:
    from pathlib import Path

    from pyrkt.fetch.aci import import_aci
    from pyrkt.fetch.discovery import dependency_resolver

    return import_aci(store, Path(source.location), source=arg, signature=options.signature,
                      verify="image" not in options.insecure, dirs=options.dirs,
                      resolve_dependency=dependency_resolver(store, options))


def _https(store: Store, source: Source, arg: str, options: FetchOptions) -> Image:
    from pyrkt.fetch.https import import_https

    return import_https(store, source.location, source=arg, options=options)


def _appc(store: Store, source: Source, arg: str, options: FetchOptions) -> Image:
    from pyrkt.fetch.discovery import import_discovered

    return import_discovered(store, source.location, source=arg, options=options)


_FETCHERS: dict[str, Callable[[Store, Source, str, FetchOptions], Image]] = {
    "oci": _local,
    "oci-archive": _local,
    "docker-archive": _local,
    "docker": _docker,
    "https": _https,
    "aci-file": _aci,
    "appc": _appc,
}


def fetch(store: Store, arg: str, *, source: Source | None = None, insecure: frozenset[str] = frozenset(),
          dirs: ConfigDirs | None = None, signature: Path | None = None, platform: str = "",
          ui: FetchUI | None = None, pull_policy: str = "update", trust_keys_from_https: bool = False) -> Image:
    """Import the image ``arg`` names into ``store`` from its source; returns the stored Image.
    ``dirs``: the config dirs (default: pyrkt's); ``signature``: the detached signature of an ACI
    file (default: ``<file>.asc``); ``platform``:
    the os/arch[/variant] to choose from an index (default: the host's); ``ui``: where progress
    goes and who is asked (default: nobody, nothing shown)."""
    source = source or parse_source(arg)
    fetcher = _FETCHERS.get(source.kind)
    if fetcher is None:
        raise FetchError(f"no fetcher for {arg!r}: it names an image in the store, not a source")
    options = FetchOptions(insecure=insecure, dirs=dirs or ConfigDirs(), signature=signature, platform=platform,
                           ui=ui or HEADLESS,
                           pull_policy=pull_policy, trust_keys_from_https=trust_keys_from_https)
    return fetcher(store, source, arg, options)
