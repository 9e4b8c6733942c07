"""Opening files beneath a directory (openat2, and the O_NOFOLLOW walk used without it) and
refusing what is not a regular file; real files in a temp dir, no root needed."""

from __future__ import annotations

import errno
import os
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from pyrkt.kernel import beneath

Opener = Callable[[int, str], int]


@pytest.fixture
def root(tmp_path: Path) -> Iterator[int]:
    """A layout-like dir: d/f (a file), out -> a file outside, dl -> d, up -> ../outside, fifo."""
    (tmp_path / "outside").write_text("host file")
    top = tmp_path / "root"
    (top / "d").mkdir(parents=True)
    (top / "d" / "f").write_text("inside")
    (top / "out").symlink_to(tmp_path / "outside")
    (top / "dl").symlink_to("d")
    (top / "up").symlink_to("../outside")
    os.mkfifo(top / "fifo")
    fd = os.open(top, os.O_RDONLY | os.O_DIRECTORY)
    yield fd
    os.close(fd)


def _via_openat2(root_fd: int, path: str) -> int:
    return beneath.open_beneath(root_fd, path)


def _via_walk(root_fd: int, path: str) -> int:
    return beneath.open_walking(root_fd, path, os.O_RDONLY)


OPENERS = pytest.mark.parametrize("opener", [_via_openat2, _via_walk], ids=["openat2", "walk"])


def _read(fd: int) -> bytes:
    try:
        return os.read(fd, 100)
    finally:
        os.close(fd)


@OPENERS
def test_a_file_inside_the_directory_opens(root: int, opener: Opener) -> None:
    assert _read(opener(root, "d/f")) == b"inside"
    assert _read(opener(root, "./d//f")) == b"inside"


@OPENERS
@pytest.mark.parametrize("path", ["out", "up", "dl/f"])
def test_a_symlink_anywhere_on_the_path_is_eloop_even_one_that_stays_inside(
        root: int, opener: Opener, path: str) -> None:
    with pytest.raises(OSError) as e:
        opener(root, path)
    assert e.value.errno == errno.ELOOP and e.value.filename == path


@OPENERS
@pytest.mark.parametrize("path", ["../root/d/f", "/etc/passwd", "d/../../outside"])
def test_a_path_that_leaves_the_directory_is_exdev(root: int, opener: Opener, path: str) -> None:
    with pytest.raises(OSError) as e:
        opener(root, path)
    assert e.value.errno == errno.EXDEV


@OPENERS
def test_a_missing_file_is_enoent_and_a_file_used_as_a_dir_enotdir(root: int, opener: Opener) -> None:
    with pytest.raises(FileNotFoundError):
        opener(root, "d/nope")
    with pytest.raises(NotADirectoryError):
        opener(root, "d/f/x")


@pytest.mark.parametrize("kind, path", [("a FIFO", "fifo"), ("a directory", "d")])
def test_open_regular_refuses_a_fifo_or_dir_without_blocking(root: int, kind: str, path: str) -> None:
    with pytest.raises(beneath.NotRegularFile) as e:
        beneath.open_regular(path, beneath=root)
    assert e.value.kind == kind


def test_open_regular_without_a_root_follows_the_callers_path(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("x")
    (tmp_path / "link").symlink_to("file")
    fd = beneath.open_regular(str(tmp_path / "link"))
    assert os.get_blocking(fd)  # read normally once checked
    assert _read(fd) == b"x"
    os.mkfifo(tmp_path / "pipe")
    with pytest.raises(beneath.NotRegularFile, match="is a FIFO, not a regular file"):
        beneath.open_regular(str(tmp_path / "pipe"))


def test_without_openat2_the_walk_is_used(root: int, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(beneath, "_openat2", lambda *a: -errno.ENOSYS)
    monkeypatch.setattr(beneath, "_have_openat2", None)
    assert _read(beneath.open_beneath(root, "d/f")) == b"inside"
    assert beneath._have_openat2 is False
    with pytest.raises(OSError) as e:
        beneath.open_beneath(root, "dl/f")
    assert e.value.errno == errno.ELOOP
