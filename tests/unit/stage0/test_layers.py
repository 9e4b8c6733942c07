"""Finding an executable across image layers as overlayfs would show them."""

from __future__ import annotations

import os
from pathlib import Path

from pyrkt.stage0.layers import find_executable


def layer(root: Path, files: dict[str, str]) -> Path:
    for rel, kind in files.items():
        p = root / rel.lstrip("/")
        p.parent.mkdir(parents=True, exist_ok=True)
        if kind.startswith("->"):
            os.symlink(kind[2:], p)
        else:
            p.write_text("#!/bin/sh\n")
            p.chmod(0o755 if kind == "x" else 0o644)
    return root


def test_absolute_exec_found_through_symlinks_across_layers(tmp_path: Path) -> None:
    bottom = layer(tmp_path / "l0", {"/bin/busybox": "x"})
    top = layer(tmp_path / "l1", {"/bin/sh": "->busybox", "/usr/bin/env": "->/bin/busybox"})
    assert find_executable([bottom, top], "/bin/sh", "") == "/bin/sh"
    assert find_executable([bottom, top], "/usr/bin/env", "") == "/usr/bin/env"
    assert find_executable([bottom, top], "/bin/bash", "") is None


def test_path_search_needs_an_executable_file(tmp_path: Path) -> None:
    l0 = layer(tmp_path / "l0", {"/usr/bin/tool": "f", "/bin/tool": "x"})
    assert find_executable([l0], "tool", "/usr/bin:/bin") == "/bin/tool"
    assert find_executable([l0], "missing", "/usr/bin:/bin") is None


def test_symlink_loops_and_escapes_do_not_hang(tmp_path: Path) -> None:
    l0 = layer(tmp_path / "l0", {"/bin/a": "->b", "/bin/b": "->a", "/bin/up": "->../../../../etc/passwd"})
    assert find_executable([l0], "/bin/a", "") is None
    assert find_executable([l0], "/bin/up", "") is None  # resolved inside the image, not the host


def test_a_regular_file_is_found_in_its_layer_through_the_images_symlinks(tmp_path: Path) -> None:
    from pyrkt.stage0.layers import regular_file

    bottom = layer(tmp_path / "l0", {"/usr/lib/passwd": "f", "/etc/shadow": "f"})
    top = layer(tmp_path / "l1", {"/etc/passwd": "->../usr/lib/passwd", "/etc/up": "->../../../../etc/hostname"})
    assert regular_file([bottom, top], "/etc/passwd") == str(bottom / "usr/lib/passwd")
    assert regular_file([bottom, top], "/etc/shadow") == str(bottom / "etc/shadow")
    assert regular_file([bottom, top], "/etc") is None  # a directory
    assert regular_file([bottom, top], "/etc/up") is None  # resolved inside the image, not on the host
    assert regular_file([bottom, top], "/etc/group") is None
