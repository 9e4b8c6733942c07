"""gRPC as pyrkt's servers load it (pyrkt.api.rpc): a fork in a serving process (pyrkt's servers
spawn, but a library or a test may fork) leaves nothing from gRPC in its log or in the child's
terminal."""

from __future__ import annotations

import ast
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[3] / "src" / "pyrkt"

# A server as `pyrkt cri` starts one (threads in gRPC), then children forked onto a pty, each
# execing at once; prints what each child's pty showed.
SERVING_AND_FORKING = """
import json, os, sys
from concurrent import futures
{load_grpc}
s = grpc.server(futures.ThreadPoolExecutor(2))
s.add_insecure_port("unix:" + sys.argv[1])
s.start()
shown = []
for _ in range(20):
    pid, master = os.forkpty()
    if pid == 0:
        os.execv("/bin/true", ["/bin/true"])
    out = b""
    while True:
        try:
            data = os.read(master, 4096)
        except OSError:  # EIO: the child's side closed
            break
        if not data:
            break
        out += data
    os.waitpid(pid, 0)
    os.close(master)
    shown.append(out.decode(errors="replace"))
s.stop(0)
print(json.dumps(shown))
"""


THROUGH_PYRKT = "from pyrkt.api.cri import server\ngrpc = server.grpc"


def serve_and_fork(tmp_path: Path, fork_support: str | None, load_grpc: str = THROUGH_PYRKT) -> tuple[list[str], str]:
    # gRPC's default verbosity, as a user's server has it (a test of the CLI may have set NONE here)
    env = {k: v for k, v in os.environ.items() if k not in ("GRPC_ENABLE_FORK_SUPPORT", "GRPC_VERBOSITY")}
    if fork_support is not None:
        env["GRPC_ENABLE_FORK_SUPPORT"] = fork_support
    script = SERVING_AND_FORKING.format(load_grpc=load_grpc)
    p = subprocess.run([sys.executable, "-c", script, str(tmp_path / "s.sock")],
                       capture_output=True, text=True, env=env, timeout=60)
    assert p.returncode == 0, p.stderr
    return json.loads(p.stdout), p.stderr


@pytest.mark.parametrize("fork_support", [None, "true"])
def test_forks_of_a_serving_process_leave_nothing_from_grpc_in_its_log_or_the_childs_terminal(
        tmp_path: Path, fork_support: str | None) -> None:
    # whatever the environment says: the handlers would shut down connections a child shares
    shown, log = serve_and_fork(tmp_path, fork_support)
    assert (shown, log) == ([""] * 20, "")


def test_the_probe_sees_grpcs_fork_handlers_when_they_are_on(tmp_path: Path) -> None:
    # gRPC imported directly, fork support on: each fork while threads are in gRPC logs from fork_posix
    _, log = serve_and_fork(tmp_path, "true", load_grpc="import grpc")
    assert "fork" in log


def test_grpc_is_imported_only_through_pyrkt_api_rpc() -> None:
    # anywhere else, an `import grpc` that ran first would read the environment before rpc sets it
    direct = []
    for path in sorted(SRC.rglob("*.py")):
        if path.name.endswith("_pb2.py") or path == SRC / "api" / "rpc.py":
            continue
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            names = ([a.name for a in node.names] if isinstance(node, ast.Import)
                     else [node.module or ""] if isinstance(node, ast.ImportFrom) and not node.level else [])
            if any(n == "grpc" or n.startswith("grpc.") for n in names):
                direct.append(str(path.relative_to(SRC)))
    assert direct == []
