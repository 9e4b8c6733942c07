"""How `image verify` words the first difference between a stored layer dir and a fresh unpack."""

from __future__ import annotations

import os
from pathlib import Path

from pyrkt.store.verify import first_difference, tree_facts


def make_tree(root: Path) -> Path:
    (root / "etc").mkdir(parents=True)
    (root / "etc" / "conf").write_bytes(b"a=1\n")
    os.symlink("conf", root / "etc" / "link")
    fixed_times(root)
    return root


def fixed_times(root: Path) -> None:
    for p in (root / "etc" / "conf", root / "etc" / "link"):
        os.utime(p, ns=(0, 0), follow_symlinks=False)


def test_identical_trees_have_no_difference(tmp_path: Path) -> None:
    a, b = make_tree(tmp_path / "a"), make_tree(tmp_path / "b")
    assert first_difference(tree_facts(a), tree_facts(b)) is None


def test_missing_extra_and_changed_entries_are_named(tmp_path: Path) -> None:
    a, b = make_tree(tmp_path / "a"), make_tree(tmp_path / "b")
    expected = tree_facts(b)
    os.unlink(a / "etc" / "link")
    assert first_difference(tree_facts(a), expected) == "/etc/link is missing"
    os.symlink("conf", a / "etc" / "link")
    fixed_times(a)
    (a / "extra").write_bytes(b"")
    assert first_difference(tree_facts(a), expected) == "/extra should not be there"
    os.unlink(a / "extra")
    os.chmod(a / "etc" / "conf", 0o600)
    (a / "etc" / "conf").write_bytes(b"a=2\n")
    fixed_times(a)
    assert first_difference(tree_facts(a), expected) == "/etc/conf differs (mode, content)"


def test_mode_of_a_dir_the_tar_never_listed_is_not_compared(tmp_path: Path) -> None:
    a, b = make_tree(tmp_path / "a"), make_tree(tmp_path / "b")
    os.chmod(a / "etc", 0o700)
    assert first_difference(tree_facts(a), tree_facts(b)) == "/etc differs (mode)"
    assert first_difference(tree_facts(a), tree_facts(b), frozenset({"etc"})) is None
