"""Plans: what stage1 will do to set up an app, as plain typed values (issue 9's seam).

Pure planners (``pyrkt.stage1.plan``) turn the pod manifest, the runtime config and the image
into an ``AppPlan``; one executor (``pyrkt.stage1.execute``) applies it through a ``Kernel``
(``pyrkt.kernel.api``): the Linux one, or a recording fake in the unit tests. Nothing here does
I/O. Plans cross a fork and pod init's re-exec as marshal'able dicts: ``to_plain`` and
``from_plain`` are the one pair of functions for that.

A ``Mount``'s target is an absolute path inside the app's root; the executor makes it there
(``make``) without following a link out of the root, and skips it by ``when``:

- ``make``: ``"dir"`` (a directory, replacing a file or link in the way), ``"file"`` (an empty
  regular file, likewise), ``"none"`` (use what is there), or ``"mask"``: whatever is at the
  target decides, a directory gets an empty read-only tmpfs and anything else /dev/null bound
  over it (rkt's inaccessible paths).
- ``when``: ``""`` always, ``"present"`` only if the target exists in the image (masked and
  read-only paths a kernel may lack), ``"absent"`` only if it does not (the fallback /etc/hosts).

An app's ``volumes`` are binds (``MS_REC``: with the sub-mounts, ``MS_RDONLY``: read-only all
through) made after the first ``volumes_after`` of its ``mounts``: their target is resolved
inside the root as the app will see it (an image's links followed, never out of the root) and
made like the source.
With ``read_only_root`` the root itself is made read-only once everything is in place.

A bind with ``MS_RDONLY`` (or other flags beyond ``MS_BIND|MS_REC``) is one value: the executor
binds, then remounts with the flags. A bind whose ``source`` is ``""`` binds the target onto
itself (read-only /proc paths).

An app's root is an overlay of its ``lowers`` with ``upper``/``work``, or, with no ``lowers``
(``--no-overlay``), ``rootfs`` itself: a copy of its image made at prepare, bound onto itself.
"""

from __future__ import annotations

from pyrkt.model.devices import DeviceRule
from pyrkt.model.values import Value

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, TypeVar

    V = TypeVar("V", bound=Value)


class Mount(Value):
    source: str
    target: str
    fstype: str = ""
    flags: int = 0
    data: str = ""
    make: str = "none"
    when: str = ""
    propagation: str = ""  # a volume's bind: "" (private), "rslave" or "rshared" (execute.clone_propagated)


class Device(Value):
    """A device node made in the app's /dev: mknod, or where that is not allowed a bind of the
    host's node ``host``."""

    path: str  # inside the app's root, e.g. /dev/null
    kind: str  # "c" or "b"
    major: int
    minor: int
    mode: int = 0o666
    uid: int = 0
    gid: int = 0
    host: str = ""


class Symlink(Value):
    target: str  # what the link points to
    path: str  # the link, inside the app's root
    when: str = ""  # "absent": only where the image has nothing and the parent is a directory of
    # the image; such a link is made right on the overlay, before any mount (rkt's /etc/mtab)


class File(Value):
    """A small file written inside the app's root (fly's resolv.conf copy, its hosts stub)."""

    path: str
    text: str
    when: str = ""  # as Mount.when


class Limits(Value):
    """An app's resource limits, as its cgroup gets them (``pyrkt.model.isolators`` reads them
    from its isolators); 0: none. ``given``: the isolators that set them (the default pids
    limit is not one), named in a warning where the host has no controller for one."""

    memory: int = 0  # bytes: memory.limit_in_bytes / memory.max
    memory_request: int = 0  # bytes: memory.soft_limit_in_bytes / memory.low
    cpu: int = 0  # millicores: the CFS quota per 100 ms period
    cpu_request: int = 0  # millicores: the CPU weight, unless cpu_shares says
    cpu_shares: int = 0  # os/linux/cpu-shares: cpu.shares / cpu.weight
    pids: int = 0  # pids.max
    given: tuple[str, ...] = ()


class AppPlan(Value):
    name: str
    argv: tuple[str, ...]
    env: tuple[str, ...] = ()  # "KEY=VALUE"
    user: str = "0"
    group: str = "0"
    supplementary_gids: tuple[int, ...] = ()
    cwd: str = "/"
    lowers: tuple[str, ...] = ()  # overlay lower dirs, top first
    upper: str = ""
    work: str = ""
    rootfs: str = ""
    log: str = ""
    volumes: tuple[Mount, ...] = ()
    volumes_after: int = 0
    mounts: tuple[Mount, ...] = ()
    devices: tuple[Device, ...] = ()
    symlinks: tuple[Symlink, ...] = ()
    files: tuple[File, ...] = ()
    read_only_root: bool = False
    switch_root: str = "pivot"  # "pivot" (default flavor) or "chroot" (fly)
    caps: tuple[int, ...] | None = None  # None: leave capabilities to the uid change (fly)
    seccomp: bytes = b""  # BPF program; b"": no filter
    no_new_privs: bool = True
    rlimits: tuple[tuple[int, int, int], ...] = ()  # (resource, soft, hard)
    oom_score_adj: int | None = None
    limits: Limits = Limits()
    cgroups: tuple[str, ...] = ()  # the app's own cgroup directories, joined before it unshares
    cgroupns: bool = False  # a cgroup namespace of its own, rooted where it is then (default flavor)
    oom_events: str = ""  # its memory cgroup's file that counts OOM kills ("oom_kill N")
    # an allow-list of its own, in a devices cgroup of its own (an app added to a mutable pod,
    # with its own --device nodes); None: the pod's, from the pod's cgroup
    device_rules: tuple[DeviceRule, ...] | None = None
    event_handlers: tuple[tuple[str, tuple[str, ...]], ...] = ()
    # --private-users: the host id of the app's root (0: no user namespace). The layers are seen
    # through the namespace's id map (prepare made a chowned copy where they cannot be); binds
    # whose source is at or below ``pod_files`` (the pod dir: its /etc files, empty volumes) are
    # the pod's own: idmapped too, or chowned by the shift where the kernel cannot idmap the
    # data dir's filesystem (``idmapped`` False). Host volumes: neither.
    id_shift: int = 0
    pod_files: str = ""
    idmapped: bool = True
    # the app's stdio modes (pyrkt.model.stdio): "null" /dev/null, "log" pod init's pipe to its
    # log, "stream" a pipe of its iomux helper, "tty" a pty the app opens in its own /dev/pts
    stdin: str = "null"
    stdout: str = "log"
    stderr: str = "log"
    # a privileged app (``--privileged``): every capability, no seccomp filter, no masked or
    # read-only /proc and /sys paths, /sys read-write; its devices as the host's
    privileged: bool = False

    @property
    def attachable(self) -> bool:
        return any(m in ("stream", "tty") for m in (self.stdin, self.stdout, self.stderr))


class EtcFiles(Value):
    """The pod's /etc files bound into every app (default flavor): host paths, "" for none."""

    hostname: str
    hosts: str = ""
    hosts_override: bool = False  # bind over the image's /etc/hosts (else only where it has none)
    hosts_readonly: bool = False
    resolv: str = ""


class PodPlan(Value):
    """The pod as pod init will set it up (default flavor): the namespaces it unshares (with
    ``net``: "none" also gets a loopback brought up), hostname, cgroup and device allow-list
    (``device_rules`` None: no policy, --insecure-options=paths), the checked sysctls (key,
    path below /proc/sys, value), the apps, the /etc files and console their mounts were
    planned with, and the paths pod init writes (relative to ``pod``)."""

    uuid: str
    hostname: str
    ns_flags: int
    net: str  # "host", "none" or "cni"
    cgroup: str
    apps: tuple[AppPlan, ...]
    etc: EtcFiles
    version: int = 0
    device_rules: tuple[DeviceRule, ...] | None = None
    apps_own_devices: bool = False  # a mutable pod: each app holds its own list (AppPlan.device_rules)
    limits: Limits = Limits()  # the pod's own, on its cgroup above its apps' (a pod manifest's isolators)
    sysctls: tuple[tuple[str, str, str], ...] = ()
    console: str = "/dev/null"
    interactive: bool = False
    stop_timeout: float = 10.0
    tee: bool = False
    pod: str = ""
    status_dir: str = ""
    pids_dir: str = ""
    supervisor_status: str = ""
    state_file: str = ""
    python: str = ""
    podinit: str = ""
    private_users: str = ""  # "SHIFT:COUNT": the pod's user namespace (model.idmap), "" for none
    host_pid: bool = False  # --pid=host: no PID namespace of its own; pod init is the apps' subreaper


_NESTED: dict[str, type[Value]] = {"mounts": Mount, "devices": Device, "symlinks": Symlink, "files": File,
                                   "apps": AppPlan, "etc": EtcFiles, "device_rules": DeviceRule,
                                   "limits": Limits, "volumes": Mount}


def to_plain(value: Value) -> dict[str, Any]:
    """``value`` as a dict of marshal'able things (nested values become dicts, tuples stay)."""
    out: dict[str, Any] = {}
    for name in type(value)._fields:
        v = getattr(value, name)
        if isinstance(v, Value):
            v = to_plain(v)
        elif isinstance(v, tuple) and v and isinstance(v[0], Value):
            v = tuple(to_plain(x) for x in v)
        out[name] = v
    return out


def from_plain(cls: type[V], d: dict[str, Any]) -> V:
    """The value ``to_plain`` gave ``d`` for; lists (from JSON) are read as tuples. Keys that are
    not fields (what pod init adds at run time: fds, the teardown) are left out."""
    kwargs: dict[str, Any] = {}
    for name in cls._fields:
        if name not in d:
            continue
        v = d[name]
        nested = _NESTED.get(name)
        if nested is not None and isinstance(v, dict):
            v = from_plain(nested, v)
        elif nested is not None and v is not None:
            v = tuple(from_plain(nested, x) for x in v)
        elif name in ("event_handlers",):
            v = tuple((str(k), tuple(a)) for k, a in v)
        elif name in ("rlimits", "sysctls"):
            v = tuple(tuple(r) for r in v)
        elif isinstance(v, list):
            v = tuple(v)
        kwargs[name] = v
    return cls(**kwargs)
