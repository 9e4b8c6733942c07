"""rkt's per-app argument syntax for run and prepare::

    IMAGE [per-app flags] [-- app args... [---]] IMAGE2 [per-app flags] ...

Pod-level flags may come before or between apps; a per-app flag must follow the image it
applies to ("--exec must follow an image"), except ``--user-annotation`` and ``--user-label``,
which before any image are the pod's own. ``--mount`` is both: before any image it mounts a
volume into every app, after one only into that app (which wins on the same path). ``--``
starts the preceding image's extra arguments and ``---`` ends them.
"""

from __future__ import annotations

from pyrkt.cli.flags import CAPS_ALIASES, Flag, FlagSet
from pyrkt.errors import UsageError
from pyrkt.model import stdio
from pyrkt.model.abi import PRIVILEGED_ANNOTATION
from pyrkt.model.isolators import flag_isolators
from pyrkt.model.names import check_absolute_dir, check_app_name
from pyrkt.stage0.prepare import AppRequest, parse_pairs

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
    Flag("signature", metavar="FILE", help="the detached signature file of the preceding ACI image (instead of its .aci.asc)"),
    Flag("annotation", "list", metavar="NAME=VALUE", help="an annotation of the preceding app in the pod manifest"),
    Flag("user-annotation", "list", metavar="NAME=VALUE",
         help="a user annotation of the preceding app (before any image: of the pod)"),
    Flag("user-label", "list", metavar="NAME=VALUE", help="a user label of the preceding app (before any image: of the pod)"),
    Flag("caps-retain", metavar="CAPS", help="capabilities the preceding image keeps instead of the default set, "
         "e.g. CAP_NET_BIND_SERVICE,CAP_KILL"),
    Flag("caps-remove", metavar="CAPS", help="capabilities the preceding image loses of the default set"),
    Flag("seccomp", metavar="FILTER", help="the seccomp filter of the preceding image: "
         "mode=retain|remove[,errno=ENAME],SYSCALL|@GROUP,..."),
    *CAPS_ALIASES,
    Flag("privileged", "bool", help="run the preceding image privileged: every capability, no seccomp filter, "
         "/proc and /sys unmasked (pyrkt's own; the pod's other apps keep their protections)"),
    Flag("stdin", metavar="MODE", help="stdin mode of the preceding image: null, stream or tty (default null)"),
    Flag("stdout", metavar="MODE", help="stdout mode of the preceding image: log, null, stream or tty (default log)"),
    Flag("stderr", metavar="MODE", help="stderr mode of the preceding image: log, null, stream or tty (default log)"),
    Flag("memory", metavar="QUANTITY", help="memory limit for the preceding image, e.g. 64M or 1Gi"),
    Flag("cpu", metavar="QUANTITY", help="CPU limit for the preceding image, in millicores (500m) or cores (2)"),
    Flag("cpu-shares", metavar="N", help="CPU weight for the preceding image, 2 to 262144 (the kernel's default: 1024)"),
    Flag("oom-score-adj", metavar="N", help="OOM score adjustment for the preceding image, -1000 to 1000"),
    Flag("pids-limit", metavar="N", help="most processes and threads the preceding image may have at once "
         "(default 4096; 0: no limit)"),
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
            elif name in APP_FLAG_NAMES and (apps or name not in pod_flags.by_name):
                if not apps:
                    raise UsageError(f"--{name} must follow an image")
                i = app_fs.take(app_values[-1], arg, args, i)
                pod_flags.notes += app_fs.notes  # a deprecated spelling's warning, for ctx.report
                app_fs.notes.clear()
            else:
                i = pod_flags.take(values, arg, args, i)
            continue
        if arg.startswith("-") and arg != "-":  # as pflag: no image name starts with a dash
            raise UsageError(f"unknown shorthand flag {arg!r}: pyrkt flags are spelled --name")
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
        for stream in stdio.STREAMS:
            if v[stream] == "":
                raise UsageError(f"--{stream} needs a value")
        app.annotations = parse_pairs(v["annotation"], "--annotation") + stdio.mode_annotations(
            *(v[stream] or "" for stream in stdio.STREAMS))
        app.user_annotations = parse_pairs(v["user_annotation"], "--user-annotation")
        app.user_labels = parse_pairs(v["user_label"], "--user-label")
        for flag in ("caps_retain", "caps_remove", "seccomp", "cap_retain", "cap_remove"):
            if v[flag] == "":
                raise UsageError(f"--{flag.replace('_', '-')} needs a value")
        app.caps_retain = v["caps_retain"] or v["cap_retain"] or ""
        app.caps_remove = v["caps_remove"] or v["cap_remove"] or ""
        app.seccomp = v["seccomp"] or ""
        if v["privileged"]:
            given = [f for f in ("caps-retain", "caps-remove", "seccomp") if getattr(app, f.replace("-", "_"))]
            if given:
                raise UsageError(f"--privileged gives every capability and no seccomp filter: it takes no --{given[0]}")
            app.annotations.append((PRIVILEGED_ANNOTATION, "true"))
        app.isolators = flag_isolators(memory=v["memory"] or "", cpu=v["cpu"] or "", cpu_shares=v["cpu_shares"] or "",
                                       oom_score_adj=v["oom_score_adj"] or "", pids_limit=v["pids_limit"] or "")
    return values, apps
