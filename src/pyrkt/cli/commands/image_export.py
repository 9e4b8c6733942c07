"""`pyrkt image export IMAGE OUTPUT`: write a stored image out as an ACI (rkt's) or, as a pyrkt
addition, an OCI image layout archive."""

from __future__ import annotations

from typing import TYPE_CHECKING

from pyrkt.cli.flags import Flag
from pyrkt.errors import UsageError

if TYPE_CHECKING:
    from pyrkt.cli.main import Context

USAGE = "pyrkt image export [--format=aci|oci-archive] [--overwrite] IMAGE OUTPUT"
FLAGS = [
    Flag("format", default="aci", help="aci (OUTPUT must end in .aci: manifest and rootfs/, the layers "
         "squashed) or oci-archive (the stored manifest, config and layer blobs as they are)"),
    Flag("overwrite", "bool", help="overwrite the output file if it exists"),
]


def run(ctx: Context, args: list[str]) -> int:
    from pyrkt.stage0.images import export_image, open_store

    values, rest = ctx.parse(FLAGS, args)
    if len(rest) != 2:
        raise UsageError("image export needs an image ID or name and an output file")
    store = open_store(ctx.config)
    try:
        export_image(store, rest[0], rest[1], fmt=values["format"], overwrite=values["overwrite"])
    finally:
        store.close()
    return 0
