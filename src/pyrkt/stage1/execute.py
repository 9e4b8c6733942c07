"""The one executor of stage1 plans: ``set_up_root`` applies an ``AppPlan``'s root (overlay,
mounts, devices, links, files, then pivot_root or chroot) and ``become`` is the one privilege
drop, used by app start (``app.py``: the app, and its event handlers as root), ``enter`` and
the fly flavor. Both only call the ``Kernel`` they are given.
"""

from __future__ import annotations

import os

from pyrkt.kernel.namespaces import CLONE_NEWCGROUP, CLONE_NEWNS, CLONE_NEWUSER

TYPE_CHECKING = False
if TYPE_CHECKING:
    from pyrkt.kernel.api import Kernel
    from pyrkt.model.plan import AppPlan, Device, Mount, PodPlan
    from pyrkt.stage1.users import Ids

MS_RDONLY, MS_NOSUID, MS_NODEV, MS_NOEXEC, MS_REMOUNT, MS_BIND, MS_REC = 1, 2, 4, 8, 32, 4096, 16384
MASK_DIR_FLAGS = MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC


def inside(root: str, path: str) -> str:
    return os.path.join(root, path.lstrip("/"))


def clone_propagated(k: Kernel, plan: AppPlan, host_mntns: int) -> dict[str, int]:
    """In the app's child, before it joins the pod's mount namespace: for each of its volumes
    with a propagation (rslave, rshared), a copy of the source's mount made in the host's mount
    namespace (``host_mntns``, pod init's fd), which stays in the host mount's peer group: the
    pod's namespaces are private, so a copy made there would carry nothing. Target -> tree fd,
    for ``set_up_root``; no call at all for an app without such a volume."""
    wanted = [m for m in plan.volumes if m.propagation]
    if not wanted:
        return {}
    if host_mntns < 0:
        from pyrkt.errors import PyrktError

        raise PyrktError(f"volume at {wanted[0].target}: propagation={wanted[0].propagation} needs the host's "
                         "mount namespace, which pod init did not keep")
    k.setns(host_mntns, CLONE_NEWNS, "the host's mount namespace")
    return {m.target: k.clone_volume(m.source, recursive=bool(m.flags & MS_REC)) for m in wanted}


def set_up_root(k: Kernel, plan: AppPlan, userns: int = -1, trees: dict[str, int] | None = None) -> None:
    """In the app's child: its own cgroups (when it has them) and a cgroup namespace rooted
    where it is then (default flavor), a mount namespace of its own, the overlay root (or, with
    --no-overlay, the copy) and everything in it (the image's missing /etc/mtab link, the pod's
    mounts with the app's volumes among them), then switch to it. The caller is in the
    directory it wants as cwd only after this.

    ``userns``: an fd on the pod's user namespace (--private-users), through whose id map the
    layers and the pod's own files (its /etc files, empty volumes) are mounted; the upper dir
    is not, so what the app writes is owned on the host by its shifted ids; host volumes keep
    the host's owners. ``trees``: the volumes ``clone_propagated`` copied, by target."""
    if plan.cgroups:
        k.cgroup_join(list(plan.cgroups))
    k.unshare(CLONE_NEWNS | (CLONE_NEWCGROUP if plan.cgroupns else 0))
    k.make_rprivate("/")
    root = plan.rootfs
    if not plan.lowers:  # --no-overlay: a copy of the image, made a mount point for pivot_root
        k.bind(root, root, recursive=True)
    elif userns >= 0:
        k.overlay_idmapped(list(plan.lowers), plan.upper, plan.work, root, userns)
    else:
        k.overlay(list(plan.lowers), plan.upper, plan.work, root)
    idmap = plan if userns >= 0 else None
    for s in plan.symlinks:
        if s.when and not skipped(k, inside(root, s.path), s.when) \
                and k.kind(inside(root, os.path.dirname(s.path))) == "dir":
            k.symlink(s.target, inside(root, s.path))
    for m in plan.mounts[:plan.volumes_after]:
        apply_mount(k, root, m, idmap, userns)
    for m in plan.volumes:
        if m.propagation and trees is not None and m.target in trees:
            k.attach_in_root(trees.pop(m.target), root, m.target, readonly=bool(m.flags & MS_RDONLY),
                             propagation=m.propagation)
        else:
            bind_volume(k, root, m, idmap, userns)
    for m in plan.mounts[plan.volumes_after:]:
        apply_mount(k, root, m, idmap, userns)
    for d in plan.devices:
        make_device(k, root, d)
    for s in plan.symlinks:
        if not s.when:
            k.symlink(s.target, inside(root, s.path))
    for f in plan.files:
        if skipped(k, inside(root, f.path), f.when):
            continue
        k.write_file(k.make_file(root, f.path), f.text)
    if plan.read_only_root:  # this mount only: volumes, /proc, /dev, /sys keep their own flags
        k.mount("", root, "", MS_REMOUNT | MS_BIND | MS_RDONLY)
    if plan.switch_root == "chroot":
        k.chroot(root)
    else:
        k.pivot_root(root)


def skipped(k: Kernel, target: str, when: str) -> bool:
    """``when`` is "present" and nothing is at ``target``, or "absent" and something is."""
    return bool(when) and (k.kind(target) is not None) != (when == "present")


def pod_own(plan: AppPlan, source: str) -> bool:
    """Whether a bind's source is one of the pod's own files (below ``plan.pod_files``)."""
    base = plan.pod_files.rstrip("/")
    return bool(base) and (source == base or source.startswith(base + "/"))


def apply_mount(k: Kernel, root: str, m: Mount, idmap: AppPlan | None = None, userns: int = -1) -> None:
    """``idmap``: the app's plan when it has a user namespace (``userns``): a bind of one of the
    pod's own files is then idmapped into it (or, where the kernel cannot, chowned by the
    shift); every other bind and mount stays as the host has it."""
    target = inside(root, m.target)
    if skipped(k, target, m.when):
        return
    if m.make == "mask":
        if k.kind(target) == "dir":
            k.mount("tmpfs", target, "tmpfs", MASK_DIR_FLAGS, "size=0,mode=000")
        else:
            k.bind("/dev/null", target)
        return
    owner = idmap.id_shift if idmap is not None else -1  # what is made is the pod root's, as without one
    if m.make == "dir":
        target = k.make_dir(root, m.target, owner=owner)
    elif m.make == "file":
        target = k.make_file(root, m.target, owner=owner)
    if m.flags & MS_BIND:
        rest = m.flags & ~(MS_BIND | MS_REC | MS_RDONLY)
        if idmap is not None and m.source and pod_own(idmap, m.source):
            if idmap.idmapped:
                k.bind_idmapped(m.source, target, userns, recursive=bool(m.flags & MS_REC),
                                readonly=bool(m.flags & MS_RDONLY), flags=rest)
                return
            k.shift_owner(m.source, idmap.id_shift)
        k.bind(m.source or target, target, recursive=bool(m.flags & MS_REC), readonly=bool(m.flags & MS_RDONLY),
               flags=rest)
    else:
        k.mount(m.source, target, m.fstype, m.flags, m.data)


def bind_volume(k: Kernel, root: str, m: Mount, idmap: AppPlan | None = None, userns: int = -1) -> None:
    """A volume at its target resolved in the app's root. With a user namespace, a volume of
    the pod's own (an empty volume, in the pod dir) goes through its id map (or, where the kernel
    cannot, has its owner shifted); a host volume keeps the host's owners."""
    own = idmap is not None and pod_own(idmap, m.source)
    if own and idmap is not None and not idmap.idmapped:
        k.shift_owner(m.source, idmap.id_shift)
        own = False
    k.bind_in_root(m.source, root, m.target, recursive=bool(m.flags & MS_REC), readonly=bool(m.flags & MS_RDONLY),
                   **({"userns_fd": userns} if own else {}))


def make_device(k: Kernel, root: str, d: Device) -> None:
    """mknod, as crun does (cheaper to make and tear down than a bind); where the pod's device
    policy or the missing CAP_MKNOD refuses it, the host's node bound over an empty file."""
    parent = os.path.dirname(d.path)
    if parent != "/dev":
        k.make_dir(root, parent)
    path = inside(root, d.path)
    try:
        k.mknod(path, d.kind, d.major, d.minor, d.mode, d.uid, d.gid)
    except PermissionError:
        k.bind(d.host or d.path, k.make_file(root, d.path, 0o600))


def set_up_cgroups(k: Kernel, pod: PodPlan) -> tuple[list[str], PodPlan, list[str]]:
    """Host side, before pod init runs: the pod's cgroup in each hierarchy with the pod's own
    limits, each app's inside it with the app's limits, and the pod's device allow-list (as rkt's DevicePolicy=closed;
    none with --insecure-options=paths), all written before any process joins. Returns pod
    init's cgroup directories (for ``cgroup_join``), the plan with each app's cgroups (and its
    devices cgroup where it holds an allow-list of its own: a privileged app's), and a
    warning for each limit no controller of this host can apply (as rkt, which skips it)."""
    from pyrkt.kernel.cgroups import NEEDS

    paths = k.cgroup_create(pod.cgroup)
    warnings = []
    if pod.limits.given:  # a pod manifest's pod-level isolators: the whole pod's, its apps' below
        warnings += [f"pod: {name} isolator set but this host has no {dict(NEEDS)[name]} cgroup controller: "
                     "skipped" for name in k.cgroup_limit_pod(pod.cgroup, pod.limits)]
    if pod.device_rules is not None:  # first: an app's own list (a privileged one's) widens it on v1
        k.cgroup_limit_devices(pod.cgroup, pod.device_rules, **({"apps_own": True} if pod.apps_own_devices else {}))
    apps = []
    for app in pod.apps:
        app, skipped = set_up_app_cgroups(k, pod.cgroup, app)
        apps.append(app)
        warnings += skipped
    return paths, pod.replace(apps=tuple(apps)), warnings


def set_up_app_cgroups(k: Kernel, cgroup: str, app: AppPlan) -> tuple[AppPlan, list[str]]:
    """An app's cgroups in its pod's (``cgroup``) with its limits written and, when it holds an
    allow-list of its own (an app added to a mutable pod, a privileged app), its devices cgroup with that list,
    before it joins them; returns the plan with the directories it joins, and a warning for each
    limit no controller of this host can apply (as rkt, which skips it)."""
    from pyrkt.kernel.cgroups import NEEDS

    made = k.cgroup_create_app(cgroup, app.name, app.limits)
    dirs = made.dirs
    if app.device_rules is not None:
        own = k.cgroup_limit_app_devices(cgroup, app.name, app.device_rules)
        dirs += (own,) if own not in dirs else ()
    warnings = [f"app {app.name}: {name} isolator set but this host has no {dict(NEEDS)[name]} cgroup "
                "controller: skipped" for name in made.skipped]
    return app.replace(cgroups=dirs, oom_events=made.oom_events), warnings


def tear_down(k: Kernel, pod_dir: str, cgroup: str) -> None:
    """What gc takes back of a pod on the kernel's side, each step idempotent: any mount left
    under its dir, then its cgroups (killing what is left in them)."""
    k.unmount_all_under(pod_dir)
    if cgroup:
        k.cgroup_remove(cgroup)


def set_up_pod(k: Kernel, pod: PodPlan) -> None:
    """In pod init, once it is in the pod's network namespace (CNI): its own namespaces but the
    cgroup one (each app makes its own, rooted at its cgroup: ``set_up_root``), a private
    mount tree, the hostname, the pod's sysctls (in its net and IPC namespaces, before any app
    starts) and, for --net=none, the loopback up. In the host's PID namespace (--pid=host), pod
    init is not its PID 1: it becomes the subreaper of the apps, so that their orphans come back
    to it."""
    if pod.host_pid:
        k.set_child_subreaper()
    k.unshare(pod.ns_flags & ~CLONE_NEWCGROUP)
    k.make_rprivate("/")
    k.sethostname(pod.hostname)
    for key, path, value in pod.sysctls:
        k.write_sysctl(key, path, value)
    if pod.net == "none":
        k.loopback_up()


def apply_limits(k: Kernel, plan: AppPlan) -> None:
    """The app's rlimits and OOM score (``--oom-score-adj``), while it still may raise them
    (before ``become``). A score below pod init's needs CAP_SYS_RESOURCE: without it the app
    does not start, as rkt's OOMScoreAdjust= fails its unit."""
    for resource, soft, hard in plan.rlimits:
        k.set_rlimit(resource, soft, hard)
    if plan.oom_score_adj is not None:
        k.oom_score_adj(plan.oom_score_adj)


def make_user_namespace(k: Kernel, started: tuple[int, int], pod: PodPlan) -> int:
    """Host side, before pod init: the pod's user namespace (--private-users; begun with
    ``k.start_user_namespace()`` as the set-up started) with the pod's range as its uid and gid
    maps; an fd on it for pod init, whose apps are idmapped into it and join it."""
    from pyrkt.model.idmap import IdRange

    ids = IdRange.parse(pod.private_users, where="runtime-config")
    return k.finish_user_namespace(started, ids.map_line(), ids.map_line())


def enter_user_namespace(k: Kernel, userns: int) -> None:
    """In the app's child, its root set up: join the pod's user namespace (--private-users) and
    be its root, i.e. the shifted host id, with every capability there but none over the
    namespaces pod init made (mount, network...: they stay the host's), so the app cannot
    mount. ``become`` then drops to the app's user and capabilities as without one."""
    k.setns(userns, CLONE_NEWUSER, "the pod's user namespace")
    k.set_ids(0, 0, ())


def become(k: Kernel, ids: Ids, caps: tuple[int, ...] | frozenset[int] | set[int] | None, seccomp: bytes,
           no_new_privs: bool) -> None:
    """THE privilege drop, right before exec: the bounding set cut to ``caps`` (which needs
    CAP_SETPCAP, so first), groups, gid, uid, then the capability sets, no_new_privs, and the
    seccomp filter last. As rkt's apps (systemd's CapabilityBoundingSet= and User=, no ambient
    set): a root app holds exactly ``caps`` (effective, permitted, inheritable), a non-root one
    has them only in its bounding set and holds none. ``caps=None`` leaves capabilities to the
    uid change (the fly flavor: a non-root app ends with none, a root one keeps the caller's)."""
    keep = None if caps is None else frozenset(caps)
    if keep is not None:
        k.drop_bounding(keep)
    k.set_ids(ids.uid, ids.gid, ids.groups)
    if keep is not None:
        k.set_caps(keep if ids.uid == 0 else frozenset(), uid=ids.uid)
    if no_new_privs:
        k.no_new_privs()
    if seccomp:
        k.load_seccomp(seccomp)
