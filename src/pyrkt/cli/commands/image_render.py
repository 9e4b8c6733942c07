"""`pyrkt image render IMAGE DIR`: the filesystem a pod of the image sees (an ACI's dependencies
under it, its pathWhitelist applied); `image extract` writes the image's own filesystem only."""

from __future__ import annotations

from typing import TYPE_CHECKING

from pyrkt.cli.commands import image_extract

if TYPE_CHECKING:
    from pyrkt.cli.main import Context

USAGE = ("pyrkt image render [--rootfs-only] [--overwrite] [--keep-special] IMAGE DIR\n\n"
         "Writes DIR/rootfs (what a pod of the image sees: an ACI's dependencies rendered under it,\n"
         "its pathWhitelist applied) and DIR/manifest (its appc image manifest). DIR is made 0700;\n"
         "device nodes, setuid/setgid bits and file capabilities are left out unless --keep-special.")
FLAGS = image_extract.FLAGS


def run(ctx: Context, args: list[str]) -> int:
    return image_extract.run(ctx, args, command="render")
