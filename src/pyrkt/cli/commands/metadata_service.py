"""`pyrkt metadata-service`: rkt's metadata service for the pods of this data dir that run with
``--mds-register``, until SIGINT or SIGTERM. Optional: pods never need it unless they ask."""

from __future__ import annotations

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
    import signal
    import threading

    values, rest = ctx.parse(FLAGS, args)
    if rest:
        raise UsageError(f"metadata-service takes no arguments (got {rest[0]!r})")
    text = values["listen_port"]
    if not text.isdigit() or not 0 < int(text) < 65536:
        raise UsageError(f"invalid --listen-port={text!r}: want a TCP port, 1-65535")
    ctx.require_root()
    from pyrkt.api import metadata

    done = threading.Event()

    def stop(signum: int, frame: object) -> None:
        done.set()

    signal.signal(signal.SIGINT, stop)
    signal.signal(signal.SIGTERM, stop)

    def say(line: str) -> None:
        ctx.stderr.write(line + "\n")
        ctx.stderr.flush()

    metadata.serve(ctx.config, int(text), say=say, done=done)
    return 0
