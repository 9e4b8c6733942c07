"""`pyrkt rm`: remove exited, prepared or aborted pods now, with the same teardown as gc."""

from __future__ import annotations

from typing import TYPE_CHECKING

from pyrkt.cli.flags import Flag
from pyrkt.errors import EXIT_CODE, PyrktError, UsageError

if TYPE_CHECKING:
    from pyrkt.cli.main import Context

USAGE = "pyrkt rm (UUID... | --uuid-file=FILE)"
FLAGS = [Flag("uuid-file", help="read the pod's UUID from this file")]


def run(ctx: Context, args: list[str]) -> int:
    from pyrkt.stage0 import manage

    values, uuids = ctx.parse(FLAGS, args)
    ctx.require_root()
    if values["uuid_file"] and uuids:
        raise UsageError("rm takes UUIDs or --uuid-file, not both")
    if values["uuid_file"]:
        try:
            uuids = [manage.read_uuid_file(values["uuid_file"])]
        except PyrktError as e:
            ctx.warn(str(e))
            return EXIT_CODE
    if not uuids:
        raise UsageError("rm needs at least one pod UUID (or --uuid-file)")
    failed = False  # one line per pod that failed, and rkt's exit code; no summary line after them
    for removal in manage.remove_pods(ctx.config, uuids):
        if removal.error is None:
            ctx.stdout.write(f'"{removal.uuid}"\n')
            ctx.stdout.flush()
        else:
            failed = True
            ctx.warn(removal.error)
    return EXIT_CODE if failed else 0
