"""Set up one app in a forked child of pod init and exec it (stage2).

Order matters and is rkt's/runc's: own session; the app's root as its plan says
(``execute.set_up_root``: mount namespace, overlay, /proc, /dev, /sys, the /etc files, masked
paths, pivot_root); rlimits; with --private-users, the pod's user namespace joined (so the
working dir it makes and the users it resolves are the namespace's); user and groups,
capabilities, no_new_privs and seccomp last, right before exec (``execute.become``).
Everything is imported before pivot_root: afterwards the host's Python library is out of reach.

appc event handlers run as root in the app's root, as rkt's: ``pre-start`` must exit 0 before
the main process starts; with a ``post-stop``, this process stays as the app's supervisor
(forwarding signals) and runs the handler once the main process has exited, in the app's root
and namespaces. Each handler drops to root within the app's capabilities in its own child.
"""

from __future__ import annotations

try:
    import _signal  # type: ignore[import-not-found]  # signal without its enum wrappers
except ImportError:  # an interpreter without it (tests/unit/test_private_modules.py)
    import signal as _signal  # type: ignore[no-redef]
import os
import stat

from pyrkt.errors import KernelError, PyrktError
from pyrkt.kernel import process
from pyrkt.kernel.api import LinuxKernel
from pyrkt.kernel.namespaces import CLONE_NEWNS
from pyrkt.stage1 import execute, users

TYPE_CHECKING = False  # typing costs ~2 ms at run time; the annotations only need it for mypy
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any

    from pyrkt.kernel.api import Kernel
    from pyrkt.model.plan import AppPlan

TIOCSCTTY = 0x540E
FORWARDED = (_signal.SIGTERM, _signal.SIGINT, _signal.SIGHUP, _signal.SIGQUIT, _signal.SIGUSR1, _signal.SIGUSR2)
MAX_FD = 1 << 20
ROOT = users.Ids(0, 0, (), "root", "/root")  # who event handlers run as


def run_app(spec: dict[str, Any], plan: dict[str, Any], stdio: dict[str, int], err_w: int, go_r: int = -1) -> None:
    """Never returns: execs the app, or raises for pod init to report. ``spec["plan"]`` is the
    app's ``AppPlan``. ``go_r``: an added app prepared at `app add` (podinit.PodInit.release):
    set up, it waits for a byte there before its pre-start handler and exec, and ends quietly
    if the pipe closes without one."""
    app: AppPlan = spec["plan"]
    k = LinuxKernel()
    trees = execute.clone_propagated(k, app, plan.get("host_mntns", -1))  # before the pod's namespace
    if plan.get("apps_mntns", -1) >= 0:  # pod init's own root has nothing the app needs (initroot)
        k.setns(plan["apps_mntns"], CLONE_NEWNS, "the mount namespace pod init left")
    os.setsid()
    setup_stdio(stdio, interactive=plan["interactive"], console=plan.get("console", "/dev/null"))
    if "tty_to" in stdio:  # open_tty's modules now: after pivot_root the host's are gone
        import fcntl  # noqa: F401
        import socket  # noqa: F401
        import struct  # noqa: F401
        import termios  # noqa: F401
    userns = plan.get("userns_fd", -1)
    execute.set_up_root(k, app, userns, trees)
    if "tty_to" in stdio:
        open_tty(app, stdio.pop("tty_to"))
    execute.apply_limits(k, app)  # as host root: it may lower its OOM score where it can
    if userns >= 0:
        execute.enter_user_namespace(k, userns)
    workdir = app.cwd or "/"
    if not os.path.isdir(workdir):
        os.makedirs(workdir, 0o755, exist_ok=True)
    os.chdir(workdir)
    ids = users.resolve(app.user, app.group, app.supplementary_gids)
    env = users.environment(list(app.env), ids)
    path = find_executable(app.argv[0], env)
    close_fds(keep=(err_w, go_r))
    if go_r >= 0:
        try:  # what ps shows while it waits (a fork of pod init would show "pyrkt pod init")
            process.blank_cmdline(f"pyrkt app {app.name} (set up, held until its start)")
        except (KernelError, OSError):
            pass
        wait_go(go_r)
    start(k, app, ids, env, path, err_w)


def wait_go(go_r: int) -> None:
    while True:
        try:
            go = os.read(go_r, 1)
            break
        except InterruptedError:
            continue
    if not go:  # pod init let it go (or died)
        os._exit(0)
    os.close(go_r)


def start(k: Kernel, app: AppPlan, ids: users.Ids, env: dict[str, str], path: str, err_w: int) -> None:
    """The app's processes, its root set up: the ``pre-start`` handler (which must exit 0), then
    the app, each dropping its privileges itself (``execute.become``) right before its exec. The
    handlers run as root (uid and gid 0, no groups) in the app's root, as rkt's (systemd's
    PermissionsStartOnly), within the app's capability set, filter and no_new_privs. With a
    ``post-stop`` handler this process stays, privileged, as the app's supervisor. Never returns."""
    handlers = {name: list(argv) for name, argv in app.event_handlers}
    if "pre-start" in handlers:
        code = run_handler(k, app, handlers["pre-start"], env)
        if code != 0:
            raise PyrktError(f"pre-start event handler {handlers['pre-start'][0]} exited with {code}")
    if "post-stop" in handlers:
        post_stop = handlers["post-stop"]
        find_executable(post_stop[0], env)  # a missing handler fails the start, not the stop
        main = spawn(lambda: exec_as(k, ids, app, path, app.argv, env))
        os.close(err_w)  # the error pipe is the main process's now, closed by its exec
        supervise(k, app, main, post_stop, env)
    exec_as(k, ids, app, path, app.argv, env)


def exec_as(k: Kernel, ids: users.Ids, app: AppPlan, path: str, argv: tuple[str, ...] | list[str],
            env: dict[str, str]) -> None:
    """Drop to ``ids`` within the app's capabilities, filter and no_new_privs, and exec."""
    execute.become(k, ids, app.caps, app.seccomp, app.no_new_privs)
    try:
        os.execve(path, list(argv), env)
    except OSError as e:
        raise PyrktError(f"cannot execute {path}: {e.strerror}") from None


def spawn(child: Callable[[], None]) -> int:
    """Fork; the child runs ``child``, which execs (or raises into pod init's report of this
    app, as the child of an app's set-up is). The child's pid."""
    pid = os.fork()
    if pid == 0:
        child()
        os._exit(127)
    return pid


def run_handler(k: Kernel, app: AppPlan, argv: list[str], env: dict[str, str]) -> int:
    """Run an appc event handler as root in the app's root and wait for it; its exit code (128 +
    N for signal N)."""
    path = find_executable(argv[0], env)
    pid = spawn(lambda: exec_as(k, ROOT, app, path, argv, env))
    return exit_code(os.waitpid(pid, 0)[1])


def supervise(k: Kernel, app: AppPlan, main: int, post_stop: list[str], env: dict[str, str]) -> None:
    """An app with a post-stop handler: this process (what pod init sees as the app) forwards
    signals to the main process, waits for it, runs the handler as root in the app's
    namespaces and root, then ends as the main process ended. Never returns."""
    def forward(signum: int, frame: object) -> None:
        try:
            os.kill(main, signum)
        except ProcessLookupError:
            pass

    for sig in FORWARDED:
        _signal.signal(sig, forward)
    status = os.waitpid(main, 0)[1]
    for sig in FORWARDED:
        _signal.signal(sig, _signal.SIG_DFL)
    try:
        run_handler(k, app, post_stop, env)
    finally:
        if os.WIFSIGNALED(status):  # end as the main process did, so pod init records the same
            os.kill(os.getpid(), os.WTERMSIG(status))
        os._exit(exit_code(status))


def exit_code(status: int) -> int:
    return os.WEXITSTATUS(status) if os.WIFEXITED(status) else 128 + os.WTERMSIG(status)


def setup_stdio(stdio: dict[str, int], *, interactive: bool, console: str = "/dev/null") -> None:
    """``interactive``: the app keeps pod init's stdio, the pod's pty (``console``) that becomes
    its controlling terminal, or (no pty: run's stdin or stdout was no terminal) run's own
    stdin, stdout and stderr, which it never takes as its terminal."""
    if interactive:
        if console != "/dev/null":
            import fcntl

            try:
                fcntl.ioctl(0, TIOCSCTTY, 0)
            except OSError:
                pass  # the app still runs, without a controlling terminal
        return
    null = os.open("/dev/null", os.O_RDWR)
    for fd, stream in enumerate(("stdin", "stdout", "stderr")):  # a tty one: open_tty, later
        os.dup2(stdio.get(stream, null), fd)
    os.close(null)


def open_tty(app: AppPlan, tty_to: int) -> None:
    """A tty app: a pty of its own /dev/pts (so it is /dev/pts/0 inside) as its controlling
    terminal and the streams in tty mode; its master goes to the iomux helper over ``tty_to``,
    which keeps it for attachers."""
    import fcntl
    import socket
    import struct
    import termios

    master, slave = os.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 80, 0, 0))
    fcntl.ioctl(slave, TIOCSCTTY, 0)
    for fd, stream in enumerate(("stdin", "stdout", "stderr")):
        if getattr(app, stream) == "tty":
            os.dup2(slave, fd)
    with socket.socket(fileno=tty_to) as sock:
        socket.send_fds(sock, [b"t"], [master])
    os.close(master)
    os.close(slave)


def close_fds(keep: tuple[int, ...]) -> None:
    """Close every fd above stderr but those in ``keep`` (-1: none), with close_range(2)."""
    low = 3
    for fd in sorted(fd for fd in keep if fd >= low):
        os.closerange(low, fd)
        low = fd + 1
    os.closerange(low, MAX_FD)


def find_executable(name: str, env: dict[str, str]) -> str:
    """The path to exec: ``name`` itself when it has a slash, else the first match on PATH."""
    if "/" in name:
        if not os.path.exists(name):
            raise PyrktError(f"executable {name!r} not found in the image")
        return name
    for d in env.get("PATH", "").split(":"):
        candidate = os.path.join(d or ".", name)
        try:
            st = os.stat(candidate)
        except OSError:
            continue
        if stat.S_ISREG(st.st_mode) and st.st_mode & 0o111:
            return candidate
    raise PyrktError(f"executable {name!r} not found in the image's PATH ({env.get('PATH', '')})")


def main_added(argv: list[str]) -> None:
    """An app added to a mutable pod, in the fresh interpreter pod init's child execs
    (``podinit.PodInit.exec_setup``): ``PLAN_FILE ERR_W APPS_MNTNS USERNS HOST_MNTNS [NAME=FD...]`` (fds,
    -1 for none; NAME=FD: its stdio fds, as ``appio.AppIO.child`` names them, and ``go=FD``, the
    go pipe of an app held until its start). Sets the app up
    as ``run_app`` does and execs it; a failure goes to ``ERR_W`` for pod init to report.
    Never returns."""
    import marshal
    import resource  # noqa: F401  what the set-up imports late, imported before pivot_root

    from pyrkt.kernel import cgroups, inroot  # noqa: F401
    from pyrkt.model.plan import AppPlan, from_plain

    err_w = int(argv[1])
    try:
        mntns, userns, host_mntns = (int(a) for a in argv[2:5])
        stdio = {name: int(fd) for name, _, fd in (a.partition("=") for a in argv[5:])}
        go_r = stdio.pop("go", -1)  # held until its start (podinit.PodInit.release)
        for fd in (err_w, mntns, userns, host_mntns, go_r, *stdio.values()):
            if fd >= 0:
                os.set_inheritable(fd, False)
        with open(argv[0], "rb") as f:
            plan = from_plain(AppPlan, marshal.load(f))
        run_app({"plan": plan}, {"apps_mntns": mntns, "userns_fd": userns, "host_mntns": host_mntns,
                                 "interactive": False}, stdio, err_w, go_r)
    except BaseException as e:
        try:
            os.write(err_w, (str(e) or repr(e)).encode())
        finally:
            os._exit(127)
    os._exit(127)
