"""The ``Kernel`` the stage1 executor works through: the calls that set up an app's root and
drop its privileges, in one small interface.

``LinuxKernel`` makes the real calls (through the modules beside this one); ``RecordingKernel``
only appends ``(call, args...)`` to ``calls`` and returns plausible values, so that the unit
tests can check what the executor would do, in which order, without root.

Paths inside an app's root are made with ``make_dir``/``make_file`` (``root``, ``rel``), which
never follow a link out of the root; ``kind`` is an lstat (what is at a path, or None).
"""

from __future__ import annotations

import os
import stat

from pyrkt.kernel import caps as C
from pyrkt.kernel import fs, seccomp
from pyrkt.kernel import mount as M
from pyrkt.kernel import namespaces as N

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Iterable
    from typing import Any


class Kernel:
    """The interface; every method is overridden by both implementations."""

    def unshare(self, flags: int) -> None: raise NotImplementedError
    def setns(self, fd: int, nstype: int, what: str = "") -> None: raise NotImplementedError
    def sethostname(self, name: str) -> None: raise NotImplementedError
    def make_rprivate(self, path: str = "/") -> None: raise NotImplementedError
    def mount(self, source: str, target: str, fstype: str = "", flags: int = 0, data: str = "") -> None:
        raise NotImplementedError
    def bind(self, source: str, target: str, *, recursive: bool = False, readonly: bool = False,
             flags: int = 0) -> None: raise NotImplementedError
    def overlay(self, lowers: list[str], upper: str, work: str, target: str) -> None: raise NotImplementedError
    def pivot_root(self, root: str) -> None: raise NotImplementedError
    def chroot(self, root: str) -> None: raise NotImplementedError
    def mknod(self, path: str, kind: str, major: int, minor: int, mode: int, uid: int = 0, gid: int = 0) -> None:
        """Raises PermissionError where the device policy or missing CAP_MKNOD forbids it."""
        raise NotImplementedError
    def symlink(self, target: str, path: str) -> None: raise NotImplementedError
    def make_dir(self, root: str, rel: str, mode: int = 0o755) -> str: raise NotImplementedError
    def make_file(self, root: str, rel: str, mode: int = 0o644) -> str: raise NotImplementedError
    def kind(self, path: str) -> str | None: raise NotImplementedError
    def write_file(self, path: str, text: str, mode: int = 0o644) -> None: raise NotImplementedError
    def write(self, path: str, text: str) -> None:
        """One write(2) to a procfs/sysfs/cgroupfs file, so that a refusal surfaces."""
        raise NotImplementedError
    def write_sysctl(self, key: str, path: str, value: str) -> None: raise NotImplementedError
    def loopback_up(self) -> None: raise NotImplementedError
    def held_caps(self) -> set[int]: raise NotImplementedError
    def drop_bounding(self, keep: Iterable[int]) -> None: raise NotImplementedError
    def set_keepcaps(self, on: bool) -> None: raise NotImplementedError
    def set_ids(self, uid: int, gid: int, groups: tuple[int, ...]) -> None: raise NotImplementedError
    def set_caps(self, keep: Iterable[int], *, uid: int) -> None: raise NotImplementedError
    def no_new_privs(self) -> None: raise NotImplementedError
    def load_seccomp(self, bpf: bytes) -> None: raise NotImplementedError
    def set_rlimit(self, resource: int, soft: int, hard: int) -> None: raise NotImplementedError
    def oom_score_adj(self, value: int) -> None: raise NotImplementedError


class LinuxKernel(Kernel):
    def unshare(self, flags: int) -> None:
        N.unshare(flags)

    def setns(self, fd: int, nstype: int, what: str = "") -> None:
        N.setns(fd, nstype, what)

    def sethostname(self, name: str) -> None:
        N.set_hostname(name)

    def make_rprivate(self, path: str = "/") -> None:
        M.make_rprivate(path)

    def mount(self, source: str, target: str, fstype: str = "", flags: int = 0, data: str = "") -> None:
        M.mount(source or None, target, fstype or None, flags, data or None)

    def bind(self, source: str, target: str, *, recursive: bool = False, readonly: bool = False,
             flags: int = 0) -> None:
        M.bind(source, target, recursive=recursive, readonly=readonly, flags=flags)

    def overlay(self, lowers: list[str], upper: str, work: str, target: str) -> None:
        M.overlay(lowers, upper, work, target)

    def pivot_root(self, root: str) -> None:
        M.pivot_root(root)

    def chroot(self, root: str) -> None:
        os.chroot(root)
        os.chdir("/")

    def mknod(self, path: str, kind: str, major: int, minor: int, mode: int, uid: int = 0, gid: int = 0) -> None:
        os.mknod(path, (stat.S_IFCHR if kind == "c" else stat.S_IFBLK) | 0o600, os.makedev(major, minor))
        if uid or gid:
            os.chown(path, uid, gid)
        os.chmod(path, mode)  # mknod's mode went through the umask

    def symlink(self, target: str, path: str) -> None:
        os.symlink(target, path)

    def make_dir(self, root: str, rel: str, mode: int = 0o755) -> str:
        return fs.make_dir_in(root, rel, mode)

    def make_file(self, root: str, rel: str, mode: int = 0o644) -> str:
        return fs.make_file_in(root, rel, mode)

    def kind(self, path: str) -> str | None:
        try:
            st = os.lstat(path)
        except OSError:
            return None
        return "dir" if stat.S_ISDIR(st.st_mode) else "link" if stat.S_ISLNK(st.st_mode) else "file"

    def write_file(self, path: str, text: str, mode: int = 0o644) -> None:
        fs.atomic_write(path, text, mode=mode, sync=False)

    def write(self, path: str, text: str) -> None:
        from pyrkt.kernel import cgroups

        cgroups.write(path, text)

    def write_sysctl(self, key: str, path: str, value: str) -> None:
        from pyrkt.kernel import sysctl

        sysctl.write(key, path, value)

    def loopback_up(self) -> None:
        N.loopback_up()

    def held_caps(self) -> set[int]:
        return C.held()

    def drop_bounding(self, keep: Iterable[int]) -> None:
        C.drop_bounding(keep)

    def set_keepcaps(self, on: bool) -> None:
        C.set_keepcaps(on)

    def set_ids(self, uid: int, gid: int, groups: tuple[int, ...]) -> None:
        os.setgroups(list(groups))
        os.setresgid(gid, gid, gid)
        os.setresuid(uid, uid, uid)

    def set_caps(self, keep: Iterable[int], *, uid: int) -> None:
        C.set_caps(keep, uid=uid)

    def no_new_privs(self) -> None:
        C.set_no_new_privs()

    def load_seccomp(self, bpf: bytes) -> None:
        seccomp.load_bpf(bpf)

    def set_rlimit(self, resource: int, soft: int, hard: int) -> None:
        import resource as R

        R.setrlimit(resource, (soft, hard))

    def oom_score_adj(self, value: int) -> None:
        self.write("/proc/self/oom_score_adj", str(value))


class RecordingKernel(Kernel):
    """Records every call as ``(name, *args)`` in ``calls``; nothing is touched.

    ``kinds`` says what ``kind`` finds at a path (default: nothing there); ``held`` is the
    capability set ``held_caps`` returns; ``refuse_mknod`` makes ``mknod`` raise
    PermissionError, as a closed device policy does."""

    def __init__(self, *, kinds: dict[str, str] | None = None, held: set[int] | None = None,
                 refuse_mknod: bool = False) -> None:
        self.calls: list[tuple[Any, ...]] = []
        self.kinds = dict(kinds or {})
        self.held = set(C.ALL_CAPS) if held is None else set(held)
        self.refuse_mknod = refuse_mknod

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

    def make_dir(self, root: str, rel: str, mode: int = 0o755) -> str:
        path = os.path.join(root, rel.lstrip("/"))
        self._rec("make_dir", path, mode)
        self.kinds[path] = "dir"
        return path

    def make_file(self, root: str, rel: str, mode: int = 0o644) -> str:
        path = os.path.join(root, rel.lstrip("/"))
        self._rec("make_file", path, mode)
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
