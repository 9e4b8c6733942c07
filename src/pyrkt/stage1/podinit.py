"""Pod init: PID 1 of a pod. Starts the apps, reaps every child, keeps their logs, records
their exit statuses, forwards signals and stops the pod by rkt's rules.

One of these lives per pod, so it is kept lean: it is exec'ed as ``python -I -S podinit.py
PLAN`` and imports only builtin modules (``_signal`` rather than ``signal``, which costs 0.8 MiB
of enum machinery; ``marshal`` rather than ``json``). Everything it needs comes in the plan
(``stage1/plan``, a marshal'ed dict written by the host side, see ``default.build_plan``).
Each app is set up in a forked child by ``pyrkt.stage1.app``, which is imported only there.

rkt's rules: an app exiting 0 leaves the others running; the first app exiting non-zero stops
the pod and its code becomes the pod's; apps stopped by the pod (TERM, then KILL after the
stop timeout) are recorded as 0; the pod ends when every app has ended.
"""

import _signal
import marshal
import os
import select
import sys
import time

SIGCHLD, SIGTERM, SIGINT, SIGHUP, SIGKILL = 17, 15, 2, 1, 9
CHUNK = 65536
LINE_MAX = 16384


class App:
    __slots__ = ("spec", "name", "pid", "code", "stopped", "bufs", "log")

    def __init__(self, spec):
        self.spec = spec
        self.name = spec["name"]
        self.pid = 0
        self.code = None
        self.stopped = False
        self.bufs = {}
        self.log = -1


def stamp():
    t = time.time()
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(t)) + ".%09dZ" % int((t % 1) * 1e9)


def write_all(fd, data):
    while data:
        try:
            n = os.write(fd, data)
        except BlockingIOError:
            select.select([], [fd], [], 1.0)
            continue
        except OSError:
            return
        data = data[n:]


def write_file(path, text):
    tmp = path + ".tmp"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o644)
    try:
        os.write(fd, text.encode())
    finally:
        os.close(fd)
    os.rename(tmp, path)


class PodInit:
    def __init__(self, plan):
        self.plan = plan
        self.apps = [App(a) for a in plan["apps"]]
        self.by_pid = {}
        self.by_fd = {}
        self.poll = select.poll()
        self.stopping = False
        self.kill_at = None
        self.exit_code = 0
        self.failed = None
        self.tee = plan["tee"]

    # -- start ---------------------------------------------------------------------

    def start(self):
        r, w = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
        self.wake = r
        _signal.set_wakeup_fd(w)
        for sig in (SIGCHLD, SIGTERM, SIGINT, SIGHUP):
            _signal.signal(sig, self.on_signal)
        self.poll.register(r, select.POLLIN)
        errors = []
        for app in self.apps:
            err = self.spawn(app)
            if err:
                errors.append(err)
                break
        ready = self.plan["ready_fd"]
        if errors:
            write_all(ready, ("error:" + errors[0] + "\n").encode())
            self.begin_stop(254)
        else:
            now = time.time()
            for app in self.apps:
                write_file(self.plan["status_dir"] + "/" + app.name + "-started", "%f" % now)
            try:
                os.symlink("ready", self.plan["supervisor_status"])
            except FileExistsError:
                pass
            write_all(ready, b"ready\n")
        os.close(ready)

    def spawn(self, app):
        """Fork the app; its child sets itself up (pyrkt.stage1.app) and execs. Returns an
        error line, or None once the exec has happened (the CLOEXEC error pipe closed empty)."""
        spec = app.spec
        err_r, err_w = os.pipe2(os.O_CLOEXEC)
        pipes = {}
        if not self.plan["interactive"]:
            for stream in ("stdout", "stderr"):
                pipes[stream] = os.pipe2(os.O_CLOEXEC)
        pid = os.fork()
        if pid == 0:
            try:
                os.close(err_r)
                stdio = {k: w for k, (r, w) in pipes.items()}
                from pyrkt.stage1 import app as setup  # noqa: imported only in the child

                setup.run_app(spec, self.plan, stdio, err_w)
            except BaseException as e:  # report anything, never return into pod init
                try:
                    os.write(err_w, str(e).encode() or repr(e).encode())
                finally:
                    os._exit(127)
            os._exit(127)
        app.pid = pid
        self.by_pid[pid] = app
        os.close(err_w)
        write_file(self.plan["pids_dir"] + "/" + app.name, str(pid))
        app.log = os.open(spec["log"], os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_CLOEXEC, 0o640)
        for stream, (r, w) in pipes.items():
            os.close(w)
            os.set_blocking(r, False)
            self.by_fd[r] = (app, stream)
            app.bufs[stream] = b""
            self.poll.register(r, select.POLLIN)
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
            return "app %s: %s" % (app.name, msg.decode(errors="replace").strip())
        return None

    # -- signals and children --------------------------------------------------------

    def on_signal(self, signum, frame):
        pass  # the wakeup fd carries the signal number to the loop

    def handle_signal(self, sig):
        if sig == SIGCHLD:
            self.reap()
        elif sig in (SIGTERM, SIGINT, SIGHUP):
            self.begin_stop(None, sig)

    def reap(self):
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
            if os.WIFEXITED(status):
                code = os.WEXITSTATUS(status)
            else:
                sig = os.WTERMSIG(status)
                code = 0 if app.stopped and sig in (SIGTERM, SIGKILL, SIGINT, SIGHUP) else 128 + sig
            app.code = code
            self.drain(app)
            write_file(self.plan["status_dir"] + "/" + app.name, str(code))
            if code != 0 and not self.stopping:
                self.begin_stop(code)

    def begin_stop(self, code, sig=SIGTERM):
        if code is not None and self.failed is None and code != 0:
            self.failed = code
            self.exit_code = code
        if self.stopping:
            if sig != SIGTERM:
                self.signal_apps(sig)
            return
        self.stopping = True
        self.kill_at = time.monotonic() + self.plan["stop_timeout"]
        self.signal_apps(sig)

    def signal_apps(self, sig):
        for app in self.apps:
            if app.pid and app.code is None:
                app.stopped = True
                try:
                    os.kill(-app.pid, sig)
                except ProcessLookupError:
                    try:
                        os.kill(app.pid, sig)
                    except ProcessLookupError:
                        pass

    # -- logs --------------------------------------------------------------------------

    def on_output(self, fd):
        app, stream = self.by_fd[fd]
        try:
            data = os.read(fd, CHUNK)
        except BlockingIOError:
            return
        if not data:
            self.close_stream(fd, app, stream)
            return
        if self.tee:
            write_all(1 if stream == "stdout" else 2, data)
        buf = app.bufs[stream] + data
        lines = buf.split(b"\n")
        rest = lines.pop()
        out = []
        for line in lines:
            out.append(self.record(stream, b"F", line))
        while len(rest) >= LINE_MAX:
            out.append(self.record(stream, b"P", rest[:LINE_MAX]))
            rest = rest[LINE_MAX:]
        app.bufs[stream] = rest
        if out:
            write_all(app.log, b"".join(out))

    def record(self, stream, tag, line):
        return stamp().encode() + b" " + stream.encode() + b" " + tag + b" " + line + b"\n"

    def close_stream(self, fd, app, stream):
        self.poll.unregister(fd)
        del self.by_fd[fd]
        os.close(fd)
        rest = app.bufs.pop(stream, b"")
        if rest:
            write_all(app.log, self.record(stream, b"P", rest))

    def drain(self, app):
        for fd, (owner, stream) in list(self.by_fd.items()):
            if owner is app:
                while fd in self.by_fd:
                    before = app.bufs.get(stream)
                    self.on_output(fd)
                    if fd in self.by_fd and app.bufs.get(stream) == before:
                        break

    # -- main loop ---------------------------------------------------------------------

    def running(self):
        return any(a.pid and a.code is None for a in self.apps)

    def loop(self):
        while self.running():
            timeout = None
            if self.kill_at is not None:
                left = self.kill_at - time.monotonic()
                if left <= 0:
                    self.signal_apps(SIGKILL)
                    self.kill_at = None
                    continue
                timeout = int(left * 1000) + 1
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
            self.reap()
        for app in self.apps:
            self.drain(app)
            for fd, (owner, stream) in list(self.by_fd.items()):
                if owner is app:
                    self.close_stream(fd, app, stream)
            if app.log >= 0:
                os.close(app.log)
        try:
            os.kill(-1, SIGKILL)  # whatever the apps left behind dies with the pod
        except ProcessLookupError:
            pass
        return self.exit_code


def main(argv):
    with open(argv[1], "rb") as f:
        plan = marshal.load(f)
    init = PodInit(plan)
    init.start()
    return init.loop()


if __name__ == "__main__":
    # started with -I -S: put the package root on sys.path for the app children's imports
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
    sys.exit(main(sys.argv))
