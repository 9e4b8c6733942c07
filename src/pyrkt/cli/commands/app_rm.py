"""`pyrkt app rm UUID --app=NAME`: Remove an app from a mutable pod (stopping it first): its dirs, cgroups and manifest entry."""

from __future__ import annotations

from pyrkt.cli.commands.app_list import APP_FLAG, one_app

TYPE_CHECKING = False
if TYPE_CHECKING:
    from pyrkt.cli.main import Context

USAGE = "pyrkt app rm UUID --app=NAME"
FLAGS = [APP_FLAG]


def run(ctx: Context, args: list[str]) -> int:
    from pyrkt.stage0 import sandbox

    uuid, name = one_app(ctx, FLAGS, args, "rm")
    ctx.require_root()
    sandbox.remove(ctx.config, uuid, name)
    return 0
