"""`pyrkt image extract IMAGE DIR`: write an image's filesystem into a new directory.

As rkt: `image extract` writes the image's own filesystem, `image render` (which shares this
module) the filesystem a pod sees, with an ACI's dependencies under it and its pathWhitelist
applied. OCI and Docker images have no dependencies, so both write the same tree: the layers
merged, whiteouts applied.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from pyrkt.cli.flags import Flag
from pyrkt.errors import UsageError

if TYPE_CHECKING:
    from pyrkt.cli.main import Context

USAGE = ("pyrkt image extract [--rootfs-only] [--overwrite] [--keep-special] IMAGE DIR\n\n"
         "Writes DIR/rootfs (the image's layers merged, whiteouts applied) and DIR/manifest (its appc\n"
         "image manifest). An ACI's dependencies are left out (image render puts them in); for OCI and\n"
         "Docker images, which have none, extract and render are the same. DIR is made 0700; device\n"
         "nodes, setuid/setgid bits and file capabilities are left out unless --keep-special.")
FLAGS = [
    Flag("rootfs-only", "bool", help="write only the filesystem, directly into DIR"),
    Flag("overwrite", "bool", help="remove DIR first if it exists"),
    Flag("keep-special", "bool", help="keep device nodes (as root), setuid/setgid bits and file capabilities"),
]


def run(ctx: Context, args: list[str], *, command: str = "extract") -> int:
    from pyrkt.stage0.images import extract_image, open_store

    values, rest = ctx.parse(FLAGS, args)
    if len(rest) != 2:
        raise UsageError(f"image {command} needs an image ID or name and an output directory")
    store = open_store(ctx.config)
    try:
        extract_image(store, rest[0], rest[1], rootfs_only=values["rootfs_only"], overwrite=values["overwrite"],
                      dependencies=command == "render", keep_special=values["keep_special"])
    finally:
        store.close()
    return 0
