"""`pyrkt attach [--app=NAME] [--mode=MODE] UUID`: carry this terminal to an app whose stdio is
in stream or tty mode (rkt's attach); ^C detaches and the app keeps running."""

from __future__ import annotations

from typing import TYPE_CHECKING

from pyrkt.cli.flags import Flag
from pyrkt.errors import UsageError

if TYPE_CHECKING:
    from pyrkt.cli.main import Context

USAGE = "pyrkt attach [--app=NAME] [--mode=MODE] UUID"
FLAGS = [
    Flag("app", help="name of the app to attach to (needed when the pod has several)"),
    Flag("mode", default="auto", help="what to attach: auto (all the app serves), list (print its endpoints), "
         "tty, tty-in, tty-out, or streams: stdin,stdout,stderr"),
]


def run(ctx: Context, args: list[str]) -> int:
    from pyrkt.model.stdio import AttachMode
    from pyrkt.stage0 import attach

    values, rest = ctx.parse(FLAGS, args)
    ctx.require_root()
    if len(rest) != 1:
        raise UsageError("attach takes exactly one pod UUID")
    mode = AttachMode.parse(values["mode"])
    ctx.stdout.flush()
    return attach.attach(ctx.config, rest[0], values["app"] or "", mode, ctx.stderr)
