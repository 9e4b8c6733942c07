"""`pyrkt image gc`: remove images unused for the grace period that no pod uses, then the layer
dirs and blobs nothing refers to any more and what killed imports left behind."""

from __future__ import annotations

from typing import TYPE_CHECKING

from pyrkt.cli.flags import Flag
from pyrkt.cli.output import printable
from pyrkt.errors import UsageError

if TYPE_CHECKING:
    from pyrkt.cli.main import Context

USAGE = "pyrkt image gc [--grace-period=24h]"
FLAGS = [
    Flag("grace-period", default="24h", metavar="DURATION",
         help="duration to wait since an image was last used before removing it"),
]


def run(ctx: Context, args: list[str]) -> int:
    from pyrkt.cli.durations import format_duration, parse_period
    from pyrkt.stage0.images import gc_images, open_store

    values, rest = ctx.parse(FLAGS, args)
    if rest:
        raise UsageError(f"image gc takes no arguments (got {rest[0]!r})")
    grace = parse_period(values["grace_period"], "grace-period")
    ctx.require_root()
    store = open_store(ctx.config)
    try:
        done = gc_images(ctx.config, store, grace=grace)
    finally:
        store.close()
    err = ctx.stderr
    for rec in done.kept_in_use:
        err.write(f'image gc: image "{rec.id}" ("{printable(rec.display_name)}") not removed: a pod uses it\n')
    for rec in done.removed:
        ctx.stdout.write(f'successfully removed aci for image: "{rec.id}" ("{printable(rec.display_name)}")\n')
    if done.removed:
        ctx.stdout.flush()
        err.write(f"{len(done.removed)} image(s) successfully removed\n")  # on stderr, as rkt
    if done.layers or done.blobs:
        err.write(f"image gc: removed {done.layers} unused layer dir(s) and {done.blobs} unused blob(s)\n")
    if done.temp:
        err.write(f"image gc: removed {done.temp} leftover temporary dir(s)\n")
    ctx.debug(f"image gc: grace period {format_duration(grace)}")
    return 0
