"""render_tree on plain layer dirs (no root): set-id bits left out unless kept, the top dir's mode."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from pyrkt.store.render import render_tree


@pytest.fixture
def layer(tmp_path: Path) -> Path:
    root = tmp_path / "layer"
    (root / "bin").mkdir(parents=True)
    for name, mode in (("su", 0o4755), ("wall", 0o2711), ("ls", 0o755)):
        (root / "bin" / name).write_text("#!/bin/sh\n")
        os.chmod(root / "bin" / name, mode)
    os.link(root / "bin" / "su", root / "bin" / "su-again")
    (root / "shared").mkdir()
    os.chmod(root / "shared", 0o2775)
    os.chmod(root, 0o755)
    return root


def modes(root: Path) -> dict[str, int]:
    return {name: stat.S_IMODE(os.lstat(root / name).st_mode)
            for name in ("bin/su", "bin/su-again", "bin/wall", "bin/ls", "shared", ".")}


def test_setuid_and_setgid_bits_of_files_are_cleared_and_the_root_gets_root_mode(layer: Path, tmp_path: Path) -> None:
    dest = tmp_path / "out"
    dest.mkdir(mode=0o700)
    render_tree([layer], dest, root_mode=0o700)
    assert modes(dest) == {"bin/su": 0o755, "bin/su-again": 0o755, "bin/wall": 0o711, "bin/ls": 0o755,
                           "shared": 0o2775, ".": 0o700}


def test_keep_special_keeps_them_and_without_root_mode_the_root_is_the_images(layer: Path, tmp_path: Path) -> None:
    dest = tmp_path / "out"
    dest.mkdir(mode=0o700)
    render_tree([layer], dest, keep_special=True)
    assert modes(dest) == {"bin/su": 0o4755, "bin/su-again": 0o4755, "bin/wall": 0o2711, "bin/ls": 0o755,
                           "shared": 0o2775, ".": 0o755}
