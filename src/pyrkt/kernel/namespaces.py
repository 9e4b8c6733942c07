"""Namespaces: unshare, setns, and the small per-namespace set-up (hostname, loopback)."""

from __future__ import annotations

import os

from pyrkt.errors import KernelError
from pyrkt.kernel import cdata as ctypes  # ctypes' names on _ctypes, without ctypes' import cost (cdata.py)
from pyrkt.kernel import libc as L

CLONE_NEWNS = 0x00020000
CLONE_NEWCGROUP = 0x02000000
CLONE_NEWUTS = 0x04000000
CLONE_NEWIPC = 0x08000000
CLONE_NEWUSER = 0x10000000
CLONE_NEWPID = 0x20000000
CLONE_NEWNET = 0x40000000

NS_FLAGS = {
    "mnt": CLONE_NEWNS, "uts": CLONE_NEWUTS, "ipc": CLONE_NEWIPC, "net": CLONE_NEWNET,
    "pid": CLONE_NEWPID, "cgroup": CLONE_NEWCGROUP, "user": CLONE_NEWUSER,
}


def unshare(flags: int) -> None:
    if L.libc().unshare(ctypes.c_int(flags)) != 0:
        raise KernelError("unshare", ctypes.get_errno(), hex(flags))


def setns(fd: int, nstype: int = 0, what: str = "") -> None:
    if L.libc().setns(ctypes.c_int(fd), ctypes.c_int(nstype)) != 0:
        raise KernelError("setns", ctypes.get_errno(), what or f"fd {fd}")


def open_ns(pid: int | str, name: str) -> int:
    try:
        return os.open(f"/proc/{pid}/ns/{name}", os.O_RDONLY | os.O_CLOEXEC)
    except OSError as e:
        raise KernelError("open", e.errno or 0, f"/proc/{pid}/ns/{name}") from None


def join(pid: int, names: tuple[str, ...] = ("cgroup", "ipc", "uts", "net", "pid", "mnt")) -> None:
    """Join the namespaces of ``pid`` (mnt last: it changes root and cwd). Namespaces the
    caller already shares are skipped (setns into one's own user/pid ns is refused)."""
    fds = []
    try:
        for name in names:
            if os.readlink(f"/proc/{pid}/ns/{name}") == os.readlink(f"/proc/self/ns/{name}"):
                continue
            fds.append((open_ns(pid, name), name))
        for fd, name in fds:
            setns(fd, NS_FLAGS[name], f"{name} namespace of pid {pid}")
    finally:
        for fd, _ in fds:
            os.close(fd)


UNSHARE = "/usr/bin/unshare"  # util-linux's
CAT = "/bin/cat"
READY_TIMEOUT = 10.0


def start_user_namespace() -> tuple[int, int]:
    """A new user namespace, begun: spawn util-linux's ``unshare --user cat``, reading a pipe
    we hold; ``finish_user_namespace`` then writes its maps (this process, root in its own
    namespace: setgroups stays allowed in it) and keeps an fd on it, which keeps it alive once
    the child has gone. Spawned (vfork and exec), not forked: a fork of this big process
    would copy its page tables and then every page it writes while the child lives. Started
    early, the child has unshared by the time ``finish_user_namespace`` writes its maps.
    Returns (pid, the pipe's write end)."""
    go_r, go_w = os.pipe2(os.O_CLOEXEC)
    try:
        pid = os.posix_spawn(UNSHARE, ["unshare", "--user", CAT], {},
                             file_actions=[(os.POSIX_SPAWN_DUP2, go_r, 0)])
    except OSError as e:
        os.close(go_w)
        raise KernelError("posix_spawn", e.errno or 0, f"{UNSHARE} --user {CAT} (util-linux)") from None
    finally:
        os.close(go_r)
    return pid, go_w


def cancel_user_namespace(started: tuple[int, int]) -> None:
    """End the child of a ``start_user_namespace`` that will not be finished (the pod failed)."""
    pid, go_w = started
    os.close(go_w)
    os.waitpid(pid, 0)


def finish_user_namespace(started: tuple[int, int], uid_map: str, gid_map: str) -> int:
    """Write the maps of the namespace ``start_user_namespace`` began, once its child is in it;
    an fd on it. The child then ends (its stdin closes) and is reaped."""
    import time

    pid, go_w = started
    try:
        mine = os.readlink("/proc/self/ns/user")
        deadline = time.monotonic() + READY_TIMEOUT
        while True:
            try:
                if os.readlink(f"/proc/{pid}/ns/user") != mine:
                    break
            except OSError:
                pass
            done, status = os.waitpid(pid, os.WNOHANG)
            if done:
                pid = 0
                raise KernelError("unshare", 0, f"{UNSHARE} --user exited with status {status}")
            if time.monotonic() > deadline:
                raise KernelError("unshare", 0, f"{UNSHARE} --user did not start")
            time.sleep(0.0002)
        for name, text in (("uid_map", uid_map), ("gid_map", gid_map)):
            fd = os.open(f"/proc/{pid}/{name}", os.O_WRONLY | os.O_CLOEXEC)
            try:
                os.write(fd, text.encode())
            except OSError as e:
                raise KernelError("write", e.errno or 0, f"/proc/{pid}/{name}: {text.strip()}") from None
            finally:
                os.close(fd)
        return open_ns(pid, "user")
    finally:
        os.close(go_w)
        if pid:
            os.waitpid(pid, 0)


def set_hostname(name: str) -> None:
    raw = name.encode()
    if L.libc().sethostname(raw, ctypes.c_size_t(len(raw))) != 0:
        raise KernelError("sethostname", ctypes.get_errno(), name)


SIOCGIFFLAGS = 0x8913
SIOCSIFFLAGS = 0x8914
IFF_UP = 0x1


def loopback_up() -> None:
    """Bring ``lo`` up in the current netns with two ioctls on a datagram socket, through libc
    (ctypes is loaded already; the socket module would cost another ~1 ms on the run path)."""
    lib = L.libc()
    fd = lib.socket(2, 2, 0)  # AF_INET, SOCK_DGRAM
    if fd < 0:
        raise KernelError("socket", ctypes.get_errno(), "for bringing lo up")
    try:
        req = ctypes.create_string_buffer(b"lo", 40)  # struct ifreq: name[16], flags at 16
        if lib.ioctl(fd, ctypes.c_ulong(SIOCGIFFLAGS), req) != 0:
            raise KernelError("ioctl", ctypes.get_errno(), "SIOCGIFFLAGS lo")
        flags = int.from_bytes(req.raw[16:18], "little") | IFF_UP
        req = ctypes.create_string_buffer(req.raw[:16] + flags.to_bytes(2, "little"), 40)
        if lib.ioctl(fd, ctypes.c_ulong(SIOCSIFFLAGS), req) != 0:
            raise KernelError("ioctl", ctypes.get_errno(), "SIOCSIFFLAGS lo")
    finally:
        os.close(fd)
