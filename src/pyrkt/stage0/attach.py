"""Attaching to a running app whose stdio is in ``stream`` or ``tty`` mode (rkt's ``attach``):
connect to the sockets its iomux helper serves in the pod dir and carry this terminal's
stdin and stdout/stderr over them until the app's output ends or the user detaches.

Detaching is ^C, as in rkt (whose attach left the terminal as it was, so ^C interrupted the
attach itself): for a tty this terminal is put in raw mode, so the app's own line discipline
echoes and edits, and a ^C typed is taken as the detach key rather than sent to the app.
"""

from __future__ import annotations

import json
import os
import select
import socket

from pyrkt.config import Config
from pyrkt.errors import InvalidState, PyrktError, quote
from pyrkt.model.stdio import AttachMode, Stdio, iottymux_dir, socket_name
from pyrkt.pods.pod import Pod
from pyrkt.stage0 import control
from pyrkt.stage1.poddir import read_manifest

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import TextIO

DETACH = b"\x03"  # ^C
CHUNK = 65536


def endpoints(config: Config, uuid: str, app: str) -> tuple[Pod, str, tuple[str, ...]]:
    """The running pod, the app's name and the endpoints it serves; refused, as rkt, for a pod
    not running, and for an app with no stream or tty mode."""
    pod = Pod.find(config.pods_dir, uuid)
    control.wait_for_pid(pod)
    name = control.pick_app(pod, app)
    ra = read_manifest(pod.path).app(name)
    io = Stdio.from_annotations(ra.annotations if ra is not None else (), f"app {name}: ")
    if not io.attachable():
        raise InvalidState(f"app {quote(name)} is not attachable: its stdin is {io.stdin}, its stdout {io.stdout} "
                           f"and its stderr {io.stderr} (attach needs --stdin, --stdout or --stderr stream or tty)")
    return pod, name, io.endpoints()


def listing(pod: Pod, app: str, served: tuple[str, ...]) -> str:
    """``--mode=list``: rkt's endpoints document (version 1, one target per endpoint)."""
    where = pod.file(iottymux_dir(app))
    targets = [{"name": e, "domain": "unix", "address": os.path.join(where, socket_name(e))} for e in served]
    return json.dumps({"version": 1, "targets": targets}, indent=4) + "\n"


def connect(pod: Pod, app: str, wanted: tuple[str, ...]) -> dict[str, socket.socket]:
    dir_fd = -1
    out: dict[str, socket.socket] = {}
    try:
        dir_fd = os.open(pod.file(iottymux_dir(app)), os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
        for e in wanted:
            s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            out[e] = s
            s.connect(f"/proc/self/fd/{dir_fd}/{socket_name(e)}")  # short, wherever the pod dir is
    except OSError as e:
        for s in out.values():
            s.close()
        raise InvalidState(f"app {quote(app)} of pod {pod.uuid} cannot be attached to: {e.strerror}"
                           " (has it exited?)") from None
    finally:
        if dir_fd >= 0:
            os.close(dir_fd)
    return out


def attach(config: Config, uuid: str, app: str, mode: AttachMode, stderr: TextIO) -> int:
    pod, name, served = endpoints(config, uuid, app)
    if mode.action == "list":
        os.write(1, listing(pod, name, served).encode())
        return 0
    wanted = mode.wanted(served)
    conns = connect(pod, name, wanted)
    tty_in = "tty" in conns and (mode.action == "auto" or mode.tty_in)
    source = conns.get("tty") if tty_in else conns.get("stdin")
    sinks = {conns[e].fileno(): (1 if e in ("tty", "stdout") else 2) for e in conns if e != "stdin"}
    if "tty" in conns and mode.action == "custom" and not mode.tty_out:
        sinks[conns["tty"].fileno()] = -1  # tty-in: its output read and dropped, as rkt's
    saved = None
    if tty_in and os.isatty(0):
        import termios
        import tty

        stderr.write(f"pyrkt: attached to app {name} of pod {pod.uuid}: press ^C to detach\n")
        stderr.flush()
        saved = termios.tcgetattr(0)
        tty.setraw(0, termios.TCSANOW)  # not the default TCSAFLUSH: what was typed ahead stays
    app_tty = open_app_tty(pod, name) if saved is not None else -1
    try:
        if app_tty >= 0:
            follow_window_size(app_tty)
        carry(source, sinks, raw=saved is not None)
    except KeyboardInterrupt:
        pass  # ^C in a terminal left as it was: detach
    finally:
        if saved is not None:
            import termios

            termios.tcsetattr(0, termios.TCSADRAIN, saved)
        if app_tty >= 0:
            import signal

            signal.signal(signal.SIGWINCH, signal.SIG_DFL)
            os.close(app_tty)
        for s in conns.values():
            s.close()
    return 0


def open_app_tty(pod: Pod, app: str) -> int:
    """The app's terminal, opened through its main process's fds in /proc (the helper holds the
    master; the slave's window size is the one apps see): -1 where that cannot be done."""
    from pyrkt.stage1.default import app_host_pid

    try:
        pid = app_host_pid(pod.path, app)
    except PyrktError:
        return -1
    for fd in (0, 1, 2):
        try:
            tty = os.open(f"/proc/{pid}/fd/{fd}", os.O_RDWR | os.O_NOCTTY | os.O_CLOEXEC)
        except OSError:
            continue
        if os.isatty(tty):
            return tty
        os.close(tty)
    return -1


def follow_window_size(app_tty: int) -> None:
    """Give the app's terminal this one's size, now and whenever it changes (SIGWINCH)."""
    import fcntl
    import signal
    import termios

    def copy(*_: object) -> None:
        try:
            fcntl.ioctl(app_tty, termios.TIOCSWINSZ, fcntl.ioctl(0, termios.TIOCGWINSZ, b"\0" * 8))
        except OSError:
            pass

    copy()
    signal.signal(signal.SIGWINCH, copy)


def carry(source: socket.socket | None, sinks: dict[int, int], *, raw: bool) -> None:
    """Copy stdin to ``source`` and each connection in ``sinks`` to its fd (-1: nowhere) until
    every output has ended (or, with none, stdin has), or ^C is typed in ``raw`` mode."""
    fds = list(sinks)
    if source is not None:
        fds.append(0)
    while any(fd in sinks for fd in fds) if sinks else 0 in fds:
        try:
            ready, _, _ = select.select(fds, [], [])
        except InterruptedError:
            continue
        for fd in ready:
            if fd == 0:
                data = os.read(0, CHUNK)
                if raw and DETACH in data:
                    data = data[:data.index(DETACH)]
                    if data and source is not None:
                        source.sendall(data)
                    return
                if source is None:
                    continue
                if not data:
                    fds.remove(0)
                    try:
                        source.shutdown(socket.SHUT_WR)
                    except OSError:
                        pass
                    continue
                try:
                    source.sendall(data)
                except OSError:
                    fds.remove(0)  # the app has gone; its output says the rest
                continue
            try:
                data = os.read(fd, CHUNK)
            except OSError:
                data = b""
            if not data:
                fds.remove(fd)
                continue
            if sinks[fd] >= 0:
                write_all(sinks[fd], data)


def write_all(fd: int, data: bytes) -> None:
    while data:
        data = data[os.write(fd, data):]
