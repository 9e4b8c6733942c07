"""`pyrkt fetch IMAGE...`: import or fetch images into the store and print their ids."""

from __future__ import annotations

from typing import TYPE_CHECKING

from pyrkt.cli.flags import Flag
from pyrkt.errors import UsageError

if TYPE_CHECKING:
    from pyrkt.cli.main import Context

USAGE = "pyrkt fetch [--full] [--pull-policy=update] IMAGE..."
FLAGS = [
    Flag("full", "bool", help="print the full image ID"),
    Flag("pull-policy", default="update", help="when to fetch: never, new or update"),
    Flag("signature", "list", help="local signature file for the preceding image (ACI only)"),
]


def run(ctx: Context, args: list[str]) -> int:
    from pyrkt.stage0.images import check_pull_policy, open_store, resolve_image
    from pyrkt.store import short_id

    values, images = ctx.parse(FLAGS, args)
    if not images:
        raise UsageError("fetch needs at least one image")
    policy = check_pull_policy(values["pull_policy"])
    store = open_store(ctx.config)
    try:
        for arg in images:
            image = resolve_image(ctx.config, store, arg, pull_policy=policy)
            ctx.stdout.write((image.id if values["full"] else short_id(image.id)) + "\n")
    finally:
        store.close()
    return 0
