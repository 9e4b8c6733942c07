"""How a CNI plugin is run (``cni.run_program``): as ``subprocess.run`` with ``input=``,
``capture_output=True`` and a timeout would run it, without the subprocess module."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from pyrkt.network.cni import run_program

ENV = {"PATH": "/usr/bin:/bin", "CNI_COMMAND": "ADD"}


def script(tmp_path: Path, body: str) -> str:
    path = tmp_path / "plugin"
    path.write_text("#!/bin/sh\n" + body)
    path.chmod(0o755)
    return str(path)


def test_the_program_reads_stdin_and_gets_only_the_given_env(tmp_path: Path) -> None:
    prog = script(tmp_path, 'cat; echo "$CNI_COMMAND ${HOME:-nohome}" >&2; exit 3\n')
    assert run_program(prog, b'{"a": 1}', ENV, 10) == (3, b'{"a": 1}', b"ADD nohome\n")


def test_output_larger_than_a_pipe_on_both_streams_does_not_deadlock(tmp_path: Path) -> None:
    big = os.urandom(300_000).hex().encode()  # 600 kB, far past a pipe's 64 kB
    prog = script(tmp_path, "tee /dev/stderr\n")
    code, out, err = run_program(prog, big, ENV, 30)
    assert (code, out, err) == (0, big, big)


def test_a_program_that_reads_no_input_is_no_error(tmp_path: Path) -> None:
    prog = script(tmp_path, "echo done\n")
    assert run_program(prog, b"x" * 1_000_000, ENV, 10) == (0, b"done\n", b"")


def test_a_program_killed_by_a_signal_has_a_negative_code(tmp_path: Path) -> None:
    prog = script(tmp_path, "kill -TERM $$\n")
    assert run_program(prog, b"", ENV, 10)[0] == -15


def test_past_the_timeout_the_program_is_killed_and_reaped(tmp_path: Path) -> None:
    pid_file = tmp_path / "pid"
    prog = script(tmp_path, f"echo $$ > {pid_file}; exec sleep 30\n")
    started = time.monotonic()
    with pytest.raises(TimeoutError, match="timed out after 0.3 seconds"):
        run_program(prog, b"", ENV, 0.3)
    assert time.monotonic() - started < 5
    with pytest.raises(ChildProcessError):  # reaped: no child left, not even a zombie
        os.waitpid(int(pid_file.read_text()), os.WNOHANG)


def test_the_program_inherits_no_fd_but_its_stdio_and_default_sigpipe(tmp_path: Path) -> None:
    r, w = os.pipe()
    fd = os.dup2(w, 57)  # inheritable, as pod init's namespace fds in the teardown interpreter
    try:
        prog = script(tmp_path, 'if [ -e /proc/$$/fd/57 ]; then echo open; else echo closed; fi\n'
                                "grep '^SigIgn' /proc/$$/status\n")
        code, out, _ = run_program(prog, b"", ENV, 10)
    finally:
        for x in (r, w, fd):
            os.close(x)
    assert code == 0
    state, ignored = out.decode().splitlines()
    assert state == "closed"
    assert not int(ignored.split()[1], 16) & (1 << (13 - 1)), ignored  # SIGPIPE not ignored


def test_a_program_that_cannot_run_is_an_oserror_and_leaves_no_fd(tmp_path: Path) -> None:
    path = tmp_path / "not-executable"
    path.write_text("#!/bin/sh\n")
    before = len(os.listdir("/proc/self/fd"))
    with pytest.raises(PermissionError):
        run_program(str(path), b"", ENV, 10)
    assert len(os.listdir("/proc/self/fd")) == before
