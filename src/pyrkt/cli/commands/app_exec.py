"""`pyrkt app exec UUID --app=NAME -- CMD [ARGS...]`: run a command in a running app of a pod,
as `enter` does (its namespaces, root, cgroups and limits), with the caller's stdin, stdout,
stderr and terminal; exits with the command's exit code."""

from __future__ import annotations

from pyrkt.cli.commands.app_list import APP_FLAG
from pyrkt.cli.flags import Flag
from pyrkt.errors import UsageError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from pyrkt.cli.main import Context

USAGE = ("pyrkt app exec UUID --app=NAME [--tty] -- CMD [ARGS...]\n"
         "       pyrkt app exec --app=NAME [--tty] UUID CMD [ARGS...]")
FLAGS = [APP_FLAG, Flag("tty", "bool", help="give the command a terminal of its own, carried to and from this one "
                                              "(raw mode when stdin is a terminal)")]


def run(ctx: Context, args: list[str]) -> int:
    from pyrkt.stage0 import sandbox

    if "--" in args:
        cut = args.index("--")
        values, rest = ctx.parse(FLAGS, args[:cut])
        if len(rest) != 1:
            raise UsageError("app exec takes exactly one pod UUID before --")
        argv = args[cut + 1:]
    else:
        values, rest = ctx.parse(FLAGS, args, interspersed=False)
        rest, argv = rest[:1], rest[1:]
    if not rest:
        raise UsageError("app exec needs the UUID of a running pod")
    if not argv:
        raise UsageError("app exec needs a command to run")
    if not values["app"]:
        raise UsageError("app exec needs the app's name: --app=NAME")
    ctx.require_root()
    ctx.stdout.flush()
    return sandbox.exec_in(ctx.config, rest[0], values["app"], argv, tty=values["tty"])
