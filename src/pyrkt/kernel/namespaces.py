"""Namespaces: unshare, setns, and the small per-namespace set-up (hostname, loopback)."""

from __future__ import annotations

import ctypes
import os

from pyrkt.errors import KernelError
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


def new_user_namespace(uid_map: str, gid_map: str) -> int:
    """An fd on a new user namespace with these maps (lines of /proc/PID/uid_map). A short child
    unshares it and waits while this process, root in its own namespace, writes the maps; the
    fd (close-on-exec) keeps the namespace alive after the child has gone, for ``setns`` and
    idmapped mounts. setgroups stays allowed in it (maps written by a privileged parent)."""
    return finish_user_namespace(start_user_namespace(), uid_map, gid_map)


def start_user_namespace() -> tuple[int, int, int]:
    """The first half of ``new_user_namespace``: fork the child that unshares it. Started early
    (the run path does other work meanwhile), its maps are written by ``finish_user_namespace``
    without waiting for the child to be scheduled. Returns (pid, ready fd, go fd)."""
    ready_r, ready_w = os.pipe2(os.O_CLOEXEC)
    go_r, go_w = os.pipe2(os.O_CLOEXEC)
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child of a fork
        code = 1
        try:
            os.close(ready_r)
            os.close(go_w)
            if L.libc().unshare(ctypes.c_int(CLONE_NEWUSER)) != 0:
                os.write(ready_w, str(ctypes.get_errno()).encode())
            else:
                os.write(ready_w, b"u")
                os.read(go_r, 1)  # until the parent closes its end
                code = 0
        finally:
            os._exit(code)
    os.close(ready_w)
    os.close(go_r)
    return pid, ready_r, go_w


def finish_user_namespace(started: tuple[int, int, int], uid_map: str, gid_map: str) -> int:
    """Write the maps of the namespace ``start_user_namespace`` began; an fd on it."""
    pid, ready_r, go_w = started
    try:
        answer = os.read(ready_r, 16)
        if answer != b"u":
            raise KernelError("unshare", int(answer or b"0"), "user namespace")
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
        os.close(ready_r)
        os.close(go_w)
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
        ctypes.memmove(ctypes.addressof(req) + 16, flags.to_bytes(2, "little"), 2)
        if lib.ioctl(fd, ctypes.c_ulong(SIOCSIFFLAGS), req) != 0:
            raise KernelError("ioctl", ctypes.get_errno(), "SIOCSIFFLAGS lo")
    finally:
        os.close(fd)
