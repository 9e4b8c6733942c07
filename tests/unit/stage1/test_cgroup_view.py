"""An app's view of its own cgroups at /sys/fs/cgroup (as Docker's and containerd's): each of
the host's hierarchies mounted again there from inside the app's cgroup namespace, read-only
(a privileged app's read-write), while the rest of /sys/fs stays hidden as rkt hid it; planned
for v1, hybrid and v2 hosts and executed in that order (no root: the recording kernel)."""

from __future__ import annotations

from pyrkt.kernel.recording import RecordingKernel
from pyrkt.model.abi import PRIVILEGED_ANNOTATION, RuntimeConfig
from pyrkt.model.image import AppSpec
from pyrkt.model.plan import AppPlan, EtcFiles, Mount
from pyrkt.model.pod import RuntimeApp, RuntimeImage
from pyrkt.stage1 import execute, plan
from pyrkt.stage1.plan import MS_RDONLY, MS_REMOUNT, NOSUID_NODEV_NOEXEC

ROOT = "/pod/rootfs"
ETC = EtcFiles("/pod/etc/hostname", hosts="/pod/etc/hosts-fallback")
HYBRID = (("/sys/fs/cgroup/memory", 1, ("memory",)), ("/sys/fs/cgroup/cpu,cpuacct", 1, ("cpu", "cpuacct")),
          ("/sys/fs/cgroup/systemd", 1, ("name=systemd",)), ("/sys/fs/cgroup/unified", 2, ()))
V2 = (("/sys/fs/cgroup", 2, ("cpu", "memory", "pids")),)
RO = NOSUID_NODEV_NOEXEC | MS_RDONLY


def app_plan(*, privileged: bool = False, cgroups: tuple[plan.CgroupFs, ...] = HYBRID,
             config: RuntimeConfig | None = None) -> AppPlan:
    ra = RuntimeApp("web", RuntimeImage("sha512-x"), AppSpec(exec=("/bin/true",)),
                    annotations=((PRIVILEGED_ANNOTATION, "true"),) if privileged else ())
    return plan.app_plan(ra, config or RuntimeConfig(uuid="u"), lowers=("/l",), upper="/u", work="/w",
                         rootfs=ROOT, log="l", seccomp=b"BPF", etc=ETC, cgroups=cgroups)


def view(p: AppPlan) -> list[Mount]:
    return [m for m in p.mounts if m.target.startswith("/sys/fs")]


def test_hybrid_each_hierarchy_read_only_under_a_tmpfs_and_the_rest_of_sys_fs_hidden() -> None:
    assert view(app_plan()) == [
        Mount("tmpfs", "/sys/fs", "tmpfs", NOSUID_NODEV_NOEXEC, "size=0,mode=755"),
        Mount("tmpfs", "/sys/fs/cgroup", "tmpfs", NOSUID_NODEV_NOEXEC, "mode=755", make="dir"),
        Mount("cgroup", "/sys/fs/cgroup/memory", "cgroup", RO, "memory", make="dir"),
        Mount("cgroup", "/sys/fs/cgroup/cpu,cpuacct", "cgroup", RO, "cpu,cpuacct", make="dir"),
        Mount("cgroup", "/sys/fs/cgroup/systemd", "cgroup", RO, "none,name=systemd", make="dir"),
        Mount("cgroup2", "/sys/fs/cgroup/unified", "cgroup2", RO, make="dir"),
        Mount("", "/sys/fs/cgroup", "", MS_REMOUNT | RO),
        Mount("", "/sys/fs", "", MS_REMOUNT | RO),
    ]
    assert not [m for m in app_plan().mounts if m.make == "mask" and m.target == "/sys/fs"]  # no mask over it


def test_v2_alone_is_one_read_only_mount() -> None:
    assert view(app_plan(cgroups=V2)) == [
        Mount("tmpfs", "/sys/fs", "tmpfs", NOSUID_NODEV_NOEXEC, "size=0,mode=755"),
        Mount("cgroup2", "/sys/fs/cgroup", "cgroup2", RO, make="dir"),
        Mount("", "/sys/fs", "", MS_REMOUNT | RO),
    ]


def test_a_privileged_app_writes_its_cgroups_and_sees_all_of_sys_fs() -> None:
    assert view(app_plan(privileged=True, cgroups=V2)) == [
        Mount("cgroup2", "/sys/fs/cgroup", "cgroup2", NOSUID_NODEV_NOEXEC, make="dir")]
    hybrid = view(app_plan(privileged=True))
    assert hybrid[0].target == "/sys/fs/cgroup" and all(not m.flags & MS_RDONLY for m in hybrid)


def test_without_masks_the_view_is_still_read_only() -> None:
    mounts = view(app_plan(config=RuntimeConfig(uuid="u", disable_paths=True)))
    assert mounts[0] == Mount("tmpfs", "/sys/fs/cgroup", "tmpfs", NOSUID_NODEV_NOEXEC, "mode=755", make="dir")
    assert mounts[-1] == Mount("", "/sys/fs/cgroup", "", MS_REMOUNT | RO)


def test_no_hierarchy_known_keeps_rkts_mask() -> None:
    p = app_plan(cgroups=())
    assert [m.target for m in p.mounts if m.target.startswith("/sys/fs")] == ["/sys/fs"]


def test_the_executor_mounts_the_view_after_sys_and_before_the_app_runs() -> None:
    k = RecordingKernel(kinds={f"{ROOT}/sys/fs": "dir"})
    execute.set_up_root(k, app_plan())
    calls = [c for c in k.calls if c[0] in ("mount", "make_dir") and "/sys" in str(c[1:3])]
    targets = [c[2] for c in calls]
    sys_at = targets.index(f"{ROOT}/sys")
    assert targets[sys_at + 1] == f"{ROOT}/sys/fs"
    memory = next(c for c in calls if c[0] == "mount" and c[2] == f"{ROOT}/sys/fs/cgroup/memory")
    assert memory[1:] == ("cgroup", f"{ROOT}/sys/fs/cgroup/memory", "cgroup", RO, "memory")
    last = [c for c in calls if c[0] == "mount"][-1]
    assert last[2] == f"{ROOT}/sys/fs" and last[4] & MS_REMOUNT and last[4] & MS_RDONLY
