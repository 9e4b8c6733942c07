"""Privileged calls live in ``pyrkt.kernel`` only: no ctypes, no os.mknod/chroot/set*id/
setgroups/unshare/setns and no mount(8) outside it (import-linter cannot see os.* calls).
A failure names the file and line."""

from __future__ import annotations

import ast
from pathlib import Path

SRC = Path(__file__).resolve().parents[2] / "src" / "pyrkt"
KERNEL = SRC / "kernel"
OS_CALLS = frozenset(("mknod", "chroot", "setresuid", "setresgid", "setreuid", "setregid", "setuid", "setgid",
                      "seteuid", "setegid", "setgroups", "unshare", "setns"))
MODULES = frozenset(("ctypes", "_ctypes"))
MOUNT_PROGRAMS = frozenset(("mount", "umount", "/bin/mount", "/bin/umount", "/usr/bin/mount", "/usr/bin/umount"))


def violations(source: str, name: str) -> list[str]:
    out = []
    for node in ast.walk(ast.parse(source, name)):
        where = f"{name}:{getattr(node, 'lineno', 0)}"
        if isinstance(node, ast.Import):
            out += [f"{where}: import {a.name}" for a in node.names if a.name.split(".")[0] in MODULES]
        elif isinstance(node, ast.ImportFrom):
            if (node.module or "").split(".")[0] in MODULES:
                out.append(f"{where}: from {node.module} import ...")
            elif node.module == "os":
                out += [f"{where}: from os import {a.name}" for a in node.names if a.name in OS_CALLS]
        elif isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id == "os" \
                and node.attr in OS_CALLS:
            out.append(f"{where}: os.{node.attr}")
        elif isinstance(node, (ast.List, ast.Tuple)) and node.elts and isinstance(node.elts[0], ast.Constant) \
                and node.elts[0].value in MOUNT_PROGRAMS:
            out.append(f"{where}: runs {node.elts[0].value}")
    return out


def test_no_privileged_call_outside_the_kernel_package() -> None:
    found = []
    for path in sorted(SRC.rglob("*.py")):
        if KERNEL in path.parents:
            continue
        found += violations(path.read_text(), str(path.relative_to(SRC.parent.parent)))
    assert not found, "privileged calls outside src/pyrkt/kernel/ (go through pyrkt.kernel):\n" + "\n".join(found)


def test_the_scan_finds_each_kind_of_call() -> None:
    source = ("import ctypes\nfrom ctypes import CDLL\nimport os\nfrom os import setgroups\n"
              "os.setresuid(1, 1, 1)\nf = os.chroot\nsubprocess.run(['mount', '-t', 'tmpfs'])\nos.getuid()\n")
    assert sorted(violations(source, "x.py")) == [
        "x.py:1: import ctypes", "x.py:2: from ctypes import ...", "x.py:4: from os import setgroups",
        "x.py:5: os.setresuid", "x.py:6: os.chroot", "x.py:7: runs mount"]
