"""`pyrkt gc`: mark exited and aborted pods, then delete garbage past its grace period.

Meant to run from a timer: the first run marks a stopped pod, a later one (after
``--grace-period``) deletes it. The lines printed are rkt's, so scripts that filter them work.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from pyrkt.cli.flags import Flag
from pyrkt.errors import UsageError

if TYPE_CHECKING:
    from pyrkt.cli.main import Context
    from pyrkt.stage0.manage import GcReport

USAGE = "pyrkt gc [--grace-period=DURATION] [--expire-prepared=DURATION] [--mark-only]"
FLAGS = [
    Flag("grace-period", default="30m", metavar="DURATION",
         help="duration to wait before discarding inactive pods from garbage; 0s disables it"),
    Flag("expire-prepared", default="24h", metavar="DURATION",
         help="duration to wait before expiring prepared pods"),
    Flag("mark-only", "bool", help="only move exited and aborted pods to the garbage, deleting nothing"),
]


def run(ctx: Context, args: list[str]) -> int:
    from pyrkt.cli.durations import parse_period
    from pyrkt.stage0 import manage

    values, rest = ctx.parse(FLAGS, args)
    if rest:
        raise UsageError(f"gc takes no arguments (got {rest[0]!r})")
    grace = parse_period(values["grace_period"], "grace-period")
    expire = parse_period(values["expire_prepared"], "expire-prepared")
    ctx.require_root()
    report = manage.gc(ctx.config, grace=grace, expire=expire, mark_only=values["mark_only"])
    report_lines(ctx, report, grace)
    # As rkt: a pod that could not be removed is reported (one line each) and left for the
    # next run; the exit code stays 0, so one hostile pod never fails every gc timer run.
    return 0


def report_lines(ctx: Context, report: GcReport, grace: float) -> None:
    """rkt's wording: progress on stderr prefixed ``gc:``, deletions on stdout."""
    from pyrkt.cli.durations import format_duration

    err = ctx.stderr
    for uuid in report.marked:
        err.write(f'gc: moving pod "{uuid}" to garbage\n')
    for uuid in report.aborted:
        err.write(f'gc: moving failed prepare "{uuid}" to garbage\n')
    for uuid in report.expired:
        err.write(f'gc: moving expired prepared pod "{uuid}" to garbage\n')
    for uuid in report.within_grace:
        err.write(f'gc: pod "{uuid}" not removed: still within grace period ({format_duration(grace)})\n')
    for uuid in report.collected:
        ctx.stdout.write(f'Garbage collecting pod "{uuid}"\n')
    for uuid, why in report.failed:
        ctx.warn(f'pod "{uuid}" not removed: {why}')
