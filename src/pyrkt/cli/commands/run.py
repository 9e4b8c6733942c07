"""`pyrkt run`: prepare and run images in a new pod."""

from __future__ import annotations

from pyrkt.cli.commands.apps import APP_FLAGS, parse_pod_and_apps
from pyrkt.cli.flags import CAPS_ALIASES, PULL_POLICY_ALIASES, Flag, FlagSet
from pyrkt.errors import UsageError
from pyrkt.stage0.prepare import PodRequest
from pyrkt.stage0.run import RunOptions, parse_net

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

    from pyrkt.cli.main import Context
    from pyrkt.fetch.ui import FetchUI

USAGE = "pyrkt run [--net=...] [--detach] IMAGE [--name=N] [--exec=CMD] [-- image-args... ---] [IMAGE...]"

PREPARE_FLAGS = [
    Flag("set-env", "list", help="an environment variable for all apps, KEY=VALUE"),
    Flag("set-env-file", "list", help="a file of KEY=VALUE lines with environment variables for all apps"),
    Flag("inherit-env", "bool", help="inherit all environment variables not set by the apps"),
    Flag("pull-policy", default="new", help="when to fetch images: never, new or update"),
    *PULL_POLICY_ALIASES,
    *CAPS_ALIASES,
    Flag("stage1-name", help="the stage1 flavor: default or fly (default: the name stage1.d sets, else default)"),
    Flag("uuid-file-save", help="write the pod's UUID to this file"),
    Flag("port", "list", help="forward a host port to an image port, NAME:[HOSTIP:]HOSTPORT"),
    Flag("platform", help="the platform to choose from an image index, OS/ARCH[/VARIANT] (default: the host's)"),
    Flag("quiet", "bool", help="no download progress (prepare: print only the pod's UUID)"),
    Flag("device", "list", metavar="HOSTPATH[:rwm]",
         help="pass a host device node into every app and allow it (r, w, m: read, write, mknod); repeatable"),
    Flag("private-users", "bool", help="run the pod in its own user namespace: its root is an unprivileged host id"),
    Flag("no-overlay", "bool", help="give each app a copy of its image instead of an overlay"),
]
# a pod-level flag of run and prepare, and of run-prepared (over the prepared pod's values)
SYSCTL_FLAG = Flag("sysctl", "list", help="set a sysctl of the pod's own namespaces, KEY=VALUE (net.*, IPC keys; "
                   "repeatable)")
RUNTIME_FLAGS = [
    Flag("net", "opt", default="default", implicit="default", help="networks: default, host, none, or a list"),
    Flag("hostname", help="the pod's hostname (default rkt-$UUID)"),
    Flag("interactive", "bool", help="run the app with a terminal (one app only)"),
    Flag("ipc", default="auto", help="IPC namespace: auto, private or parent"),
    Flag("dns", "list", help="a name server for the pod (repeatable, or a comma list), or host, or none"),
    Flag("dns-search", "list", help="a DNS search domain for the pod's resolv.conf (repeatable)"),
    Flag("dns-opt", "list", help="a DNS option for the pod's resolv.conf (repeatable)"),
    Flag("dns-domain", help="the DNS domain for the pod's resolv.conf"),
    Flag("hosts-entry", "list", help="an /etc/hosts entry IP=HOSTNAME (repeatable, or a comma list), or host"),
]
RUN_FLAGS = PREPARE_FLAGS + RUNTIME_FLAGS + [SYSCTL_FLAG] + [
    Flag("detach", "bool", help="return once the apps have started and leave the pod running"),
    Flag("rm", "bool", help="remove the pod when it exits"),
]
FLAGS = RUN_FLAGS + APP_FLAGS


def pod_request(values: dict[str, Any], apps: list[Any]) -> PodRequest:
    from pyrkt.fetch.policy import policy_from_flags

    pull_policy = policy_from_flags(values["pull_policy"], store_only=values["store_only"],
                                    no_store=values["no_store"])
    if values["platform"]:
        from pyrkt.fetch import parse_platform

        parse_platform(values["platform"])
    return PodRequest(
        apps=apps,
        set_env=values["set_env"],
        set_env_file=values["set_env_file"],
        inherit_env=values["inherit_env"],
        pull_policy=pull_policy,
        uuid_file_save=values["uuid_file_save"] or "",
        stage1_name=values["stage1_name"],
        ports=values["port"],
        platform=values["platform"] or "",
        devices=values["device"],
        sysctl=values.get("sysctl") or [],
        private_users=values["private_users"],
        no_overlay=values["no_overlay"],
    )


def run_options(values: dict[str, Any]) -> RunOptions:
    return RunOptions(
        net=parse_net(values["net"]),
        hostname=values["hostname"] or "",
        interactive=values["interactive"],
        detach=values.get("detach", False),
        rm=values.get("rm", False),
        ipc=values["ipc"],
        stage1_name=values.get("stage1_name", "default"),
        dns=values["dns"],
        dns_search=values["dns_search"],
        dns_opt=values["dns_opt"],
        dns_domain=values["dns_domain"] or "",
        hosts_entry=values["hosts_entry"],
        sysctl=values.get("sysctl") or [],
    )


def run(ctx: Context, args: list[str]) -> int:
    from pyrkt.stage0 import run as stage0_run

    flags = FlagSet(RUN_FLAGS + ctx.global_flags.flags)
    values, apps = parse_pod_and_apps(flags, args)
    ctx.report(flags)
    ctx.apply_globals(values)
    ctx.require_root()
    if not apps:
        raise UsageError("run requires at least one image")
    values["stage1_name"] = stage1_name(ctx, values["stage1_name"])
    return stage0_run.run(ctx.config, pod_request(values, apps), run_options(values), ctx.stdout,
                          ui=fetch_ui(ctx, values))


def stage1_name(ctx: Context, flag: str | None) -> str:
    """``--stage1-name``, else the default stage1 of ``stage1.d`` when it names one of pyrkt's
    flavors (rkt's stage1 image names count as their flavor), else the built-in default. A
    stage1.d naming any other image is warned about: pyrkt does not run stage1 images yet."""
    if flag:
        return flag
    from pyrkt.stage1 import flavor

    configured = ctx.config.stage1_default()
    if configured.name:
        if flavor.ALIASES.get(configured.name, configured.name) in flavor.FLAVORS:
            return flavor.canonical(configured.name)
        ctx.warn(f"stage1.d ({configured.name_file}) names the stage1 image {configured.name}:{configured.version}: "
                 "stage1 images are not supported yet, using the built-in default")
    elif configured.location:
        ctx.warn(f"stage1.d ({configured.location_file}) locates a stage1 image at {configured.location}: "
                 "stage1 images are not supported yet, using the built-in default")
    return "default"


def fetch_ui(ctx: Context, values: dict[str, Any]) -> FetchUI:
    """What image fetches of run and prepare show on the terminal (``--quiet``: no progress)."""
    from pyrkt.cli.fetchui import TerminalUI

    return TerminalUI(ctx.stderr, quiet=values["quiet"], debug=ctx.config.debug)
