"""`pyrkt app start UUID --app=NAME`: Start an app of a mutable pod (again, after it stopped)."""

from __future__ import annotations

from pyrkt.cli.commands.app_list import APP_FLAG, one_app

TYPE_CHECKING = False
if TYPE_CHECKING:
    from pyrkt.cli.main import Context

USAGE = "pyrkt app start UUID --app=NAME"
FLAGS = [APP_FLAG]


def run(ctx: Context, args: list[str]) -> int:
    from pyrkt.stage0 import sandbox

    uuid, name = one_app(ctx, FLAGS, args, "start")
    ctx.require_root()
    sandbox.start(ctx.config, uuid, name)
    return 0
