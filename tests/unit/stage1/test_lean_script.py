"""What pod init re-executes as: podinit.py's compiled file only while it is that of the source."""

from __future__ import annotations

import os
import py_compile
import subprocess
import sys
from pathlib import Path

import pytest

from pyrkt.stage1 import default


@pytest.fixture
def script(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    src = tmp_path / "podinit.py"
    src.write_text("import sys\nprint('lean', sys.argv[1:])\n")
    monkeypatch.setattr(default, "POD_INIT_PATH", str(src))
    return src


def test_the_compiled_file_when_it_matches_the_source(script: Path) -> None:
    pyc = py_compile.compile(str(script))
    assert default.lean_script() == pyc
    out = subprocess.run([sys.executable, "-I", "-S", pyc, "--resume", "x"], capture_output=True, text=True)
    assert out.stdout == "lean ['--resume', 'x']\n"  # a .pyc runs as a script


def test_the_source_when_there_is_no_compiled_file(script: Path) -> None:
    assert default.lean_script() == str(script)


def test_the_source_once_it_has_changed_since_it_was_compiled(script: Path) -> None:
    py_compile.compile(str(script))
    script.write_text("import sys\nprint('edited')\n")
    os.utime(script, (1, 1))
    assert default.lean_script() == str(script)


def test_the_source_when_the_compiled_file_is_from_another_interpreter(script: Path) -> None:
    pyc = Path(py_compile.compile(str(script)))
    pyc.write_bytes(b"\0\0\r\n" + pyc.read_bytes()[4:])
    assert default.lean_script() == str(script)


def test_another_script_by_its_path_the_iomux_helpers(tmp_path: Path) -> None:
    src = tmp_path / "iomux.py"
    src.write_text("print('helper')\n")
    assert default.lean_script(str(src)) == str(src)
    pyc = py_compile.compile(str(src))
    assert default.lean_script(str(src)) == pyc != default.lean_script()
