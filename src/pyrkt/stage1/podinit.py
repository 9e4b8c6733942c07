"""Pod init: PID 1 of a pod. Starts the apps, reaps every child, keeps their logs, records
their exit statuses, forwards signals and stops the pod by rkt's rules. With ``--pid=host`` it
is no PID 1 but a host process, the apps' subreaper, and what the apps leave is killed through
the pod's cgroup (``kill_left``), never with kill(-1).

It starts as a fork of the pyrkt process that ran the pod (so apps start without paying for a
new interpreter), and once the pod has run for ``SLIM_AFTER`` seconds it re-executes itself as
``python -I -S podinit.py --resume STATE``: the same PID 1 with the same children and fds, but
a lean interpreter that imports only builtin modules (``_signal`` rather than ``signal``, which
costs 0.8 MiB of enum machinery; ``marshal`` rather than ``json``), so an idle pod stays small.
Signals are blocked across that exec and delivered to the new image. Before it starts the apps,
it pivots into a root of its own (``initroot``): from then on the pod dir is ``plan["pod"]`` =
``/pod``, and every path pod init uses is relative to it.

A foreground pod belongs to its ``pyrkt run``, as in rkt, where that process is the pod: pod
init watches a pidfd of it and, if it dies (SIGKILL), stops the pod as ``stop`` would and tears
its networks down, since no one else will.

rkt's rules: an app exiting 0 leaves the others running; the first app exiting non-zero stops
the pod and its code becomes the pod's; apps stopped by the pod (TERM, then KILL after the
stop timeout) are recorded as 0 (what ended them, 128 + the signal, in ``<app>-signaled``, which
the CRI reports as containerd does); the pod ends when every app has ended. An app killed by the
kernel's OOM killer (its memory cgroup counted a kill) is recorded as killed by SIGKILL (137)
and stamped ``<app>-oom-killed``. Mutable pods: see the comment above ``serve_requests``.
"""

from __future__ import annotations

try:
    import _signal  # type: ignore[import-not-found]  # the C half of `signal`, without enum
except ImportError:  # an interpreter without it (tests/unit/test_private_modules.py)
    import signal as _signal  # type: ignore[no-redef]
import gc
import marshal
import os
import select
import sys
import time

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any

SIGHUP, SIGINT, SIGKILL, SIGUSR1, SIGPIPE, SIGTERM, SIGCHLD = 1, 2, 9, 10, 13, 15, 17
HANDLED = (SIGCHLD, SIGTERM, SIGINT, SIGHUP, SIGUSR1)
CHUNK = 65536
LINE_MAX = 16384
SLIM_AFTER = 0.5
MUX_WAIT = 1.0  # how long an exited app's iomux helper may take to pass on what the app wrote last


def split_lines(pending: bytes, data: bytes) -> tuple[list[tuple[bytes, bytes]], bytes]:
    """The (tag, text) records of output ``data`` read after ``pending`` (what came before of a
    line not yet ended), and what is left pending: a line ends in an ``F`` record, and a line
    longer than LINE_MAX is first cut into ``P`` (partial) records of LINE_MAX bytes, whether it
    came in one read or many, so no record's text is longer than LINE_MAX and the records do
    not depend on how the output was read. What is left pending is at most LINE_MAX long."""
    out = []
    for line in (pending + data).split(b"\n"):
        while len(line) > LINE_MAX:
            out.append((b"P", line[:LINE_MAX]))
            line = line[LINE_MAX:]
        out.append((b"F", line))
    _, rest = out.pop()  # what came after the last newline: no record yet
    return out, rest


class App:
    __slots__ = ("name", "spec", "pid", "code", "stopped", "bufs", "log", "fds", "oom", "kill_at", "go", "err")

    def __init__(self, spec: dict[str, Any]) -> None:
        self.spec = spec
        self.name: str = spec["name"]
        self.pid = 0
        self.code: int | None = None
        self.stopped = False
        self.bufs: dict[str, bytes] = {}
        self.fds: dict[str, int] = {}
        self.log = -1
        self.oom = -1  # its memory cgroup's OOM counter, opened while the host's cgroupfs is in reach
        self.kill_at: float | None = None  # `app stop` of a mutable pod: when TERM turns to KILL
        self.go = self.err = -1  # an added app set up and held before its exec: see prepare


def stamp() -> str:
    t = time.time()
    return f"{time.strftime('%Y-%m-%dT%H:%M:%S', time.gmtime(t))}.{int((t % 1) * 1e9):09d}Z"


def write_all(fd: int, data: bytes) -> None:
    while data:
        try:
            n = os.write(fd, data)
        except BlockingIOError:
            select.select([], [fd], [], 1.0)
            continue
        except OSError:
            return  # the terminal went away; the log file still has everything
        data = data[n:]


def write_file(path: str, text: str) -> None:
    tmp = path + ".tmp"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o644)
    try:
        os.write(fd, text.encode())
    finally:
        os.close(fd)
    os.rename(tmp, path)


class PodInit:
    def __init__(self, plan: dict[str, Any]) -> None:
        self.plan = plan
        self.apps = [App(a) for a in plan["apps"]]
        self.by_pid: dict[int, App] = {}
        self.by_fd: dict[int, tuple[App, str]] = {}
        self.poll = select.poll()
        self.stopping = False
        self.kill_at: float | None = None
        self.exit_code = 0
        self.failed: int | None = None
        self.tee: bool = plan["tee"]
        self.wake = -1
        self.parent: int = plan.get("parent_fd", -1)  # pidfd of the foreground `pyrkt run`
        self.orphaned = False
        self.mutable: bool = plan.get("mutable", False)
        self.slim_at: float | None = None  # when to re-execute as the lean interpreter

    def path(self, rel: str) -> str:
        """A path in the pod dir, wherever pod init's root is."""
        return f"{self.plan['pod']}/{rel}"

    # -- signals -------------------------------------------------------------------------

    def install_signals(self) -> None:
        r, w = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
        self.wake = r
        _signal.set_wakeup_fd(w)
        for sig in HANDLED:
            _signal.signal(sig, self.on_signal)
        self.poll.register(r, select.POLLIN)
        if self.parent >= 0:
            self.poll.register(self.parent, select.POLLIN)

    def on_signal(self, signum: int, frame: object) -> None:
        pass  # the wakeup fd carries the signal number to the loop

    def handle_signal(self, sig: int) -> None:
        if sig == SIGCHLD:
            self.reap()
        elif sig in (SIGTERM, SIGINT, SIGHUP):
            self.begin_stop(None, sig)
        elif sig == SIGUSR1 and self.mutable:
            self.serve_requests()
            if self.slim_at is not None:  # apps come in bursts (a CRI's): added ones start faster unslimmed
                self.slim_at = time.monotonic() + SLIM_AFTER

    def on_parent_exit(self) -> None:
        """The foreground ``pyrkt run`` died: nobody waits for the pod, so it stops."""
        self.poll.unregister(self.parent)
        os.close(self.parent)
        self.parent = self.plan["parent_fd"] = -1
        self.orphaned = True
        self.tee = False  # its terminal or pipe may be gone too
        self.begin_stop(None, SIGTERM)

    # -- start ---------------------------------------------------------------------------

    def start(self, enter_root: Callable[[], dict[str, Any]] | None = None) -> None:
        """With ``enter_root``, move into pod init's own root first (and take its paths); then
        start the apps, which set themselves up from the mount namespace pod init left."""
        self.install_signals()
        error = None
        for app in self.apps:
            if app.spec.get("oom_events"):
                try:
                    app.oom = os.open(app.spec["oom_events"], os.O_RDONLY | os.O_CLOEXEC)
                except OSError:
                    pass  # its OOM kills show as SIGKILL only
        if self.plan.get("procs_dir"):  # --pid=host: what is the pod's, for finish (see kill_left)
            try:
                self.plan["procs_dir_fd"] = os.open(self.plan["procs_dir"], os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
            except OSError:
                pass
        if self.plan.get("oom_dir"):  # a mutable pod: its apps added later are below it
            try:
                self.plan["oom_dir_fd"] = os.open(self.plan["oom_dir"], os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
            except OSError:
                pass
        if enter_root is not None:
            try:
                self.plan.update(enter_root())
            except Exception as e:  # the pod does not start; the run process shows why
                error = f"cannot start pod init: {e}"
        for app in self.apps:
            error = error or self.spawn(app)
        for key in ("apps_mntns", "userns_fd", "host_mntns"):  # fds only the apps' set-up needed (and an added app's)
            if self.plan.get(key, -1) >= 0 and not self.mutable:
                os.close(self.plan.pop(key))
        # the apps have their default SIGPIPE; pod init gets EPIPE (as after its re-exec) when
        # the reader of the ready pipe or of the tee'd output has gone (a killed `run`)
        _signal.signal(SIGPIPE, _signal.SIG_IGN)
        ready = self.plan["ready_fd"]
        if error:
            write_all(ready, ("error:" + error + "\n").encode())
            self.begin_stop(254)
        else:
            now = f"{time.time():f}"
            for app in self.apps:
                write_file(self.path(self.plan["status_dir"]) + "/" + app.name + "-started", now)
            try:
                os.symlink("ready", self.path(self.plan["supervisor_status"]))
            except FileExistsError:
                pass
            write_all(ready, b"ready\n")
        os.close(ready)
        for app in self.apps:
            app.spec = {"name": app.name, "log": app.spec["log"]}  # drop what only set-up needed

    def spawn(self, app: App, hold: bool = False) -> str | None:
        """Fork the app; the child sets itself up (pyrkt.stage1.app) and execs. Returns an
        error line, or None once the exec happened (its CLOEXEC error pipe closed empty).
        ``hold``: the child stops before its exec until ``release`` (see ``prepare``); None
        at once."""
        spec = app.spec
        err_r, err_w = os.pipe2(os.O_CLOEXEC)
        go_r = -1
        if hold:
            go_r, app.go = os.pipe2(os.O_CLOEXEC)
        if self.plan["interactive"]:
            io = None
        else:  # an added app's modes: from its plan file, read as plain data (no import)
            io = open_stdio(spec["plan"] if "plan" in spec else Modes(self.path(spec["plan_file"])), self.plan)
        pid = os.fork()
        if pid == 0:
            try:
                os.close(err_r)
                if hold:
                    os.close(app.go)
                _signal.set_wakeup_fd(-1)  # the app is not pod init: default dispositions, no wakeup fd
                for sig in HANDLED:
                    _signal.signal(sig, _signal.SIG_DFL)
                if "plan_file" in spec:  # an app added to a mutable pod
                    if "pyrkt.stage1.app" not in sys.modules:  # the lean pod init: a fresh interpreter sets it up
                        self.exec_setup(spec["plan_file"], io.child if io else {}, err_w, go_r)
                    from pyrkt.model.plan import AppPlan, from_plain

                    with open(self.path(spec["plan_file"]), "rb") as f:
                        spec["plan"] = from_plain(AppPlan, marshal.load(f))
                from pyrkt.stage1 import app as setup

                setup.run_app(spec, self.plan, io.child if io else {}, err_w, go_r)
            except BaseException as e:  # report anything; never return into pod init
                try:
                    os.write(err_w, (str(e) or repr(e)).encode())
                finally:
                    os._exit(127)
            os._exit(127)
        app.pid = pid
        self.by_pid[pid] = app
        os.close(err_w)
        if hold:
            os.close(go_r)
        app.log = os.open(self.path(spec["log"]), os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_CLOEXEC, 0o640)
        if io is not None:
            io.close_child()
            for stream, r in io.logs.items():
                self.watch(app, stream, r)
            self.plan.setdefault("muxed", []).extend(io.muxed)  # in the plan: kept across the re-exec
        if hold:
            app.err = err_r
            return None
        return self.exec_done(app, err_r)

    def exec_done(self, app: App, err_r: int) -> str | None:
        """Wait for the app's exec (its error pipe closed: None) or its set-up's error line."""
        write_file(self.path(self.plan["pids_dir"]) + "/" + app.name, str(app.pid))
        msg = b""
        while True:
            try:
                chunk = os.read(err_r, 4096)
            except InterruptedError:
                continue
            if not chunk:
                break
            msg += chunk
        os.close(err_r)
        if msg:
            return f"app {app.name}: {msg.decode(errors='replace').strip()}"
        return None

    # In an added app's child of the lean pod init (no pyrkt in it): exec a fresh interpreter
    # that sets the app up from its plan file.
    def exec_setup(self, plan_file: str, stdio: dict[str, int], err_w: int, go_r: int) -> None:
        fds = [err_w, self.plan.get("apps_mntns", -1), self.plan.get("userns_fd", -1), self.plan.get("host_mntns", -1)]
        if go_r >= 0:
            stdio = {**stdio, "go": go_r}
        for fd in [*fds, *stdio.values()]:
            if fd >= 0:
                os.set_inheritable(fd, True)
        code = (f"import sys; sys.path[:0] = [{self.plan['import_path']!r}]; "
                "from pyrkt.stage1.app import main_added; main_added(sys.argv[1:])")
        python = self.plan["python"]
        os.execv(python, [python, "-I", "-S", "-c", code, self.path(plan_file), *map(str, fds),
                          *(f"{name}={fd}" for name, fd in stdio.items())])

    # -- mutable pods ----------------------------------------------------------------------
    # A mutable pod (`app sandbox`, plan["mutable"]) starts with no app and lives until it is
    # stopped: an app's exit, whatever its code, ends only that app. `pyrkt app start|stop|rm`
    # leave a request in the pod dir (requests/<app>: "ACTION NONCE") and send SIGUSR1; pod init
    # carries out every request there, writes <app>.result ("NONCE ok" or "NONCE error:WHY"),
    # opens and closes the FIFO <app>.wake (the asker blocks on it), and removes the request. An
    # added app is set up from the plan `app add` wrote (appsinfo/<app>/plan): in pod init's own
    # fork until it slims down, then by a fresh
    # interpreter (pyrkt.stage1.app.main_added), so the lean pod init stays as small as an
    # ordinary pod's. (Comments, not docstrings: they cost the lean pod init no memory.)

    def serve_requests(self) -> None:
        where = self.path(self.plan["requests_dir"])
        try:
            names = os.listdir(where)
        except OSError:
            return
        for name in names:
            if "." in name:  # results and temporary files: an app name has no dot
                continue
            path = where + "/" + name
            try:  # taken away first: a request written meanwhile (after a `prepare`) waits for its signal
                os.rename(path, path + ".taken")
                with open(path + ".taken") as f:
                    action, _, rest = f.read().partition(" ")
                nonce, _, arg = rest.partition(" ")
                os.unlink(path + ".taken")
            except OSError:
                continue
            try:
                error = self.act(action, name, arg)
            except Exception as e:  # the one who asked hears why; pod init goes on
                error = str(e) or repr(e)
            if action == "prepare":  # nobody waits for it: a failed one is retried by the start
                continue
            write_file(path + ".result", nonce + (" error:" + error if error else " ok"))
            try:  # wakes the one waiting on the FIFO there (ENXIO: nobody is)
                os.close(os.open(path + ".wake", os.O_WRONLY | os.O_NONBLOCK | os.O_CLOEXEC))
            except OSError:
                pass

    def find(self, name: str) -> App | None:
        for app in self.apps:
            if app.name == name:
                return app
        return None

    def act(self, action: str, name: str, arg: str = "") -> str | None:
        app = self.find(name)
        held = app is not None and app.go >= 0
        live = app is not None and app.pid != 0 and app.code is None and not held
        if action == "stop":
            if app is not None and live:
                app.stopped = True
                app.kill_at = time.monotonic() + seconds(arg, self.plan["stop_timeout"])
                self.kill_app(app, SIGTERM)
            return None
        if action == "rm":
            if live:
                return "the app is running"
            if app is not None:
                self.unhold(app)
                self.apps.remove(app)
                self.forget(app)
            return None
        if action not in ("start", "prepare"):
            return f"unknown request {action!r}"
        if action == "prepare" and (app is not None or self.stopping):  # known already: started or held
            return None
        if live:
            return "the app is running already"
        if self.stopping:
            return "the pod is stopping"
        if held and app is not None:
            return self.release(app)
        plan_file = "appsinfo/" + name + "/plan"
        with open(self.path(plan_file), "rb") as f:
            saved = marshal.load(f)
        log = saved["log"]
        if app is None:
            app = App({"name": name, "log": log})
            self.apps.append(app)
        else:
            self.forget(app)
            app.pid, app.code, app.stopped, app.kill_at = 0, None, False, None
        status = self.path(self.plan["status_dir"]) + "/" + name
        for stale in (status, status + "-oom-killed", status + "-signaled"):
            try:
                os.unlink(stale)
            except FileNotFoundError:
                pass
        events, under = saved.get("oom_events") or "", (self.plan.get("oom_dir") or "") + "/"
        if events.startswith(under) and self.plan.get("oom_dir_fd", -1) >= 0:  # reached through pod init's fd
            try:
                app.oom = os.open(events[len(under):], os.O_RDONLY | os.O_CLOEXEC, dir_fd=self.plan["oom_dir_fd"])
            except OSError:
                pass  # its OOM kills show as SIGKILL only
        app.spec = {"name": name, "log": log, "plan_file": plan_file}
        error = self.spawn(app, hold=action == "prepare")
        app.spec = {"name": name, "log": log}
        if error is None and action == "start":
            write_file(status + "-started", f"{time.time():f}")
        return error

    # `app add` asks for "prepare" (and waits for no answer): the app is spawned as for a start
    # but its child, set up, waits on the go pipe before its pre-start handler and exec; the
    # start then only releases it, so the set-up (a fresh interpreter's, in the lean pod init)
    # is paid between the two commands. A held child that dies (its set-up failed) is reaped
    # without a status (the app is still created) and the start spawns it again, reporting why.

    def release(self, app: App) -> str | None:
        try:
            os.write(app.go, b"g")
        except OSError:
            pass  # it died setting up: its error line is in the pipe
        os.close(app.go)
        err, app.go, app.err = app.err, -1, -1
        error = self.exec_done(app, err)
        if error is None:
            write_file(self.path(self.plan["status_dir"]) + "/" + app.name + "-started", f"{time.time():f}")
        return error

    def unhold(self, app: App, reaped: bool = False) -> None:  # a held child ends (`app rm`: before its cgroups go)
        if app.go < 0:
            return
        os.close(app.go)
        os.close(app.err)
        app.go = app.err = -1
        if not reaped and self.by_pid.pop(app.pid, None) is not None:
            try:
                os.kill(app.pid, SIGKILL)
                os.waitpid(app.pid, 0)
            except (ProcessLookupError, ChildProcessError):
                pass
        app.pid = 0

    def forget(self, app: App) -> None:  # an ended app's fds, before a restart or `app rm`
        self.drain(app)
        for fd in list(app.fds.values()):
            self.close_stream(fd)
        for fd in (app.log, app.oom):
            if fd >= 0:
                os.close(fd)
        app.log = app.oom = -1

    def kill_app(self, app: App, sig: int) -> None:
        for target in (-app.pid, app.pid):  # its process group, else the process
            try:
                os.kill(target, sig)
                return
            except ProcessLookupError:
                continue

    def watch(self, app: App, stream: str, fd: int) -> None:
        os.set_blocking(fd, False)
        self.by_fd[fd] = (app, stream)
        app.fds[stream] = fd
        app.bufs.setdefault(stream, b"")
        self.poll.register(fd, select.POLLIN)

    # -- children ------------------------------------------------------------------------

    def reap(self) -> None:
        while True:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return
            if pid == 0:
                return
            app = self.by_pid.pop(pid, None)
            if app is None:
                continue  # an orphan re-parented to us
            if app.go >= 0:  # died held: still created, spawned again at its start
                self.unhold(app, reaped=True)
                continue
            if os.WIFEXITED(status):
                code = os.WEXITSTATUS(status)
            else:
                sig = os.WTERMSIG(status)
                code = 0 if app.stopped and sig in (SIGTERM, SIGKILL, SIGINT, SIGHUP) else 128 + sig
                if code == 0:  # rkt's 0; what it really ended with, for the CRI (containerd's 143, 137)
                    write_file(self.path(self.plan["status_dir"]) + "/" + app.name + "-signaled", str(128 + sig))
            app.code = code
            self.drain(app)
            if code == 128 + SIGKILL and self.oom_killed(app):
                write_file(self.path(self.plan["status_dir"]) + "/" + app.name + "-oom-killed", "")
            write_file(self.path(self.plan["status_dir"]) + "/" + app.name, str(code))
            app.kill_at = None
            if code != 0 and not self.stopping and not self.mutable:
                self.begin_stop(code)

    def oom_killed(self, app: App) -> bool:
        """Whether the OOM killer has killed in the app's memory cgroup (``oom_kill N``)."""
        if app.oom < 0:
            return False
        try:
            text = os.pread(app.oom, 4096, 0)
        except OSError:
            return False
        for line in text.split(b"\n"):
            if line.startswith(b"oom_kill "):
                return line.split()[1] != b"0"
        return False

    def begin_stop(self, code: int | None, sig: int = SIGTERM) -> None:
        if code is not None and code != 0 and self.failed is None:
            self.failed = code
            self.exit_code = code
        if self.stopping:
            if sig != SIGTERM:
                self.signal_apps(sig)
            return
        self.stopping = True
        timeout = self.plan["stop_timeout"]
        if code is None and self.plan.get("stop_timeout_file"):  # a stop from outside: `pyrkt stop --timeout`'s
            try:
                with open(self.path(self.plan["stop_timeout_file"])) as f:
                    timeout = seconds(f.read(), timeout)
            except OSError:
                pass
        self.kill_at = time.monotonic() + timeout
        self.signal_apps(sig)

    def signal_apps(self, sig: int) -> None:
        for app in self.apps:
            if app.pid and app.code is None:
                app.stopped = True
                self.kill_app(app, sig)

    # -- logs ----------------------------------------------------------------------------

    def on_output(self, fd: int) -> bool:
        """Read what is there; False once the stream has closed."""
        app, stream = self.by_fd[fd]
        try:
            data = os.read(fd, CHUNK)
        except BlockingIOError:
            return True
        if not data:
            self.close_stream(fd)
            return False
        if self.tee:
            write_all(1 if stream == "stdout" else 2, data)
        pieces, app.bufs[stream] = split_lines(app.bufs[stream], data)
        if pieces:
            write_all(app.log, b"".join(self.record(stream, tag, text) for tag, text in pieces))
        return True

    def record(self, stream: str, tag: bytes, line: bytes) -> bytes:
        return b"%s %s %s %s\n" % (stamp().encode(), stream.encode(), tag, line)

    def close_stream(self, fd: int) -> None:
        app, stream = self.by_fd.pop(fd)
        if fd in self.plan.get("muxed", ()):
            self.plan["muxed"].remove(fd)
        self.poll.unregister(fd)
        os.close(fd)
        app.fds.pop(stream, None)
        rest = app.bufs.pop(stream, b"")
        if rest:
            write_all(app.log, self.record(stream, b"P", rest))

    def drain(self, app: App) -> None:
        """Read an exited app's streams to their end; stop when nothing is waiting, since an
        orphan it left may still hold them open."""
        for fd in list(app.fds.values()):
            wait = MUX_WAIT if fd in self.plan.get("muxed", ()) else 0  # its iomux helper has the last words
            for _ in range(1024):
                if fd not in self.by_fd or not self.readable(fd, wait) or not self.on_output(fd):
                    break

    def readable(self, fd: int, timeout: float = 0) -> bool:
        return bool(select.select([fd], [], [], timeout)[0])

    # -- main loop -----------------------------------------------------------------------

    def running(self) -> bool:  # an app runs, or the pod is mutable and not stopping
        return any(a.pid and a.code is None for a in self.apps) or (self.mutable and not self.stopping)

    def loop(self, slim_at: float | None = None) -> int:
        self.slim_at = slim_at
        while self.running():
            ending = [a for a in self.apps if a.kill_at is not None and a.code is None]  # by `app stop`
            for app in ending:
                if app.kill_at is not None and app.kill_at <= time.monotonic():
                    self.kill_app(app, SIGKILL)
                    app.kill_at = None
            deadlines = [d for d in (self.kill_at, self.slim_at, *(a.kill_at for a in ending)) if d is not None]
            timeout = None
            if deadlines:
                left = min(deadlines) - time.monotonic()
                if self.kill_at is not None and self.kill_at - time.monotonic() <= 0:
                    self.signal_apps(SIGKILL)
                    self.kill_at = None
                    continue
                if self.slim_at is not None and self.slim_at - time.monotonic() <= 0 and not self.stopping:
                    self.reexec()  # does not return
                timeout = max(0, int(left * 1000)) + 1
            for fd, _ in self.poll.poll(timeout):
                if fd == self.wake:
                    try:
                        sigs = os.read(self.wake, 256)
                    except BlockingIOError:
                        sigs = b""
                    for s in sigs:
                        self.handle_signal(s)
                elif fd in self.by_fd:
                    self.on_output(fd)
                elif fd == self.parent:
                    self.on_parent_exit()
            self.reap()
        return self.finish()

    def finish(self) -> int:
        for app in self.apps:
            self.drain(app)
            for fd in list(app.fds.values()):
                self.close_stream(fd)
            if app.log >= 0:
                os.close(app.log)
        if os.getpid() == 1:  # PID 1 of the pod's own namespace: -1 is every process of the pod
            try:
                os.kill(-1, SIGKILL)  # whatever the apps left behind dies with the pod
            except ProcessLookupError:
                pass
        else:  # in the host's (--pid=host), -1 would be every process of the host: never
            self.kill_left()
        self.teardown()
        return self.exit_code

    def kill_left(self) -> None:
        """--pid=host: KILL every process of the pod's cgroup (and the cgroups below it, the
        apps') but pod init, until none is left; pod init, their subreaper, reaps them. A pid is
        signalled through a pidfd opened before the pid is seen in the cgroup again, so that one
        reused meanwhile by a host process is never hit."""
        me = os.getpid()
        for _ in range(400):
            seen = self.pod_pids()
            if seen is None or not seen - {me}:
                return
            fds = {}
            for pid in seen - {me}:
                try:
                    fds[pid] = os.pidfd_open(pid)
                except OSError:
                    pass  # gone already
            still = self.pod_pids() or set()
            for pid, pidfd in fds.items():
                try:
                    if pid in still:
                        _signal.pidfd_send_signal(pidfd, SIGKILL)
                except OSError:
                    pass  # it has exited
                finally:
                    os.close(pidfd)
            self.reap()
            time.sleep(0.005)

    def pod_pids(self) -> set[int] | None:
        """The pids in the pod's cgroup and below it (--pid=host), None when it cannot be read."""
        fd = self.plan.get("procs_dir_fd", -1)
        if fd < 0:
            return None
        pids: set[int] = set()
        try:
            for _, _, files, dfd in os.fwalk(".", dir_fd=fd):
                if "cgroup.procs" in files:
                    with open(os.open("cgroup.procs", os.O_RDONLY | os.O_CLOEXEC, dir_fd=dfd), "rb") as f:
                        pids.update(int(p) for p in f.read().split())
        except OSError:
            return None
        return pids - {0}  # 0: a process of a namespace pod init cannot see

    def teardown(self) -> None:
        """The CNI networks of a detached pod, or of a foreground one whose run process died:
        run the plan's teardown command (it leaves the pod's namespaces itself, see
        pyrkt.network.teardown) and wait for it, with a timeout, since the pod's pid namespace
        dies with PID 1. If it fails, gc tears the networks down."""
        td = self.plan.get("teardown")
        if not td or not (td["always"] or self.orphaned):
            return
        if not os.path.exists(self.path("netns")):  # torn down already (the CRI's StopPodSandbox does it first)
            return
        try:
            pid = os.fork()
        except OSError:
            return
        if pid == 0:
            try:
                os.execv(td["argv"][0], td["argv"])
            finally:
                os._exit(127)
        deadline = time.monotonic() + td["timeout"]
        try:
            pidfd = os.pidfd_open(pid)  # readable when it exits: no polling interval to wait out
        except OSError:
            pidfd = -1
        try:
            while True:
                try:
                    done, _ = os.waitpid(pid, os.WNOHANG)
                except ChildProcessError:
                    return
                if done:
                    return
                left = deadline - time.monotonic()
                if left < 0:
                    os.kill(pid, SIGKILL)
                    os.waitpid(pid, 0)
                    return
                if pidfd >= 0:
                    self.readable(pidfd, left)
                else:
                    time.sleep(0.01)
        finally:
            if pidfd >= 0:
                os.close(pidfd)

    # -- slimming down -------------------------------------------------------------------

    def state(self) -> dict[str, Any]:
        apps = [{"name": a.name, "log": a.spec["log"], "pid": a.pid, "code": a.code, "stopped": a.stopped,
                 "fds": a.fds, "bufs": a.bufs, "oom": a.oom, "kill_at": a.kill_at, "go": a.go, "err": a.err}
                for a in self.apps]
        plan = {k: v for k, v in self.plan.items() if k != "apps"}
        return {"plan": plan, "apps": apps, "exit_code": self.exit_code, "failed": self.failed,
                "orphaned": self.orphaned}

    def reexec(self) -> None:
        """Become a lean interpreter with the same pid, children and fds (see the docstring)."""
        _signal.pthread_sigmask(_signal.SIG_BLOCK, HANDLED)
        path = self.path(self.plan["state_file"])
        with open(path, "wb") as f:
            marshal.dump(self.state(), f)
        for app in self.apps:
            for fd in [*app.fds.values(), app.oom, app.go, app.err]:
                if fd >= 0:
                    os.set_inheritable(fd, True)
        if self.parent >= 0:
            os.set_inheritable(self.parent, True)
        for key in ("apps_mntns", "userns_fd", "host_mntns", "oom_dir_fd", "procs_dir_fd"):  # for apps added later
            if self.plan.get(key, -1) >= 0:
                os.set_inheritable(self.plan[key], True)
        python = self.plan["python"]
        try:
            os.execv(python, [python, "-I", "-S", self.plan["podinit"], "--resume", path])
        except OSError:
            _signal.pthread_sigmask(_signal.SIG_UNBLOCK, HANDLED)  # stay as we are

    @classmethod
    def resume(cls, path: str) -> PodInit:
        with open(path, "rb") as f:
            state = marshal.load(f)
        os.unlink(path)
        plan = state["plan"]
        plan["apps"] = [{"name": a["name"], "log": a["log"]} for a in state["apps"]]
        init = cls(plan)
        init.exit_code = state["exit_code"]
        init.failed = state["failed"]
        init.orphaned = state["orphaned"]
        if init.parent >= 0:
            os.set_inheritable(init.parent, False)
        if not plan.get("teardown") and not init.mutable:  # the teardown and added apps need them
            for fd in plan.get("root_fds", ()):
                os.close(fd)
            plan["root_fds"] = []
        for key in ("apps_mntns", "userns_fd", "host_mntns", "oom_dir_fd", "procs_dir_fd"):  # pod init's own again
            if plan.get(key, -1) >= 0:  # (exec_setup passes an added app's set-up the ones it needs)
                os.set_inheritable(plan[key], False)
        init.install_signals()
        for app, saved in zip(init.apps, state["apps"], strict=True):
            app.pid, app.code, app.stopped, app.oom = saved["pid"], saved["code"], saved["stopped"], saved["oom"]
            app.kill_at, app.go, app.err = saved["kill_at"], saved.get("go", -1), saved.get("err", -1)
            for fd in (app.oom, app.go, app.err):
                if fd >= 0:
                    os.set_inheritable(fd, False)
            if app.code is None and app.pid:
                init.by_pid[app.pid] = app
            app.log = os.open(init.path(saved["log"]), os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_CLOEXEC, 0o640)
            for stream, fd in saved["fds"].items():
                os.set_inheritable(fd, False)
                app.bufs[stream] = saved["bufs"].get(stream, b"")
                init.watch(app, stream, fd)
        _signal.pthread_sigmask(_signal.SIG_UNBLOCK, HANDLED)
        init.reap()  # children that exited while we were exec'ing
        return init


def open_stdio(app: Any, plan: dict[str, Any]) -> Any:
    """The app's fds by its stdio modes, and its iomux helper if it is attachable
    (pyrkt.stage1.appio). The lean pod init, whose root has no host path, imports it through
    its fd on pyrkt's package (an app added to a mutable pod after it slimmed down)."""
    if "pyrkt.stage1.appio" not in sys.modules and plan.get("import_path") and plan["import_path"] not in sys.path:
        sys.path.insert(0, plan["import_path"])
    from pyrkt.stage1 import appio

    return appio.open_stdio(app, plan)


def seconds(text: str, default: float) -> float:
    """A stop timeout asked for (seconds, as text), else ``default``."""
    try:
        value = float(text)
    except ValueError:
        return default
    return value if 0 <= value < 1e9 else default


class Modes:
    # An added app's name and stdio modes, read from its marshal'ed plan (to_plain's dict)
    # without importing the plan's classes: what appio.open_stdio asks of an AppPlan.
    def __init__(self, plan_file: str) -> None:
        with open(plan_file, "rb") as f:
            d = marshal.load(f)
        self.name = d["name"]
        self.stdin, self.stdout, self.stderr = (d.get(s, dflt) for s, dflt in
                                                (("stdin", "null"), ("stdout", "log"), ("stderr", "log")))
        self.attachable = any(m in ("stream", "tty") for m in (self.stdin, self.stdout, self.stderr))


def run_forked(plan: dict[str, Any], enter_root: Callable[[], dict[str, Any]] | None = None) -> int:
    """Pod init in the forked child: enter its own root, start the apps, then supervise
    (slimming down later)."""
    init = PodInit(plan)
    init.start(enter_root)
    # the collector was off in `pyrkt run` (cli.main.GC_OFF_COMMANDS), so its first pass would
    # walk every object since its start (~3 ms, and copy the pages they are on): they are
    # frozen (kept, never collected: this process re-executes soon) and only new ones collected
    gc.freeze()
    gc.enable()
    return init.loop(slim_at=time.monotonic() + SLIM_AFTER)


def main(argv: list[str]) -> int:
    if len(argv) != 3 or argv[1] != "--resume":
        sys.stderr.write("usage: podinit.py --resume STATE\n")
        return 254
    return PodInit.resume(argv[2]).loop()


if __name__ == "__main__":
    sys.exit(main(sys.argv))
