"""`pyrkt export UUID OUTPUT`: an app of an exited pod, with what it changed, as an image file
(rkt's ``export``; ``--format=oci-archive`` is a pyrkt addition)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from pyrkt.cli.flags import Flag
from pyrkt.errors import UsageError

if TYPE_CHECKING:
    from pyrkt.cli.main import Context

USAGE = "pyrkt export [--app=NAME] [--format=aci|oci-archive] [--overwrite] UUID OUTPUT"
FLAGS = [
    Flag("app", help="name of the app to export within the pod (needed when the pod has several)"),
    Flag("format", default="aci", help="aci (OUTPUT must end in .aci) or oci-archive (an OCI image layout tar "
         "of one layer)"),
    Flag("overwrite", "bool", help="overwrite the output file if it exists"),
]


def run(ctx: Context, args: list[str]) -> int:
    from pyrkt.stage0.export import export_pod

    values, rest = ctx.parse(FLAGS, args)
    if len(rest) != 2:
        raise UsageError("export needs a pod UUID and an output file")
    ctx.require_root()  # pod dirs and what apps wrote are root's
    done = export_pod(ctx.config, rest[0], rest[1], app=values["app"] or "", fmt=values["format"],
                      overwrite=values["overwrite"], note=lambda line: ctx.warn(f"warning: {line}"))
    ctx.debug(f"exported app {done.app} of pod {done.uuid} (image {done.image}) to {done.output}")
    return 0
