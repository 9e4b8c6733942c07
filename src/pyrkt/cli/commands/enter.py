"""`pyrkt enter [--app=NAME] UUID [CMD [ARGS...]]`: run a command inside a running app."""

from __future__ import annotations

from typing import TYPE_CHECKING

from pyrkt.cli.flags import Flag
from pyrkt.errors import UsageError, quote

if TYPE_CHECKING:
    from pyrkt.cli.main import Context

USAGE = "pyrkt enter [--app=NAME] UUID [CMD [ARGS...]]"
FLAGS = [Flag("app", help="name of the app to enter (needed when the pod has several)")]


def run(ctx: Context, args: list[str]) -> int:
    from pyrkt.pods.pod import Pod
    from pyrkt.stage0 import control

    values, rest = ctx.parse(FLAGS, args, interspersed=False)
    ctx.require_root()
    if not rest:
        raise UsageError("enter needs the UUID of a running pod")
    argv = rest[1:]
    if not argv:
        pod = Pod.find(ctx.config.pods_dir, rest[0])
        control.wait_for_pid(pod)
        argv = control.default_shell(pod, control.pick_app(pod, values["app"] or ""))
        ctx.stderr.write(f"pyrkt: no command specified, assuming {quote(argv[0])}\n")
    ctx.stdout.flush()
    return control.enter(ctx.config, rest[0], values["app"] or "", argv)
