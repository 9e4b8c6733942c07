"""`pyrkt metadata-service`: rkt's metadata service for the pods of this data dir that run with
``--mds-register``, until SIGINT or SIGTERM. Optional: pods never need it unless they ask."""

from __future__ import annotations

import os

from pyrkt.cli.commands.api_service import serve_until_signalled
from pyrkt.cli.flags import Flag
from pyrkt.errors import UsageError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from pyrkt.cli.main import Context

DEFAULT_PORT = 18112  # rkt's common.MetadataServicePort
USAGE = f"pyrkt metadata-service [--listen-port={DEFAULT_PORT}]"
FLAGS = [
    Flag("listen-port", default=str(DEFAULT_PORT), metavar="PORT",
         help="TCP port the apps' metadata API listens on (every host address)"),
]


def run(ctx: Context, args: list[str]) -> int:
    values, rest = ctx.parse(FLAGS, args)
    if rest:
        raise UsageError(f"metadata-service takes no arguments (got {rest[0]!r})")
    text = values["listen_port"]
    if not text.isdigit() or not 0 < int(text) < 65536:
        raise UsageError(f"invalid --listen-port={text!r}: want a TCP port, 1-65535")
    if os.environ.get("LISTEN_FDS"):
        raise UsageError("metadata-service does not take sockets from systemd (LISTEN_FDS): "
                         "run it as a plain service with --listen-port")
    ctx.require_root()
    from pyrkt.api import metadata

    return serve_until_signalled(ctx, lambda say, done: metadata.serve(ctx.config, int(text), say=say, done=done))
