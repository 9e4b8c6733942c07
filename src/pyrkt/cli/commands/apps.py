"""rkt's per-app argument syntax for run and prepare::

    IMAGE [per-app flags] [-- app args... [---]] IMAGE2 [per-app flags] ...

Pod-level flags may come before or between apps; a per-app flag must follow the image it
applies to ("--exec must follow an image"). ``--mount`` is both: before any image it mounts a
volume into every app, after one only into that app (which wins on the same path). ``--``
starts the preceding image's extra arguments and ``---`` ends them.
"""

from __future__ import annotations

from pyrkt.cli.flags import Flag, FlagSet
from pyrkt.errors import UsageError
from pyrkt.model.names import check_absolute_dir, check_app_name
from pyrkt.stage0.prepare import AppRequest

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

APP_FLAGS = [
    Flag("name", help="set the name of the app (default: from the image name)"),
    Flag("exec", help="override the exec command of the preceding image"),
    Flag("user", help="user override for the preceding image (uid, name or /path)"),
    Flag("group", help="group override for the preceding image (gid, name or /path)"),
    Flag("working-dir", help="override the working directory of the preceding image"),
    Flag("environment", "list", help="set an environment variable for the preceding image, KEY=VALUE"),
    Flag("supplementary-gids", help="supplementary group IDs for the preceding image, comma separated"),
    Flag("readonly-rootfs", "bool", help="mount the rootfs of the preceding image read-only"),
    Flag("signature", help="local signature file for the preceding image", hidden=True),
]
APP_FLAG_NAMES = {f.name for f in APP_FLAGS}
# position-sensitive: a pod-level flag before any image, the preceding image's after one
MOUNT_FLAG = Flag("mount", "list", metavar="volume=NAME,target=PATH",
                  help="mount a volume into every app (before any image) or into the preceding image's app")


def parse_pod_and_apps(pod_flags: FlagSet, args: list[str]) -> tuple[dict[str, Any], list[AppRequest]]:
    """Split ``args`` into pod-level flag values and the list of apps."""
    app_fs = FlagSet([*APP_FLAGS, MOUNT_FLAG])
    values = pod_flags.defaults()
    apps: list[AppRequest] = []
    app_values: list[dict[str, Any]] = []
    i = 0
    while i < len(args):
        arg = args[i]
        i += 1
        if arg == "--":
            if not apps:
                raise UsageError("app arguments (--) must follow an image")
            while i < len(args) and args[i] != "---":
                apps[-1].args.append(args[i])
                i += 1
            i += 1  # skip ---
            continue
        if arg.startswith("--"):
            name = arg[2:].partition("=")[0]
            if name == MOUNT_FLAG.name and apps:
                i = app_fs.take(app_values[-1], arg, args, i)
            elif name in APP_FLAG_NAMES:
                if not apps:
                    raise UsageError(f"--{name} must follow an image")
                i = app_fs.take(app_values[-1], arg, args, i)
            else:
                i = pod_flags.take(values, arg, args, i)
            continue
        apps.append(AppRequest(image=arg))
        app_values.append(app_fs.defaults())
    for app, v in zip(apps, app_values, strict=True):
        if v["name"] is not None:  # given, even as --name=
            check_app_name(v["name"])
        if v["working_dir"]:
            check_absolute_dir(v["working_dir"], "--working-dir")
        app.name = v["name"] or ""
        app.exec = v["exec"] or ""
        app.user = v["user"] or ""
        app.group = v["group"] or ""
        app.working_dir = v["working_dir"] or ""
        app.environment = v["environment"]
        app.supplementary_gids = v["supplementary_gids"] or ""
        app.readonly_rootfs = v["readonly_rootfs"]
        app.mounts = v["mount"]
        app.signature = v["signature"] or ""
    return values, apps
