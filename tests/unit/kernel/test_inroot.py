"""``open_in_root``: a mount point resolved as the app sees it, never outside its root, made
where missing. Plain directories and symlinks in a temp dir: no root needed."""

from __future__ import annotations

import errno
import os
from pathlib import Path

import pytest

from pyrkt.kernel.inroot import open_in_root


def where(root: Path, path: str, make: str = "dir") -> str:
    fd = open_in_root(str(root), path, make=make)
    try:
        return os.readlink(f"/proc/self/fd/{fd}")
    finally:
        os.close(fd)


@pytest.fixture
def root(tmp_path: Path) -> Path:
    r = tmp_path / "root"
    (r / "etc").mkdir(parents=True)
    (r / "file").write_text("x")
    return r


def test_absolute_and_climbing_links_stay_inside_the_root(root: Path, tmp_path: Path) -> None:
    (root / "to-etc").symlink_to("/etc")
    (root / "up").symlink_to("../../../..")
    (root / "etc" / "chain").symlink_to("../up/to-etc")
    assert where(root, "/to-etc/x") == f"{root}/etc/x"
    assert where(root, "/up/data") == f"{root}/data"
    assert where(root, "/etc/chain/y") == f"{root}/etc/y"
    assert where(root, "/../../../tmp") == f"{root}/tmp"
    assert sorted(os.listdir(tmp_path)) == ["root"]  # nothing made beside the root
    assert not os.path.exists("/etc/x") and not os.path.exists("/data")


def test_a_path_that_resolves_to_the_root_itself_is_refused(root: Path) -> None:
    (root / "slash").symlink_to("/")
    (root / "up").symlink_to("../../..")
    for path in ("/slash", "/up", "/etc/..", "/"):
        with pytest.raises(OSError) as e:
            open_in_root(str(root), path)
        assert e.value.errno == errno.EINVAL


def test_missing_parents_are_made_0755_and_the_target_like_the_source(root: Path) -> None:
    old = os.umask(0)
    try:
        assert where(root, "/a/b/dir") == f"{root}/a/b/dir"
        assert where(root, "/a/c/file", make="file") == f"{root}/a/c/file"
    finally:
        os.umask(old)
    assert (root / "a/b/dir").is_dir() and (root / "a/c/file").is_file()
    assert oct((root / "a").stat().st_mode & 0o777) == "0o755"


def test_a_file_at_the_target_becomes_a_dir_but_a_file_on_the_way_is_an_error(root: Path) -> None:
    assert where(root, "/file") == f"{root}/file" and (root / "file").is_dir()
    (root / "plain").write_text("y")
    with pytest.raises(OSError) as e:
        open_in_root(str(root), "/plain/below")
    assert e.value.errno == errno.ENOTDIR


def test_a_link_loop_is_refused(root: Path) -> None:
    (root / "a").symlink_to("b")
    (root / "b").symlink_to("a")
    with pytest.raises(OSError) as e:
        open_in_root(str(root), "/a/x")
    assert e.value.errno == errno.ELOOP


def test_nothing_is_made_without_make(root: Path) -> None:
    with pytest.raises(FileNotFoundError):
        open_in_root(str(root), "/nope/deeper", make="")
    assert not (root / "nope").exists()
