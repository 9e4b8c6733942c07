"""`pyrkt app status UUID --app=NAME [--format=json]`: one app's state, times and exit code (rkt's)."""

from __future__ import annotations

from pyrkt.cli import output
from pyrkt.cli.commands.app_list import APP_FLAG, one_app
from pyrkt.cli.flags import Flag

TYPE_CHECKING = False
if TYPE_CHECKING:
    from pyrkt.cli.main import Context

USAGE = "pyrkt app status UUID --app=NAME [--format=json|json-pretty]"
FLAGS = [APP_FLAG, Flag("format", help="choose the output format: json or json-pretty (default: key=value lines)")]


def run(ctx: Context, args: list[str]) -> int:
    from pyrkt.stage0 import sandbox

    fmt = output.check_format(ctx.parse(FLAGS, args)[0]["format"])
    uuid, name = one_app(ctx, FLAGS, args, "status")
    app = sandbox.app_info(ctx.config, uuid, name)
    if fmt:
        output.dump_json(app.to_v1(), pretty=fmt == "json-pretty", out=ctx.stdout)
        return 0
    lines = [f"name={app.name}", f"state={app.state}", f"image_id={app.image_id}"]
    for key, ns in (("created_at", app.created_at), ("started_at", app.started_at), ("finished_at", app.finished_at)):
        if ns is not None:
            lines.append(f"{key}={output.full_time(ns / 1e9)}")
    if app.exit_code is not None:
        lines.append(f"exit_code={app.exit_code}")
    if app.mounts:
        lines.append("mounts=" + ",".join(f"{m.host_path}:{m.container_path}:(read_only:"
                                          f"{'true' if m.read_only else 'false'})" for m in app.mounts))
    if app.user_annotations:
        lines.append("user_annotations=" + ",".join(f"{k}:{v}" for k, v in app.user_annotations))
    if app.user_labels:
        lines.append("user_labels=" + ",".join(f"{k}:{v}" for k, v in app.user_labels))
    ctx.stdout.write("".join(line + "\n" for line in lines))
    return 0
