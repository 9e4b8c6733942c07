"""`pyrkt image verify IMAGE...`: re-hash each image's blobs and check its layer dirs against a
fresh unpack of their blobs; damaged layer dirs are repaired. Exit 254 when anything was damaged."""

from __future__ import annotations

from typing import TYPE_CHECKING

from pyrkt.cli.flags import Flag
from pyrkt.cli.output import printable
from pyrkt.errors import UsageError

if TYPE_CHECKING:
    from pyrkt.cli.main import Context

USAGE = "pyrkt image verify IMAGE..."
FLAGS: list[Flag] = []


def run(ctx: Context, args: list[str]) -> int:
    from pyrkt.stage0.images import open_store, verify_images

    _, images = ctx.parse(FLAGS, args)
    if not images:
        raise UsageError("image verify needs at least one image ID or name")
    store = open_store(ctx.config)
    try:
        results = verify_images(ctx.config, store, images)
    finally:
        store.close()
    bad = 0
    for r in results:
        if r.result is None:
            bad += 1
            ctx.stdout.flush()
            ctx.warn(str(r.error))
            continue
        rec = r.result.record
        if r.result.ok:
            ctx.stdout.write(f'image "{rec.id}" ("{printable(rec.display_name)}"): OK\n')
            continue
        bad += 1
        ctx.stdout.write(f'image "{rec.id}" ("{printable(rec.display_name)}"): DAMAGED\n')
        for line in r.result.damage:
            ctx.stdout.write(f"  {line}\n")
        for line in r.result.repaired:
            ctx.stdout.write(f"  {line}\n")
    return 254 if bad else 0
