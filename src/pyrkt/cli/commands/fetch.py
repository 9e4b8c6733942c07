"""`pyrkt fetch IMAGE...`: import or fetch images into the store and print their ids."""

from __future__ import annotations

from typing import TYPE_CHECKING

from pyrkt.cli.flags import PULL_POLICY_ALIASES, Flag
from pyrkt.errors import UsageError

if TYPE_CHECKING:
    from pyrkt.cli.main import Context

USAGE = "pyrkt fetch [--full] [--quiet] [--platform=OS/ARCH[/VARIANT]] [--pull-policy=update] [--signature=FILE]... IMAGE..."
FLAGS = [
    Flag("full", "bool", help="print the full image ID"),
    Flag("quiet", "bool", help="print only the image ID: no download progress"),
    Flag("platform", help="the platform to choose from an image index, OS/ARCH[/VARIANT] (default: the host's)"),
    Flag("pull-policy", default="update", help="when to fetch: never, new or update"),
    Flag("signature", "list", help="local signature file of an ACI (the Nth --signature goes with the Nth image)"),
    *PULL_POLICY_ALIASES,
]
ACI_SHORT_HEX = 32  # rkt printed sha512- + 32 hex; --full gives its whole 64-hex store key


def shown_id(image_id: str, *, full: bool) -> str:
    from pyrkt.store import short_id

    if full:
        return image_id
    if image_id.startswith("sha512-"):
        return image_id[:len("sha512-") + ACI_SHORT_HEX]
    return short_id(image_id)


def run(ctx: Context, args: list[str]) -> int:
    from pyrkt.cli.fetchui import TerminalUI
    from pyrkt.fetch.policy import policy_from_flags
    from pyrkt.stage0.images import open_store, resolve_image

    values, images = ctx.parse(FLAGS, args)
    if not images:
        raise UsageError("fetch needs at least one image")
    signatures: list[str] = list(values["signature"] or [])
    if len(signatures) > len(images):
        raise UsageError(f"{len(signatures)} --signature files for {len(images)} images")
    signatures += [""] * (len(images) - len(signatures))
    if any(signatures):  # a --signature of an OCI or Docker image fails before anything is fetched
        from pyrkt.fetch.sources import check_signature, parse_source

        for arg, sig in zip(images, signatures, strict=True):
            if sig:
                check_signature(arg, parse_source(arg))
    policy = policy_from_flags(values["pull_policy"], store_only=values["store_only"], no_store=values["no_store"])
    platform = values["platform"] or ""
    if platform:
        from pyrkt.fetch import parse_platform

        parse_platform(platform)
    ui = TerminalUI(ctx.stderr, quiet=values["quiet"], debug=ctx.config.debug)
    store = open_store(ctx.config, write=True)
    try:
        for arg, sig in zip(images, signatures, strict=True):
            image = resolve_image(ctx.config, store, arg, pull_policy=policy, signature=sig or None,
                                  platform=platform, ui=ui)
            ctx.stdout.write(shown_id(image.id, full=values["full"]) + "\n")
    finally:
        store.close()
    return 0
