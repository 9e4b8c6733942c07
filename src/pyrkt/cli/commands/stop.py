"""`pyrkt stop [--force] UUID...`: stop running pods (TERM, then KILL after a timeout)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from pyrkt.cli.flags import Flag
from pyrkt.errors import PyrktError, UsageError, quote

if TYPE_CHECKING:
    from pyrkt.cli.main import Context

USAGE = "pyrkt stop [--force] [--timeout=DURATION] (UUID... | --uuid-file=FILE)"
FLAGS = [
    Flag("force", "bool", help="kill the pod at once instead of stopping it"),
    Flag("uuid-file", help="read the pod's UUID from this file"),
    Flag("timeout", default="10s", help="how long the apps have to exit after their TERM before they are killed"),
]


def run(ctx: Context, args: list[str]) -> int:
    from pyrkt.cli.durations import parse_duration
    from pyrkt.stage0 import control

    values, uuids = ctx.parse(FLAGS, args)
    timeout = parse_duration(values["timeout"])
    ctx.require_root()
    if values["uuid_file"]:
        try:
            uuids.append(open(values["uuid_file"]).read().strip())
        except OSError as e:
            raise UsageError(f"cannot read --uuid-file {values['uuid_file']}: {e.strerror}") from None
    if not uuids:
        raise UsageError("stop needs at least one pod UUID")
    failed = 0
    for uuid in uuids:
        try:
            full, stopped = control.stop(ctx.config, uuid, force=values["force"], timeout=timeout)
        except PyrktError as e:
            ctx.warn(str(e))
            failed += 1
            continue
        ctx.stdout.write(f"{quote(full)}\n" if stopped else f"pod {quote(full)} is already stopped\n")
    if failed:
        ctx.warn(f"failed to stop {failed} pod(s)")
    return 254 if failed else 0
