"""Walking and removing trees deeper than PATH_MAX and the recursion limit, with a bounded number
of fds, through dirs an app made unusable, never following a symlink out (no root needed)."""

from __future__ import annotations

import os
import resource
import stat
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from pyrkt.errors import InvalidState, KernelError
from pyrkt.kernel import trees
from pyrkt.kernel.trees import remove_tree

DEPTH = 5000  # "d/" * 5000 is 10 000 bytes: past PATH_MAX (4096) and sys.getrecursionlimit()


@pytest.fixture(autouse=True)
def removed_after(tmp_path: Path) -> Iterator[None]:
    """Deep trees go even when a test fails: pytest's own clean-up of tmp dirs recurses."""
    yield
    for name in os.listdir(tmp_path):
        remove_tree(tmp_path / name)


def make_deep(top: Path, depth: int, *, at: dict[int, Callable[[int], None]] | None = None) -> None:
    """``top/d/d/…`` ``depth`` levels deep with a file ``f`` in each dir, made through fds (a path
    that long cannot be used); then ``at[level](fd)`` is called with the fd of that level's dir,
    deepest first (so a ``chmod 000`` there does not stop the making)."""
    at = at or {}
    kept: dict[int, int] = {}
    top.mkdir()
    fd = os.open(top, os.O_RDONLY | os.O_DIRECTORY)
    try:
        for level in range(1, depth + 1):
            os.mkdir("d", dir_fd=fd)
            os.close(os.open("f", os.O_WRONLY | os.O_CREAT, 0o644, dir_fd=fd))
            child = os.open("d", os.O_RDONLY | os.O_DIRECTORY, dir_fd=fd)
            os.close(fd)
            fd = child
            if level in at:
                kept[level] = os.dup(fd)
        os.close(os.open("bottom", os.O_WRONLY | os.O_CREAT, 0o644, dir_fd=fd))
        for level in sorted(kept, reverse=True):
            at[level](kept[level])
    finally:
        os.close(fd)
        for kfd in kept.values():
            os.close(kfd)


@pytest.fixture
def few_fds() -> Iterator[int]:
    """A soft RLIMIT_NOFILE of 64 open fds for the test: a deep tree must not need one per level."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (64, hard))
    try:
        yield 64
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


def open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


def test_removes_a_tree_deeper_than_path_max_with_a_mode_000_dir_and_keeps_a_symlinks_target(
        tmp_path: Path, few_fds: int) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "precious").write_text("keep me")
    top = tmp_path / "pod"

    def link_out(fd: int) -> None:
        os.symlink(str(outside), "out", dir_fd=fd)
        os.symlink("../../../..", "up", dir_fd=fd)

    make_deep(top, DEPTH, at={100: link_out, DEPTH // 2: lambda fd: os.fchmod(fd, 0o000)})
    assert DEPTH > sys.getrecursionlimit()
    before = open_fds()
    trees.remove_tree(top)
    assert not os.path.lexists(top)
    assert (outside / "precious").read_text() == "keep me" and os.listdir(outside) == ["precious"]
    assert open_fds() == before


def test_an_unprivileged_user_removes_its_own_mode_000_and_0555_dirs(tmp_path: Path) -> None:
    """As any user but root (root needs no permission bits): as nobody, in a fork, when we are root."""
    if os.geteuid() != 0:
        remove_unusable_dirs(tmp_path / "tree")
        return
    import shutil
    import tempfile
    import traceback

    base = Path(tempfile.mkdtemp(prefix="pyrkt-trees-"))  # /tmp: a dir nobody can reach
    try:
        os.chown(base, 65534, 65534)
        pid = os.fork()
        if pid == 0:  # the child only ever leaves through os._exit
            code = 1
            try:
                os.setgid(65534)
                os.setuid(65534)
                remove_unusable_dirs(base / "tree")
                code = 0
            except BaseException:
                traceback.print_exc()
            finally:
                os._exit(code)
        _, status = os.waitpid(pid, 0)
        assert os.waitstatus_to_exitcode(status) == 0
        assert os.listdir(base) == []
    finally:
        shutil.rmtree(base)


def remove_unusable_dirs(top: Path) -> None:
    make_deep(top, 300, at={10: lambda fd: os.fchmod(fd, 0o000), 20: lambda fd: os.fchmod(fd, 0o555),
                            299: lambda fd: os.fchmod(fd, 0o111)})
    trees.remove_tree(top)
    assert not os.path.lexists(top)


def test_walk_yields_every_entry_parents_first_with_short_paths_and_few_fds(tmp_path: Path, few_fds: int) -> None:
    top = tmp_path / "deep"
    make_deep(top, DEPTH, at={3: lambda fd: os.symlink("/etc", "etc", dir_fd=fd)})
    rels: list[str] = []
    before, most = open_fds(), 0
    for entry in trees.walk(top):
        rels.append(entry.rel)
        if entry.name == "bottom":
            assert stat.S_ISREG(os.lstat(entry.short_path).st_mode)
            most = open_fds()
        if entry.name == "etc":
            assert stat.S_ISLNK(entry.st.st_mode) and os.readlink(entry.short_path) == "/etc"
    assert len(rels) == 2 * DEPTH + 2  # d and f on each level, the link and the bottom file
    assert rels[:3] == ["d", "d/d", "d/d/d"]  # a dir comes before its entries, siblings by name
    assert rels[-1] == "f"
    assert ("d/" * DEPTH) + "bottom" in rels and "d/d/d/etc" in rels
    assert most - before <= trees.KEEP_FDS + 1


def test_a_symlink_given_as_the_tree_is_removed_not_followed(tmp_path: Path) -> None:
    target = tmp_path / "target"
    (target / "sub").mkdir(parents=True)
    (tmp_path / "link").symlink_to(target)
    trees.remove_tree(tmp_path / "link")
    assert not os.path.lexists(tmp_path / "link") and (target / "sub").is_dir()


def test_a_missing_tree_is_a_no_op_and_a_file_is_unlinked(tmp_path: Path) -> None:
    trees.remove_tree(tmp_path / "nothing")
    trees.remove_tree(tmp_path / "no" / "such" / "parent")
    (tmp_path / "file").write_text("x")
    trees.remove_tree(tmp_path / "file")
    assert os.listdir(tmp_path) == []


def test_refuses_to_remove_slash_and_dot(tmp_path: Path) -> None:
    for bad in ("/", f"{tmp_path}/.", f"{tmp_path}/.."):
        with pytest.raises(InvalidState, match="refusing to remove"):
            trees.remove_tree(bad)


def test_an_entry_that_cannot_go_is_named_in_one_line(tmp_path: Path) -> None:
    if os.geteuid() == 0:
        pytest.skip("root may remove anything a test can make here")
    top = tmp_path / "top"
    make_deep(top, 20)
    os.chmod(tmp_path, 0o500)  # the tree's own parent: not ours to change
    try:
        with pytest.raises(KernelError) as err:
            trees.remove_tree(top)
    finally:
        os.chmod(tmp_path, 0o700)
    assert str(err.value) == f"remove: {top}: Permission denied"
    trees.remove_tree(top)

