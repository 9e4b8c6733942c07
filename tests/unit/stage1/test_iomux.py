"""An attachable app's stdio (pyrkt.stage1.appio) and its iomux helper, as pod init sets them
up, driven through real pipes and unix sockets (no root): the app's output reaches every
attacher and the log, its input comes a whole line at a time, and the helper ends with it."""

from __future__ import annotations

import os
import select
import socket
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from pyrkt.model.plan import AppPlan
from pyrkt.model.stdio import iottymux_dir
from pyrkt.stage1 import appio


def read_until(fd: int, token: bytes, timeout: float = 10) -> bytes:
    out = b""
    deadline = time.monotonic() + timeout
    while token not in out:
        assert time.monotonic() < deadline, out
        if select.select([fd], [], [], 0.1)[0]:
            chunk = os.read(fd, 4096)
            if not chunk:
                break
            out += chunk
    return out


@pytest.fixture
def pod(tmp_path: Path) -> Iterator[dict[str, str]]:
    yield {"pod": str(tmp_path), "python": sys.executable}


def attacher(pod: dict[str, str], app: str, endpoint: str) -> socket.socket:
    d = os.open(os.path.join(pod["pod"], iottymux_dir(app)), os.O_PATH)
    try:
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.connect(f"/proc/self/fd/{d}/sock-{endpoint}")
    finally:
        os.close(d)
    return s


def wait_exit(pid: int, timeout: float = 10) -> int:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            return os.waitstatus_to_exitcode(status)
        time.sleep(0.02)
    os.kill(pid, 9)
    raise AssertionError("the helper did not end with its app")


def test_an_app_in_the_default_modes_gets_log_pipes_and_no_helper(pod: dict[str, str]) -> None:
    io = appio.open_stdio(AppPlan("web", ("x",)), pod)
    assert io.helper == 0 and set(io.child) == {"stdout", "stderr"} and set(io.logs) == {"stdout", "stderr"}
    assert not os.path.exists(os.path.join(pod["pod"], iottymux_dir("web")))
    io.close_child()
    for fd in io.logs.values():
        os.close(fd)


def test_null_modes_give_the_app_no_fd_and_pod_init_nothing_to_log(pod: dict[str, str]) -> None:
    io = appio.open_stdio(AppPlan("web", ("x",), stdout="null", stderr="null"), pod)
    assert io.helper == 0 and io.child == {} and io.logs == {}


def test_stream_output_reaches_two_attachers_and_the_log_and_stdin_comes_by_whole_lines(
        pod: dict[str, str]) -> None:
    io = appio.open_stdio(AppPlan("web", ("x",), stdin="stream", stdout="stream", stderr="log"), pod)
    assert io.helper > 0 and set(io.child) == {"stdin", "stdout", "stderr"}
    app_in, app_out = io.child["stdin"], io.child["stdout"]
    watchers = [attacher(pod, "web", "stdout") for _ in range(2)]
    typist, other = attacher(pod, "web", "stdin"), attacher(pod, "web", "stdin")
    typist.sendall(b"hel")
    other.sendall(b"second line\n")
    typist.sendall(b"lo\n")
    got = read_until(app_in, b"hello\n")
    got += b"" if b"second line\n" in got else read_until(app_in, b"second line\n")
    assert set(got.splitlines()) == {b"hello", b"second line"}  # never "helsecond line"
    os.write(app_out, b"out 1\n")
    for w in watchers:
        assert read_until(w.fileno(), b"out 1\n") == b"out 1\n"
    assert read_until(io.logs["stdout"], b"out 1\n") == b"out 1\n"
    watchers[0].close()  # one attacher leaving does not disturb the others
    os.write(app_out, b"out 2\n")
    assert read_until(watchers[1].fileno(), b"out 2\n") == b"out 2\n"
    io.close_child()  # the app exits: its side of every stream closes
    assert wait_exit(io.helper) == 0
    watchers[1].settimeout(10)
    assert watchers[1].recv(10) == b""
    for s in (watchers[1], typist, other):
        s.close()
    for fd in io.logs.values():
        os.close(fd)


def test_an_app_not_reading_its_input_does_not_stall_its_output(pod: dict[str, str]) -> None:
    io = appio.open_stdio(AppPlan("web", ("x",), stdin="stream", stdout="stream", stderr="null"), pod)
    app_in, app_out = io.child["stdin"], io.child["stdout"]
    watcher = attacher(pod, "web", "stdout")
    typist = attacher(pod, "web", "stdin")
    lines = b"".join(b"line %06d\n" % i for i in range(20000))  # 240 KB: more than a pipe holds
    typist.sendall(lines)
    time.sleep(0.3)
    os.write(app_out, b"still talking\n")
    assert read_until(watcher.fileno(), b"still talking\n") == b"still talking\n"
    got = b""
    while len(got) < len(lines):  # and the app gets every line once it reads
        got += read_until(app_in, b"line 019999\n")
    assert got == lines
    io.close_child()
    assert wait_exit(io.helper) == 0
    watcher.close()
    typist.close()
    for fd in io.logs.values():
        os.close(fd)


def test_attachers_of_a_stream_the_app_closed_get_its_end_while_the_others_go_on(pod: dict[str, str]) -> None:
    io = appio.open_stdio(AppPlan("web", ("x",), stdin="stream", stdout="stream", stderr="stream"), pod)
    watcher, typist = attacher(pod, "web", "stdout"), attacher(pod, "web", "stdin")
    typist.sendall(b"ping\n")  # once it arrives, the watcher (connected first) has been accepted
    assert read_until(io.child["stdin"], b"ping\n") == b"ping\n"
    os.write(io.child["stdout"], b"last\n")
    os.close(io.child.pop("stdout"))  # the app closes its stdout and reads on
    assert read_until(watcher.fileno(), b"last\n") == b"last\n"
    watcher.settimeout(10)
    assert watcher.recv(10) == b""
    typist.sendall(b"pong\n")
    assert read_until(io.child["stdin"], b"pong\n") == b"pong\n"
    io.close_child()
    assert wait_exit(io.helper) == 0
    for s in (watcher, typist):
        s.close()
    for fd in io.logs.values():
        os.close(fd)
