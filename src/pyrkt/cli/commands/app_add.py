"""`pyrkt app add UUID IMAGE [app flags] [--mnt-volume=...] [-- args]`: add an app to a mutable pod."""

from __future__ import annotations

from pyrkt.cli.commands.apps import parse_pod_and_apps
from pyrkt.cli.flags import Flag, FlagSet
from pyrkt.errors import UsageError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from pyrkt.cli.main import Context

USAGE = ("pyrkt app add UUID IMAGE [--name=N] [--exec=CMD] [app flags] [--mnt-volume=name=V,kind=K,...,target=PATH] "
         "[--device=HOSTPATH[:CONTAINERPATH][:rwm]] [-- args...]")
FLAGS = [Flag("mnt-volume", "list", metavar="name=NAME,kind=KIND,...,target=PATH",
              help="a volume of this app alone and its mount, in one flag (rkt's)"),
         Flag("device", "list", metavar="HOSTPATH[:CONTAINERPATH][:rwm]",
              help="pass a host device node into this app alone and allow it (r, w, m: read, write, mknod); "
                   "repeatable")]


def run(ctx: Context, args: list[str]) -> int:
    from pyrkt.cli.commands.run import fetch_ui
    from pyrkt.stage0 import sandbox

    words = [i for i, a in enumerate(args) if not a.startswith("-")]
    if not words:
        raise UsageError("app add needs the UUID of a mutable pod and an image")
    uuid = args[words[0]]
    flags = FlagSet(FLAGS + ctx.global_flags.flags)
    values, apps = parse_pod_and_apps(flags, args[:words[0]] + args[words[0] + 1:])
    ctx.report(flags)
    ctx.apply_globals(values)
    if len(apps) != 1:
        raise UsageError("app add takes exactly one image" if apps else "app add needs an image")
    volumes = [sandbox.mnt_volume(text) for text in values["mnt_volume"]]  # bad ones fail first
    from pyrkt.stage0.prepare import host_devices

    devices = host_devices(values["device"])  # and bad --device values
    ctx.require_root()
    values.setdefault("quiet", False)
    sandbox.add(ctx.config, uuid, apps[0], volumes, devices=devices, ui=fetch_ui(ctx, values))
    return 0
