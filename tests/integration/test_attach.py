"""Stdio modes and `pyrkt attach`, as a user at a terminal: a tty app typed into through a pty
this test opens, detached from with ^C and still running; a stream app fed by one attacher and
seen by two; null modes; bad modes and attaching where nothing is attachable refused."""

from __future__ import annotations

import fcntl
import os
import pty
import select
import struct
import subprocess
import termios
import time
from collections.abc import Iterator

import pytest
from tests.integration.pods import Cli, fetched_image

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="needs root")


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Cli, str]]:
    with fetched_image(tmp_path_factory.mktemp("attach"), cmd=("sh",)) as env:
        yield env


class Terminal:
    """A command run on a pty of its own, read and typed into as a user would."""

    def __init__(self, argv: list[str]) -> None:
        self.pid, self.master = pty.fork()
        if self.pid == 0:
            os.execv(argv[0], argv)
        self.out = b""

    def read_until(self, token: bytes, timeout: float = 15, start: int = 0) -> None:
        deadline = time.monotonic() + timeout
        while token not in self.out[start:]:
            assert time.monotonic() < deadline, self.out
            if select.select([self.master], [], [], 0.2)[0]:
                try:
                    self.out += os.read(self.master, 4096)
                except OSError:  # the command ended
                    assert token in self.out, self.out
                    return

    def prompt(self) -> None:
        """A fresh prompt of the shell, which started before the attach (answering busybox's
        cursor-position query as a terminal would)."""
        mark = len(self.out)
        deadline = time.monotonic() + 15
        while b"# " not in self.out[mark:]:  # a shell just started may drop what came too early
            assert time.monotonic() < deadline, self.out
            self.type(b"\n")
            until = time.monotonic() + 1
            while b"# " not in self.out[mark:] and time.monotonic() < until:
                if select.select([self.master], [], [], 0.1)[0]:
                    self.out += os.read(self.master, 4096)
        time.sleep(0.3)
        while select.select([self.master], [], [], 0)[0]:
            self.out += os.read(self.master, 4096)
        if b"\x1b[6n" in self.out[mark:]:
            self.type(b"\x1b[1;3R")
            time.sleep(0.5)

    def type(self, text: bytes) -> None:
        os.write(self.master, text)

    def wait(self, timeout: float = 15) -> int:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if select.select([self.master], [], [], 0.05)[0]:
                try:
                    self.out += os.read(self.master, 4096)
                except OSError:
                    pass
            done, status = os.waitpid(self.pid, os.WNOHANG)
            if done:
                os.close(self.master)
                return os.waitstatus_to_exitcode(status)
        raise AssertionError(f"still running: {self.out!r}")


def detached(cli: Cli, image: str, *modes: str) -> str:
    r = cli("run", "--net=none", "--detach", image, "--exec=/bin/sh", *modes)
    assert r.code == 0, r
    return r.out.strip()


def test_tty_app_is_typed_into_detached_from_with_ctrl_c_and_keeps_running(env: tuple[Cli, str]) -> None:
    cli, image = env
    uuid = detached(cli, image, "--stdin=tty", "--stdout=tty", "--stderr=tty")
    term = Terminal(cli.argv("attach", uuid))
    fcntl.ioctl(term.master, termios.TIOCSWINSZ, struct.pack("HHHH", 33, 101, 0, 0))
    term.read_until(b"press ^C to detach")
    term.prompt()
    term.type(b"tty; test -t 0 && echo STDIN-IS-A-TTY; stty size; echo DONE-$((40+2))\n")
    term.read_until(b"DONE-42")
    assert b"/dev/pts/0" in term.out and b"STDIN-IS-A-TTY" in term.out, term.out
    assert b"33 101" in term.out  # the app's terminal has the attacher's size
    term.type(b"\x03")  # rkt's detach
    assert term.wait() == 0
    assert cli.status(uuid)["state"] == "running"
    assert "DONE-42" in cli("logs", uuid).out  # the tty's output is logged as its stdout

    again = Terminal(cli.argv("attach", "--mode=tty", uuid))  # the shell kept its terminal
    again.read_until(b"press ^C to detach")
    again.prompt()
    again.type(b"echo AGAIN-$((1+1)); exit 7\n")
    again.read_until(b"AGAIN-2")
    assert again.wait() == 0  # the app's end ends the attach
    st = cli.wait_exited(uuid)
    assert st["app-busybox"] == "7", st


def test_stream_app_stdin_fed_by_one_attacher_and_stdout_seen_by_two(env: tuple[Cli, str]) -> None:
    cli, image = env
    uuid = detached(cli, image, "--stdin=stream", "--stdout=stream", "--stderr=stream")
    attachers = [cli.popen("attach", f"--mode={m}", uuid, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                           stdin=subprocess.DEVNULL) for m in ("stdout", "stdout", "stderr")]
    seen = [b""] * 3

    def read(i: int, timeout: float) -> bool:
        out = attachers[i].stderr if i == 2 else attachers[i].stdout  # the app's stderr: the attacher's
        assert out is not None
        if not select.select([out], [], [], timeout)[0]:
            return False
        seen[i] += os.read(out.fileno(), 4096)
        return True

    deadline = time.monotonic() + 20
    n = 0
    while not all(b"tick" in s for s in seen):  # until the attachers are connected
        assert time.monotonic() < deadline, seen
        n += 1
        r = cli("attach", "--mode=stdin", uuid, input=f"echo tick-{n}; echo tick-{n} >&2\n")
        assert r.code == 0, r
        for i in range(3):
            while b"tick" not in seen[i] and read(i, 0.3):
                pass
    r = cli("attach", "--mode=stdin", uuid, input="test -t 0 || echo stdin-is-not-a-tty; echo oops >&2\n")
    assert r.code == 0 and r.out == "", r
    for i, token in ((0, b"stdin-is-not-a-tty"), (1, b"stdin-is-not-a-tty"), (2, b"oops")):
        while token not in seen[i]:
            assert read(i, 10), seen[i]
    assert b"oops" not in seen[0] and b"stdin-is-not" not in seen[2]
    assert cli("stop", uuid).code == 0
    for a in attachers:  # the app's end ends the attach
        assert a.wait(timeout=20) == 0

    logs = cli("logs", uuid)
    assert "stdin-is-not-a-tty" in logs.out and "oops" in logs.err, logs


def test_null_modes_drop_the_output_and_give_no_input(env: tuple[Cli, str]) -> None:
    cli, image = env
    r = cli("run", "--net=none", image, "--exec=/bin/sh", "--stdout=null", "--stderr=null",
            "--", "-c", "echo out; echo err >&2; read x || echo no-input >/dev/console")
    assert r.code == 0 and r.out == "" and r.err == "", r
    r = cli("run", "--net=none", image, "--exec=/bin/sh", "--stdout=log", "--stderr=null", "--stdin=null",
            "--", "-c", "echo out; echo err >&2; read x || echo no-input")
    assert r.code == 0 and r.out == "out\nno-input\n" and r.err == "", r


def test_bad_modes_are_one_line_errors_and_leave_no_pod(env: tuple[Cli, str]) -> None:
    cli, image = env
    cli("gc", "--grace-period=0s", "--expire-prepared=0s")
    before = cli("list", "--no-legend", "--full").out
    for args, why in ((("--stdin=log",), 'invalid stdin mode "log"'),
                      (("--stdout=bogus",), 'invalid stdout mode "bogus"'),
                      (("--stderr=interactive",), 'invalid stderr mode "interactive"')):
        r = cli("run", "--net=none", image, *args)
        assert r.code == 254 and r.err.count("\n") == 1 and why in r.err, r
    r = cli("run", "--net=none", "--interactive", image, "--stdin=tty", "--stdout=tty", "--stderr=tty")
    assert r.code == 254 and "--interactive cannot be used with --stdin" in r.err, r
    r = cli("attach", "--mode=bogus", "0000")
    assert r.code == 254 and r.err == 'pyrkt: invalid attach mode: unknown endpoint "bogus"\n', r
    r = cli("attach", "--mode=tty,stdin", "0000")
    assert r.code == 254 and "cannot simultaneously attach TTY and streams" in r.err, r
    assert cli("list", "--no-legend", "--full").out == before


def test_attach_is_refused_for_apps_without_stream_or_tty_and_pods_not_running(env: tuple[Cli, str]) -> None:
    cli, image = env
    uuid = detached(cli, image, "--", "-c", "sleep 60")
    r = cli("attach", uuid)
    assert r.code == 254 and r.err.count("\n") == 1 and 'app "busybox" is not attachable' in r.err, r
    uuid2 = detached(cli, image, "--stdout=stream", "--", "-c", "sleep 60")
    r = cli("attach", "--mode=tty", uuid2)
    assert r.code == 254 and "does not serve tty (it serves stdout)" in r.err, r
    r = cli("attach", "--mode=list", uuid2)
    assert r.code == 0 and '"name": "stdout"' in r.out, r
    for u in (uuid, uuid2):
        assert cli("stop", u).code == 0
        cli.wait_exited(u)
    r = cli("attach", uuid2)
    assert r.code == 254 and "isn't currently running" in r.err, r


def test_a_stream_or_tty_apps_last_words_reach_the_terminal_and_the_log(env: tuple[Cli, str]) -> None:
    """Its iomux helper passes them on after the app has exited; pod init waits for that, also
    once it has re-executed itself (after half a second)."""
    cli, image = env
    for script in ("echo early", "sleep 1; echo late"):
        r = cli("run", "--net=none", image, "--exec=/bin/sh", "--stdout=stream", "--stderr=stream",
                "--", "-c", f"{script}; echo err >&2")
        assert r.code == 0 and r.out == script.split()[-1] + "\n" and r.err == "err\n", r
    uuid = detached(cli, image, "--stdin=tty", "--stdout=tty", "--", "-c", "sleep 1; echo bye; exit 4")
    assert cli.wait_exited(uuid)["app-busybox"] == "4"
    assert cli("logs", uuid).out.strip() == "bye"


@pytest.mark.parametrize("attach_first", [False, True])
def test_a_tty_app_added_to_a_sandbox_is_typed_into(env: tuple[Cli, str], attach_first: bool) -> None:
    """An added tty app gets its terminal while pod init sets it up ahead of `app start`; an
    attacher that comes before the start waits on it and sees the shell once it starts."""
    cli, image = env
    r = cli("app", "sandbox", "--net=none")
    assert r.code == 0, r
    uuid = r.out.strip()
    r = cli("app", "add", uuid, image, "--name=sh", "--exec=/bin/sh", "--stdin=tty", "--stdout=tty", "--stderr=tty")
    assert r.code == 0, r
    if not attach_first:
        assert cli("app", "start", uuid, "--app=sh").code == 0
    term = Terminal(cli.argv("attach", uuid, "--app=sh"))
    term.read_until(b"press ^C to detach")
    if attach_first:
        assert cli("app", "list", "--no-legend", uuid).out.split() == ["sh", "created"]
        assert cli("app", "start", uuid, "--app=sh").code == 0
    term.prompt()
    term.type(b"test -t 0 && echo STDIN-IS-A-TTY-$((40+2))\n")
    term.read_until(b"STDIN-IS-A-TTY-42")
    term.type(b"\x03")
    assert term.wait() == 0
    assert cli("app", "list", "--no-legend", uuid).out.split() == ["sh", "running"]
    assert cli("stop", "--force", uuid).code == 0  # an interactive shell ignores the TERM
