"""gRPC as pyrkt's servers load it: with gRPC's fork support off.

gRPC's C core registers fork handlers (``pthread_atfork``) unless ``GRPC_ENABLE_FORK_SUPPORT``
is false, and reads that variable once, when ``grpc`` is first imported. pyrkt's servers start
children that exec at once and never use gRPC (subprocess, ``posix_spawn``), and do not fork
themselves (DESIGN); but any fork of a process with the handlers on (a library's, a test's)
runs them: they would shut down the server's connections, which a child shares; while other
threads are in gRPC, every fork logs "skipping fork() handlers" to stderr; and the child's
event-engine poller can write an ``epoll_wait`` error into the child's stderr. So it is set false
here, whatever the environment said, and every pyrkt module imports ``grpc`` from here so that
this comes first.
"""

from __future__ import annotations

import os

os.environ["GRPC_ENABLE_FORK_SUPPORT"] = "false"

import grpc  # noqa: E402  (after the variable: gRPC reads it at import)

__all__ = ["grpc"]
