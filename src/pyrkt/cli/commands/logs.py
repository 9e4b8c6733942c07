"""`pyrkt logs UUID [--app=NAME] [-f]`: an app's stdout and stderr, also after the pod exited."""

from __future__ import annotations

from typing import TYPE_CHECKING

from pyrkt.cli.flags import Flag
from pyrkt.errors import UsageError

if TYPE_CHECKING:
    from pyrkt.cli.main import Context

USAGE = "pyrkt logs [--app=NAME] [--follow] [--timestamps] UUID"
FLAGS = [
    Flag("app", help="the app whose output to show (default: all, merged by time)"),
    Flag("follow", "bool", aliases=("f",), help="keep printing new output until the pod exits"),
    Flag("timestamps", "bool", help="prefix each line with its time"),
]


def run(ctx: Context, args: list[str]) -> int:
    from pyrkt.stage0 import control

    args = ["--follow" if a == "-f" else a for a in args]
    values, rest = ctx.parse(FLAGS, args)
    if len(rest) != 1:
        raise UsageError("logs takes exactly one pod UUID")
    out = ctx.stdout.buffer if hasattr(ctx.stdout, "buffer") else None
    err = ctx.stderr.buffer if hasattr(ctx.stderr, "buffer") else None
    midline: set[str] = set()  # the streams whose last piece did not end its line
    for ts, stream, text in control.logs(ctx.config, rest[0], values["app"] or "", follow=values["follow"]):
        line = (ts.encode() + b" " + text) if values["timestamps"] and stream not in midline else text
        if text.endswith(b"\n"):
            midline.discard(stream)
        else:
            midline.add(stream)
        target = err if stream == "stderr" else out
        if target is None:
            (ctx.stderr if stream == "stderr" else ctx.stdout).write(line.decode(errors="replace"))
        else:
            target.write(line)
            target.flush()
    return 0
