"""`pyrkt trust [--prefix=P | --root] KEYFILE...`: trust keys for checking ACI signatures.

A KEYFILE may be an https (or, with ``--insecure-allow-http``, http) URL, as in rkt.

Each armored key file is stored as ``<local config>/trustedkeys/prefix.d/<P>/<fingerprint>``
(``root.d/<fingerprint>`` with ``--root``) after its fingerprint is shown and confirmed on
stdin, unless ``--skip-fingerprint-review`` (``fetch.trust.admit_key`` decides, as for the keys
a fetch discovers). With ``--prefix`` and no key file, the prefix's
keys are found by appc discovery (its ``ac-discovery-pubkeys`` meta tags) and fetched over
https (http with ``--insecure-allow-http``); ``--trust-keys-from-https`` accepts https keys
without the review, as rkt.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from pyrkt.cli.flags import Flag
from pyrkt.errors import FetchError, UsageError, quote

if TYPE_CHECKING:
    from pyrkt.cli.fetchui import TerminalUI
    from pyrkt.cli.main import Context

USAGE = "pyrkt trust [--prefix=PREFIX | --root] [--skip-fingerprint-review] [--insecure-allow-http] [KEYFILE...]"
FLAGS = [
    Flag("prefix", help="image name prefix the keys are trusted for (e.g. example.com/app)"),
    Flag("root", "bool", help="trust the keys for every image (root key), needs key files"),
    Flag("skip-fingerprint-review", "bool", help="accept the keys without asking"),
    Flag("insecure-allow-http", "bool", help="allow discovering and fetching keys over plain http"),
]


def _review_ui(ctx: Context) -> TerminalUI:
    """The review is this command's output: on stdout, answers read from stdin (a pipe too)."""
    from pyrkt.cli.fetchui import TerminalUI

    return TerminalUI(ctx.stdout, ask_without_tty=True)


def run(ctx: Context, args: list[str]) -> int:
    from pyrkt.fetch.trust import admit_key, check_prefix, key_fingerprint

    values, keyfiles = ctx.parse(FLAGS, args)
    prefix = values["prefix"] or None
    root = bool(values["root"])
    if root and prefix:
        raise UsageError("--root and --prefix exclude each other")
    if not root and not prefix:
        raise UsageError("give --prefix=PREFIX (or --root to trust the keys for every image)")
    if prefix:
        prefix = check_prefix(prefix)
    if not keyfiles:
        if root:
            raise UsageError("--root needs key files")
        assert prefix is not None
        return _trust_discovered(ctx, prefix, review=not values["skip_fingerprint_review"],
                                 allow_http=bool(values["insecure_allow_http"]))
    ui = _review_ui(ctx)
    for keyfile in keyfiles:
        if keyfile.startswith(("https://", "http://")):  # rkt's PUBKEY may be a URL too
            _trust_url(ctx, keyfile, None if root else prefix, review=not values["skip_fingerprint_review"],
                       allow_http=bool(values["insecure_allow_http"]))
            continue
        if not keyfile:
            raise UsageError("an empty key file name")
        path = Path(keyfile)
        fingerprint, uid = key_fingerprint(path)
        dest = admit_key(Path(ctx.config.dirs.local), path, origin=keyfile, fingerprint=fingerprint, uid=uid,
                         prefix=None if root else prefix, ui=ui, review=not values["skip_fingerprint_review"])
        if dest is None:
            raise FetchError(f"key {fingerprint} from {quote(keyfile)} not trusted: the review was declined")
    return 0


def _trust_url(ctx: Context, url: str, prefix: str | None, *, review: bool, allow_http: bool) -> None:
    """A key named by its URL: fetched (https; http with --insecure-allow-http), shown, stored if accepted."""
    from pyrkt.fetch.discovery import Web, admit_discovered_key, fetch_key

    insecure = ctx.config.insecure | ({"http"} if allow_http else set())
    with Web(insecure, ctx.config.dirs.paths()) as web:
        data = fetch_key(url, web.get, allow_http=allow_http)
    fingerprint, dest = admit_discovered_key(Path(ctx.config.dirs.local), url, data, prefix, ui=_review_ui(ctx),
                                             review=review, trust_https=ctx.config.trust_keys_from_https)
    if dest is None:
        raise FetchError(f"key {fingerprint} from {url} not trusted: the review was declined")


def _trust_discovered(ctx: Context, prefix: str, *, review: bool, allow_http: bool) -> int:
    """rkt's ``trust --prefix P`` without keys: discover P's keys, show each, store what is accepted."""
    from pyrkt.fetch.discovery import Web, admit_discovered_key, discover_keys, fetch_key

    insecure = ctx.config.insecure | ({"http"} if allow_http else set())
    with Web(insecure, ctx.config.dirs.paths()) as web:
        urls = discover_keys(prefix, web.get, allow_http=allow_http)
        keys = [(url, fetch_key(url, web.get, allow_http=allow_http)) for url in urls]
    ui = _review_ui(ctx)
    for url, data in keys:
        fingerprint, dest = admit_discovered_key(Path(ctx.config.dirs.local), url, data, prefix, ui=ui, review=review,
                                                 trust_https=ctx.config.trust_keys_from_https)
        if dest is None:
            raise FetchError(f"key {fingerprint} from {url} not trusted: the review was declined")
    return 0
