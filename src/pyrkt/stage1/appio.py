"""Pod init's side of an app's stdio modes (``pyrkt.model.stdio``): the fds the app gets, the
pipes pod init logs from, and, for an attachable app, its iomux helper (``iomux.py``) with
the listening sockets attachers connect to. An app in the default modes gets two log pipes,
as it always did, and no helper.
"""

from __future__ import annotations

import os

from pyrkt.model.stdio import iottymux_dir, socket_name

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any

    from pyrkt.model.plan import AppPlan

HELPER = os.path.join(os.path.dirname(os.path.abspath(__file__)), "iomux.py")
PACKAGE = os.path.dirname(os.path.dirname(HELPER))  # .../pyrkt
script = "stage1/iomux.py"  # the helper, in the package: its compiled file once preload found one


class AppIO:
    """``child``: the app's fds by name ("stdin", "stdout", "stderr"; none: /dev/null;
    "tty_to": the socket it sends its pty's master on); ``logs``: the read ends pod init
    logs, by stream; ``helper``: the iomux helper's pid, 0 for none."""

    def __init__(self) -> None:
        self.child: dict[str, int] = {}
        self.logs: dict[str, int] = {}
        self.helper = 0
        self.muxed: list[int] = []  # the log pipes the helper writes (pod init waits for their end)
        self.theirs: list[int] = []  # the helper's ends, passed to it

    def pipe(self) -> tuple[int, int]:
        return os.pipe2(os.O_CLOEXEC)

    def log_pipe(self, stream: str) -> int:
        """A pipe pod init logs as ``stream``; its write end."""
        r, w = self.pipe()
        self.logs[stream] = r
        return w

    def close_child(self) -> None:
        """Pod init's copies of the app's fds, once the app has forked."""
        for fd in self.child.values():
            os.close(fd)
        self.child.clear()


def preload(lean: Callable[[str], str]) -> None:
    """Import now what ``open_stdio`` will need in pod init's root, where the host's modules
    are out of reach, and choose the helper's script: ``lean`` gives its compiled file when
    that is fresh (the import makes it where it can)."""
    import _socket  # type: ignore[import-not-found]  # noqa: F401

    from pyrkt.stage1 import iomux  # noqa: F401

    global script
    script = os.path.relpath(lean(HELPER), PACKAGE)


def open_stdio(app: AppPlan, plan: dict[str, Any]) -> AppIO:
    """The fds of ``app`` by its modes; with a stream or tty one, its helper started (a child of
    pod init, which reaps it as any orphan)."""
    io = AppIO()
    for stream in ("stdout", "stderr"):
        if getattr(app, stream) == "log":
            io.child[stream] = io.log_pipe(stream)
    modes = (app.stdin, app.stdout, app.stderr)
    if not app.attachable:
        return io
    import _socket  # type: ignore[import-not-found]

    where = f"{plan['pod']}/{iottymux_dir(app.name)}"
    os.makedirs(where, 0o700, exist_ok=True)
    dir_fd = os.open(where, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
    args: list[str] = []
    try:
        def listen(endpoint: str) -> int:
            # through /proc: a unix socket's path must be short, the pod dir's need not be
            path = f"/proc/self/fd/{dir_fd}/{socket_name(endpoint)}"
            try:
                os.unlink(path)
            except FileNotFoundError:
                pass
            sock = _socket.socket(_socket.AF_UNIX, _socket.SOCK_STREAM | _socket.SOCK_CLOEXEC)
            sock.bind(path)
            sock.listen(16)
            fd: int = sock.detach()
            io.theirs.append(fd)
            return fd

        if "tty" in modes:
            mine, theirs = _socket.socketpair(_socket.AF_UNIX, _socket.SOCK_STREAM | _socket.SOCK_CLOEXEC)
            io.child["tty_to"] = mine.detach()
            tty_from = theirs.detach()
            io.theirs.append(tty_from)
            # the pty's output is logged as the first stream on it (rkt logged no tty)
            logged = "stdout" if app.stdout == "tty" else "stderr" if app.stderr == "tty" else ""
            log = io.log_pipe(logged) if logged else -1
            if log >= 0:
                io.theirs.append(log)
                io.muxed.append(io.logs[logged])
            args += [f"tty-from={tty_from}", f"tty=-1,{listen('tty')},{log}"]
        if app.stdin == "stream":
            r, w = io.pipe()
            io.child["stdin"] = r
            io.theirs.append(w)
            args.append(f"stdin={w},{listen('stdin')}")
        for stream in ("stdout", "stderr"):
            if getattr(app, stream) == "stream":
                r, w = io.pipe()
                io.child[stream] = w
                io.theirs.append(r)
                log = io.log_pipe(stream)
                io.theirs.append(log)
                io.muxed.append(io.logs[stream])
                args.append(f"{stream}={r},{listen(stream)},{log}")
        io.helper = spawn_helper(plan, args, io.theirs)
    finally:
        os.close(dir_fd)
        for fd in io.theirs:
            os.close(fd)
        io.theirs.clear()
    return io


def spawn_helper(plan: dict[str, Any], args: list[str], fds: list[int]) -> int:
    """Start the helper with ``fds`` (and the fds its root's links need) and no other: not the
    pod's lock nor the ready pipe, whose reader waits for them to close. posix_spawn, not fork:
    nothing of this process (at-fork handlers, threads) runs in between."""
    python = plan.get("python") or "/usr/bin/python3"
    where = f"{plan['import_path']}/pyrkt" if plan.get("import_path") else PACKAGE  # pod init's root, or not
    keep = {*fds, *plan.get("root_fds", ())}
    for fd in fds:
        os.set_inheritable(fd, True)  # the caller closes them once the helper has them
    others = []
    for name in os.listdir("/proc/self/fd"):
        fd = int(name)
        try:
            if fd > 2 and fd not in keep and os.get_inheritable(fd):
                others.append((os.POSIX_SPAWN_CLOSE, fd))
        except OSError:
            continue  # listdir's own fd, closed since
    return os.posix_spawn(python, [python, "-I", "-S", f"{where}/{script}", *args],
                          {"PATH": os.environ.get("PATH", "/usr/bin:/bin")}, file_actions=others, setsid=True)
