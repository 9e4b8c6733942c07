"""Pod init's own root (rkt's stage1 root): before it starts the apps, pod init moves to a new
mount namespace and pivots into a small read-only tmpfs, so that neither the host's mount
table nor its tree shows through ``/proc/1`` (mountinfo, root, cwd) to the apps. The apps
start from the namespace it left (a copy of the host's, held by an fd until they have started),
each in a mount namespace of its own as before.

What pod init still needs of the host it reaches through fds it holds, named in its root by
symlinks to ``/proc/self/fd/N``; read by anyone else, such a link names the reader's own fd,
and no bind mount (whose source path mountinfo would print) is made::

    /proc    the pod's own procfs (the links need it)
    /pod     -> the pod dir, through the pod lock's fd: status, pids, logs, the re-exec's state
    /usr     -> a detached read-only copy of the host's /usr; /lib, /lib64 as on the host:
                the interpreter pod init re-executes as, and the network teardown's
    /pyrkt   -> the pyrkt package, in a detached read-only copy of the directory holding it

A detached copy (``open_tree``) is in no mount table and ``..`` stops at its top.
"""

from __future__ import annotations

import os
import sys

from pyrkt.kernel import mount as M
from pyrkt.kernel import namespaces

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

    from pyrkt.kernel.api import Kernel

MOUNTPOINT = "stage1/rootfs"  # in the pod dir; the tmpfs goes on it in pod init's namespace
POD = "/pod"
LIB_DIRS = ("usr", "lib", "lib64", "lib32", "libx32")
TMPFS_OPTIONS = "mode=0755,size=64k,nr_inodes=64"
NOSUID_NODEV_NOEXEC = M.MS_NOSUID | M.MS_NODEV | M.MS_NOEXEC


def top(path: str) -> str:
    return path.strip("/").split("/", 1)[0]


def enter(k: Kernel, mountpoint: str, pod_fd: int, podinit: str) -> dict[str, Any]:
    """Leave the current mount namespace for a new one, mount pod init's root on ``mountpoint``
    there, pivot into it and drop the old root. ``pod_fd`` is an fd on the pod dir pod init
    keeps open (the lock's); ``podinit`` the script pod init re-executes, in the pyrkt package.
    Returns the plan's new values: the namespace left (``apps_mntns``, an fd the apps join
    before they unshare theirs; close it once they have started), where the pod dir, the
    interpreter and the script are now, the fds the links need (kept across pod init's
    re-exec) and the import path under which pyrkt is found both in this root and, after
    setns, on the host."""
    python = os.path.realpath(sys.executable)
    package = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))  # .../pyrkt
    fds: list[int] = []
    left = os.open("/proc/self/ns/mnt", os.O_RDONLY | os.O_CLOEXEC)
    try:
        k.unshare(namespaces.CLONE_NEWNS)  # a copy of the one left, private as it was
        k.mount("tmpfs", mountpoint, "tmpfs", NOSUID_NODEV_NOEXEC, TMPFS_OPTIONS)
        k.mkdir(os.path.join(mountpoint, "proc"), 0o555)
        k.mount("proc", os.path.join(mountpoint, "proc"), "proc", NOSUID_NODEV_NOEXEC)
        k.symlink(f"/proc/self/fd/{pod_fd}", os.path.join(mountpoint, POD.lstrip("/")))
        names = list(dict.fromkeys([*LIB_DIRS, top(python), top(sys.base_prefix)]))
        for name in names:
            host = "/" + name
            if os.path.islink(host):  # merged /usr: lib -> usr/lib
                target = os.readlink(host)
                if top(target) not in names:
                    names.append(top(target))
                k.symlink(target, os.path.join(mountpoint, name))
            elif os.path.isdir(host):
                fds.append(k.clone_tree(host))
                k.symlink(f"/proc/self/fd/{fds[-1]}", os.path.join(mountpoint, name))
        fds.append(k.clone_tree(os.path.dirname(package)))
        k.symlink(f"/proc/self/fd/{fds[-1]}/pyrkt", os.path.join(mountpoint, "pyrkt"))
        k.mount("", mountpoint, "", M.MS_REMOUNT | M.MS_BIND | M.MS_RDONLY | NOSUID_NODEV_NOEXEC)
        k.pivot_root(mountpoint)
    except BaseException:
        for fd in [left, *fds]:
            os.close(fd)
        raise
    for fd in fds:
        os.set_inheritable(fd, True)  # the links must resolve in the re-executed pod init too
    return {"apps_mntns": left, "pod": POD, "python": python,
            "podinit": "/pyrkt/" + os.path.relpath(podinit, package),
            "import_path": f"/proc/self/fd/{fds[-1]}", "root_fds": fds}
