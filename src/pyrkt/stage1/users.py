"""Users, groups and environment of an app, resolved inside its own root (after pivot_root).

User and group may be numeric, names from the image's /etc/passwd and /etc/group, or (appc)
an absolute path whose owner is used. A user given without a group takes the user's primary
group from /etc/passwd, or the same number when the user is numeric and unknown.
"""

from __future__ import annotations

import os

from pyrkt.errors import PyrktError
from pyrkt.model.idmap import MAX_ID


class Ids:
    """Who an app runs as. A plain class: this module is on every app's start path, where the
    dataclasses machinery would cost more than the whole set-up."""

    __slots__ = ("uid", "gid", "groups", "name", "home")

    def __init__(self, uid: int, gid: int, groups: tuple[int, ...], name: str, home: str) -> None:
        self.uid = uid
        self.gid = gid
        self.groups = groups
        self.name = name
        self.home = home


def read_db(path: str) -> list[list[str]]:
    try:
        with open(path, errors="replace") as f:
            return [line.rstrip("\n").split(":") for line in f if line.strip() and not line.startswith("#")]
    except FileNotFoundError:
        return []


def user_entry(passwd: list[list[str]], name: str) -> list[str] | None:
    """The /etc/passwd line of user ``name`` (its fields), or None."""
    return next((row for row in passwd if len(row) >= 4 and row[0] == name), None)


def group_gid(groups: list[list[str]], name: str) -> int | None:
    """The gid of group ``name`` in /etc/group, or None."""
    return next((int(r[2]) for r in groups if len(r) >= 3 and r[0] == name and r[2].isdigit()), None)


def resolve(user: str, group: str, supplementary: list[int] | tuple[int, ...] = (), *, root: str = "") -> Ids:
    """Resolve inside ``root`` (the app's root; "" once pivot_root made it "/")."""
    passwd = read_db(root + "/etc/passwd")
    groups = read_db(root + "/etc/group")
    user = user or "0"
    name, home, uid, primary = "", "/", None, None
    if user.startswith("/"):
        uid = os.stat(root + user).st_uid
    elif user.isdigit():
        uid = int(user)
    if uid is None:
        entry = user_entry(passwd, user)
    else:
        entry = next((row for row in passwd if len(row) >= 4 and row[2] == str(uid)), None)
    if entry is not None:
        name, uid, primary = entry[0], int(entry[2]), int(entry[3]) if entry[3].isdigit() else None
        home = entry[5] if len(entry) > 5 and entry[5] else "/"
    if uid is None:
        raise PyrktError(f"user {user!r} not found in the image's /etc/passwd")
    if group and group.startswith("/"):
        gid = os.stat(root + group).st_gid
    elif group and group.isdigit():
        gid = int(group)
    elif group:
        found = group_gid(groups, group)
        if found is None:
            raise PyrktError(f"group {group!r} not found in the image's /etc/group")
        gid = found
    else:
        gid = primary if primary is not None else uid
    extra = [int(g) for g in supplementary]
    if name:
        extra += [int(r[2]) for r in groups if len(r) >= 4 and r[2].isdigit() and name in r[3].split(",")]
    seen: list[int] = []
    for g in extra:
        if g != gid and g not in seen:
            seen.append(g)
    for what, n in (("uid", uid), ("gid", gid), *(("supplementary gid", g) for g in seen)):
        if not 0 <= n <= MAX_ID:
            raise PyrktError(f"{what} {n} is out of range (0 to {MAX_ID})")
    return Ids(uid, gid, tuple(seen), name, home)


def environment(pairs: list[str], ids: Ids) -> dict[str, str]:
    env: dict[str, str] = {}
    for item in pairs:
        k, _, v = item.partition("=")
        env[k] = v
    env.setdefault("HOME", ids.home)
    return env
