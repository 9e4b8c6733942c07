"""cgroups v1, v2 and hybrid: find the hierarchies, make a pod's cgroup, join, kill, remove.

A pod gets ``pyrkt/<uuid>`` below the root of every hierarchy it uses: on v2 (or the v2 of a
hybrid host) for tracking and race-free killing (``cgroup.kill``), and on the useful v1
controllers for accounting and, later, limits. The pod's device allow-list goes to the v1
``devices`` controller, or where there is none to a BPF_CGROUP_DEVICE program on its v2 cgroup
(``kernel.bpf``). Nothing here needs systemd.
"""

from __future__ import annotations

import errno as E
import os
import time

from pyrkt.errors import KernelError
from pyrkt.model.values import Value

TYPE_CHECKING = False
if TYPE_CHECKING:
    from pyrkt.model.devices import DeviceRule

# v1 controllers a pod cgroup is made in: accounting and tracking (pids kills, name=systemd
# is where service managers look) and the device policy (``devices``). Each costs a migration
# at start (~0.3 ms); the other isolators (blkio, cpuset, ...) will add theirs when a pod asks
# for them.
SIGKILL = 9

V1_WANTED = ("memory", "pids", "cpu", "cpuacct", "name=systemd", "devices")


class Hierarchy(Value):
    mount_point: str
    version: int
    controllers: tuple[str, ...]


def hierarchies() -> list[Hierarchy]:
    out: list[Hierarchy] = []
    seen: set[str] = set()
    with open("/proc/self/mountinfo", "rb") as f:
        for line in f:
            fields = line.split()
            sep = fields.index(b"-")
            fstype = fields[sep + 1]
            if fstype not in (b"cgroup", b"cgroup2") or fields[3] != b"/":
                continue
            point = fields[4].decode()
            if point in seen:
                continue
            seen.add(point)
            if fstype == b"cgroup2":
                out.append(Hierarchy(point, 2, ()))
            else:
                opts = fields[sep + 3].decode().split(",")
                ctrls = tuple(o for o in opts if o not in ("rw", "ro") and (not o.startswith(("xattr", "clone_", "release_agent", "noprefix", "cpuset_v2"))))
                out.append(Hierarchy(point, 1, ctrls))
    return out


def pod_hierarchies(hs: list[Hierarchy] | None = None) -> list[Hierarchy]:
    """The hierarchies a pod cgroup is made in: the v1 ones with a wanted controller, or, on a
    host without v1 controllers (pure v2), the v2 one.

    On a hybrid host the v2 hierarchy holds no controllers (they are all bound to v1), so it
    adds nothing but another migration: the pod is tracked and killed through its v1 cgroups.
    Unless the v1 side has no ``devices`` controller: then the v2 cgroup is made too, for the
    device program (``device_hierarchy``).
    """
    hs = hierarchies() if hs is None else hs
    v1 = [h for h in hs if h.version == 1 and any(c in V1_WANTED for c in h.controllers)]
    v2 = [h for h in hs if h.version == 2]
    if v1 and not any("devices" in h.controllers for h in v1):
        return v1 + v2[:1]
    return v1 or v2


def device_hierarchy(hs: list[Hierarchy]) -> Hierarchy | None:
    """Where a pod's device policy goes: the v1 ``devices`` controller when there is one (rules
    in ``devices.allow``), else the v2 hierarchy (a BPF_CGROUP_DEVICE program); None when the
    host has neither."""
    for h in hs:
        if h.version == 1 and "devices" in h.controllers:
            return h
    return next((h for h in hs if h.version == 2), None)


def limit_devices(subpath: str, rules: tuple[DeviceRule, ...]) -> str:
    """Allow the pod cgroup ``subpath`` exactly ``rules`` (everything else: EPERM on open and
    mknod). Must run before any process joins it. Returns the cgroup directory it went to."""
    h = device_hierarchy(pod_hierarchies())
    if h is None:
        raise KernelError("device policy", E.ENOENT, "no cgroup v1 devices controller and no cgroup v2 "
                          "on this host (--insecure-options=paths runs without one)")
    path = os.path.join(h.mount_point, subpath)
    if h.version == 2:
        from pyrkt.kernel import bpf

        bpf.limit_devices(path, rules)
        return path
    write(os.path.join(path, "devices.deny"), "a")
    for rule in rules:
        write(os.path.join(path, "devices.allow"), rule.v1())
    return path


def write(path: str, text: str) -> None:
    """One write to a cgroup file; an error (a rule the kernel refuses) is raised, naming it."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CLOEXEC)
        try:
            os.write(fd, text.encode())
        finally:
            os.close(fd)
    except OSError as e:
        raise KernelError("write", e.errno or E.EIO, f"{text!r} to {path}") from None


def paths_for(subpath: str, hs: list[Hierarchy] | None = None) -> list[str]:
    return [os.path.join(h.mount_point, subpath) for h in (pod_hierarchies() if hs is None else hs)]


def create(subpath: str) -> list[str]:
    """Make ``subpath`` in every pod hierarchy; returns the directories made."""
    made = []
    for path in paths_for(subpath):
        os.makedirs(path, exist_ok=True)
        made.append(path)
    return made


def join(paths: list[str], pid: int = 0) -> None:
    """Move ``pid`` (0: the caller) into each cgroup directory (ending ``prime_join``'s thread
    once done)."""
    text = str(pid).encode()
    for path in paths:
        fd = os.open(os.path.join(path, "cgroup.procs"), os.O_WRONLY | os.O_CLOEXEC)
        try:
            os.write(fd, text)
        finally:
            os.close(fd)


def prime_join() -> None:
    """Start paying, in a thread, the wait of the pod's first cgroup.procs write, and keep the
    way clear until ``join``.

    Every write to a ``cgroup.procs`` takes the kernel's global cgroup_threadgroup_rwsem for
    writing, and the first writer after a quiet spell waits for an RCU grace period (its
    rcu_sync): 5-30 ms on this kind of VM, unless the hierarchy is mounted with
    ``favordynmods``. A writer within about one grace period of the last one does not wait.
    So ``run`` calls this first: the thread writes the caller's own pid into the cgroup it is
    in already (a move to where it is: nothing changes), paying the grace period while the
    caller prepares the pod, and again every few ms until the pod's ``join`` (at most
    ``PRIME_SECONDS``). Errors end the thread: the join then pays the wait, as without this."""
    import _thread

    _priming[0] = True
    _thread.start_new_thread(_keep_primed, ())


PRIME_SECONDS = 1.0
PRIME_EVERY = 0.003
_priming = [False]


def _keep_primed() -> None:
    try:
        with open("/proc/self/cgroup", "rb") as f:
            target = own_procs_file(f.read().decode(), hierarchies())
        if target is None:
            return
        pid = str(os.getpid()).encode()
        deadline = time.monotonic() + PRIME_SECONDS
        while _priming[0] and time.monotonic() < deadline:
            fd = os.open(target, os.O_WRONLY | os.O_CLOEXEC)
            try:
                os.write(fd, pid)
            finally:
                os.close(fd)
            time.sleep(PRIME_EVERY)
    except (OSError, ValueError):
        pass


def own_procs_file(proc_cgroup: str, hs: list[Hierarchy]) -> str | None:
    """The cgroup.procs of a process's own cgroup in the first of ``hs`` it is in, from its
    /proc/PID/cgroup text."""
    lines = proc_cgroup.splitlines()
    for h in hs:
        for line in lines:
            _, ctrls, path = line.split(":", 2)
            if (h.version == 2 and not ctrls and line.startswith("0:")) or (
                    h.version == 1 and ctrls and set(ctrls.split(",")) <= set(h.controllers)):
                return os.path.join(h.mount_point, path.lstrip("/"), "cgroup.procs")
    return None


def procs(path: str) -> list[int]:
    try:
        with open(os.path.join(path, "cgroup.procs")) as f:
            return [int(x) for x in f.read().split()]
    except FileNotFoundError:
        return []


def kill(paths: list[str]) -> None:
    """SIGKILL every process in the cgroups: ``cgroup.kill`` where v2 has it, else one by one."""
    for path in paths:
        killer = os.path.join(path, "cgroup.kill")
        if os.path.exists(killer):
            try:
                fd = os.open(killer, os.O_WRONLY | os.O_CLOEXEC)
                try:
                    os.write(fd, b"1")
                finally:
                    os.close(fd)
                continue
            except OSError:
                pass
        for pid in procs(path):
            try:
                os.kill(pid, SIGKILL)
            except ProcessLookupError:
                pass


def remove(subpath: str, *, timeout: float = 5.0) -> None:
    """Remove the pod's cgroup everywhere, killing what is left in it; idempotent. Every
    hierarchy is searched, not only the ones pods use now: the host's layout may have changed."""
    paths = [p for p in paths_for(subpath, hierarchies()) if os.path.isdir(p)]
    deadline = time.monotonic() + timeout
    while paths:
        left = []
        for path in paths:
            try:
                os.rmdir(path)
            except FileNotFoundError:
                pass
            except OSError as e:
                if e.errno != E.EBUSY:
                    raise
                left.append(path)
        if not left:
            break
        if time.monotonic() > deadline:
            raise OSError(E.EBUSY, f"cgroup still busy: {left[0]}")
        kill(left)
        time.sleep(0.02)
        paths = left
