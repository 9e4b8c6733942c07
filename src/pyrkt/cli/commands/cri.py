"""`pyrkt cri`: the Kubernetes CRI (runtime.v1 RuntimeService and ImageService) on a unix
socket, until SIGINT or SIGTERM. Optional: pods never need it. gRPC is imported here only when
the command runs."""

from __future__ import annotations

import os
import sys

from pyrkt.cli.flags import Flag
from pyrkt.errors import PyrktError, UsageError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from pyrkt.cli.main import Context

DEFAULT_LISTEN = "unix:///run/pyrkt/cri.sock"
DEFAULT_CNI_CONF_DIR = "/etc/cni/net.d"
DEFAULT_STREAM_ADDR = "127.0.0.1:0"
USAGE = (f"pyrkt cri [--listen={DEFAULT_LISTEN}] [--cni-conf-dir={DEFAULT_CNI_CONF_DIR}] [--cni-bin-dir=DIR] "
         f"[--stream-addr={DEFAULT_STREAM_ADDR}]")
FLAGS = [
    Flag("listen", default=DEFAULT_LISTEN, metavar="unix:///PATH", help="the unix socket to serve the CRI on"),
    Flag("cni-conf-dir", default=DEFAULT_CNI_CONF_DIR, metavar="DIR",
         help="the node's CNI network configs (Status says NetworkReady when one is there)"),
    Flag("cni-bin-dir", "list", metavar="DIR", help="a dir of CNI plugins (repeatable); only pyrkt's plugin dirs "
         "are searched: another is named in a warning"),
    Flag("stream-addr", default="", metavar="HOST:PORT",
         help=f"where the streaming server (exec, attach, port-forward) listens (default {DEFAULT_STREAM_ADDR}: "
         "loopback, a free port)"),
]


def check_stream_addr(text: str) -> str:
    host, sep, port = text.rpartition(":")
    if not sep or not host or not port.isdigit() or int(port) > 65535:
        raise UsageError(f"--stream-addr={text!r}: want HOST:PORT, e.g. {DEFAULT_STREAM_ADDR}")
    return text


def loopback(addr: str) -> bool:
    import ipaddress

    host = addr.rpartition(":")[0].strip("[]")
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return host == "localhost"


def run(ctx: Context, args: list[str]) -> int:
    values, rest = ctx.parse(FLAGS, args)
    if rest:
        raise UsageError(f"cri takes no arguments (got {rest[0]!r})")
    stream_addr = check_stream_addr(values["stream_addr"] or DEFAULT_STREAM_ADDR)
    if not ctx.config.debug:
        os.environ.setdefault("GRPC_VERBOSITY", "NONE")  # gRPC's C core logs to stderr; our errors say it in one line
    try:
        from pyrkt.api.cri import runtime, server
    except ImportError as e:
        raise PyrktError(f"cri needs the grpcio and protobuf packages (pip install 'pyrkt[api]'): {e}") from None

    def say(line: str) -> None:
        ctx.stderr.write(line + "\n")
        ctx.stderr.flush()

    if not loopback(stream_addr):
        say(f"warning: --stream-addr={stream_addr}: not a loopback address: the streams (exec, attach, "
            "port-forward) are plain HTTP there, guarded by their one-time tokens only")
    from pyrkt.network.cni import DEFAULT_PLUGIN_DIRS

    for d in values["cni_bin_dir"]:
        if os.path.abspath(d) not in DEFAULT_PLUGIN_DIRS:
            say(f"warning: --cni-bin-dir={d}: not searched: pyrkt looks for CNI plugins in the CNI conf dir "
                f"and {', '.join(DEFAULT_PLUGIN_DIRS)}")
    settings = runtime.Settings(state_dir=os.path.join(ctx.config.data_dir, "cri"),
                                cni_conf_dir=os.path.abspath(values["cni_conf_dir"]),
                                cni_bin_dirs=tuple(os.path.abspath(d) for d in values["cni_bin_dir"]),
                                stream_addr=stream_addr)
    from pyrkt.cli.stopsignal import StopSignal

    done = StopSignal()
    server.serve(ctx.config, settings, values["listen"], say=say, done=done)
    # Stopped: a call the stop cancelled may still be in a worker thread between two of its
    # checks (a pull waiting on its registry), and the interpreter would wait for it at exit.
    # Nothing of it needs finishing: the store cleans up what an import left, as after a SIGKILL.
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)
