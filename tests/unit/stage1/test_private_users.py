"""--private-users in the plans and the executor, through the recording Kernel: the pod's id
range in the app plan, idmapped layers and pod files, host binds left alone, the user
namespace joined last; and --no-overlay's bound copy."""

from __future__ import annotations

import os

from pyrkt.kernel.namespaces import CLONE_NEWUSER
from pyrkt.kernel.recording import RecordingKernel
from pyrkt.model.abi import RuntimeConfig
from pyrkt.model.image import AppSpec
from pyrkt.model.plan import AppPlan, EtcFiles, Mount
from pyrkt.model.pod import RuntimeApp, RuntimeImage
from pyrkt.stage1 import execute, plan

POD = "/data/pods/run/u"
ROOT = f"{POD}/stage1/rootfs/opt/stage2/web/rootfs"
ETC = EtcFiles(f"{POD}/stage1/rootfs/etc/hostname", hosts=f"{POD}/stage1/rootfs/etc/hosts-fallback",
               resolv="/etc/resolv.conf")
SHIFT = 1835008
USERNS = 7


def config(**kw: object) -> RuntimeConfig:
    return RuntimeConfig(uuid="u", **kw)  # type: ignore[arg-type]


def app_plan(cfg: RuntimeConfig, *, lowers: tuple[str, ...] = ("/l2", "/l1"), idmapped: bool = True) -> AppPlan:
    ra = RuntimeApp("web", RuntimeImage("sha512-x"), AppSpec(exec=("/bin/true",)))
    return plan.app_plan(ra, cfg, lowers=lowers, upper=f"{POD}/overlay/web/upper", work=f"{POD}/overlay/web/work",
                         rootfs=ROOT, log="l", seccomp=b"", etc=ETC, pod_dir=POD, idmapped=idmapped)


def test_the_app_plan_carries_the_pods_shift_and_its_own_files() -> None:
    p = app_plan(config(private_users=f"{SHIFT}:65536"))
    assert (p.id_shift, p.pod_files, p.idmapped) == (SHIFT, POD, True)
    devpts = next(m for m in p.mounts if m.target == "/dev/pts")
    assert f"gid={SHIFT + 5}" in devpts.data.split(",")  # the pod's own tty group


def test_without_private_users_the_plan_has_no_shift_and_the_hosts_tty_group() -> None:
    p = app_plan(config())
    assert (p.id_shift, p.pod_files) == (0, "")
    assert "gid=5" in next(m for m in p.mounts if m.target == "/dev/pts").data.split(",")


def test_a_pod_with_its_own_network_lets_its_apps_bind_any_port_unless_sysctl_says_otherwise() -> None:
    key = "net.ipv4.ip_unprivileged_port_start"
    for net in (("none",), ("default",)):
        pod = plan.pod_plan(config(private_users=f"{SHIFT}:65536", net=net), (), ETC)
        assert (key, "net/ipv4/ip_unprivileged_port_start", "0") in pod.sysctls
        assert pod.private_users == f"{SHIFT}:65536"
    assert not plan.pod_plan(config(private_users=f"{SHIFT}:65536", net=("host",)), (), ETC).sysctls
    assert not plan.pod_plan(config(net=("none",)), (), ETC).sysctls
    mine = plan.pod_plan(config(private_users=f"{SHIFT}:65536", net=("none",), sysctls=((key, "1024"),)), (), ETC)
    assert [s for s in mine.sysctls if s[0] == key] == [(key, "net/ipv4/ip_unprivileged_port_start", "1024")]


def test_layers_and_pod_files_are_idmapped_and_host_files_and_kernel_mounts_are_not() -> None:
    k = RecordingKernel()
    execute.set_up_root(k, app_plan(config(private_users=f"{SHIFT}:65536")), USERNS)
    assert k.calls[2] == ("overlay_idmapped", ("/l2", "/l1"), f"{POD}/overlay/web/upper", f"{POD}/overlay/web/work",
                          ROOT, USERNS)
    assert "overlay" not in k.names()
    idmapped = [(c[1], c[2]) for c in k.calls if c[0] == "bind_idmapped"]
    assert idmapped == [(ETC.hostname, f"{ROOT}/etc/hostname"), (ETC.hosts, f"{ROOT}/etc/hosts")]
    assert all(c[3] == USERNS for c in k.calls if c[0] == "bind_idmapped")
    # the host's resolv.conf (as a host volume) keeps its host owners; read-only stays read-only
    assert ("bind", "/etc/resolv.conf", f"{ROOT}/etc/resolv.conf", False, True, 0) in k.calls
    assert ("mount", "proc", f"{ROOT}/proc", "proc", plan.NOSUID_NODEV_NOEXEC, "") in k.calls


def test_any_bind_from_inside_the_pod_dir_is_the_pods_own_whoever_planned_it() -> None:
    """Volumes planned elsewhere (an empty volume in the pod dir, a host dir) follow one rule."""
    base = app_plan(config(private_users=f"{SHIFT}:65536"))
    vols = (Mount(f"{POD}/sharedVolumes/cache", "/cache", flags=plan.MS_BIND | plan.MS_REC, make="dir"),
            Mount("/srv/data", "/data", flags=plan.MS_BIND | plan.MS_RDONLY, make="dir"),
            Mount(POD + "-other/x", "/other", flags=plan.MS_BIND, make="dir"))
    k = RecordingKernel()
    execute.set_up_root(k, base.replace(mounts=vols), USERNS)
    assert ("bind_idmapped", f"{POD}/sharedVolumes/cache", f"{ROOT}/cache", USERNS, True, False, 0) in k.calls
    assert ("bind", "/srv/data", f"{ROOT}/data", False, True, 0) in k.calls
    assert ("bind", POD + "-other/x", f"{ROOT}/other", False, False, 0) in k.calls  # not below the pod dir


def test_where_the_kernel_cannot_idmap_the_pod_files_they_are_chowned_by_the_shift_then_bound() -> None:
    k = RecordingKernel()
    execute.set_up_root(k, app_plan(config(private_users=f"{SHIFT}:65536"), lowers=(), idmapped=False), USERNS)
    assert "bind_idmapped" not in k.names()
    i = k.calls.index(("shift_owner", ETC.hostname, SHIFT))
    assert k.calls[i + 1] == ("bind", ETC.hostname, f"{ROOT}/etc/hostname", False, False, 0)


def test_no_overlay_binds_the_apps_copy_onto_itself_with_or_without_a_user_namespace() -> None:
    for cfg, userns in ((config(), -1), (config(private_users=f"{SHIFT}:65536"), USERNS)):
        k = RecordingKernel()
        execute.set_up_root(k, app_plan(cfg, lowers=()), userns)
        assert k.calls[2] == ("bind", ROOT, ROOT, True, False, 0)
        assert not {"overlay", "overlay_idmapped"} & set(k.names())


def test_without_a_user_namespace_nothing_is_idmapped() -> None:
    k = RecordingKernel()
    execute.set_up_root(k, app_plan(config()))
    assert k.calls[2][0] == "overlay"
    assert not {"bind_idmapped", "overlay_idmapped", "shift_owner"} & set(k.names())


def test_the_app_joins_the_user_namespace_as_its_root_before_the_privilege_drop() -> None:
    k = RecordingKernel()
    execute.enter_user_namespace(k, USERNS)
    assert k.calls == [("setns", USERNS, CLONE_NEWUSER), ("set_ids", 0, 0, ())]


def test_the_pods_user_namespace_gets_its_range_as_uid_and_gid_maps() -> None:
    k = RecordingKernel()
    started = k.start_user_namespace()
    pod = plan.pod_plan(config(private_users=f"{SHIFT}:65536"), (), ETC)
    fd = execute.make_user_namespace(k, started, pod)
    try:
        assert os.fstat(fd)
        assert k.calls == [("start_user_namespace",),
                           ("finish_user_namespace", started, f"0 {SHIFT} 65536\n", f"0 {SHIFT} 65536\n")]
    finally:
        os.close(fd)


def test_what_the_executor_makes_in_the_root_is_the_pods_root_s_with_a_user_namespace() -> None:
    """A mount target (and its parents) the image lacks is made owned by the pod's root, as it
    is root's without a user namespace: the app can use the directories made for it."""
    k = RecordingKernel()
    execute.set_up_root(k, app_plan(config(private_users=f"{SHIFT}:65536")), USERNS)
    assert ("make_file", f"{ROOT}/etc/hostname", 0o644, SHIFT) in k.calls
    assert ("make_dir", f"{ROOT}/proc", 0o755, SHIFT) in k.calls
    k = RecordingKernel()
    execute.set_up_root(k, app_plan(config()))
    assert ("make_file", f"{ROOT}/etc/hostname", 0o644) in k.calls
