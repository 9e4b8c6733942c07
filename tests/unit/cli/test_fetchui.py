"""The CLI's FetchUI: what fetches show on a terminal and how a key review is asked, and the
typed config dirs the global flags make."""

from __future__ import annotations

import io
import os

import pytest

from pyrkt.cli.fetchui import TerminalUI
from pyrkt.cli.flags import FlagSet
from pyrkt.cli.main import GLOBAL_FLAGS, config_from_flags, merge_config
from pyrkt.config import ConfigDirs
from pyrkt.errors import UsageError


class Tty(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_status_lines_and_progress_only_on_a_terminal_and_never_when_quiet() -> None:
    pipe, tty, quiet = io.StringIO(), Tty(), Tty()
    for out, q in ((pipe, False), (tty, False), (quiet, True)):
        ui = TerminalUI(out, quiet=q)
        ui.status("searching for app image example.com/app")
        ui.notice("Trusting it")
        assert (ui.progress() is not None) == (out is tty)
    assert pipe.getvalue() == quiet.getvalue() == "Trusting it\n"
    assert tty.getvalue() == "image: searching for app image example.com/app\nTrusting it\n"


def test_debug_lines_only_with_debug_and_then_with_the_status_lines_wherever_they_go() -> None:
    """rkt's ``--debug`` image lines (``image: using image from …``) go to stderr, a pipe too."""
    plain, debug, quiet_debug = io.StringIO(), io.StringIO(), io.StringIO()
    for ui in (TerminalUI(plain), TerminalUI(debug, debug=True), TerminalUI(quiet_debug, quiet=True, debug=True)):
        ui.debug("using image from local store for image name busybox")
        ui.status("searching for app image example.com/app")
    assert plain.getvalue() == ""
    assert debug.getvalue() == quiet_debug.getvalue() == (
        "image: using image from local store for image name busybox\n"
        "image: searching for app image example.com/app\n")


def test_a_fetch_asks_only_with_stdin_and_stderr_on_a_terminal() -> None:
    assert not TerminalUI(Tty(), stdin=io.StringIO("yes\n")).can_ask()
    assert not TerminalUI(io.StringIO(), stdin=Tty("yes\n")).can_ask()
    out = Tty()
    ui = TerminalUI(out, stdin=Tty("yes\n"))
    assert ui.can_ask() and ui.confirm("Trust it (yes/no)? ") is True
    assert out.getvalue() == "Trust it (yes/no)? "
    with pytest.raises(UsageError, match="stdin is not a terminal"):
        TerminalUI(Tty(), stdin=io.StringIO("yes\n")).confirm("Trust it (yes/no)? ")


def test_trust_reads_its_answer_from_a_pipe_and_a_closed_stdin_is_one_line() -> None:
    ui = TerminalUI(io.StringIO(), stdin=io.StringIO("no\n"), ask_without_tty=True)
    assert ui.can_ask() and ui.confirm("? ") is False
    with pytest.raises(UsageError, match="stdin is closed"):
        TerminalUI(io.StringIO(), stdin=io.StringIO(""), ask_without_tty=True).confirm("? ")


def test_config_dirs_are_system_local_user_in_override_order() -> None:
    values, _ = FlagSet(GLOBAL_FLAGS).parse(["--system-config=/s", "--local-config=/l"], interspersed=False)
    config = config_from_flags(values)
    assert config.dirs == ConfigDirs(system="/s", local="/l", user=None)
    assert config.dirs.names() == ["/s", "/l"]
    later = merge_config(config, {"user_config": "/u"})
    assert later.dirs.names() == ["/s", "/l", "/u"] and [str(p) for p in later.dirs.paths()] == ["/s", "/l", "/u"]
    assert merge_config(later, {"user_config": ""}).dirs.user is None
    assert merge_config(config, {"local_config": "/l2"}).dirs == ConfigDirs(system="/s", local="/l2")
    assert os.path.isabs(config.data_dir)
