"""The ``Kernel`` the stage1 executor works through: the calls that set up an app's root and
drop its privileges, in one small interface.

``LinuxKernel`` makes the real calls (through the modules beside this one); ``RecordingKernel``
(``pyrkt.kernel.recording``) only appends ``(call, args...)`` to ``calls`` and returns
plausible values, so that the unit tests can check what the executor would do, in which order,
without root. ``Kernel`` is a Protocol for the type checker only (the run path pays for no
class it does not use).

Paths inside an app's root are made with ``make_dir``/``make_file`` (``root``, ``rel``), which
never follow a link out of the root; ``kind`` is an lstat (what is at a path, or None).
"""

from __future__ import annotations

import errno
import os
import stat

from pyrkt.kernel import caps as C
from pyrkt.kernel import fs, seccomp
from pyrkt.kernel import mount as M
from pyrkt.kernel import namespaces as N

TYPE_CHECKING = False
if TYPE_CHECKING:  # the interface is for the type checker: on the run path it would only cost
    from collections.abc import Iterable
    from typing import Protocol

    from pyrkt.kernel.cgroups import AppCgroup
    from pyrkt.model.devices import DeviceRule
    from pyrkt.model.plan import Limits

    class Kernel(Protocol):
        """The calls the executor makes; ``LinuxKernel`` and ``RecordingKernel`` implement it."""

        def unshare(self, flags: int) -> None: ...
        def setns(self, fd: int, nstype: int, what: str = "") -> None: ...
        def sethostname(self, name: str) -> None: ...
        def make_rprivate(self, path: str = "/") -> None: ...
        def mount(self, source: str, target: str, fstype: str = "", flags: int = 0, data: str = "") -> None:
            ...
        def bind(self, source: str, target: str, *, recursive: bool = False, readonly: bool = False,
                 flags: int = 0) -> None: ...
        def overlay(self, lowers: list[str], upper: str, work: str, target: str) -> None: ...
        def bind_in_root(self, source: str, root: str, target: str, *, recursive: bool = False,
                         readonly: bool = False, userns_fd: int = -1) -> None:
            """A volume: ``source`` (links followed) bound on ``target`` resolved inside ``root``
            (``pyrkt.kernel.inroot``), made like the source where missing; through the id map of
            ``userns_fd`` when one is given (a volume of the pod's own, --private-users)."""
            ...
        def clone_volume(self, source: str, *, recursive: bool = False) -> int:
            """A detached copy of the mount at ``source`` (links followed), in the source's peer
            group: an fd for ``attach_in_root`` in another mount namespace."""
            ...
        def attach_in_root(self, tree: int, root: str, target: str, *, readonly: bool = False,
                           propagation: str = "") -> None:
            """A volume from ``clone_volume``'s ``tree`` (closed) on ``target`` resolved inside
            ``root`` as ``bind_in_root`` resolves it, with its ``propagation`` ("rslave",
            "rshared")."""
            ...
        def start_user_namespace(self) -> tuple[int, int]:
            """Begin a new user namespace (its child spawned); see namespaces.start_user_namespace."""
            ...
        def finish_user_namespace(self, started: tuple[int, int], uid_map: str, gid_map: str) -> int:
            """Write its maps; an fd on it (close-on-exec) that keeps it alive."""
            ...
        def cancel_user_namespace(self, started: tuple[int, int]) -> None: ...
        def overlay_idmapped(self, lowers: list[str], upper: str, work: str, target: str, userns_fd: int) -> None:
            """``overlay`` with each lower dir seen through the id map of ``userns_fd``."""
            ...
        def bind_idmapped(self, source: str, target: str, userns_fd: int, *, recursive: bool = False,
                          readonly: bool = False, flags: int = 0) -> None:
            """``bind`` through the id map of ``userns_fd``."""
            ...
        def shift_owner(self, path: str, shift: int) -> None:
            """lchown ``path`` to its owner + ``shift`` unless it is at or above the shift already
            (idempotent): a pod file for a user namespace the kernel cannot idmap it into."""
            ...
        def pivot_root(self, root: str) -> None: ...
        def chroot(self, root: str) -> None: ...
        def mknod(self, path: str, kind: str, major: int, minor: int, mode: int, uid: int = 0, gid: int = 0) -> None:
            """Raises PermissionError where the device policy or missing CAP_MKNOD forbids it."""
            ...
        def symlink(self, target: str, path: str) -> None: ...
        def make_dir(self, root: str, rel: str, mode: int = 0o755, owner: int = -1) -> str:
            """``owner``: uid and gid of what is made (-1: the caller's)."""
            ...
        def make_file(self, root: str, rel: str, mode: int = 0o644, owner: int = -1) -> str: ...
        def kind(self, path: str) -> str | None: ...
        def write_file(self, path: str, text: str, mode: int = 0o644) -> None: ...
        def write(self, path: str, text: str) -> None:
            """One write(2) to a procfs/sysfs/cgroupfs file, so that a refusal surfaces."""
            ...
        def write_sysctl(self, key: str, path: str, value: str) -> None: ...
        def loopback_up(self) -> None: ...
        def set_child_subreaper(self) -> None:
            """Orphans of this process's descendants come back to it (a pod init that is not PID 1)."""
            ...
        def held_caps(self) -> set[int]: ...
        def drop_bounding(self, keep: Iterable[int]) -> None: ...
        def set_keepcaps(self, on: bool) -> None: ...
        def set_ids(self, uid: int, gid: int, groups: tuple[int, ...]) -> None: ...
        def set_caps(self, keep: Iterable[int], *, uid: int) -> None: ...
        def no_new_privs(self) -> None: ...
        def load_seccomp(self, bpf: bytes) -> None: ...
        def set_rlimit(self, resource: int, soft: int, hard: int) -> None: ...
        def oom_score_adj(self, value: int) -> None: ...
        def mkdir(self, path: str, mode: int = 0o755) -> None: ...
        def clone_tree(self, path: str) -> int:
            """A detached read-only copy of the tree at ``path``, held by the returned fd."""
            ...
        def cgroup_create(self, subpath: str) -> list[str]:
            """The pod's cgroups; returns the directories pod init joins."""
            ...
        def cgroup_create_app(self, subpath: str, app: str, limits: Limits) -> AppCgroup:
            """An app's cgroups inside its pod's, its limits written."""
            ...
        def cgroup_limit_pod(self, subpath: str, limits: Limits) -> tuple[str, ...]:
            """The pod's own limits on its cgroups; returns the isolators no controller applies."""
            ...
        def cgroup_limit_devices(self, subpath: str, rules: tuple[DeviceRule, ...], *,
                                 apps_own: bool = False) -> None: ...
        def cgroup_limit_app_devices(self, subpath: str, app: str, rules: tuple[DeviceRule, ...]) -> str:
            """An app's own allow-list, in a devices cgroup of its own; returns that cgroup."""
            ...
        def cgroup_join(self, paths: list[str], pid: int = 0) -> None: ...
        def cgroup_remove(self, subpath: str) -> None: ...
        def unmount_all_under(self, path: str) -> None: ...


class LinuxKernel:
    """The real calls, through the modules beside this one."""

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

    def bind_in_root(self, source: str, root: str, target: str, *, recursive: bool = False,
                     readonly: bool = False, userns_fd: int = -1) -> None:
        from pyrkt.errors import KernelError

        try:
            src = os.open(source, os.O_PATH | os.O_CLOEXEC)
        except OSError as e:
            raise KernelError("open", e.errno or 0, f"volume source {source}") from None
        try:
            dst = mount_point(root, target, like=src)
            try:
                M.bind_fds(src, dst, recursive=recursive, readonly=readonly, what=f"{source} to {target}",
                           userns_fd=userns_fd)
            finally:
                os.close(dst)
        finally:
            os.close(src)

    def clone_volume(self, source: str, *, recursive: bool = False) -> int:
        return M.clone_bind(source, recursive=recursive)

    def attach_in_root(self, tree: int, root: str, target: str, *, readonly: bool = False,
                       propagation: str = "") -> None:
        try:
            dst = mount_point(root, target, like=tree)
            try:
                M.attach_fds(tree, dst, readonly=readonly, propagation=propagation, what=f"volume at {target}")
            finally:
                os.close(dst)
        finally:
            os.close(tree)

    def start_user_namespace(self) -> tuple[int, int]:
        return N.start_user_namespace()

    def finish_user_namespace(self, started: tuple[int, int], uid_map: str, gid_map: str) -> int:
        return N.finish_user_namespace(started, uid_map, gid_map)

    def cancel_user_namespace(self, started: tuple[int, int]) -> None:
        N.cancel_user_namespace(started)

    def overlay_idmapped(self, lowers: list[str], upper: str, work: str, target: str, userns_fd: int) -> None:
        fds: list[int] = []
        try:
            for p in lowers:
                fds.append(M.idmapped_tree(p, userns_fd))
        except BaseException:
            for fd in fds:
                os.close(fd)
            raise
        M.overlay_of_trees(fds, upper, work, target)

    def bind_idmapped(self, source: str, target: str, userns_fd: int, *, recursive: bool = False,
                      readonly: bool = False, flags: int = 0) -> None:
        M.move_tree(M.idmapped_tree(source, userns_fd, recursive=recursive,
                                    flags=flags | (M.MS_RDONLY if readonly else 0)), target)

    def shift_owner(self, path: str, shift: int) -> None:
        st = os.lstat(path)
        if st.st_uid < shift or st.st_gid < shift:
            os.lchown(path, st.st_uid + shift if st.st_uid < shift else st.st_uid,
                      st.st_gid + shift if st.st_gid < shift else st.st_gid)

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

    def make_dir(self, root: str, rel: str, mode: int = 0o755, owner: int = -1) -> str:
        return fs.make_dir_in(root, rel, mode, owner)

    def make_file(self, root: str, rel: str, mode: int = 0o644, owner: int = -1) -> str:
        return fs.make_file_in(root, rel, mode, owner)

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

    def set_child_subreaper(self) -> None:
        from pyrkt.kernel import process

        process.child_subreaper()

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
        import errno as E

        from pyrkt.errors import KernelError

        try:
            self.write("/proc/self/oom_score_adj", str(value))
        except KernelError as e:
            if e.errno not in (E.EACCES, E.EPERM):
                raise
            raise KernelError("oom_score_adj", e.errno, f"cannot lower it to {value}: that needs "
                              "CAP_SYS_RESOURCE") from None

    def mkdir(self, path: str, mode: int = 0o755) -> None:
        os.mkdir(path, mode)

    def clone_tree(self, path: str) -> int:
        return M.clone_tree(path)

    def cgroup_create(self, subpath: str) -> list[str]:
        from pyrkt.kernel import cgroups

        return cgroups.create(subpath)

    def cgroup_create_app(self, subpath: str, app: str, limits: Limits) -> AppCgroup:
        from pyrkt.kernel import cgroups

        return cgroups.create_app(subpath, app, limits)

    def cgroup_limit_pod(self, subpath: str, limits: Limits) -> tuple[str, ...]:
        from pyrkt.kernel import cgroups

        return cgroups.limit_pod(subpath, limits)

    def cgroup_limit_devices(self, subpath: str, rules: tuple[DeviceRule, ...], *, apps_own: bool = False) -> None:
        from pyrkt.kernel import cgroups

        cgroups.limit_devices(subpath, rules, apps_own=apps_own)

    def cgroup_limit_app_devices(self, subpath: str, app: str, rules: tuple[DeviceRule, ...]) -> str:
        from pyrkt.kernel import cgroups

        return cgroups.limit_app_devices(subpath, app, rules)

    def cgroup_join(self, paths: list[str], pid: int = 0) -> None:
        from pyrkt.kernel import cgroups

        cgroups.join(paths, pid)

    def cgroup_remove(self, subpath: str) -> None:
        from pyrkt.kernel import cgroups

        cgroups.remove(subpath)

    def unmount_all_under(self, path: str) -> None:
        M.unmount_all_under(path)


def mount_point(root: str, target: str, *, like: int) -> int:
    """An ``O_PATH`` fd of a volume's ``target`` resolved inside ``root`` (``inroot``), made a
    directory or a file as what the fd ``like`` is, where missing."""
    from pyrkt.errors import KernelError
    from pyrkt.kernel import inroot

    make = "dir" if stat.S_ISDIR(os.fstat(like).st_mode) else "file"
    try:
        return inroot.open_in_root(root, target, make=make)
    except OSError as e:
        why = "resolves to the root of the app" if e.errno == errno.EINVAL else "in the app's root"
        raise KernelError("mount point", e.errno or 0, f"{target} {why}") from None
