"""`pyrkt list`: one row per app of every pod, as rkt's table or its v1 JSON."""

from __future__ import annotations

import time

from pyrkt.cli import output
from pyrkt.cli.flags import Flag
from pyrkt.errors import UsageError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Sequence

    from pyrkt.cli.main import Context
    from pyrkt.pods.info import NetInfo, PodInfo

USAGE = "pyrkt list [--full] [--no-legend] [--format=json|json-pretty]"
FLAGS = [
    Flag("full", "bool", help="use long output format"),
    Flag("no-legend", "bool", help="suppress a legend with the list"),
    Flag("format", help="choose the output format: json or json-pretty (default: a table)"),
]
HEADER = ["UUID", "APP", "IMAGE NAME", "STATE", "CREATED", "STARTED", "NETWORKS"]
HEADER_FULL = ["UUID", "APP", "IMAGE NAME", "IMAGE ID", "STATE", "CREATED", "STARTED", "NETWORKS"]


def run(ctx: Context, args: list[str]) -> int:
    from pyrkt.stage0 import manage

    values, rest = ctx.parse(FLAGS, args)
    if rest:
        raise UsageError(f"list takes no arguments (got {rest[0]!r})")
    fmt = output.check_format(values["format"])
    pods = manage.list_pods(ctx.config)
    if fmt:
        output.dump_json([p.to_v1() for p in pods], pretty=fmt == "json-pretty", out=ctx.stdout)
    else:
        header = None if values["no_legend"] else (HEADER_FULL if values["full"] else HEADER)
        output.table(rows(pods, full=values["full"], now=time.time()), header=header, out=ctx.stdout)
    for pod in pods:
        for problem in pod.problems:
            ctx.warn(problem)
    return 0


def rows(pods: Sequence[PodInfo], *, full: bool, now: float) -> list[list[str]]:
    """rkt's rows: pod columns on the pod's first row only; ``-`` for a pod without apps."""
    out: list[list[str]] = []
    for pod in pods:
        pod_cells = [
            pod.uuid if full else pod.uuid[:8],
            pod.state.value,
            when(pod.created_at, full=full, now=now),
            when(pod.started_at, full=full, now=now),
            networks(pod.networks),
        ]
        apps = [(a.name, a.image_name, a.image_id[:19]) for a in pod.apps] or [("-", "-", "-")]
        for app, image_name, image_id in apps:
            uuid, state, created, started, nets = pod_cells
            row = [uuid, app, image_name] + ([image_id] if full else []) + [state, created, started, nets]
            out.append(row)
            pod_cells = [""] * len(pod_cells)
    return out


def when(ns: int | None, *, full: bool, now: float) -> str:
    if ns is None:
        return ""
    seconds = ns / 1e9
    return output.full_time(seconds) if full else output.humanize_ago(seconds, now)


def networks(nets: Sequence[NetInfo]) -> str:
    """``default:ip4=172.16.28.2, other:ip4=…`` as rkt's fmtNets."""
    return ", ".join(f"{n.net_name}:ip4={n.ip}" for n in nets)
