"""cgroups v1, v2 and hybrid: find the hierarchies, make a pod's cgroup and its apps', limit,
join, kill, remove.

A pod gets ``pyrkt/<uuid>`` below the root of every hierarchy it uses: on v2 (or the v2 of a
hybrid host) for tracking and race-free killing (``cgroup.kill``), and on the useful v1
controllers for accounting and limits. The pod's device allow-list goes to the v1 ``devices``
controller, or where there is none to a BPF_CGROUP_DEVICE program on its v2 cgroup
(``kernel.bpf``). Nothing here needs systemd.

Each app gets ``pyrkt/<uuid>/<app>`` where a controller that limits it is (v1 memory, cpu,
cpuacct, pids; v2 with memory, cpu or pids enabled), with its limits written before it joins.
On v2 a cgroup whose children have controllers may hold no process, so there pod init lives
in ``pyrkt/<uuid>/init.scope`` (as rkt's systemd; no app name has a dot) and the controllers
are enabled on the way down. What to make and write is planned by pure functions
(``pod_steps``, ``app_steps``) that the recording kernel of the unit tests runs too.
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
    from pyrkt.model.plan import Limits

    Step = tuple[str, ...]  # ("cgroup_mkdir", path) or ("write", path, text)

# v1 controllers a pod cgroup is made in: accounting and tracking (pids kills, name=systemd
# is where service managers look) and the device policy (``devices``). Each costs a migration
# at start (~0.3 ms); the other isolators (blkio, cpuset, ...) will add theirs when a pod asks
# for them.
SIGKILL = 9

V1_WANTED = ("memory", "pids", "cpu", "cpuacct", "name=systemd", "devices")
APP_V1 = ("memory", "cpu", "cpuacct", "pids")  # the v1 controllers an app gets a cgroup of its own in
APP_V2 = ("memory", "cpu", "pids")  # the v2 controllers enabled for apps
INIT_LEAF = "init.scope"  # pod init's cgroup on v2, beside the apps'


def app_dir(app: str) -> str:
    """The name of ``app``'s cgroup in its pod's: the app's name, but for the one a v1 cgroup
    file has (an app name has no dot)."""
    return "tasks.app" if app == "tasks" else app
CFS_PERIOD = 100_000  # µs, the kernel's default period (rkt's CPUQuota through systemd)
# isolator -> the controller it needs, for the warning when a host has none
NEEDS = (("resource/memory", "memory"), ("resource/cpu", "cpu"), ("os/linux/cpu-shares", "cpu"),
         ("pyrkt/pids-limit", "pids"))


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
                out.append(Hierarchy(point, 2, v2_controllers(point)))
            else:
                opts = fields[sep + 3].decode().split(",")
                ctrls = tuple(o for o in opts if o not in ("rw", "ro") and (not o.startswith(("xattr", "clone_", "release_agent", "noprefix", "cpuset_v2"))))
                out.append(Hierarchy(point, 1, ctrls))
    return out


def v2_controllers(point: str) -> tuple[str, ...]:
    """The controllers a cgroup2 hierarchy offers (none on a hybrid host that binds all to v1)."""
    try:
        with open(os.path.join(point, "cgroup.controllers")) as f:
            return tuple(f.read().split())
    except OSError:
        return ()


def enabled(path: str) -> tuple[str, ...]:
    """The controllers a v2 cgroup enables for its children."""
    try:
        with open(os.path.join(path, "cgroup.subtree_control")) as f:
            return tuple(f.read().split())
    except OSError:
        return ()


def pod_hierarchies(hs: list[Hierarchy] | None = None) -> list[Hierarchy]:
    """The hierarchies a pod cgroup is made in: the v1 ones with a wanted controller, or, on a
    host without v1 controllers (pure v2), the v2 one.

    On a hybrid host the v2 hierarchy holds no controllers (they are all bound to v1), so it
    adds nothing but another migration: the pod is tracked and killed through its v1 cgroups.
    Unless the v1 side has no ``devices`` controller, or v2 offers one that limits apps: then
    the v2 cgroup is made too, for the device program (``device_hierarchy``) or the limits.
    """
    hs = hierarchies() if hs is None else hs
    v1 = [h for h in hs if h.version == 1 and any(c in V1_WANTED for c in h.controllers)]
    v2 = [h for h in hs if h.version == 2]
    if v1 and (not any("devices" in h.controllers for h in v1)
               or any(c in APP_V2 for h in v2[:1] for c in h.controllers)):
        return v1 + v2[:1]
    return v1 or v2


def app_controllers(h: Hierarchy) -> tuple[str, ...]:
    """The controllers of ``h`` an app gets its own cgroup in."""
    return tuple(c for c in h.controllers if c in (APP_V1 if h.version == 1 else APP_V2))


def pod_steps(hs: list[Hierarchy], subpath: str) -> tuple[list[Step], list[str]]:
    """What makes the pod's cgroup ``subpath`` in each of ``hs`` (the pod hierarchies), and
    the directories pod init joins. On v2 with controllers for the apps: enabled from the root
    down to the pod, and pod init in a leaf of its own (a cgroup with controllers enabled for
    its children may hold no process)."""
    steps: list[Step] = []
    joins = []
    for h in hs:
        pod = os.path.join(h.mount_point, subpath)
        enable = app_controllers(h) if h.version == 2 else ()
        if not enable:
            steps.append(("cgroup_mkdir", pod))
            joins.append(pod)
            continue
        text = " ".join("+" + c for c in enable)
        path = h.mount_point
        steps.append(("write", os.path.join(path, "cgroup.subtree_control"), text))
        for part in subpath.split("/"):
            path = os.path.join(path, part)
            steps += [("cgroup_mkdir", path), ("write", os.path.join(path, "cgroup.subtree_control"), text)]
        steps.append(("cgroup_mkdir", os.path.join(pod, INIT_LEAF)))
        joins.append(os.path.join(pod, INIT_LEAF))
    return steps, joins


class AppCgroup(Value):
    """An app's cgroups: the directories it joins, the file counting its OOM kills ("" without
    a memory controller) and the isolators no controller of this host can apply."""

    dirs: tuple[str, ...] = ()
    oom_events: str = ""
    skipped: tuple[str, ...] = ()


def app_steps(hs: list[Hierarchy], subpath: str, app: str, limits: Limits) -> tuple[list[Step], AppCgroup]:
    """What makes the cgroup of ``app`` in the pod ``subpath`` and writes its limits, in each
    pod hierarchy with a controller that limits it; and the ``AppCgroup`` that results."""
    steps: list[Step] = []
    dirs = []
    oom = ""
    have: set[str] = set()
    for h in hs:
        ctrls = app_controllers(h)
        if not ctrls:
            continue
        have.update(ctrls)
        path = os.path.join(h.mount_point, subpath, app_dir(app))
        dirs.append(path)
        steps.append(("cgroup_mkdir", path))
        steps += [("write", os.path.join(path, name), text) for name, text in limit_files(h.version, ctrls, limits)]
        if "memory" in ctrls:
            oom = os.path.join(path, "memory.oom_control" if h.version == 1 else "memory.events")
    skipped = tuple(name for name, ctrl in NEEDS if name in limits.given and ctrl not in have)
    return steps, AppCgroup(tuple(dirs), oom, skipped)


def pod_limit_steps(hs: list[Hierarchy], subpath: str, limits: Limits) -> tuple[list[Step], tuple[str, ...]]:
    """What writes the pod's own ``limits`` on its cgroup ``subpath`` (made by ``pod_steps``),
    in each pod hierarchy with a controller that limits them; and the isolators no controller
    of this host can apply."""
    steps: list[Step] = []
    have: set[str] = set()
    for h in hs:
        ctrls = app_controllers(h)  # on v2 the ones pod_steps enabled down to the pod
        have.update(ctrls)
        path = os.path.join(h.mount_point, subpath)
        steps += [("write", os.path.join(path, name), text) for name, text in limit_files(h.version, ctrls, limits)]
    return steps, tuple(name for name, ctrl in NEEDS if name in limits.given and ctrl not in have)


def limit_pod(subpath: str, limits: Limits) -> tuple[str, ...]:
    steps, skipped = pod_limit_steps(_made_in or pod_hierarchies(), subpath, limits)
    run_steps(steps)
    return skipped


def limit_files(version: int, ctrls: tuple[str, ...], lim: Limits) -> list[tuple[str, str]]:
    """(file, text) for the limits ``ctrls`` of a cgroup of ``version`` apply. A CPU request
    without cpu-shares becomes the CPU weight as Kubernetes maps it (1024 per core)."""
    out = []
    shares = lim.cpu_shares or (min(262144, max(2, lim.cpu_request * 1024 // 1000)) if lim.cpu_request else 0)
    if "memory" in ctrls:
        if lim.memory:
            out.append(("memory.limit_in_bytes" if version == 1 else "memory.max", str(lim.memory)))
        if lim.memory_request:
            out.append(("memory.soft_limit_in_bytes" if version == 1 else "memory.low", str(lim.memory_request)))
    if "cpu" in ctrls:
        if lim.cpu:
            quota = lim.cpu * CFS_PERIOD // 1000
            out.append(("cpu.cfs_quota_us", str(quota)) if version == 1 else ("cpu.max", f"{quota} {CFS_PERIOD}"))
        if shares:
            out.append(("cpu.shares", str(shares)) if version == 1
                       else ("cpu.weight", str(1 + (shares - 2) * 9999 // 262142)))
    if "pids" in ctrls and lim.pids:
        out.append(("pids.max", str(lim.pids)))
    return out


def run_steps(steps: list[Step]) -> None:
    """Make and write as ``steps`` say. A controller v2 will not enable (the "root" of a
    nested host that holds processes, a controller a parent lacks) leaves the apps without it:
    ``create_app`` then finds it missing and names the limits it cannot apply."""
    for step in steps:
        if step[0] == "cgroup_mkdir":
            os.makedirs(step[1], exist_ok=True)
        elif step[1].endswith("/cgroup.subtree_control"):
            try:
                write(step[1], step[2])
            except KernelError:
                pass
        else:
            write(step[1], step[2])


def device_hierarchy(hs: list[Hierarchy]) -> Hierarchy | None:
    """Where a pod's device policy goes: the v1 ``devices`` controller when there is one (rules
    in ``devices.allow``), else the v2 hierarchy (a BPF_CGROUP_DEVICE program); None when the
    host has neither."""
    for h in hs:
        if h.version == 1 and "devices" in h.controllers:
            return h
    return next((h for h in hs if h.version == 2), None)


def limit_devices(subpath: str, rules: tuple[DeviceRule, ...], *, apps_own: bool = False) -> str:
    """Allow the pod cgroup ``subpath`` exactly ``rules`` (everything else: EPERM on open and
    mknod). Must run before any process joins it. Returns the cgroup directory it went to.
    ``apps_own``: its apps will hold lists of their own (``limit_app_devices``): on v2 the
    pod's program then lets an app's program take its place in the app's cgroup."""
    h = _device_hierarchy()
    path = os.path.join(h.mount_point, subpath)
    if h.version == 2:
        from pyrkt.kernel import bpf

        bpf.limit_devices(path, rules, bpf.BPF_F_ALLOW_OVERRIDE if apps_own else 0)
        return path
    write(os.path.join(path, "devices.deny"), "a")
    write_each(os.path.join(path, "devices.allow"), [rule.v1() for rule in rules])
    return path


def _device_hierarchy() -> Hierarchy:
    h = device_hierarchy(_made_in or pod_hierarchies())
    if h is None:
        raise KernelError("device policy", E.ENOENT, "no cgroup v1 devices controller and no cgroup v2 "
                          "on this host (--insecure-options=paths runs without one)")
    return h


def app_device_steps(h: Hierarchy, subpath: str, app: str, rules: tuple[DeviceRule, ...]) -> tuple[list[Step], str]:
    """What gives ``app`` of the pod ``subpath`` exactly ``rules`` in a devices cgroup of its
    own (in ``h``, the device hierarchy), and that cgroup. v1: a child can never be allowed
    more than its parent, and an allow written to the parent later is not passed on to the
    children it has (only denials are), so the pod's cgroup gets the rules it lacks and the
    app's, new, drops what it copied of the pod's (``a`` denied) for exactly its own; the
    pod's other apps keep theirs. v2: the cgroup only; its program is attached by
    ``limit_app_devices`` (it runs instead of the pod's, see ``limit_devices``)."""
    pod = os.path.join(h.mount_point, subpath)
    path = os.path.join(pod, app_dir(app))
    steps: list[Step] = [("cgroup_mkdir", path)]
    if h.version == 1:
        steps += [("write", os.path.join(pod, "devices.allow"), r.v1()) for r in rules]
        steps.append(("write", os.path.join(path, "devices.deny"), "a"))
        steps += [("write", os.path.join(path, "devices.allow"), r.v1()) for r in rules]
    return steps, path


def limit_app_devices(subpath: str, app: str, rules: tuple[DeviceRule, ...]) -> str:
    """Allow ``app`` of the pod ``subpath`` exactly ``rules`` (``app_device_steps``), before it
    joins; returns the cgroup directory it joins for them."""
    h = _device_hierarchy()
    steps, path = app_device_steps(h, subpath, app, rules)
    run_steps(steps)
    if h.version == 2:
        from pyrkt.kernel import bpf

        bpf.limit_devices(path, rules)
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


def write_each(path: str, texts: list[str]) -> None:
    """``write`` of each of ``texts`` in turn, one write(2) each (devices.allow takes one rule per
    write) through one open of ``path`` (an open of a cgroup file costs more than the write)."""
    if not texts:
        return
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CLOEXEC)
    except OSError as e:
        raise KernelError("write", e.errno or E.EIO, f"{texts[0]!r} to {path}") from None
    try:
        for text in texts:
            try:
                os.write(fd, text.encode())
            except OSError as e:
                raise KernelError("write", e.errno or E.EIO, f"{text!r} to {path}") from None
    finally:
        os.close(fd)


def paths_for(subpath: str, hs: list[Hierarchy] | None = None) -> list[str]:
    return [os.path.join(h.mount_point, subpath) for h in (pod_hierarchies() if hs is None else hs)]


_made_in: list[Hierarchy] = []  # the pod hierarchies ``create`` found, for its apps' cgroups


def create(subpath: str) -> list[str]:
    """Make the pod's cgroup ``subpath`` in every pod hierarchy; returns the directories pod
    init joins."""
    primed = _primed_hierarchies.pop() if _primed_hierarchies else None
    fresh = primed is not None and time.monotonic() - primed[0] < PRIME_SECONDS
    _made_in[:] = primed[1] if primed is not None and fresh else pod_hierarchies()
    steps, joins = pod_steps(_made_in, subpath)
    run_steps(steps)
    return joins


def create_app(subpath: str, app: str, limits: Limits) -> AppCgroup:
    """Make ``app``'s cgroups in the pod ``subpath`` with its limits written (on v2 with the
    controllers the pod's cgroup enables for its children)."""
    hs = [h if h.version == 1 else h.replace(controllers=enabled(os.path.join(h.mount_point, subpath)))
          for h in (_made_in or pod_hierarchies())]
    steps, made = app_steps(hs, subpath, app, limits)
    run_steps(steps)
    return made


def enter_paths(subpath: str, app: str) -> list[str]:
    """The cgroups a process entering ``app`` joins: the app's own where it has one, the
    pod's elsewhere (pod init's on v2); only those that exist."""
    out = []
    for pod in paths_for(subpath):
        for path in (os.path.join(pod, app_dir(app)), os.path.join(pod, INIT_LEAF), pod):
            if os.path.isdir(path):
                out.append(path)
                break
    return out


def tree(paths: list[str]) -> list[str]:
    """``paths`` and every cgroup below them, children before their parents."""
    out = []
    for top in paths:
        for d, _, _ in os.walk(top, topdown=False):
            out.append(d)
    return out


def join(paths: list[str], pid: int = 0) -> None:
    """Move ``pid`` (0: the caller) into each cgroup directory (ending ``prime_join``'s thread
    once done).

    A single-threaded caller moving itself writes "0" to a v1 cgroup's ``tasks`` rather than
    to its ``cgroup.procs``: the same move (its one thread is the process), but the kernel
    moves the current thread without taking cgroup_threadgroup_rwsem, so it never waits for
    the grace period ``prime_join`` is about (0.1 ms against 5-30 ms). An added app joins its
    cgroups so, in pod init's child. v2 has no such file: ``cgroup.procs`` there."""
    text = str(pid).encode()
    own = pid == 0 and single_threaded()
    for path in paths:
        fd = -1
        if own:
            try:
                fd = os.open(os.path.join(path, "tasks"), os.O_WRONLY | os.O_CLOEXEC)
            except FileNotFoundError:
                pass
        if fd < 0:
            fd = os.open(os.path.join(path, "cgroup.procs"), os.O_WRONLY | os.O_CLOEXEC)
        try:
            os.write(fd, text)
        finally:
            os.close(fd)
    _priming[0] = False


def single_threaded() -> bool:
    try:
        return len(os.listdir("/proc/self/task")) == 1
    except OSError:
        return False


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
    ``PRIME_SECONDS``). Errors end the thread: the join then pays the wait, as without this.
    Where the pod's hierarchies are all v1, pod init joins them itself through ``tasks``
    (``join``), which waits for nothing: no thread is started then. The hierarchies read here
    serve the pod's ``create`` that follows (within ``PRIME_SECONDS``): mountinfo read once."""
    try:
        hs = pod_hierarchies()
    except (OSError, ValueError):
        return  # the join pays the wait, if any; create reads (and reports) them itself
    _primed_hierarchies[:] = [(time.monotonic(), hs)]
    if all(h.version == 1 for h in hs):
        return  # pod init joins v1 cgroups through `tasks`: no grace period to wait for
    import _thread

    _priming[0] = True
    _thread.start_new_thread(_keep_primed, ())


def own_join_waits() -> bool:
    """Whether a process joining its own cgroups of a pod pays the grace period (``join``: on
    v2, not v1), so that ``prime_join`` is worth starting for it."""
    return any(h.version == 2 for h in pod_hierarchies())


PRIME_SECONDS = 1.0
PRIME_EVERY = 0.003
_priming = [False]
_primed_hierarchies: list[tuple[float, list[Hierarchy]]] = []  # (when, what) prime_join read, for create


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
    paths = tree([p for p in paths_for(subpath, hierarchies()) if os.path.isdir(p)])
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
