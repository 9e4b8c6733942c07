"""`pyrkt app sandbox`: start an empty mutable pod (rkt's), for apps added with `app add`."""

from __future__ import annotations

from pyrkt.cli.commands.run import (
    PREPARE_FLAGS,
    RUNTIME_FLAGS,
    SYSCTL_FLAG,
    check_sysctl_flags,
    fetch_ui,
    pod_request,
    run_options,
    stage1_choice,
)
from pyrkt.cli.flags import Flag, FlagSet
from pyrkt.errors import UsageError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from pyrkt.cli.main import Context

USAGE = "pyrkt app sandbox [--net=...] [--volume=...] [--hostname=H] [--annotation=K=V] [--uuid-file-save=FILE]"
# run's pod-level flags, but those that only mean something with images or a pod manifest: a
# sandbox fetches no image (its stage1 is the built-in default flavor, a stage1 image is refused
# before any fetch), so the pull policy and --quiet (no progress) have nothing to act on; and
# --mds-register (rkt's sandbox has none), since the apps added later get no metadata URL
NOT_SANDBOX = {"pod-manifest", "set-env", "set-env-file", "inherit-env", "platform", "mount", "interactive",
               "pull-policy", "store-only", "no-store", "quiet", "mds-register"}
# run's pod-level user annotations and labels are hidden flags there (its help lists the per-app
# ones, which before any image are the pod's); a sandbox has no image, so they are the pod's alone
SHOWN = {"user-annotation": Flag("user-annotation", "list", metavar="NAME=VALUE", help="a user annotation of the pod"),
         "user-label": Flag("user-label", "list", metavar="NAME=VALUE", help="a user label of the pod")}
FLAGS = [SHOWN.get(f.name, f) for f in PREPARE_FLAGS + RUNTIME_FLAGS if f.name not in NOT_SANDBOX and f.name != "port"] + [
    Flag("port", "list", metavar="NAME:PROTO:PODPORT:HOSTIP:HOSTPORT",
         help="forward a host port to a port of the pod (rkt's sandbox form), e.g. http:tcp:80:127.0.0.1:8080"),
    SYSCTL_FLAG,
    Flag("annotation", "list", metavar="NAME=VALUE", help="an annotation of the pod in its manifest"),
]


def run(ctx: Context, args: list[str]) -> int:
    from pyrkt.stage0 import sandbox
    from pyrkt.stage0.prepare import parse_pairs

    flags = FlagSet(FLAGS + ctx.global_flags.flags)
    values, rest = flags.parse(args)
    ctx.report(flags)
    ctx.apply_globals(values)
    if rest:
        raise UsageError(f"app sandbox takes no image (add apps with `pyrkt app add`): {rest[0]}")
    sandbox.parse_sandbox_ports(values["port"])  # bad ones fail before the root check
    check_sysctl_flags(values)
    ctx.require_root()
    for name in NOT_SANDBOX:
        values.setdefault(name.replace("-", "_"), [] if name in ("set-env", "set-env-file", "mount") else None)
    values.update(inherit_env=False, interactive=False, pull_policy="new", store_only=False, no_store=False,
                  quiet=False, mds_register=False)
    values["stage1_name"], values["stage1_image"] = stage1_choice(ctx, values, args)
    req = pod_request(values, [])
    req.annotations = parse_pairs(values["annotation"], "--annotation")
    return sandbox.sandbox(ctx.config, req, run_options(values, flags.given), ctx.stdout, ui=fetch_ui(ctx, values))
