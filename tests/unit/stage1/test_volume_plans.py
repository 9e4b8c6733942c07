"""Volumes in the stage1 plans, without root: which binds an app gets for its mounts (source,
read-only and recursive bits, order) and where the executor puts them among the other mounts;
/etc/mtab and the read-only root. tests/integration/test_volumes.py proves them on the kernel."""

from __future__ import annotations

import pytest

from pyrkt.errors import PyrktError
from pyrkt.kernel.recording import RecordingKernel
from pyrkt.model.abi import RuntimeConfig
from pyrkt.model.image import AppSpec, MountPoint
from pyrkt.model.plan import AppPlan, EtcFiles, Mount
from pyrkt.model.pod import RuntimeApp, RuntimeImage
from pyrkt.model.volumes import AppMount, Volume
from pyrkt.stage1 import execute, plan
from pyrkt.stage1.plan import MS_BIND, MS_RDONLY, MS_REC

ROOT = "/pod/rootfs"
SHARED = "/pod/sharedVolumes"
ETC = EtcFiles("/pod/etc/hostname", hosts="/pod/etc/hosts-fallback")
VOLUMES = (Volume("host", "host", "/srv/data"), Volume("ro", "host", "/srv/ro", read_only=True),
           Volume("scratch", "empty"), Volume("norec", "host", "/srv/n", recursive=False),
           Volume("rw", "host", "/srv/rw", read_only=False))


def app(*mounts: AppMount, points: tuple[MountPoint, ...] = (), read_only_root: bool = False) -> RuntimeApp:
    return RuntimeApp("web", RuntimeImage("sha256:x"), AppSpec(exec=("/bin/true",), mount_points=points),
                      read_only_rootfs=read_only_root, mounts=mounts)


def binds(ra: RuntimeApp, *, recursive: bool = True) -> list[tuple[str, str, int]]:
    return [(m.source, m.target, m.flags) for m in plan.volume_mounts(ra, VOLUMES, SHARED, recursive=recursive)]


def test_a_host_volume_binds_its_source_and_an_empty_one_its_dir_in_the_pod() -> None:
    ra = app(AppMount("host", "/data"), AppMount("scratch", "/tmp/s"))
    assert binds(ra) == [("/srv/data", "/data", MS_BIND | MS_REC), (f"{SHARED}/scratch", "/tmp/s", MS_BIND | MS_REC)]


def test_the_volumes_read_only_bit_wins_over_the_mount_points_and_the_mount_point_decides_else() -> None:
    points = (MountPoint("host", "/data", read_only=True), MountPoint("rw", "/rw", read_only=True),
              MountPoint("ro", "/ro"))
    ra = app(AppMount("host", "/data"), AppMount("rw", "/rw"), AppMount("ro", "/ro"), points=points)
    assert [f & MS_RDONLY for _, _, f in binds(ra)] == [MS_RDONLY, 0, MS_RDONLY]


def test_recursive_by_default_in_the_default_flavor_not_in_fly_unless_the_volume_says() -> None:
    ra = app(AppMount("host", "/data"), AppMount("norec", "/n"))
    assert [f & MS_REC for _, _, f in binds(ra)] == [MS_REC, 0]
    assert [f & MS_REC for _, _, f in binds(ra, recursive=False)] == [0, 0]
    rec = (Volume("r", "host", "/srv", recursive=True),)
    assert plan.volume_mounts(app(AppMount("r", "/r")), rec, SHARED, recursive=False)[0].flags & MS_REC


def test_parents_are_bound_before_what_nests_in_them_else_in_the_mounts_order() -> None:
    ra = app(AppMount("host", "/a/b/c"), AppMount("ro", "/z"), AppMount("scratch", "/a"), AppMount("rw", "/a/b/"))
    assert [t for _, t, _ in binds(ra)] == ["/z", "/a", "/a/b/", "/a/b/c"]


def test_an_app_volume_is_used_and_an_unknown_volume_refused() -> None:
    own = AppMount("mine", "/m", Volume("mine", "host", "/srv/mine", read_only=True))
    assert binds(app(own)) == [("/srv/mine", "/m", MS_BIND | MS_REC | MS_RDONLY)]
    with pytest.raises(PyrktError, match="unknown volume 'nope'"):
        binds(app(AppMount("nope", "/x")))


def plan_of(ra: RuntimeApp, volumes: tuple[Mount, ...] = ()) -> AppPlan:
    return plan.app_plan(ra, RuntimeConfig(uuid="u"), lowers=("/l",), upper="/u", work="/w", rootfs=ROOT, log="l",
                         seccomp=b"", etc=ETC, volumes=volumes)


def mounted(k: RecordingKernel) -> list[str]:
    return [c[2].removeprefix(ROOT) if c[0] != "bind_in_root" else "volume " + c[3] for c in k.calls
            if c[0] in ("mount", "bind", "bind_in_root")]


def test_volumes_are_bound_after_proc_dev_and_sys_and_before_the_pods_etc_files() -> None:
    ra = app(AppMount("host", "/data"), AppMount("ro", "/etc/hosts"), AppMount("rw", "/dev/net/tun"))
    k = RecordingKernel(kinds={f"{ROOT}/etc": "dir"})
    execute.set_up_root(k, plan_of(ra, plan.volume_mounts(ra, VOLUMES, SHARED)))
    assert mounted(k)[:11] == ["/proc", "/dev", "/dev/console", "/dev/pts", "/dev/shm", "/dev/mqueue", "/sys",
                               "volume /data", "volume /etc/hosts", "volume /dev/net/tun", "/etc/hostname"]
    assert [c[1:] for c in k.calls if c[0] == "bind_in_root"][:2] == [
        ("/srv/data", ROOT, "/data", True, False), ("/srv/ro", ROOT, "/etc/hosts", True, True)]
    # a volume on /etc/hosts is the app's own file: the pod's fallback goes only where there is none
    assert not any(c[0] == "bind" and c[2] == f"{ROOT}/etc/hosts" for c in k.calls)


def test_the_kernel_mounts_are_the_first_of_an_apps_mounts() -> None:
    targets = [m.target for m in plan.app_mounts(ETC)]
    assert targets[plan.KERNEL_MOUNTS - 1:plan.KERNEL_MOUNTS + 1] == ["/sys", "/etc/hostname"]
    assert all(t.startswith(("/proc", "/dev", "/sys")) for t in targets[:plan.KERNEL_MOUNTS])


def test_mtab_links_to_proc_self_mounts_only_where_the_image_has_an_etc_and_no_mtab() -> None:
    link = ("symlink", "../proc/self/mounts", f"{ROOT}/etc/mtab")
    k = RecordingKernel(kinds={f"{ROOT}/etc": "dir"})
    execute.set_up_root(k, plan_of(app()))
    assert link in k.calls and k.names().index("symlink") < k.names().index("mount")
    k = RecordingKernel(kinds={f"{ROOT}/etc": "dir", f"{ROOT}/etc/mtab": "file"})
    execute.set_up_root(k, plan_of(app()))
    assert link not in k.calls
    k = RecordingKernel()  # no /etc at all: none made, as rkt
    execute.set_up_root(k, plan_of(app()))
    assert link not in k.calls


def test_a_read_only_root_is_remounted_read_only_last_before_the_pivot() -> None:
    k = RecordingKernel(kinds={f"{ROOT}/etc": "dir"})
    execute.set_up_root(k, plan_of(app(read_only_root=True)))
    assert k.calls[-2] == ("mount", "", ROOT, "", execute.MS_REMOUNT | execute.MS_BIND | execute.MS_RDONLY, "")
    assert k.names()[-1] == "pivot_root"
    k = RecordingKernel()
    execute.set_up_root(k, plan_of(app()))
    assert not any(c[0] == "mount" and c[2] == ROOT for c in k.calls)


def test_a_read_only_root_takes_the_pods_etc_files_along_as_rkts() -> None:
    def etc_binds(ra: RuntimeApp) -> dict[str, bool]:
        k = RecordingKernel()
        execute.set_up_root(k, plan_of(ra))
        return {c[2].removeprefix(ROOT): c[4] for c in k.calls if c[0] == "bind" and "/etc/" in c[2]}

    assert etc_binds(app(read_only_root=True)) == {"/etc/hostname": True, "/etc/hosts": True}
    assert etc_binds(app()) == {"/etc/hostname": False, "/etc/hosts": False}


def test_fly_binds_volumes_and_the_read_only_root_too() -> None:
    ra = app(AppMount("host", "/data"), read_only_root=True)
    fly = plan.fly_app_plan(ra, lowers=("/l",), upper="/u", work="/w", rootfs=ROOT, log="l", resolv=None,
                            hosts=("stub", ""), volumes=plan.volume_mounts(ra, VOLUMES, SHARED, recursive=False))
    k = RecordingKernel(kinds={f"{ROOT}/etc": "dir"})
    execute.set_up_root(k, fly)
    assert ("bind_in_root", "/srv/data", ROOT, "/data", False, False) in k.calls
    assert k.names().index("bind_in_root") < k.names().index("bind")  # before the host's /dev, /proc, /sys
    assert k.names()[-2:] == ["mount", "chroot"]


def test_volume_plans_cross_to_pod_init_and_back() -> None:
    from pyrkt.model.plan import from_plain, to_plain

    ra = app(AppMount("host", "/data"), read_only_root=True)
    p = plan_of(ra, plan.volume_mounts(ra, VOLUMES, SHARED))
    assert from_plain(AppPlan, to_plain(p)) == p


def test_a_networks_resolv_conf_keeps_each_apps_volumes_and_read_only_etc() -> None:
    from pyrkt.stage1.default import with_resolv

    config = RuntimeConfig(uuid="u")
    ro, rw = app(AppMount("host", "/data"), read_only_root=True), app()
    apps = tuple(plan_of(ra, plan.volume_mounts(ra, VOLUMES, SHARED)) for ra in (ro, rw))
    pod = with_resolv(plan.pod_plan(config, apps, ETC), config, "/pod/etc/resolv.conf")
    assert [len(a.volumes) for a in pod.apps] == [1, 0]
    hostname = [next(m for m in a.mounts if m.target == "/etc/hostname") for a in pod.apps]
    assert [bool(m.flags & MS_RDONLY) for m in hostname] == [True, False]
    assert all(any(m.target == "/etc/resolv.conf" for m in a.mounts) for a in pod.apps)
