"""Waiting for a pod in the foreground: forward the user's signals to pod init and, for
``--interactive``, carry the terminal between the user and the app's pty (raw mode, window
size), restoring the terminal afterwards."""

from __future__ import annotations

try:
    import _signal  # type: ignore[import-not-found]  # signal without its enum wrappers (~1 ms)
except ImportError:  # an interpreter without it (tests/unit/test_private_modules.py)
    import signal as _signal  # type: ignore[no-redef]
import os
import select
import sys

TYPE_CHECKING = False
if TYPE_CHECKING:  # annotations only: the types module costs the run path ~0.3 ms
    from types import FrameType

FORWARDED = (_signal.SIGINT, _signal.SIGTERM, _signal.SIGHUP)


def wait(pid: int, master: int | None) -> int:
    """Wait for pod init ``pid``; its exit status is the pod's exit code."""

    def forward(signum: int, frame: FrameType | None) -> None:
        try:
            os.kill(pid, signum)
        except ProcessLookupError:
            pass

    old = {s: _signal.signal(s, forward) for s in FORWARDED}
    try:
        if master is not None:
            proxy(master, pid)
        while True:
            try:
                _, status = os.waitpid(pid, 0)
                break
            except InterruptedError:
                continue
    finally:
        for s, h in old.items():
            _signal.signal(s, h)
    if os.WIFEXITED(status):
        return os.WEXITSTATUS(status)
    return 128 + os.WTERMSIG(status)


def proxy(master: int, pid: int) -> None:
    """Copy stdin -> pty and pty -> stdout until the app side closes."""
    import termios
    import tty

    stdin = sys.stdin.fileno()
    stdout = sys.stdout.fileno()
    saved = None
    if os.isatty(stdin):
        saved = termios.tcgetattr(stdin)
        tty.setraw(stdin, termios.TCSANOW)  # not the default TCSAFLUSH: what was typed ahead stays
        copy_winsize(stdin, master)
        _signal.signal(_signal.SIGWINCH, lambda s, f: copy_winsize(stdin, master))
    try:
        fds = [master, stdin]
        while True:
            try:
                ready, _, _ = select.select(fds, [], [])
            except InterruptedError:
                continue
            if master in ready:
                try:
                    data = os.read(master, 65536)
                except OSError:
                    data = b""
                if not data:
                    break
                os.write(stdout, data)
            if stdin in ready:
                data = os.read(stdin, 65536)
                if not data:
                    fds.remove(stdin)
                    os.write(master, b"\x04")  # EOF for a line-mode reader
                else:
                    os.write(master, data)
    finally:
        if saved is not None:
            termios.tcsetattr(stdin, termios.TCSADRAIN, saved)
            _signal.signal(_signal.SIGWINCH, _signal.SIG_DFL)
        os.close(master)


def copy_winsize(src: int, dst: int) -> None:
    import fcntl
    import termios

    try:
        size = fcntl.ioctl(src, termios.TIOCGWINSZ, b"\0" * 8)
        fcntl.ioctl(dst, termios.TIOCSWINSZ, size)
    except OSError:
        pass
