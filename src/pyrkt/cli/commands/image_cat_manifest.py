"""`pyrkt image cat-manifest IMAGE`: print the image's manifest as stored."""

from __future__ import annotations

from typing import TYPE_CHECKING

from pyrkt.cli.flags import Flag
from pyrkt.errors import UsageError

if TYPE_CHECKING:
    from pyrkt.cli.main import Context

USAGE = "pyrkt image cat-manifest [--pretty-print=true] IMAGE"
FLAGS = [Flag("pretty-print", "bool", default=True, help="indent the manifest")]


def run(ctx: Context, args: list[str]) -> int:
    from pyrkt.model import jsonio
    from pyrkt.stage0.images import image_manifest, open_store

    values, images = ctx.parse(FLAGS, args)
    if len(images) != 1:
        raise UsageError("image cat-manifest needs exactly one image ID or name")
    store = open_store(ctx.config)
    try:
        data = image_manifest(store, images[0])
    finally:
        store.close()
    if values["pretty_print"]:
        ctx.stdout.write(jsonio.dumps(jsonio.loads(data), indent=4) + "\n")
    else:
        ctx.stdout.write(data.decode() + ("" if data.endswith(b"\n") else "\n"))
    return 0
