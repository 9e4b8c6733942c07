"""`pyrkt prepare`: prepare a pod to be run later with `pyrkt run-prepared`."""

from __future__ import annotations

from typing import TYPE_CHECKING

from pyrkt.cli.commands.apps import APP_FLAGS, parse_pod_and_apps
from pyrkt.cli.commands.run import (
    PREPARE_FLAGS,
    SYSCTL_FLAG,
    check_pod_manifest,
    check_sysctl_flags,
    fetch_ui,
    pod_request,
    stage1_choice,
)
from pyrkt.cli.flags import FlagSet
from pyrkt.errors import UsageError

if TYPE_CHECKING:
    from pyrkt.cli.main import Context

USAGE = ("pyrkt prepare [--quiet] IMAGE [--name=N] [--exec=CMD] [-- image-args... ---] [IMAGE...]\n"
         "       pyrkt prepare [--quiet] --pod-manifest=FILE")
OWN_FLAGS = PREPARE_FLAGS + [SYSCTL_FLAG]  # --quiet is among them: only the pod's UUID, no download progress
FLAGS = OWN_FLAGS + APP_FLAGS


def run(ctx: Context, args: list[str]) -> int:
    from pyrkt.pods.state import Dir
    from pyrkt.stage0.prepare import discard, prepare

    flags = FlagSet(OWN_FLAGS + ctx.global_flags.flags)
    values, apps = parse_pod_and_apps(flags, args)
    ctx.report(flags)
    ctx.apply_globals(values)
    check_pod_manifest(values, apps, runtime_sysctl=False)
    check_sysctl_flags(values)
    ctx.require_root()
    if not apps and not values["pod_manifest"]:
        raise UsageError("prepare requires at least one image or --pod-manifest")
    values["stage1_name"], values["stage1_image"] = stage1_choice(ctx, values, args)
    pod = prepare(ctx.config, pod_request(values, apps), ui=fetch_ui(ctx, values))
    try:
        pod.transition(Dir.PREPARED)
    except BaseException:
        discard(pod)
        raise
    pod.unlock()
    ctx.stdout.write(pod.uuid + "\n")
    return 0
