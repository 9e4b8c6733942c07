"""`pyrkt logs UUID [--app=NAME] [-f]`: an app's stdout and stderr, also after the pod exited."""

from __future__ import annotations

from typing import TYPE_CHECKING

from pyrkt.cli.flags import Flag
from pyrkt.errors import UsageError

if TYPE_CHECKING:
    from typing import Any

    from pyrkt.cli.main import Context
    from pyrkt.stage0.control import Window

USAGE = "pyrkt logs [--app=NAME] [--follow] [--timestamps] [--since=TIME] [--until=TIME] [--tail=N] UUID"
FLAGS = [
    Flag("app", help="the app whose output to show (default: all, merged by time)"),
    Flag("follow", "bool", aliases=("f",), help="keep printing new output until the pod exits"),
    Flag("timestamps", "bool", help="prefix each line with its time"),
    Flag("since", metavar="TIME", help="only lines written at or after TIME: 2006-01-02T15:04:05Z, 2006-01-02, "
         "a Unix time, or a duration before now (10m)"),
    Flag("until", metavar="TIME", help="only lines written before TIME (as --since); following stops there"),
    Flag("tail", metavar="N", default="-1", help="only the last N lines (-1: all), then what follows with --follow"),
]


def run(ctx: Context, args: list[str]) -> int:
    from pyrkt.stage0 import control

    args = ["--follow" if a == "-f" else a for a in args]
    values, rest = ctx.parse(FLAGS, args)
    if len(rest) != 1:
        raise UsageError("logs takes exactly one pod UUID")
    window = parse_window(values)
    out = ctx.stdout.buffer if hasattr(ctx.stdout, "buffer") else None
    err = ctx.stderr.buffer if hasattr(ctx.stderr, "buffer") else None
    midline: set[str] = set()  # the streams whose last piece did not end its line
    for ts, stream, text in control.logs(ctx.config, rest[0], values["app"] or "", follow=values["follow"],
                                         window=window):
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


def parse_window(values: dict[str, Any]) -> Window:
    """``--since``, ``--until`` and ``--tail`` (podman's), checked before any pod is read."""
    from pyrkt.stage0.control import WHOLE, Window

    tail = values["tail"].strip()
    if not (tail.isdigit() or tail == "-1"):
        raise UsageError(f"invalid --tail={values['tail']!r}: want a number of lines, or -1 for all")
    if not values["since"] and not values["until"] and tail == "-1":
        return WHOLE
    import time

    from pyrkt.cli.durations import parse_time_ns

    now = time.time_ns()
    since = parse_time_ns(values["since"], "since", now) if values["since"] else None
    until = parse_time_ns(values["until"], "until", now) if values["until"] else None
    if since is not None and until is not None and until <= since:
        raise UsageError(f"--until={values['until']} is not after --since={values['since']}: no line can be shown")
    return Window(since=since, until=until, tail=int(tail))
