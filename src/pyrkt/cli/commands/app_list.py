"""`pyrkt app list UUID`: the apps of a pod and their states (rkt's NAME STATE table)."""

from __future__ import annotations

from pyrkt.cli import output
from pyrkt.cli.flags import Flag
from pyrkt.errors import UsageError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from pyrkt.cli.main import Context

USAGE = "pyrkt app list [--no-legend] [--format=json|json-pretty] UUID"
FLAGS = [
    Flag("no-legend", "bool", help="suppress a legend with the list"),
    Flag("format", help="choose the output format: json or json-pretty (default: a table)"),
]
APP_FLAG = Flag("app", help="the name of the app (required)")


def one_app(ctx: Context, flags: list[Flag], args: list[str], command: str) -> tuple[str, str]:
    """The UUID and ``--app`` of `app start|stop|rm|status`."""
    values, rest = ctx.parse(flags, args)
    if len(rest) != 1:
        raise UsageError(f"app {command} takes exactly one pod UUID")
    if not values["app"]:
        raise UsageError(f"app {command} needs the app's name: --app=NAME")
    return rest[0], values["app"]


def run(ctx: Context, args: list[str]) -> int:
    from pyrkt.stage0 import sandbox

    values, rest = ctx.parse(FLAGS, args)
    fmt = output.check_format(values["format"])
    if len(rest) != 1:
        raise UsageError("app list takes exactly one pod UUID")
    apps = list(sandbox.apps(ctx.config, rest[0]))
    if fmt:
        output.dump_json([a.to_v1() for a in apps], pretty=fmt == "json-pretty", out=ctx.stdout)
    else:
        output.table([(a.name, a.state) for a in apps], header=None if values["no_legend"] else ("NAME", "STATE"),
                     out=ctx.stdout)
    return 0
