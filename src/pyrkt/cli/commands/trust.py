"""`pyrkt trust [--prefix=P | --root] KEYFILE...`: trust keys for checking ACI signatures.

Each armored key file is stored as ``<local config>/trustedkeys/prefix.d/<P>/<fingerprint>``
(``root.d/<fingerprint>`` with ``--root``) after its fingerprint is shown and confirmed on
stdin, unless ``--skip-fingerprint-review``. Fetching keys by appc discovery (no key file)
is not supported yet.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING

from pyrkt.cli.flags import Flag
from pyrkt.errors import FetchError, UsageError

if TYPE_CHECKING:
    from pyrkt.cli.main import Context

USAGE = "pyrkt trust [--prefix=PREFIX | --root] [--skip-fingerprint-review] KEYFILE..."
FLAGS = [
    Flag("prefix", help="image name prefix the keys are trusted for (e.g. example.com/app)"),
    Flag("root", "bool", help="trust the keys for every image (root key), needs key files"),
    Flag("skip-fingerprint-review", "bool", help="accept the keys without asking"),
    Flag("insecure-allow-http", "bool", help="allow fetching keys over http (not supported: give key files)",
         hidden=True),
]


def _confirmed(ctx: Context, fingerprint: str, uid: str, where: str) -> bool:
    ctx.stdout.write(f"Prefix: {where}\nKey fingerprint: {fingerprint}\n")
    if uid:
        ctx.stdout.write(f"\tSubkey fingerprint/uid: {uid}\n")
    ctx.stdout.write("Are you sure you want to trust this key (yes/no)? ")
    ctx.stdout.flush()
    stdin = sys.stdin
    if stdin is None or stdin.closed:
        raise UsageError("cannot ask whether to trust the key: no stdin (use --skip-fingerprint-review)")
    answer = stdin.readline()
    if not answer:
        raise UsageError("cannot ask whether to trust the key: stdin is closed (use --skip-fingerprint-review)")
    return answer.strip().lower() in ("y", "yes")


def run(ctx: Context, args: list[str]) -> int:
    from pyrkt.fetch.trust import check_prefix, key_fingerprint, store_key

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
        raise UsageError("fetching keys by appc discovery is not supported yet: give key files")
    where = "root (every image)" if root else prefix
    for keyfile in keyfiles:
        path = Path(keyfile)
        fingerprint, uid = key_fingerprint(path)
        if not values["skip_fingerprint_review"] and not _confirmed(ctx, fingerprint, uid, str(where)):
            raise FetchError(f"key {fingerprint} from {keyfile!r} not trusted: the review was declined")
        dest = store_key(ctx.config.local_config, path, fingerprint, prefix=None if root else prefix)
        ctx.stdout.write(f"Trusting key {fingerprint} for {where}: stored in {dest}\n")
    return 0
