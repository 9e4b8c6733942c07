"""Resolving an app's user and groups from its image's /etc/passwd and /etc/group."""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

import pytest

from pyrkt.errors import PyrktError
from pyrkt.stage1.users import environment, resolve


@pytest.fixture
def root(tmp_path: Path) -> str:
    etc = tmp_path / "etc"
    etc.mkdir()
    (etc / "passwd").write_text("root:x:0:0:root:/root:/bin/sh\napp:x:1000:1001:App:/home/app:/bin/sh\n"
                                "# comment\nbroken\n")
    (etc / "group").write_text("root:x:0:\nstaff:x:50:app,other\napp:x:1001:\nwheel:x:10:root\n")
    (tmp_path / "owned").write_text("")
    with contextlib.suppress(PermissionError):  # unprivileged, the file keeps the runner's ids
        os.chown(tmp_path / "owned", 4321, 8765)
    return str(tmp_path)


def test_numeric_user_and_group(root: str) -> None:
    ids = resolve("4242", "4343", root=root)
    assert (ids.uid, ids.gid, ids.groups) == (4242, 4343, ())


def test_named_user_takes_primary_group_home_and_member_groups(root: str) -> None:
    ids = resolve("app", "", root=root)
    assert (ids.uid, ids.gid, ids.groups, ids.home) == (1000, 1001, (50,), "/home/app")


def test_named_group_and_supplementary_gids(root: str) -> None:
    ids = resolve("0", "staff", [7, 7, 50], root=root)
    assert (ids.uid, ids.gid, ids.groups) == (0, 50, (7, 10))


def test_unknown_numeric_user_without_group_uses_its_uid_as_gid(root: str) -> None:
    assert resolve("5000", "", root=root).gid == 5000


def test_path_means_the_owner_of_that_file(root: str) -> None:
    owned = os.stat(os.path.join(root, "owned"))
    assert (owned.st_uid, owned.st_gid) != (0, 0)  # as root it was chowned; never the default ids
    ids = resolve("/owned", "/owned", root=root)
    assert (ids.uid, ids.gid) == (owned.st_uid, owned.st_gid)


def test_unknown_names_are_errors_naming_them(root: str) -> None:
    with pytest.raises(PyrktError, match="user 'nobody-here'"):
        resolve("nobody-here", "", root=root)
    with pytest.raises(PyrktError, match="group 'nogroup'"):
        resolve("0", "nogroup", root=root)


def test_environment_adds_home_unless_set(root: str) -> None:
    ids = resolve("app", "", root=root)
    assert environment(["A=1", "HOME=/custom"], ids) == {"A": "1", "HOME": "/custom"}
    assert environment(["A=1"], ids)["HOME"] == "/home/app"


@pytest.mark.parametrize(("user", "group", "extra", "message"), [
    ("4294967295", "", (), "uid 4294967295 is out of range"),  # setresuid(-1) would leave the app root
    ("0", "4294967295", (), "gid 4294967295 is out of range"),
    ("0", "0", (4294967296,), "supplementary gid 4294967296 is out of range"),
    ("0", "0", (-1,), "supplementary gid -1 is out of range"),
])
def test_an_id_that_is_no_id_is_refused_not_left_as_root(root: str, user: str, group: str, extra: tuple[int, ...],
                                                       message: str) -> None:
    with pytest.raises(PyrktError, match=f"^{message} \\(0 to 4294967294\\)$"):
        resolve(user, group, extra, root=root)
