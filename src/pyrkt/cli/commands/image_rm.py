"""`pyrkt image rm IMAGE...`: remove images (by id prefix or name) from the store."""

from __future__ import annotations

from typing import TYPE_CHECKING

from pyrkt.cli.flags import Flag
from pyrkt.cli.output import printable
from pyrkt.errors import UsageError

if TYPE_CHECKING:
    from pyrkt.cli.main import Context

USAGE = "pyrkt image rm IMAGE..."
FLAGS: list[Flag] = []


def run(ctx: Context, args: list[str]) -> int:
    from pyrkt.stage0.images import open_store, remove_images

    _, images = ctx.parse([], args)
    if not images:
        raise UsageError("image rm needs at least one image ID or name")
    store = open_store(ctx.config)
    try:
        results = remove_images(store, images, ctx.config)
    finally:
        store.close()
    done = 0
    for r in results:
        if r.record is not None:
            done += 1
            ctx.stdout.write(f'successfully removed aci for image: "{r.record.id}" ("{printable(r.record.display_name)}")\n')
        else:
            ctx.stdout.flush()
            ctx.stderr.write(f"pyrkt: {printable(str(r.error))}\n")
    if done:
        ctx.stdout.flush()
        ctx.stderr.write(f"{done} image(s) successfully removed\n")  # on stderr, as rkt
    return 254 if done < len(results) else 0
