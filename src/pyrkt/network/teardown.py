"""Tearing a pod's networks down from pod init, as the pod exits (detached pods, and foreground
pods whose ``pyrkt run`` died).

Pod init lives in the pod's network and mount namespaces, in a root of its own, and cannot run
CNI plugins itself (it imports builtin modules only). Its last act is to run ``command(...)``'s argv: a fresh
interpreter that joins the host's mount and network namespaces through the fds pod init kept
from before it entered the pod's, then runs ``setup.down`` on the pod dir. Pod init waits for
it (the pod's pid namespace dies with pod init). ``down`` is idempotent: if this is cut short,
gc finishes the job.
"""

from __future__ import annotations

import os
import sys

TIMEOUT = 30.0


def command(pod_dir: str | os.PathLike[str], netns_fd: int, mntns_fd: int, *, python: str,
            import_path: str) -> list[str]:
    """The argv pod init execs (the fds must be inheritable): ``python`` as pod init's root
    names it, and ``import_path``, under which pyrkt is found both there and, once this has
    joined the host's mount namespace, on the host (a ``/proc/self/fd/N`` path)."""
    code = (f"import sys; sys.path[:0] = [{import_path!r}]; "
            "from pyrkt.network.teardown import main; sys.exit(main(sys.argv[1:]))")
    return [python, "-I", "-S", "-c", code, str(netns_fd), str(mntns_fd), str(pod_dir)]


def main(argv: list[str]) -> int:
    from pyrkt.errors import PyrktError
    from pyrkt.kernel import mount, namespaces
    from pyrkt.network import setup

    try:
        netns_fd, mntns_fd, pod_dir = int(argv[0]), int(argv[1]), argv[2]
        namespaces.setns(netns_fd, namespaces.CLONE_NEWNET, "host network namespace")
        os.close(netns_fd)
        namespaces.setns(mntns_fd, namespaces.CLONE_NEWNS, "host mount namespace")
        os.chdir("/")
        # We are still in the pod's pid namespace, where the host's /proc shows other pids:
        # the plugins (which find namespaces through /proc/<pid>/task/<tid>) get a private
        # copy of the host's mounts with a /proc of our own pid namespace.
        namespaces.unshare(namespaces.CLONE_NEWNS)
        mount.make_rprivate("/")
        mount.mount("proc", "/proc", "proc", mount.MS_NOSUID | mount.MS_NODEV | mount.MS_NOEXEC)
        setup.down(pod_dir, keep_netns=True)
        # the netns bind mount lives in the host's mount namespace: remove it there
        namespaces.setns(mntns_fd, namespaces.CLONE_NEWNS, "host mount namespace")
        os.close(mntns_fd)
        setup.down(pod_dir)
    except (OSError, PyrktError, ValueError, IndexError) as e:
        sys.stderr.write(f"pyrkt: network teardown left for gc: {e}\n")
        return 1
    return 0
