"""Stdio modes (rkt's --stdin/--stdout/--stderr, kept as stage2 annotations) and attach --mode."""

from __future__ import annotations

import pytest

from pyrkt.errors import UsageError
from pyrkt.model.stdio import ANNOTATIONS, AttachMode, Stdio, mode_annotations


def test_defaults_are_null_stdin_and_logged_output_and_not_attachable() -> None:
    io = Stdio.from_annotations(())
    assert (io.stdin, io.stdout, io.stderr) == ("null", "log", "log")
    assert io.is_default() and not io.attachable() and io.endpoints() == ()


def test_modes_come_from_rkts_stage2_annotations() -> None:
    io = Stdio.from_annotations(((ANNOTATIONS["stdin"], "stream"), (ANNOTATIONS["stderr"], "null"),
                                 ("other", "x")))
    assert (io.stdin, io.stdout, io.stderr) == ("stream", "log", "null")
    assert io.attachable() and io.endpoints() == ("stdin",)


def test_a_tty_is_one_endpoint_whatever_streams_use_it_and_streams_follow() -> None:
    io = Stdio("tty", "tty", "tty")
    assert io.tty() and io.endpoints() == ("tty",)
    assert Stdio("tty", "stream", "log").endpoints() == ("tty", "stdout")
    assert Stdio("stream", "stream", "stream").endpoints() == ("stdin", "stdout", "stderr")


@pytest.mark.parametrize(("stream", "mode"), [("stdin", "log"), ("stdout", "bogus"), ("stderr", "interactive"),
                                              ("stdin", "")])
def test_a_mode_a_stream_cannot_take_is_refused_as_rkt(stream: str, mode: str) -> None:
    with pytest.raises(UsageError, match=f'invalid {stream} mode "{mode}"'):
        Stdio.from_annotations(((ANNOTATIONS[stream], mode),), "app web: ")
    with pytest.raises(UsageError, match="^app web: invalid"):
        Stdio.from_annotations(((ANNOTATIONS[stream], mode),), "app web: ")


def test_command_line_modes_become_annotations_only_when_given() -> None:
    assert mode_annotations("", "null", "") == [(ANNOTATIONS["stdout"], "null")]
    assert mode_annotations("tty", "tty", "tty") == [(ANNOTATIONS[s], "tty") for s in ("stdin", "stdout", "stderr")]
    with pytest.raises(UsageError, match='invalid stdout mode "x"'):
        mode_annotations("", "x", "")


def test_attach_modes_list_auto_and_custom_endpoints_as_rkt() -> None:
    assert AttachMode.parse("list").action == "list"
    assert AttachMode.parse("auto") == AttachMode.parse("") == AttachMode("auto")
    assert AttachMode.parse("tty") == AttachMode("custom", tty_in=True, tty_out=True)
    assert AttachMode.parse("tty-in") == AttachMode("custom", tty_in=True)
    assert AttachMode.parse("stdin,stderr") == AttachMode("custom", stdin=True, stderr=True)


@pytest.mark.parametrize(("text", "why"), [("bogus", 'unknown endpoint "bogus"'),
                                           ("stdin,,stdout", 'unknown endpoint ""'),
                                           ("tty,stdout", "cannot simultaneously attach TTY and streams")])
def test_bad_attach_modes_are_refused(text: str, why: str) -> None:
    with pytest.raises(UsageError, match=why):
        AttachMode.parse(text)


def test_attach_connects_to_what_is_asked_and_refuses_what_the_app_does_not_serve() -> None:
    served = ("stdin", "stdout", "stderr")
    assert AttachMode.parse("auto").wanted(served) == served
    assert AttachMode.parse("stdout").wanted(served) == ("stdout",)
    assert AttachMode.parse("tty-out").wanted(("tty",)) == ("tty",)
    with pytest.raises(UsageError, match="does not serve tty"):
        AttachMode.parse("tty").wanted(served)
