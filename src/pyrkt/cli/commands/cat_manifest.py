"""`pyrkt cat-manifest`: print a pod's manifest (the pod's own copy, ``$P/pod``)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from pyrkt.cli import output
from pyrkt.cli.flags import Flag
from pyrkt.errors import PyrktError, UsageError

if TYPE_CHECKING:
    from pyrkt.cli.main import Context

USAGE = "pyrkt cat-manifest [--pretty-print=true] (UUID | --uuid-file=FILE)"
FLAGS = [
    Flag("pretty-print", "bool", default=True, help="apply indent to format the output"),
    Flag("uuid-file", help="read the pod's UUID from this file"),
]


def run(ctx: Context, args: list[str]) -> int:
    from pyrkt.stage0 import manage

    values, rest = ctx.parse(FLAGS, args)
    if values["uuid_file"]:
        if rest:
            raise UsageError("cat-manifest takes a UUID or --uuid-file, not both")
        rest = [manage.read_uuid_file(values["uuid_file"])]
    if len(rest) != 1:
        raise UsageError("cat-manifest takes exactly one pod UUID")
    manifest = manage.pod_manifest(manage.find_pod(ctx.config, rest[0]))
    if manifest is None:
        raise PyrktError(f"pod {rest[0]} has no manifest yet (it is still being prepared)")
    output.dump_json(manifest, pretty=values["pretty_print"], out=ctx.stdout)
    return 0
