"""`pyrkt api-service`: rkt's read-only v1alpha gRPC API over this data dir, until SIGINT or
SIGTERM. Optional: pods never need it. gRPC is imported here only when the command runs."""

from __future__ import annotations

import os

from pyrkt.cli.flags import Flag
from pyrkt.errors import PyrktError, UsageError

TYPE_CHECKING = False
if TYPE_CHECKING:
    import threading
    from collections.abc import Callable

    from pyrkt.cli.main import Context

DEFAULT_LISTEN = "localhost:15441"  # rkt's common.APIServiceListenAddr
USAGE = f"pyrkt api-service [--listen={DEFAULT_LISTEN}]"
FLAGS = [
    Flag("listen", default="", metavar="host:port",
         help=f"address to listen for client API requests (default {DEFAULT_LISTEN}; 0.0.0.0 for every interface)"),
]


def run(ctx: Context, args: list[str]) -> int:
    values, rest = ctx.parse(FLAGS, args)
    if rest:
        raise UsageError(f"api-service takes no arguments (got {rest[0]!r})")
    if os.environ.get("LISTEN_FDS"):
        raise UsageError("api-service does not take sockets from systemd (LISTEN_FDS): "
                         "run it as a plain service with --listen")
    if not ctx.config.debug:
        os.environ.setdefault("GRPC_VERBOSITY", "NONE")  # gRPC's C core logs to stderr; our errors say it in one line
    try:
        from pyrkt.api import service
    except ImportError as e:
        raise PyrktError(f"api-service needs the grpcio and protobuf packages (pip install 'pyrkt[api]'): {e}") from None

    return serve_until_signalled(ctx, lambda say, done: service.serve(ctx.config, values["listen"] or DEFAULT_LISTEN,
                                                                      say=say, done=done))


def serve_until_signalled(ctx: Context, serve: Callable[[Callable[[str], None], threading.Event], None]) -> int:
    """Run a service, ``serve(say, done)``, until SIGINT or SIGTERM sets ``done``; ``say``
    writes one line to stderr. 0 once it has stopped."""
    from pyrkt.cli.stopsignal import StopSignal

    done = StopSignal()

    def say(line: str) -> None:
        ctx.stderr.write(line + "\n")
        ctx.stderr.flush()

    serve(say, done)
    return 0
