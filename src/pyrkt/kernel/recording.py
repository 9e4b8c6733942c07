"""``RecordingKernel``: the ``Kernel`` of the unit tests. It touches nothing; it records each
call as ``(name, *args)`` in ``calls`` and returns plausible values, usable without root."""

from __future__ import annotations

import os

from pyrkt.kernel import cgroups
from pyrkt.kernel.caps import ALL_CAPS
from pyrkt.kernel.cgroups import AppCgroup, Hierarchy

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Iterable
    from typing import Any

    from pyrkt.model.plan import Limits

# The cgroup layouts the recording kernel can pretend: v1 (this kind of machine without its
# cgroup2 mount), unified v2 (a systemd host's), and hybrid (this machine: v1 controllers and
# an empty cgroup2 at /sys/fs/cgroup/unified).
_V1 = [Hierarchy(f"/sys/fs/cgroup/{c}", 1, (c,)) for c in ("cpu", "cpuacct", "cpuset", "memory", "devices",
                                                           "freezer", "blkio", "pids")]
_V1.append(Hierarchy("/sys/fs/cgroup/systemd", 1, ("name=systemd",)))
LAYOUTS = {
    "v1": _V1,
    "v2": [Hierarchy("/sys/fs/cgroup", 2, ("cpuset", "cpu", "io", "memory", "hugetlb", "pids", "rdma", "misc"))],
    "hybrid": [*_V1, Hierarchy("/sys/fs/cgroup/unified", 2, ())],
}


class RecordingKernel:
    """Records every call as ``(name, *args)`` in ``calls``; nothing is touched (an optional
    argument left at its default is not recorded: ``make_dir``'s ``owner``).

    ``kinds`` says what ``kind`` finds at a path (default: nothing there); ``held`` is the
    capability set ``held_caps`` returns; ``refuse_mknod`` makes ``mknod`` raise
    PermissionError, as a closed device policy does; ``layout`` ("v1", "v2", "hybrid") the
    cgroup hierarchies the host pretends to have: the cgroup calls record the directories
    they would make (``cgroup_mkdir``) and the files they would write (``write``), as the real
    kernel's plan them."""

    def __init__(self, *, kinds: dict[str, str] | None = None, held: set[int] | None = None,
                 refuse_mknod: bool = False, layout: str = "hybrid") -> None:
        self.calls: list[tuple[Any, ...]] = []
        self.kinds = dict(kinds or {})
        self.held = set(ALL_CAPS) if held is None else set(held)
        self.refuse_mknod = refuse_mknod
        self.hierarchies = cgroups.pod_hierarchies(LAYOUTS[layout])

    def _rec(self, *call: Any) -> None:
        self.calls.append(call)

    def names(self) -> list[str]:
        """The calls' names, in order."""
        return [c[0] for c in self.calls]

    def unshare(self, flags: int) -> None:
        self._rec("unshare", flags)

    def setns(self, fd: int, nstype: int, what: str = "") -> None:
        self._rec("setns", fd, nstype)

    def sethostname(self, name: str) -> None:
        self._rec("sethostname", name)

    def make_rprivate(self, path: str = "/") -> None:
        self._rec("make_rprivate", path)

    def mount(self, source: str, target: str, fstype: str = "", flags: int = 0, data: str = "") -> None:
        self._rec("mount", source, target, fstype, flags, data)
        self.kinds.setdefault(target, "dir")

    def bind(self, source: str, target: str, *, recursive: bool = False, readonly: bool = False,
             flags: int = 0) -> None:
        self._rec("bind", source, target, recursive, readonly, flags)

    def overlay(self, lowers: list[str], upper: str, work: str, target: str) -> None:
        self._rec("overlay", tuple(lowers), upper, work, target)

    def bind_in_root(self, source: str, root: str, target: str, *, recursive: bool = False,
                     readonly: bool = False, userns_fd: int = -1) -> None:
        self._rec("bind_in_root", source, root, target, recursive, readonly,
                  *((userns_fd,) if userns_fd >= 0 else ()))
        self.kinds.setdefault(os.path.join(root, target.lstrip("/")), "dir")

    def clone_volume(self, source: str, *, recursive: bool = False) -> int:
        """A made-up fd: 1000 and up, one a call."""
        self._rec("clone_volume", source, recursive)
        return 1000 + sum(1 for c in self.calls if c[0] == "clone_volume") - 1

    def attach_in_root(self, tree: int, root: str, target: str, *, readonly: bool = False,
                       propagation: str = "") -> None:
        self._rec("attach_in_root", tree, root, target, readonly, propagation)
        self.kinds.setdefault(os.path.join(root, target.lstrip("/")), "dir")

    def start_user_namespace(self) -> tuple[int, int]:
        self._rec("start_user_namespace")
        return (0, -1)

    def finish_user_namespace(self, started: tuple[int, int], uid_map: str, gid_map: str) -> int:
        """A real fd, but on this process's own user namespace."""
        self._rec("finish_user_namespace", started, uid_map, gid_map)
        return os.open("/proc/self/ns/user", os.O_RDONLY | os.O_CLOEXEC)

    def cancel_user_namespace(self, started: tuple[int, int]) -> None:
        self._rec("cancel_user_namespace", started)

    def overlay_idmapped(self, lowers: list[str], upper: str, work: str, target: str, userns_fd: int) -> None:
        self._rec("overlay_idmapped", tuple(lowers), upper, work, target, userns_fd)

    def bind_idmapped(self, source: str, target: str, userns_fd: int, *, recursive: bool = False,
                      readonly: bool = False, flags: int = 0) -> None:
        self._rec("bind_idmapped", source, target, userns_fd, recursive, readonly, flags)

    def shift_owner(self, path: str, shift: int) -> None:
        self._rec("shift_owner", path, shift)

    def pivot_root(self, root: str) -> None:
        self._rec("pivot_root", root)

    def chroot(self, root: str) -> None:
        self._rec("chroot", root)

    def mknod(self, path: str, kind: str, major: int, minor: int, mode: int, uid: int = 0, gid: int = 0) -> None:
        self._rec("mknod", path, kind, major, minor, mode, uid, gid)
        if self.refuse_mknod:
            raise PermissionError(1, "Operation not permitted", path)
        self.kinds[path] = "file"

    def symlink(self, target: str, path: str) -> None:
        self._rec("symlink", target, path)
        self.kinds[path] = "link"

    def make_dir(self, root: str, rel: str, mode: int = 0o755, owner: int = -1) -> str:
        path = os.path.join(root, rel.lstrip("/"))
        self._rec("make_dir", path, mode, *(() if owner < 0 else (owner,)))
        self.kinds[path] = "dir"
        return path

    def make_file(self, root: str, rel: str, mode: int = 0o644, owner: int = -1) -> str:
        path = os.path.join(root, rel.lstrip("/"))
        self._rec("make_file", path, mode, *(() if owner < 0 else (owner,)))
        self.kinds[path] = "file"
        return path

    def kind(self, path: str) -> str | None:
        return self.kinds.get(path)

    def write_file(self, path: str, text: str, mode: int = 0o644) -> None:
        self._rec("write_file", path, text, mode)
        self.kinds[path] = "file"

    def write(self, path: str, text: str) -> None:
        self._rec("write", path, text)

    def write_sysctl(self, key: str, path: str, value: str) -> None:
        self._rec("write_sysctl", key, path, value)

    def loopback_up(self) -> None:
        self._rec("loopback_up")

    def set_child_subreaper(self) -> None:
        self._rec("set_child_subreaper")

    def held_caps(self) -> set[int]:
        return set(self.held)

    def drop_bounding(self, keep: Iterable[int]) -> None:
        self._rec("drop_bounding", frozenset(keep))

    def set_keepcaps(self, on: bool) -> None:
        self._rec("set_keepcaps", on)

    def set_ids(self, uid: int, gid: int, groups: tuple[int, ...]) -> None:
        self._rec("set_ids", uid, gid, tuple(groups))

    def set_caps(self, keep: Iterable[int], *, uid: int) -> None:
        self._rec("set_caps", frozenset(keep), uid)

    def no_new_privs(self) -> None:
        self._rec("no_new_privs")

    def load_seccomp(self, bpf: bytes) -> None:
        self._rec("load_seccomp", bpf)

    def set_rlimit(self, resource: int, soft: int, hard: int) -> None:
        self._rec("set_rlimit", resource, soft, hard)

    def oom_score_adj(self, value: int) -> None:
        self._rec("oom_score_adj", value)

    def mkdir(self, path: str, mode: int = 0o755) -> None:
        self._rec("mkdir", path, mode)
        self.kinds[path] = "dir"

    def clone_tree(self, path: str) -> int:
        """A real fd, but a plain O_PATH one on ``path`` (the caller may close it, keep it)."""
        self._rec("clone_tree", path)
        return os.open(path, os.O_PATH | os.O_CLOEXEC)

    def cgroup_create(self, subpath: str) -> list[str]:
        self._rec("cgroup_create", subpath)
        steps, joins = cgroups.pod_steps(self.hierarchies, subpath)
        for step in steps:
            self._rec(*step)
        return joins

    def cgroup_create_app(self, subpath: str, app: str, limits: Limits) -> AppCgroup:
        self._rec("cgroup_create_app", subpath, app)
        steps, made = cgroups.app_steps(self.hierarchies, subpath, app, limits)
        for step in steps:
            self._rec(*step)
        return made

    def cgroup_limit_pod(self, subpath: str, limits: Limits) -> tuple[str, ...]:
        self._rec("cgroup_limit_pod", subpath)
        steps, skipped = cgroups.pod_limit_steps(self.hierarchies, subpath, limits)
        for step in steps:
            self._rec(*step)
        return skipped

    def cgroup_limit_devices(self, subpath: str, rules: tuple[Any, ...], *, apps_own: bool = False) -> None:
        self._rec("cgroup_limit_devices", subpath, tuple(rules), *(("apps_own",) if apps_own else ()))

    def cgroup_limit_app_devices(self, subpath: str, app: str, rules: tuple[Any, ...]) -> str:
        self._rec("cgroup_limit_app_devices", subpath, app, tuple(rules))
        h = cgroups.device_hierarchy(self.hierarchies)
        if h is None:
            raise OSError(2, "no device hierarchy", subpath)
        steps, path = cgroups.app_device_steps(h, subpath, app, tuple(rules))
        for step in steps:
            self._rec(*step)
        return path

    def cgroup_join(self, paths: list[str], pid: int = 0) -> None:
        self._rec("cgroup_join", tuple(paths), pid)

    def cgroup_remove(self, subpath: str) -> None:
        self._rec("cgroup_remove", subpath)

    def unmount_all_under(self, path: str) -> None:
        self._rec("unmount_all_under", path)
