"""`pyrkt attach`'s command line: root only, as rkt's; bad modes and missing pods refused."""

from __future__ import annotations

import io
import os
from pathlib import Path

import pytest

from pyrkt.cli.main import COMMANDS, dispatch, main
from pyrkt.errors import PyrktError


def cli(tmp_path: Path, *args: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    code = dispatch([f"--dir={tmp_path}", *args], out, err)
    return code, out.getvalue(), err.getvalue()


def test_attach_is_a_command_and_refuses_unprivileged_users(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    assert COMMANDS["attach"][0] == "attach"
    monkeypatch.setattr(os, "geteuid", lambda: 1000)
    with pytest.raises(PyrktError, match="cannot run as unprivileged user"):
        cli(tmp_path, "attach", "abcd")


def test_bad_mode_no_uuid_and_unknown_pod_are_one_line_errors(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                              capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setattr(os, "geteuid", lambda: 0)
    assert main([f"--dir={tmp_path}", "attach", "--mode=stdin,tty", "abcd"]) == 254
    assert capsys.readouterr() == ("", 'pyrkt: invalid attach mode: incompatible endpoints "stdin,tty", '
                                       "cannot simultaneously attach TTY and streams\n")
    assert main([f"--dir={tmp_path}", "attach"]) == 254
    assert capsys.readouterr().err == "pyrkt: attach takes exactly one pod UUID\n"
    assert main([f"--dir={tmp_path}", "attach", "abcd"]) == 254
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "abcd" in err
