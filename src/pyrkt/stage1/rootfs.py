"""The filesystem an app sees, mounted under its root before pivot_root: a fresh /proc, a
minimal /dev, read-only /sys, the pod's /etc/hostname, hosts and resolv.conf, and rkt's
read-only and inaccessible /proc and /sys paths (rkt-behaviour §3.6).

Targets are made inside the root without following symlinks out of it: a symlink standing
where a mount target must be is replaced (in the app's writable layer).
"""

from __future__ import annotations

import os
import stat

from pyrkt.kernel import mount as M

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

DEVICES = ("null", "zero", "full", "random", "urandom", "tty")
# rkt's lists, plus what runc and crun make read-only or mask: all of /proc/sys (pod init has
# written the pod's --sysctl values before any app starts) and the kernel's debug files.
READ_ONLY = ("/proc/bus", "/proc/sys/kernel/core_pattern", "/proc/sys/kernel/modprobe",
             "/proc/sys/vm/panic_on_oom", "/proc/sysrq-trigger", "/proc/sys", "/proc/irq", "/proc/fs")
INACCESSIBLE = ("/proc/config.gz", "/proc/kallsyms", "/proc/sched_debug", "/proc/kcore", "/proc/kmem",
                "/proc/mem", "/proc/keys", "/proc/timer_list", "/sys/firmware", "/sys/fs",
                "/sys/hypervisor", "/sys/module", "/sys/power", "/proc/acpi", "/proc/latency_stats",
                "/proc/timer_stats", "/proc/scsi", "/sys/devices/virtual/powercap")
NOSUID_NODEV_NOEXEC = M.MS_NOSUID | M.MS_NODEV | M.MS_NOEXEC


def setup(root: str, spec: dict[str, Any], plan: dict[str, Any]) -> None:
    proc = make_dir(root, "proc")
    M.mount("proc", proc, "proc", NOSUID_NODEV_NOEXEC)
    setup_dev(root, interactive=plan["interactive"])
    sys_dir = make_dir(root, "sys")
    M.mount("sysfs", sys_dir, "sysfs", NOSUID_NODEV_NOEXEC | M.MS_RDONLY)
    etc = plan["etc"]
    bind_file(etc["hostname"], root, "etc/hostname")
    if etc.get("hosts") and (etc.get("hosts_override") or not exists_in(root, "etc/hosts")):
        bind_file(etc["hosts"], root, "etc/hosts", readonly=bool(etc.get("hosts_readonly")))
    if etc.get("resolv"):
        bind_file(etc["resolv"], root, "etc/resolv.conf", readonly=True)
    if spec["mask_paths"]:
        mask(root)


def inside(root: str, rel: str) -> str:
    return os.path.join(root, rel.lstrip("/"))


def exists_in(root: str, rel: str) -> bool:
    return os.path.lexists(inside(root, rel))


def make_dir(root: str, rel: str, mode: int = 0o755) -> str:
    """``root/rel`` as a real directory, made component by component without leaving root."""
    path = root
    for part in rel.strip("/").split("/"):
        path = os.path.join(path, part)
        try:
            st = os.lstat(path)
        except FileNotFoundError:
            os.mkdir(path, mode)
            continue
        if not stat.S_ISDIR(st.st_mode):
            os.unlink(path)  # a symlink or file where a directory must be: replace it
            os.mkdir(path, mode)
    return path


def make_file(root: str, rel: str, mode: int = 0o644) -> str:
    parent, name = os.path.split(rel.strip("/"))
    d = make_dir(root, parent) if parent else root
    path = os.path.join(d, name)
    try:
        st = os.lstat(path)
        if stat.S_ISREG(st.st_mode):
            return path
        if stat.S_ISDIR(st.st_mode):
            os.rmdir(path)
        else:
            os.unlink(path)
    except FileNotFoundError:
        pass
    os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_CLOEXEC | os.O_NOFOLLOW, mode))
    return path


def bind_file(source: str, root: str, rel: str, *, readonly: bool = False) -> None:
    M.bind(source, make_file(root, rel), readonly=readonly)


def setup_dev(root: str, *, interactive: bool) -> None:
    dev = make_dir(root, "dev")
    M.mount("tmpfs", dev, "tmpfs", M.MS_NOSUID | M.MS_STRICTATIME, "mode=755,size=65536k")
    for name in DEVICES:
        make_device(f"/dev/{name}", os.path.join(dev, name))
    console = os.path.join(dev, "console")
    os.close(os.open(console, os.O_WRONLY | os.O_CREAT | os.O_CLOEXEC, 0o600))
    tty = os.ttyname(0) if interactive and os.isatty(0) else "/dev/null"
    M.bind(tty, console)
    pts = os.path.join(dev, "pts")
    os.mkdir(pts, 0o755)
    M.mount("devpts", pts, "devpts", M.MS_NOSUID | M.MS_NOEXEC, "newinstance,ptmxmode=0666,mode=0620,gid=5")
    os.symlink("pts/ptmx", os.path.join(dev, "ptmx"))
    shm = os.path.join(dev, "shm")
    os.mkdir(shm, 0o1777)
    M.mount("shm", shm, "tmpfs", NOSUID_NODEV_NOEXEC, "mode=1777,size=65536k")
    mq = os.path.join(dev, "mqueue")
    os.mkdir(mq, 0o755)
    M.mount("mqueue", mq, "mqueue", NOSUID_NODEV_NOEXEC)
    for name, target in (("fd", "/proc/self/fd"), ("stdin", "/proc/self/fd/0"),
                         ("stdout", "/proc/self/fd/1"), ("stderr", "/proc/self/fd/2")):
        os.symlink(target, os.path.join(dev, name))


def make_device(host: str, target: str) -> None:
    """``target`` as the same character device as the host's ``host`` (mode 0666): a node made
    with mknod, as crun does, which costs less to make and to tear down than a bind mount;
    a bind mount of the host's where mknod is not allowed."""
    try:
        os.mknod(target, stat.S_IFCHR | 0o666, os.stat(host).st_rdev)
        os.chmod(target, 0o666)  # mknod's mode went through the umask
    except PermissionError:
        os.close(os.open(target, os.O_WRONLY | os.O_CREAT | os.O_CLOEXEC, 0o666))
        M.bind(host, target)


def mask(root: str) -> None:
    for rel in INACCESSIBLE:
        path = inside(root, rel)
        try:
            st = os.lstat(path)
        except OSError:
            continue  # absent on this kernel (e.g. /proc/kcore without CONFIG_PROC_KCORE)
        if stat.S_ISDIR(st.st_mode):
            M.mount("tmpfs", path, "tmpfs", M.MS_RDONLY | NOSUID_NODEV_NOEXEC, "size=0,mode=000")
        else:
            M.bind("/dev/null", path)
    for rel in READ_ONLY:
        path = inside(root, rel)
        if not os.path.lexists(path):
            continue
        M.bind(path, path, recursive=True, readonly=True, flags=NOSUID_NODEV_NOEXEC)
