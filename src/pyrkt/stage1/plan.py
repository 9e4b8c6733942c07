"""Planners: pure functions from the pod manifest, the runtime config and the image to the
typed plans of ``pyrkt.model.plan``. No I/O here; the flavors read the pod dir and write its
files at the edge, and ``pyrkt.stage1.execute`` applies what these return.

The app's filesystem (rkt-behaviour §3.6), in the order it is mounted: the image's missing
/etc/mtab link on its overlay; a fresh /proc; a tmpfs /dev with the console, devpts, shm and
mqueue; read-only /sys; the app's volumes (§3.7); the pod's /etc files; then rkt's
inaccessible paths and read-only paths (masks), but for a read-only view of the app's own
cgroups at /sys/fs/cgroup (``cgroup_mounts``). Device nodes and /dev's symlinks follow.
"""

from __future__ import annotations

import posixpath

from pyrkt.errors import PyrktError, UsageError
from pyrkt.kernel.caps import ALL_CAPS, DEFAULT_CAPS
from pyrkt.model import isolators
from pyrkt.model.abi import INTERFACE_VERSION, STANDARD_PATH, STATUS_DIR, SUPERVISOR_STATUS
from pyrkt.model.cgroup import pod_cgroup
from pyrkt.model.plan import AppPlan, Device, File, Mount, PodPlan, Symlink
from pyrkt.model.stdio import Stdio

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

    from pyrkt.model.abi import RuntimeConfig
    from pyrkt.model.devices import DeviceRule, HostDevice
    from pyrkt.model.plan import EtcFiles
    from pyrkt.model.pod import RuntimeApp
    from pyrkt.model.volumes import Volume

MS_RDONLY, MS_NOSUID, MS_NODEV, MS_NOEXEC = 1, 2, 4, 8
MS_REMOUNT, MS_BIND, MS_REC, MS_STRICTATIME = 32, 4096, 16384, 1 << 24
NOSUID_NODEV_NOEXEC = MS_NOSUID | MS_NODEV | MS_NOEXEC
TTY_GID = 5
CONTAINER_ENV = "pyrkt"

# The standard nodes of every app's /dev: (name, major, minor), the kernel's fixed numbers.
DEVICES = (("null", 1, 3), ("zero", 1, 5), ("full", 1, 7), ("random", 1, 8), ("urandom", 1, 9), ("tty", 5, 0))
MTAB = Symlink("../proc/self/mounts", "/etc/mtab", when="absent")  # as rkt's stage0, for mount(8) & co
DEV_LINKS = (("pts/ptmx", "/dev/ptmx"), ("/proc/self/fd", "/dev/fd"), ("/proc/self/fd/0", "/dev/stdin"),
             ("/proc/self/fd/1", "/dev/stdout"), ("/proc/self/fd/2", "/dev/stderr"))
# rkt's lists, plus what runc and crun make read-only or mask: all of /proc/sys (pod init has
# written the pod's --sysctl values before any app starts) and the kernel's debug files.
READ_ONLY = ("/proc/bus", "/proc/sys/kernel/core_pattern", "/proc/sys/kernel/modprobe",
             "/proc/sys/vm/panic_on_oom", "/proc/sysrq-trigger", "/proc/sys", "/proc/irq", "/proc/fs")
INACCESSIBLE = ("/proc/config.gz", "/proc/kallsyms", "/proc/sched_debug", "/proc/kcore", "/proc/kmem",
                "/proc/mem", "/proc/keys", "/proc/timer_list", "/sys/firmware", "/sys/fs",
                "/sys/hypervisor", "/sys/module", "/sys/power", "/proc/acpi", "/proc/latency_stats",
                "/proc/timer_stats", "/proc/scsi", "/sys/devices/virtual/powercap")


def app_env(pairs: tuple[tuple[str, str], ...], name: str) -> tuple[str, ...]:
    """The app's environment: its own pairs, then AC_APP_NAME, container and a standard PATH."""
    env = dict(pairs)
    env.setdefault("PATH", STANDARD_PATH)
    env["AC_APP_NAME"] = name
    env.setdefault("container", CONTAINER_ENV)
    return tuple(f"{k}={v}" for k, v in env.items())


def with_metadata_url(app: AppPlan, host: str, port: int, token: str) -> AppPlan:
    """The app with rkt's ``AC_METADATA_URL`` (``--mds-register``): the metadata service on the
    host address the pod reaches, the pod's token as the URL's path."""
    url = f"http://{host}:{port}/{token}"
    return app.replace(env=tuple(e for e in app.env if not e.startswith("AC_METADATA_URL=")) +
                       (f"AC_METADATA_URL={url}",))


def privileged(ra: RuntimeApp) -> bool:
    """Whether the app is privileged (``--privileged``, a CRI's privileged container): its
    ``pyrkt.io/privileged`` annotation in the pod manifest."""
    from pyrkt.model.abi import PRIVILEGED_ANNOTATION

    return dict(ra.annotations).get(PRIVILEGED_ANNOTATION) == "true"


def app_caps(config: RuntimeConfig, isolators: tuple[tuple[str, Any], ...] = (), *,
             privileged: bool = False) -> tuple[int, ...]:
    """The capability set of an app: appc's default set or what its capability isolators make
    of it (``stage1.isolators``), or every capability with ``--insecure-options=capabilities``
    or for a ``privileged`` app (the kernel calls leave out what pod init lacks)."""
    if privileged:
        return tuple(sorted(ALL_CAPS))
    if not isolators:
        return tuple(sorted(ALL_CAPS if config.disable_capabilities else DEFAULT_CAPS))
    from pyrkt.stage1 import isolators as privileges

    return privileges.capabilities(isolators, insecure=config.disable_capabilities)


# How many of app_mounts' mounts are the kernel's file systems (/proc, /dev and what is in it,
# /sys): the app's volumes are bound after them (a volume may go below /dev, as in rkt, whose
# /dev is no tmpfs) and before the pod's /etc files, which go over a volume (rkt-behaviour §4.6).
KERNEL_MOUNTS = 7


def app_mounts(etc: EtcFiles, *, console: str = "/dev/null", mask_paths: bool = True,
               read_only_etc: bool = False, id_shift: int = 0, privileged: bool = False,
               cgroups: tuple[CgroupFs, ...] = ()) -> tuple[Mount, ...]:
    """The mounts of an app's root in order (default flavor). ``console``: what /dev/console
    is (the pod's terminal with --interactive); ``mask_paths``: False with
    ``--insecure-options=paths``; ``read_only_etc``: the /etc files read-only too (an app
    with a read-only root, as rkt's, whose read-only root takes the files bound in it along);
    ``id_shift``: the host id of the pod's root with --private-users (its ptys then belong to
    its own tty group); ``privileged``: /sys read-write and no masks (for this app only);
    ``cgroups``: the host's cgroup hierarchies, for the app's view of its own
    (``cgroup_mounts``)."""
    out = [
        Mount("proc", "/proc", "proc", NOSUID_NODEV_NOEXEC, make="dir"),
        Mount("tmpfs", "/dev", "tmpfs", MS_NOSUID | MS_STRICTATIME, "mode=755,size=65536k", make="dir"),
        Mount(console, "/dev/console", flags=MS_BIND, make="file"),
        Mount("devpts", "/dev/pts", "devpts", MS_NOSUID | MS_NOEXEC,
              f"newinstance,ptmxmode=0666,mode=0620,gid={id_shift + TTY_GID}", make="dir"),
        Mount("shm", "/dev/shm", "tmpfs", NOSUID_NODEV_NOEXEC, "mode=1777,size=65536k", make="dir"),
        Mount("mqueue", "/dev/mqueue", "mqueue", NOSUID_NODEV_NOEXEC, make="dir"),
        Mount("sysfs", "/sys", "sysfs", NOSUID_NODEV_NOEXEC | (0 if privileged else MS_RDONLY), make="dir"),
        *etc_mounts(etc, read_only=read_only_etc),
    ]
    masked = mask_paths and not privileged
    if masked:
        out += [m for m in mask_mounts() if not (cgroups and m.target == SYS_FS)]
    if cgroups:
        out += cgroup_mounts(cgroups, writable=privileged, hide_sys_fs=masked)
    return tuple(out)


SYS_FS, CGROUP_ROOT = "/sys/fs", "/sys/fs/cgroup"
CgroupFs = tuple[str, int, tuple[str, ...]]  # a host hierarchy: (mount point, version 1 or 2, controllers)


def cgroup_mounts(hierarchies: tuple[CgroupFs, ...], *, writable: bool, hide_sys_fs: bool) -> list[Mount]:
    """The app's view of its cgroups at /sys/fs/cgroup, as Docker's and containerd's: each of the
    host's hierarchies under /sys/fs/cgroup mounted again at the same place, from inside the
    app's cgroup namespace (so its own cgroup is the root it sees: its limits, for runtimes
    that size themselves by them), read-only unless ``writable`` (a privileged app). rkt hid
    all of /sys/fs; with ``hide_sys_fs`` the rest of it stays hidden: an empty tmpfs there
    holds only this view, and goes read-only once it is made."""
    out: list[Mount] = []
    if hide_sys_fs:
        out.append(Mount("tmpfs", SYS_FS, "tmpfs", NOSUID_NODEV_NOEXEC, "size=0,mode=755"))
    ro = 0 if writable else MS_RDONLY
    under = [(point, version, ctrls) for point, version, ctrls in hierarchies if point.startswith(CGROUP_ROOT + "/")]
    unified = [h for h in hierarchies if h[0] == CGROUP_ROOT and h[1] == 2]
    if unified and not under:  # cgroup v2 alone
        out.append(Mount("cgroup2", CGROUP_ROOT, "cgroup2", NOSUID_NODEV_NOEXEC | ro, make="dir"))
    elif under:  # v1 or hybrid: a tmpfs with a directory per hierarchy
        out.append(Mount("tmpfs", CGROUP_ROOT, "tmpfs", NOSUID_NODEV_NOEXEC, "mode=755", make="dir"))
        for point, version, ctrls in under:
            if version == 2:
                out.append(Mount("cgroup2", point, "cgroup2", NOSUID_NODEV_NOEXEC | ro, make="dir"))
                continue
            named = all(c.startswith("name=") for c in ctrls)  # name=systemd: no controller of its own
            data = ",".join(("none", *ctrls) if named else ctrls)
            out.append(Mount("cgroup", point, "cgroup", NOSUID_NODEV_NOEXEC | ro, data, make="dir"))
        if not writable:
            out.append(Mount("", CGROUP_ROOT, "", MS_REMOUNT | MS_RDONLY | NOSUID_NODEV_NOEXEC))
    if hide_sys_fs:
        out.append(Mount("", SYS_FS, "", MS_REMOUNT | MS_RDONLY | NOSUID_NODEV_NOEXEC))
    return out


_MASKS: tuple[Mount, ...] = ()
_DEVICES: tuple[Device, ...] = ()


def mask_mounts() -> tuple[Mount, ...]:
    """rkt's inaccessible paths, then its read-only paths (made once per process: they are the
    same for every app)."""
    global _MASKS
    if not _MASKS:
        _MASKS = (*(Mount("", p, make="mask", when="present") for p in INACCESSIBLE),
                  *(Mount("", p, flags=MS_BIND | MS_REC | MS_RDONLY | NOSUID_NODEV_NOEXEC, when="present")
                    for p in READ_ONLY))
    return _MASKS


def etc_mounts(etc: EtcFiles, *, read_only: bool = False) -> list[Mount]:
    """hostname always; hosts over the image's file when a flag decided it, else only where the
    image has none; resolv.conf read-only when there is one (rkt-behaviour §4.6)."""
    ro = MS_RDONLY if read_only else 0
    out = [Mount(etc.hostname, "/etc/hostname", flags=MS_BIND | ro, make="file")]
    if etc.hosts:
        out.append(Mount(etc.hosts, "/etc/hosts", flags=MS_BIND | (MS_RDONLY if etc.hosts_readonly else ro),
                         make="file", when="" if etc.hosts_override else "absent"))
    if etc.resolv:
        out.append(Mount(etc.resolv, "/etc/resolv.conf", flags=MS_BIND | MS_RDONLY, make="file"))
    return out


def app_devices(host_devices: tuple[HostDevice, ...] = ()) -> tuple[Device, ...]:
    """The standard nodes, then each ``--device`` at its path in the app (one of the standard
    ones given again is left as it is)."""
    global _DEVICES
    if not _DEVICES:
        _DEVICES = tuple(Device(f"/dev/{name}", "c", major, minor, 0o666, host=f"/dev/{name}")
                         for name, major, minor in DEVICES)
    if not host_devices:
        return _DEVICES
    out = list(_DEVICES)
    have = {d.path for d in out}
    for d in host_devices:
        if d.at not in have:
            have.add(d.at)
            out.append(Device(d.at, d.kind, d.major, d.minor, d.mode, d.uid, d.gid, host=d.path))
    return tuple(out)


_LINKS: tuple[Symlink, ...] = ()


def dev_symlinks() -> tuple[Symlink, ...]:
    """/etc/mtab where the image has none, then /dev's links."""
    global _LINKS
    if not _LINKS:
        _LINKS = (MTAB, *(Symlink(target, path) for target, path in DEV_LINKS))
    return _LINKS


def volume_mounts(ra: RuntimeApp, volumes: tuple[Volume, ...], shared_dir: str, *,
                  recursive: bool = True, propagation: bool = True) -> tuple[Mount, ...]:
    """The app's ``mounts`` as binds of their volumes, parents before what nests in them: a
    host volume's source, an empty one's directory below ``shared_dir`` (the pod's
    sharedVolumes). Read-only as the volume says, else as the app's mount point of the same
    name says (rkt); with the sub-mounts as the volume's ``recursive`` says, else as the
    flavor's default ``recursive`` (rkt: true, fly false); a host volume's ``propagation``
    (rslave, rshared) where the flavor has it (``propagation``: the default flavor's)."""
    by_name = {v.name: v for v in volumes}
    points = {mp.name: mp.read_only for mp in ra.app.mount_points}
    out = []
    for m in ra.mounts:
        vol = m.app_volume or by_name.get(m.volume)
        if vol is None:
            raise PyrktError(f"app {ra.name}: mount of unknown volume {m.volume!r}")
        ro = vol.read_only if vol.read_only is not None else points.get(m.volume, False)
        rec = vol.recursive if vol.recursive is not None else recursive
        source = vol.source if vol.kind == "host" else f"{shared_dir.rstrip('/')}/{vol.name}"
        shared = vol.propagation if vol.propagation in ("rslave", "rshared") else ""
        if shared and not propagation:
            raise UsageError(f"app {ra.name}: volume {vol.name}: propagation={shared} works with the default "
                             "flavor only")
        out.append(Mount(source, m.path, flags=MS_BIND | (MS_REC if rec else 0) | (MS_RDONLY if ro else 0),
                         propagation=shared))
    return tuple(sorted(out, key=lambda v: len([p for p in v.target.split("/") if p not in ("", ".")])))


def app_plan(ra: RuntimeApp, config: RuntimeConfig, *, lowers: tuple[str, ...], upper: str, work: str,
             rootfs: str, log: str, seccomp: bytes, etc: EtcFiles, console: str = "/dev/null",
             volumes: tuple[Mount, ...] = (), pod_dir: str = "", idmapped: bool = True,
             devices: tuple[HostDevice, ...] = (), cgroups: tuple[CgroupFs, ...] = ()) -> AppPlan:
    """An app of the default flavor: its own overlay root (read-only with readOnlyRootFS) with
    its ``volumes`` (``volume_mounts``) and the pod's /proc, /dev, /sys and /etc, pivot_root,
    its capability set (from its isolators), the seccomp filter made of them (``seccomp``),
    no_new_privs, and the resource limits and OOM score its isolators ask for. With
    --private-users (``config.private_users``) the pod dir's files are its own
    (``AppPlan.pod_files``; ``idmapped``: whether the kernel can idmap them). ``devices``: its
    own ``app add --device`` nodes, beside the pod's. A privileged app (``privileged``) has
    every capability, no seccomp filter and no_new_privs only if its isolator asks, /sys
    read-write and no masked paths; the pod's other apps keep theirs. ``cgroups``: the host's
    hierarchies, for the app's view of its own cgroups (``cgroup_mounts``)."""
    app = ra.app
    limits, oom_score_adj = isolators.limits(app.isolators, f"app {ra.name}: ")
    shift = id_shift(config)
    priv = privileged(ra)
    if priv and shift:
        raise UsageError(f"app {ra.name}: a privileged app cannot run in a pod with --private-users")
    no_new_privs = True
    if priv:  # unless its isolator asks, as a privileged container may escalate (Kubernetes)
        from pyrkt.stage1.isolators import NO_NEW_PRIVS

        no_new_privs = dict(app.isolators).get(NO_NEW_PRIVS) is True
    io = app_stdio(ra, config)
    plan = AppPlan(
        name=ra.name, argv=tuple(app.exec), env=app_env(app.environment, ra.name),
        user=app.user, group=app.group, supplementary_gids=tuple(app.supplementary_gids),
        cwd=app.working_directory or "/", lowers=lowers, upper=upper, work=work, rootfs=rootfs, log=log,
        volumes=volumes, volumes_after=KERNEL_MOUNTS, read_only_root=ra.read_only_rootfs,
        mounts=app_mounts(etc, console=console, mask_paths=not config.disable_paths,
                          read_only_etc=ra.read_only_rootfs, id_shift=shift, privileged=priv, cgroups=cgroups),
        devices=app_devices(config.devices + devices), symlinks=dev_symlinks(),
        caps=app_caps(config, app.isolators, privileged=priv), seccomp=b"" if priv else seccomp,
        no_new_privs=no_new_privs, privileged=priv,
        limits=limits, oom_score_adj=oom_score_adj, cgroupns=True,
        event_handlers=tuple((n, tuple(e)) for n, e in app.event_handlers),
        id_shift=shift, pod_files=pod_dir if shift else "", idmapped=idmapped,
        stdin=io.stdin, stdout=io.stdout, stderr=io.stderr,
    )
    check_shared_volumes(ra.name, volumes, (*(m.target for m in plan.mounts), *(d.path for d in plan.devices)))
    nodes = {d.path for d in plan.devices}
    for v in volumes:
        if posixpath.normpath(v.target) in nodes:
            raise UsageError(f"app {ra.name}: volume at {v.target}: pyrkt makes the device node {v.target} there; "
                             "mount it elsewhere")
    return plan


def check_shared_volumes(name: str, volumes: tuple[Mount, ...], own: tuple[str, ...]) -> None:
    """A bidirectional (rshared) volume sends the host every mount made below it, so none of
    the app's set-up may be there: not another volume, nor pyrkt's own mounts and nodes
    (``own``: /proc, /dev, /sys, the /etc files, masks, devices), nor the root itself."""
    for v in volumes:
        if v.propagation != "rshared":
            continue
        top = v.target.rstrip("/")
        inside = [t for t in (*(w.target for w in volumes if w is not v), *own)
                  if not top or t == top or t.startswith(top + "/")]
        if inside:
            raise UsageError(f"app {name}: volume at {v.target} with propagation=rshared would send pyrkt's "
                             f"own mount at {inside[0]} to the host: mount it elsewhere")


def app_stdio(ra: RuntimeApp, config: RuntimeConfig) -> Stdio:
    """The app's stdio modes from its annotations (``--stdin``/``--stdout``/``--stderr``);
    ``--interactive`` gives the one app the pod's terminal and takes no other mode."""
    io = Stdio.from_annotations(ra.annotations, f"app {ra.name}: ")
    if config.interactive and not io.is_default():
        raise UsageError(f"app {ra.name}: --interactive cannot be used with --stdin, --stdout or --stderr")
    return io


def id_shift(config: RuntimeConfig) -> int:
    """The host id of the pod's root with --private-users, else 0."""
    if not config.private_users:
        return 0
    from pyrkt.model.idmap import IdRange

    return IdRange.parse(config.private_users, where="runtime-config").shift


def added_app_device_rules(config: RuntimeConfig, devices: tuple[HostDevice, ...],
                           volume_devices: tuple[DeviceRule, ...]) -> tuple[DeviceRule, ...] | None:
    """The allow-list of an app added to a mutable pod, which it holds in a devices cgroup of
    its own (so that what one app is given, the others are not): the pod's (the default rules
    and the pod's ``--device`` nodes), then its own ``devices`` and the device nodes its
    volumes bind (``volume_devices``); None with --insecure-options=paths (no policy)."""
    if config.disable_paths:
        return None
    from pyrkt.model import devices as policy

    return policy.policy(tuple(d.rule() for d in config.devices + devices) + volume_devices)


def own_device_rules(app: AppPlan, rules: tuple[DeviceRule, ...] | None) -> tuple[DeviceRule, ...] | None:
    """The allow-list an app holds of its own: ``rules``, or for a privileged app every device
    (as containerd's), as wildcard rules of each type: on v1 the pod's cgroup is widened by
    them, and an "a" rule cannot be written where the cgroup has children (the other apps');
    None with --insecure-options=paths (no policy, every device already)."""
    if rules is None or not app.privileged:
        return rules
    from pyrkt.model.devices import ANY, DeviceRule

    return (DeviceRule("c", ANY, ANY), DeviceRule("b", ANY, ANY))


# namespace flags (linux/sched.h)
CLONE_NEWNS, CLONE_NEWCGROUP, CLONE_NEWUTS, CLONE_NEWIPC, CLONE_NEWNET = (
    0x00020000, 0x02000000, 0x04000000, 0x08000000, 0x40000000)


def network_mode(net: tuple[str, ...]) -> str:
    """"host", "none", or "cni" (one or more CNI networks, set up by pyrkt.network)."""
    names = [n.split(":", 1)[0] for n in net]
    if names == ["host"]:
        return "host"
    if names == ["none"]:
        return "none"
    return "cni"


def pod_namespaces(config: RuntimeConfig) -> int:
    """The pod's namespaces: mount, UTS and cgroup always (the cgroup one each app makes for
    itself, rooted at its own cgroup; pod init the others); IPC unless --ipc=parent; a network
    namespace for --net=none (CNI networks: the netns the host side made, joined first)."""
    flags = CLONE_NEWNS | CLONE_NEWUTS | CLONE_NEWCGROUP
    if config.ipc != "parent":
        flags |= CLONE_NEWIPC
    if network_mode(config.net) == "none":
        flags |= CLONE_NEWNET
    return flags


# The pod's network namespace belongs to the host's user namespace, so an app root in the pod's
# own (--private-users) holds no CAP_NET_BIND_SERVICE there: let every port be bound, as Docker
# does for every container, unless --sysctl says otherwise.
UNPRIVILEGED_PORTS = ("net.ipv4.ip_unprivileged_port_start", "net/ipv4/ip_unprivileged_port_start", "0")


def pod_plan(config: RuntimeConfig, apps: tuple[AppPlan, ...], etc: EtcFiles, *, console: str = "/dev/null",
             tee: bool = False, pod: str = "", python: str = "", podinit: str = "", pids_dir: str = "",
             state_file: str = "", volume_devices: tuple[DeviceRule, ...] = (),
             pod_isolators: tuple[tuple[str, Any], ...] = ()) -> PodPlan:
    """The pod of the default flavor. The ``--sysctl`` values are checked again (the runtime
    config is a file): one whose namespace the pod shares with the host is refused.
    ``volume_devices``: allow rules for host volumes that are device nodes (as rkt's).
    ``pod_isolators``: a pod manifest's pod-level ones; its resource isolators are the limits of
    the pod's cgroup, which its apps' are below (``isolators.pod_limits``)."""
    from pyrkt.model import devices

    sysctls: tuple[tuple[str, str, str], ...] = ()
    if config.sysctls:
        from pyrkt.model import sysctl

        net = network_mode(config.net)
        sysctls = tuple((s.key, s.path, s.value) for s in sysctl.check_namespaces(
            dict(config.sysctls), host_net=net == "host", host_ipc=config.ipc == "parent"))
    if config.private_users and network_mode(config.net) != "host" and not any(
            k == UNPRIVILEGED_PORTS[0] for k, _, _ in sysctls):
        sysctls += (UNPRIVILEGED_PORTS,)
    rules = None if config.disable_paths else devices.policy(tuple(d.rule() for d in config.devices)
                                                             + volume_devices)
    own = config.mutable  # the apps hold allow-lists of their own (added apps; a privileged one's)
    if rules is not None and any(a.privileged for a in apps):
        own = True
        apps = tuple(a.replace(device_rules=own_device_rules(a, rules)) for a in apps)
    return PodPlan(
        uuid=config.uuid, hostname=config.hostname or f"rkt-{config.uuid}", ns_flags=pod_namespaces(config),
        net=network_mode(config.net), cgroup=pod_cgroup(config.uuid, config.cgroup_parent), apps=apps, etc=etc,
        device_rules=rules, apps_own_devices=own, limits=isolators.pod_limits(pod_isolators), sysctls=sysctls,
        interactive=config.interactive,
        stop_timeout=float(config.stop_timeout), version=INTERFACE_VERSION, console=console, tee=tee, pod=pod,
        status_dir=STATUS_DIR, pids_dir=pids_dir, supervisor_status=SUPERVISOR_STATUS, state_file=state_file,
        python=python, podinit=podinit, private_users=config.private_users, host_pid=config.pid == "host")


# -- the fly flavor ------------------------------------------------------------------------------

HOSTS_STUB = "127.0.0.1\tlocalhost localhost.localdomain\n::1\tlocalhost localhost.localdomain\n"


def fly_app_plan(ra: RuntimeApp, *, lowers: tuple[str, ...], upper: str, work: str, rootfs: str, log: str,
                 resolv: tuple[str, str] | None, hosts: tuple[str, str],
                 volumes: tuple[Mount, ...] = ()) -> AppPlan:
    """The fly flavor's app (rkt's stage1-fly): its overlay root with the host's /dev, /proc and
    /sys bound in, its ``volumes`` (not recursive unless a volume says so, as rkt's fly), the
    /etc files of its flags, chroot; no capability, seccomp or
    no_new_privs change: only the uid change (``caps=None``).

    ``resolv``: ("bind", host path) or ("copy", text) or None (the image's file);
    ``hosts``: ("bind", host path) or ("stub", "") (a localhost file where the image has none)."""
    app = ra.app
    if not Stdio.from_annotations(ra.annotations, f"app {ra.name}: ").is_default():
        raise UsageError(f"app {ra.name}: the fly flavor does not support --stdin, --stdout or --stderr")
    mounts = [Mount(f"/{d}", f"/{d}", flags=MS_BIND | MS_REC, make="dir") for d in ("dev", "proc", "sys")]
    files = []
    if resolv is not None:
        how, what = resolv
        if how == "bind":
            mounts.append(Mount(what, "/etc/resolv.conf", flags=MS_BIND | MS_RDONLY, make="file"))
        else:
            files.append(File("/etc/resolv.conf", what))
    how, what = hosts
    if how == "bind":
        mounts.append(Mount(what, "/etc/hosts", flags=MS_BIND | (MS_RDONLY if what == "/etc/hosts" else 0),
                            make="file"))
    else:
        files.append(File("/etc/hosts", HOSTS_STUB, when="absent"))
    return AppPlan(
        name=ra.name, argv=tuple(app.exec), env=app_env(app.environment, ra.name),
        user=app.user, group=app.group, supplementary_gids=tuple(app.supplementary_gids),
        cwd=app.working_directory or "/", lowers=lowers, upper=upper, work=work, rootfs=rootfs, log=log,
        volumes=volumes, read_only_root=ra.read_only_rootfs, mounts=tuple(mounts), files=tuple(files),
        symlinks=(MTAB,), switch_root="chroot",
        caps=None, seccomp=b"", no_new_privs=False,
    )
