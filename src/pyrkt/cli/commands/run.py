"""`pyrkt run`: prepare and run images in a new pod."""

from __future__ import annotations

from pyrkt.cli.commands.apps import APP_FLAGS, MOUNT_FLAG, parse_pod_and_apps
from pyrkt.cli.flags import PULL_POLICY_ALIASES, Flag, FlagSet
from pyrkt.errors import UsageError
from pyrkt.stage0.prepare import PodRequest, parse_pairs
from pyrkt.stage0.run import RunOptions, parse_net

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

    from pyrkt.cli.main import Context
    from pyrkt.fetch.ui import FetchUI
    from pyrkt.stage0.stage1image import Stage1Image

USAGE = ("pyrkt run [--net=...] [--detach] IMAGE [--name=N] [--exec=CMD] [-- image-args... ---] [IMAGE...]\n"
         "       pyrkt run [--net=...] [--detach] --pod-manifest=FILE")

# rkt's stage1 flags, mutually exclusive (stage1_choice)
STAGE1_FLAGS = [
    Flag("stage1-name", "list", metavar="NAME[:VERSION]",
         help="the stage1: the built-in default or fly, or the name of a stage1 image (default: what "
              "stage1.d sets, else default)"),
    Flag("stage1-url", "list", metavar="URL", help="a stage1 image at a file://, http(s):// or docker:// URL"),
    Flag("stage1-path", "list", metavar="FILE", help="a stage1 image file (absolute or relative path)"),
    Flag("stage1-hash", "list", metavar="ID", help="a stage1 image in the store, by its ID"),
    Flag("stage1-from-dir", "list", metavar="FILE",
         help="a stage1 image file in the stage1 images dir (paths.d stage1-images)"),
]
PREPARE_FLAGS = [
    Flag("set-env", "list", help="an environment variable for all apps, KEY=VALUE"),
    Flag("set-env-file", "list", help="a file of KEY=VALUE lines with environment variables for all apps"),
    Flag("inherit-env", "bool", help="inherit all environment variables not set by the apps"),
    Flag("pull-policy", default="new", help="when to fetch images: never, new or update"),
    *PULL_POLICY_ALIASES,
    *STAGE1_FLAGS,
    Flag("uuid-file-save", help="write the pod's UUID to this file"),
    Flag("port", "list", help="forward a host port to an image port, NAME:[HOSTIP:]HOSTPORT"),
    Flag("platform", help="the platform to choose from an image index, OS/ARCH[/VARIANT] (default: the host's)"),
    Flag("quiet", "bool", help="no download progress (prepare: print only the pod's UUID)"),
    Flag("device", "list", metavar="HOSTPATH[:CONTAINERPATH][:rwm]",
         help="pass a host device node into every app and allow it (r, w, m: read, write, mknod); repeatable"),
    Flag("pod-manifest", metavar="FILE",
         help="the appc pod manifest describing the whole pod: no images, app flags, --port or env flags with it"),
    # before any image, the pod's own (rkt's `app sandbox` flags); after one, that app's (apps.APP_FLAGS)
    Flag("user-annotation", "list", hidden=True),
    Flag("user-label", "list", hidden=True),
    Flag("volume", "list", metavar="NAME,kind=KIND[,...]",
         help="a volume of the pod: NAME,kind=host,source=PATH[,readOnly=BOOL][,recursive=BOOL]"
         "[,propagation=private|rslave|rshared] or "
         "NAME,kind=empty[,mode=0755][,uid=N][,gid=N] (repeatable)"),
    MOUNT_FLAG,
    Flag("private-users", "bool", help="run the pod in its own user namespace: its root is an unprivileged host id"),
    Flag("no-overlay", "bool", help="give each app a copy of its image instead of an overlay"),
    Flag("cgroup-parent", metavar="PATH",
         help="put the pod's cgroup under this cgroupfs path from each hierarchy's root, e.g. "
              "/kubepods/burstable/pod<uid> (made if missing, never removed by pyrkt)"),
]
# a pod-level flag of run and prepare, and of run-prepared (over the prepared pod's values)
SYSCTL_FLAG = Flag("sysctl", "list", help="set a sysctl of the pod's own namespaces, KEY=VALUE (net.*, IPC keys; "
                   "repeatable)")
RUNTIME_FLAGS = [
    Flag("net", "opt", default="default", implicit="default", help="networks: default, host, none, or a list"),
    Flag("hostname", help="the pod's hostname (default rkt-$UUID)"),
    Flag("interactive", "bool", help="run the app with a terminal (one app only)"),
    Flag("ipc", default="auto", help="IPC namespace: auto, private or parent"),
    Flag("pid", default="", help="PID namespace: private (the pod's own, the default) or host (pyrkt's own)"),
    Flag("dns", "list", help="a name server for the pod (repeatable, or a comma list), or host, or none"),
    Flag("dns-search", "list", help="a DNS search domain for the pod's resolv.conf (repeatable)"),
    Flag("dns-opt", "list", help="a DNS option for the pod's resolv.conf (repeatable)"),
    Flag("dns-domain", help="the DNS domain for the pod's resolv.conf"),
    Flag("hosts-entry", "list", help="an /etc/hosts entry IP=HOSTNAME (repeatable, or a comma list), or host"),
    Flag("mds-register", "bool", help="register the pod with the metadata service of this data dir and give its "
         "apps AC_METADATA_URL (needs a network reaching the host: default, host or a CNI network)"),
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
        stage1_image=values.get("stage1_image"),
        ports=values["port"],
        platform=values["platform"] or "",
        devices=values["device"],
        sysctl=values.get("sysctl") or [],
        pod_manifest=values["pod_manifest"] or "",
        user_annotations=parse_pairs(values["user_annotation"], "--user-annotation"),
        user_labels=parse_pairs(values["user_label"], "--user-label"),
        volumes=values["volume"],
        mounts=values["mount"],
        private_users=values["private_users"],
        no_overlay=values["no_overlay"],
        cgroup_parent=values["cgroup_parent"] or "",
    )


# What rkt refuses with --pod-manifest (rkt/run.go, rkt/prepare.go), and pyrkt's pod-level
# additions the manifest says itself: the manifest is the whole description of the pod.
POD_MANIFEST_CONFLICTS = ("volume", "mount", "port", "set-env", "set-env-file", "inherit-env", "user-annotation",
                          "user-label")


def check_pod_manifest(values: dict[str, Any], apps: list[Any], *, runtime_sysctl: bool) -> None:
    """Refuse what cannot go with ``--pod-manifest``; ``runtime_sysctl``: ``--sysctl`` is a run
    time flag of this command (run), set over the manifest's as run-prepared sets it."""
    if not values["pod_manifest"]:
        return
    given = [f"image {apps[0].image}"] if apps else []
    names = POD_MANIFEST_CONFLICTS if runtime_sysctl else (*POD_MANIFEST_CONFLICTS, "sysctl")
    given += [f"--{name}" for name in names if values.get(name.replace("-", "_"))]
    if values["pull_policy"] != "new" or values["store_only"] or values["no_store"]:
        given.append("--store-only" if values["store_only"] else "--no-store" if values["no_store"]
                     else f"--pull-policy={values['pull_policy']}")
    if given:
        raise UsageError(f"conflicting flags set with --pod-manifest: {', '.join(given)} (the pod manifest "
                         "describes the whole pod)")


def check_sysctl_flags(values: dict[str, Any]) -> None:
    """Refuse a malformed ``--sysctl`` (a key a pod may not set, a value the kernel would refuse)
    before the root check and any work; the model is imported only when the flag is given."""
    if values.get("sysctl"):
        from pyrkt.model import sysctl

        sysctl.parse_all(values["sysctl"])


def run_options(values: dict[str, Any], given: set[str] | None = None) -> RunOptions:
    """The run-time flags' values; ``given``: the flags the command line gave (``FlagSet.given``)."""
    return RunOptions(
        net=parse_net(values["net"]),
        net_given="net" in (given or ()),
        hostname=values["hostname"] or "",
        interactive=values["interactive"],
        detach=values.get("detach", False),
        rm=values.get("rm", False),
        ipc=values["ipc"],
        pid=values["pid"] or "",
        stage1_name=values.get("stage1_name", "default"),
        dns=values["dns"],
        dns_search=values["dns_search"],
        dns_opt=values["dns_opt"],
        dns_domain=values["dns_domain"] or "",
        hosts_entry=values["hosts_entry"],
        sysctl=values.get("sysctl") or [],
        mds_register=values["mds_register"],
    )


def run(ctx: Context, args: list[str]) -> int:
    from pyrkt.stage0 import run as stage0_run

    flags = FlagSet(RUN_FLAGS + ctx.global_flags.flags)
    values, apps = parse_pod_and_apps(flags, args)
    ctx.report(flags)
    ctx.apply_globals(values)
    check_pod_manifest(values, apps, runtime_sysctl=True)
    check_sysctl_flags(values)
    ctx.require_root()
    if not apps and not values["pod_manifest"]:
        raise UsageError("run requires at least one image or --pod-manifest")
    values["stage1_name"], values["stage1_image"] = stage1_choice(ctx, values, args)
    return stage0_run.run(ctx.config, pod_request(values, apps), run_options(values, flags.given), ctx.stdout,
                          ui=fetch_ui(ctx, values))


def stage1_choice(ctx: Context, values: dict[str, Any], args: list[str] | None = None) -> tuple[str, Stage1Image | None]:
    """The stage1 flavor and, for flavor ``image``, where its stage1 image comes from: one of
    the ``--stage1-*`` flags (mutually exclusive, each given once, as rkt), else the default
    stage1 of ``stage1.d`` (an image by name and version, or one of pyrkt's flavors: rkt's
    stage1 image names count as their flavor), else the built-in default. ``--stage1-name``
    naming a built-in flavor means that flavor. ``args``: the command line, for rkt's order of
    the two flags in the mutually-exclusive error (the later one first)."""
    from pyrkt.stage1 import flavor

    kinds = [f.name.removeprefix("stage1-") for f in STAGE1_FLAGS]  # stage1image.KINDS, without its import
    given = [(kind, values.get("stage1_" + kind.replace("-", "_")) or []) for kind in kinds]
    given = [(kind, flags) for kind, flags in given if flags]
    words = [a.partition("=")[0] for a in args or ()]
    given.sort(key=lambda g: words.index("--stage1-" + g[0]) if "--stage1-" + g[0] in words else len(words))
    for kind, flags in given:
        if len(flags) > 1:
            raise UsageError(f"--stage1-{kind} already used")
    if len(given) > 1:
        raise UsageError(f"flags --stage1-{given[1][0]} and --stage1-{given[0][0]} are mutually exclusive")
    if given:
        kind, (location,) = given[0]
        built_in = flavor.built_in(location) if kind == "name" else None
        if built_in:
            return built_in, None
        from pyrkt.stage0.stage1image import Stage1Image

        return "image", Stage1Image(kind, location)
    configured = ctx.config.stage1_default()
    if configured.name:
        built_in = flavor.built_in(configured.name)
        if built_in:
            return built_in, None
        from pyrkt.stage0.stage1image import Stage1Image

        return "image", Stage1Image("config", f"{configured.name}:{configured.version}", configured.location)
    if configured.location:
        ctx.warn(f"stage1.d ({configured.location_file}) gives the location {configured.location} but no stage1 "
                 "name and version: as rkt, the default stage1 (pyrkt's built-in default) is found first and the "
                 "location is not used")
    return "default", None


def fetch_ui(ctx: Context, values: dict[str, Any]) -> FetchUI:
    """What image fetches of run and prepare show on the terminal (``--quiet``: no progress)."""
    from pyrkt.cli.fetchui import TerminalUI

    return TerminalUI(ctx.stderr, quiet=values["quiet"], debug=ctx.config.debug)
