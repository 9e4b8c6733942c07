"""`pyrkt app stop UUID --app=NAME`: Stop a running app of a mutable pod: TERM, then KILL after the pod's stop timeout."""

from __future__ import annotations

from pyrkt.cli.commands.app_list import APP_FLAG, one_app

TYPE_CHECKING = False
if TYPE_CHECKING:
    from pyrkt.cli.main import Context

USAGE = "pyrkt app stop UUID --app=NAME"
FLAGS = [APP_FLAG]


def run(ctx: Context, args: list[str]) -> int:
    from pyrkt.stage0 import sandbox

    uuid, name = one_app(ctx, FLAGS, args, "stop")
    ctx.require_root()
    sandbox.stop(ctx.config, uuid, name)
    return 0
