"""`pyrkt status`: one pod's state, times, networks, pid and app exit codes, optionally after
waiting for it to finish (``--wait``) or to become ready (``--wait-ready``)."""

from __future__ import annotations

from pyrkt.cli import output
from pyrkt.cli.flags import Flag
from pyrkt.errors import PyrktError, UsageError
from pyrkt.pods.state import State

TYPE_CHECKING = False
if TYPE_CHECKING:
    from pyrkt.cli.main import Context
    from pyrkt.pods.info import PodInfo

USAGE = ("pyrkt status [--wait[=bool|duration]] [--wait-ready[=bool|duration]] "
         "[--format=json|json-pretty] (UUID | --uuid-file=FILE)")
FLAGS = [
    Flag("wait", "opt", default="false", implicit="true", metavar="bool|duration",
         help="wait for the pod to finish; a duration (10s, 1m) sets a timeout"),
    Flag("wait-ready", "opt", default="false", implicit="true", metavar="bool|duration",
         help="wait until every app of the pod has started; a duration sets a timeout"),
    Flag("format", help="choose the output format: json or json-pretty (default: key=value lines)"),
    Flag("uuid-file", help="read the pod's UUID from this file"),
]
# states in which the pod ran: only these have a pid, an exit status and networks to show
AFTER_START = (State.RUNNING, State.DELETING, State.EXITED_DELETING, State.EXITED, State.EXITED_GARBAGE)
EXITED = (State.EXITED, State.EXITED_GARBAGE)


def run(ctx: Context, args: list[str]) -> int:
    from pyrkt.cli.durations import parse_wait
    from pyrkt.stage0 import manage

    values, rest = ctx.parse(FLAGS, args)
    fmt = output.check_format(values["format"])
    wait = parse_wait(values["wait"])
    wait_ready = parse_wait(values["wait_ready"])
    if values["uuid_file"]:
        if rest:
            raise UsageError("status takes a UUID or --uuid-file, not both")
        try:
            rest = [manage.read_uuid_file(values["uuid_file"])]
        except PyrktError as e:
            ctx.warn(str(e))
            return 1  # as rkt
    if len(rest) != 1:
        raise UsageError("status takes exactly one pod UUID")
    pod = manage.find_pod(ctx.config, rest[0])
    if wait_ready is not None:
        manage.wait_ready(pod, wait_ready)
    if wait is not None:
        manage.wait_finished(pod, wait)
    info = manage.inspect(pod, pid_wait=1.0)
    if fmt:
        output.dump_json(info.to_v1(), pretty=fmt == "json-pretty", out=ctx.stdout)
    else:
        ctx.stdout.write("".join(f"{line}\n" for line in lines(info)))
    return 0


def lines(info: PodInfo) -> list[str]:
    """rkt's key=value lines for one pod."""
    from pyrkt.cli.commands.list_pods import networks

    out = [f"state={info.state.value}"]
    if info.created_at is not None:
        out.append(f"created={output.full_time(info.created_at / 1e9)}")
    if info.started_at is not None:
        out.append(f"started={output.full_time(info.started_at / 1e9)}")
    if info.state in (State.RUNNING, *EXITED):
        out.append(f"networks={networks(info.networks)}")
    if info.state in AFTER_START:
        if info.pid is not None:
            out.append(f"pid={info.pid}")
        out.append(f"exited={'true' if info.state in EXITED else 'false'}")
        if info.state != State.RUNNING:
            out.extend(f"app-{name}={code}" for name, code in info.exit_codes())
            oom = [a.name for a in info.apps if a.oom_killed]
            if oom:  # pyrkt's: killed by SIGKILL (137 above), the kernel's OOM killer's
                out.append(f"oom-killed={','.join(oom)}")
    # as rkt's `app status` shows them, one line per app that has mounts
    out.extend(f"mounts-{app.name}=" + ",".join(f"{m.host_path}:{m.container_path}:(read_only:"
                                               f"{'true' if m.read_only else 'false'})" for m in app.mounts)
               for app in info.apps if app.mounts)
    return out
