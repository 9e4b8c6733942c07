"""A pod's cgroup path below each hierarchy's root: ``pyrkt/<uuid>`` by default, or
``<parent>/pyrkt-<uuid>`` under a ``--cgroup-parent`` (a CRI sandbox's ``cgroup_parent``),
which is checked here. The parent is a cgroupfs path: pyrkt's cgroup driver is cgroupfs.
"""

from __future__ import annotations

from pyrkt.errors import UsageError, undecodable

OWN_TOP = "pyrkt"  # pyrkt's own tree: the pods without a parent
PREFIX = "pyrkt-"  # a pod's cgroup under a parent: its owner shows in a listing of the parent's


def check_parent(text: str, flag: str = "--cgroup-parent") -> str:
    """``text`` as a path from each hierarchy's root, without its outer slashes ("" for none).
    Refused in one line: a systemd slice name, an empty, ``.`` or ``..`` segment, the root
    itself, and a path into pyrkt's own ``pyrkt/`` tree (another pod's cgroup, which its gc
    removes)."""
    if not text:
        return ""
    where = f"{flag}={text}" if flag.startswith("--") else f"{flag} {text}"
    path = text[1:] if text.startswith("/") else text
    path = path[:-1] if path.endswith("/") else path
    parts = path.split("/")
    if any(p.endswith(".slice") for p in parts):
        raise UsageError(f"{where}: a systemd slice; pyrkt's cgroup driver is cgroupfs: give a cgroupfs path "
                         "from the hierarchies' root, e.g. /kubepods/burstable/pod<uid>")
    if not path:
        raise UsageError(f"{where}: the hierarchies' root is no parent: give a cgroup below it")
    for part in parts:
        if part in ("", ".", ".."):
            raise UsageError(f"{where}: {'an empty' if not part else repr(part)} path segment: give a "
                             "normalised path such as /kubepods/burstable/pod<uid>")
        if "\0" in part or "\n" in part or undecodable(part) or len(part.encode()) > 255:
            raise UsageError(f"{where}: {part[:40]!r} is not a cgroup name")
    if parts[0] == OWN_TOP:
        raise UsageError(f"{where}: /{OWN_TOP} is pyrkt's own tree of pod cgroups: give a cgroup outside it")
    return path


def pod_cgroup(uuid: str, parent: str = "") -> str:
    """The pod's cgroup below each hierarchy's root, without a leading slash."""
    return f"{parent}/{PREFIX}{uuid}" if parent else f"{OWN_TOP}/{uuid}"
