"""`pyrkt run-prepared UUID`: run a pod made by `pyrkt prepare`."""

from __future__ import annotations

from typing import TYPE_CHECKING

from pyrkt.cli.commands.run import RUNTIME_FLAGS, SYSCTL_FLAG, check_sysctl_flags, run_options
from pyrkt.cli.flags import Flag, FlagSet
from pyrkt.errors import UsageError

if TYPE_CHECKING:
    from pyrkt.cli.main import Context

USAGE = "pyrkt run-prepared [--net=...] [--interactive] [--detach] UUID"
FLAGS = RUNTIME_FLAGS + [
    SYSCTL_FLAG,
    Flag("detach", "bool", help="return once the apps have started and leave the pod running"),
    Flag("rm", "bool", help="remove the pod when it exits"),
]


def run(ctx: Context, args: list[str]) -> int:
    from pyrkt.stage0 import run as stage0_run

    flags = FlagSet(FLAGS + ctx.global_flags.flags)
    values, rest = flags.parse(args)
    ctx.report(flags)
    ctx.apply_globals(values)
    check_sysctl_flags(values)
    ctx.require_root()
    if len(rest) != 1:
        raise UsageError("run-prepared takes exactly one pod UUID")
    opts = run_options(values, flags.given)
    return stage0_run.run_prepared(ctx.config, rest[0], opts, ctx.stdout)
