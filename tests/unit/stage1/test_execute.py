"""The stage1 executor through the recording Kernel: what it would mount, make and drop, in
which order, without root. The root integration tests (test_run, test_kernel_security, ...)
prove that LinuxKernel does what is recorded here."""

from __future__ import annotations

import pytest

from pyrkt.kernel import caps
from pyrkt.kernel.namespaces import CLONE_NEWNS
from pyrkt.kernel.recording import RecordingKernel
from pyrkt.model.abi import RuntimeConfig
from pyrkt.model.image import AppSpec
from pyrkt.model.plan import AppPlan, Device, EtcFiles, File, Mount
from pyrkt.model.pod import RuntimeApp, RuntimeImage
from pyrkt.stage1 import execute, plan
from pyrkt.stage1.users import Ids

ROOT = "/pod/rootfs"
ETC = EtcFiles("/pod/etc/hostname", hosts="/pod/etc/hosts-fallback")


def app_plan(config: RuntimeConfig | None = None) -> AppPlan:
    ra = RuntimeApp("web", RuntimeImage("sha512-x"), AppSpec(exec=("/bin/true",)))
    return plan.app_plan(ra, config or RuntimeConfig(uuid="u"), lowers=("/l2", "/l1"), upper="/u", work="/w",
                         rootfs=ROOT, log="l", seccomp=b"BPF", etc=ETC)


def mounted(k: RecordingKernel) -> list[str]:
    """The targets mounted or bound, in order, relative to the root."""
    return [c[2].removeprefix(ROOT) for c in k.calls if c[0] in ("mount", "bind")]


def test_set_up_root_order_namespace_overlay_mounts_devices_links_pivot() -> None:
    kinds = {f"{ROOT}/proc/kcore": "file", f"{ROOT}/sys/fs": "dir", f"{ROOT}/proc/sys": "dir"}
    k = RecordingKernel(kinds=kinds)
    execute.set_up_root(k, app_plan())
    names = k.names()
    assert names[:3] == ["unshare", "make_rprivate", "overlay"]
    assert k.calls[0] == ("unshare", CLONE_NEWNS | plan.CLONE_NEWCGROUP)  # no cgroups of its own: stays in the pod's
    assert k.calls[2] == ("overlay", ("/l2", "/l1"), "/u", "/w", ROOT)
    assert names[-1] == "pivot_root" and k.calls[-1] == ("pivot_root", ROOT)
    assert mounted(k) == ["/proc", "/dev", "/dev/console", "/dev/pts", "/dev/shm", "/dev/mqueue", "/sys",
                          "/etc/hostname", "/etc/hosts", "/proc/kcore", "/sys/fs", "/proc/sys"]
    assert names.index("mknod") > max(i for i, n in enumerate(names) if n in ("mount", "bind"))
    assert names.index("symlink") > names.index("mknod")
    assert ("symlink", "pts/ptmx", f"{ROOT}/dev/ptmx") in k.calls


def test_masks_a_directory_with_an_empty_tmpfs_and_a_file_with_dev_null() -> None:
    k = RecordingKernel(kinds={f"{ROOT}/proc/kcore": "file", f"{ROOT}/sys/fs": "dir"})
    execute.set_up_root(k, app_plan())
    assert ("bind", "/dev/null", f"{ROOT}/proc/kcore", False, False, 0) in k.calls
    assert ("mount", "tmpfs", f"{ROOT}/sys/fs", "tmpfs", execute.MASK_DIR_FLAGS, "size=0,mode=000") in k.calls
    assert not any(c[2] == f"{ROOT}/proc/kallsyms" for c in k.calls if c[0] in ("mount", "bind"))  # absent


def test_read_only_path_binds_onto_itself_recursively_then_remounts() -> None:
    k = RecordingKernel(kinds={f"{ROOT}/proc/sys": "dir"})
    execute.set_up_root(k, app_plan())
    target = f"{ROOT}/proc/sys"
    assert ("bind", target, target, True, True, plan.NOSUID_NODEV_NOEXEC) in k.calls


def test_insecure_paths_masks_nothing() -> None:
    k = RecordingKernel(kinds={f"{ROOT}/proc/kcore": "file", f"{ROOT}/proc/sys": "dir"})
    execute.set_up_root(k, app_plan(RuntimeConfig(uuid="u", disable_paths=True)))
    assert mounted(k)[-1] == "/etc/hosts"


def test_fallback_hosts_only_where_the_image_has_none() -> None:
    k = RecordingKernel(kinds={f"{ROOT}/etc/hosts": "file"})
    execute.set_up_root(k, app_plan())
    assert "/etc/hosts" not in mounted(k)


def test_device_refused_by_the_policy_is_the_host_node_bound() -> None:
    k = RecordingKernel(refuse_mknod=True)
    execute.make_device(k, ROOT, Device("/dev/net/tun", "c", 10, 200, 0o666, host="/dev/net/tun"))
    assert k.calls == [("make_dir", f"{ROOT}/dev/net", 0o755),
                       ("mknod", f"{ROOT}/dev/net/tun", "c", 10, 200, 0o666, 0, 0),
                       ("make_file", f"{ROOT}/dev/net/tun", 0o600),
                       ("bind", "/dev/net/tun", f"{ROOT}/dev/net/tun", False, False, 0)]


def test_files_written_only_when_their_condition_holds_and_chroot() -> None:
    p = AppPlan("fly", ("/bin/true",), rootfs=ROOT, switch_root="chroot",
                files=(File("/etc/hosts", "stub", when="absent"), File("/etc/resolv.conf", "ns")))
    k = RecordingKernel(kinds={f"{ROOT}/etc/hosts": "link"})
    execute.set_up_root(k, p)
    assert [c for c in k.calls if c[0] == "write_file"] == [("write_file", f"{ROOT}/etc/resolv.conf", "ns", 0o644)]
    assert k.calls[-1] == ("chroot", ROOT)


def test_mount_with_plain_flags_and_bind_over_made_target() -> None:
    k = RecordingKernel()
    execute.apply_mount(k, ROOT, Mount("/host/file", "/etc/x", flags=plan.MS_BIND | plan.MS_RDONLY, make="file"))
    assert k.calls == [("make_file", f"{ROOT}/etc/x", 0o644), ("bind", "/host/file", f"{ROOT}/etc/x", False, True, 0)]


# -- become: the one privilege drop -------------------------------------------------------------

def test_become_non_root_app_keeps_its_caps_only_in_the_bounding_set_as_rkt() -> None:
    k = RecordingKernel()
    keep = tuple(sorted(caps.DEFAULT_CAPS))
    execute.become(k, Ids(1000, 1001, (50,), "app", "/home/app"), keep, b"BPF", True)
    assert k.calls == [("drop_bounding", frozenset(keep)), ("set_ids", 1000, 1001, (50,)),
                       ("set_caps", frozenset(), 1000), ("no_new_privs",), ("load_seccomp", b"BPF")]


def test_become_root_app_holds_exactly_its_caps() -> None:
    k = RecordingKernel()
    keep = (caps.parse("CAP_NET_BIND_SERVICE"),)
    execute.become(k, Ids(0, 0, (), "root", "/root"), keep, b"BPF", True)
    assert k.calls == [("drop_bounding", frozenset(keep)), ("set_ids", 0, 0, ()), ("set_caps", frozenset(keep), 0),
                       ("no_new_privs",), ("load_seccomp", b"BPF")]


def test_become_root_app_with_insecure_seccomp_loads_no_filter() -> None:
    k = RecordingKernel()
    execute.become(k, Ids(0, 0, (), "root", "/root"), (1, 2), b"", True)
    assert k.names() == ["drop_bounding", "set_ids", "set_caps", "no_new_privs"]
    assert ("set_caps", frozenset({1, 2}), 0) in k.calls


def test_become_fly_changes_ids_only() -> None:
    k = RecordingKernel()
    execute.become(k, Ids(1000, 1000, (), "u", "/"), None, b"", False)
    assert k.calls == [("set_ids", 1000, 1000, ())]


def test_become_insecure_capabilities_keeps_every_cap() -> None:
    k = RecordingKernel()
    p = app_plan(RuntimeConfig(uuid="u", disable_capabilities=True))
    execute.become(k, Ids(0, 0, (), "root", "/"), p.caps, p.seccomp, p.no_new_privs)
    assert k.calls[0] == ("drop_bounding", frozenset(caps.ALL_CAPS))


def test_enter_becomes_root_with_the_pods_caps_and_filter() -> None:
    """What ``enter`` passes: uid 0, no groups, the app's capability set and seccomp filter."""
    k = RecordingKernel()
    keep = plan.app_caps(RuntimeConfig(uuid="u"))
    execute.become(k, Ids(0, 0, (), "root", "/"), keep, b"BPF", True)
    assert k.calls[1] == ("set_ids", 0, 0, ())
    assert k.calls[-1] == ("load_seccomp", b"BPF")


def test_a_refused_step_stops_the_drop() -> None:
    class Refusing(RecordingKernel):
        def set_ids(self, uid: int, gid: int, groups: tuple[int, ...]) -> None:
            raise PermissionError(1, "Operation not permitted")

    k = Refusing()
    with pytest.raises(PermissionError):
        execute.become(k, Ids(5, 5, (), "", "/"), (1,), b"BPF", True)
    assert "load_seccomp" not in k.names() and "no_new_privs" not in k.names()


def test_set_up_pod_namespaces_then_hostname_sysctls_and_loopback() -> None:
    pod = plan.pod_plan(RuntimeConfig(uuid="u", net=("none",), sysctls=(("kernel.shmmni", "9"),)), (), ETC)
    k = RecordingKernel()
    execute.set_up_pod(k, pod)
    assert pod.ns_flags & plan.CLONE_NEWCGROUP
    assert k.calls == [("unshare", pod.ns_flags & ~plan.CLONE_NEWCGROUP), ("make_rprivate", "/"),
                       ("sethostname", "rkt-u"), ("write_sysctl", "kernel.shmmni", "kernel/shmmni", "9"),
                       ("loopback_up",)]
    k = RecordingKernel()
    execute.set_up_pod(k, plan.pod_plan(RuntimeConfig(uuid="u", net=("default",)), (), ETC))
    assert "loopback_up" not in k.names()  # a CNI netns: the plugins set lo up


def test_an_app_joins_its_cgroups_first_then_gets_a_cgroup_namespace_rooted_there() -> None:
    k = RecordingKernel()
    dirs = ("/sys/fs/cgroup/memory/pyrkt/u/web", "/sys/fs/cgroup/pids/pyrkt/u/web")
    execute.set_up_root(k, app_plan().replace(cgroups=dirs))
    assert k.calls[:2] == [("cgroup_join", dirs, 0), ("unshare", CLONE_NEWNS | plan.CLONE_NEWCGROUP)]
    k = RecordingKernel()
    execute.set_up_root(k, app_plan().replace(cgroupns=False))  # fly's: the host's cgroup namespace
    assert k.calls[0] == ("unshare", CLONE_NEWNS)


def test_limits_of_the_plan_are_applied_and_none_by_default() -> None:
    k = RecordingKernel()
    execute.apply_limits(k, app_plan())
    assert k.calls == []  # no rlimit, and no --oom-score-adj or os/linux/oom-score-adj isolator
    execute.apply_limits(k, app_plan().replace(rlimits=((7, 1024, 4096),), oom_score_adj=500))
    assert k.calls == [("set_rlimit", 7, 1024, 4096), ("oom_score_adj", 500)]


def test_host_side_cgroups_are_made_and_closed_to_devices_before_anyone_joins() -> None:
    pod = plan.pod_plan(RuntimeConfig(uuid="u", net=("none",)), (), ETC)
    k = RecordingKernel()
    paths, _, _ = execute.set_up_cgroups(k, pod)
    assert pod.device_rules  # the default allow-list
    assert [c for c in k.calls if c[0] != "cgroup_mkdir"] == [("cgroup_create", pod.cgroup),
                                                                ("cgroup_limit_devices", pod.cgroup, pod.device_rules)]
    assert paths == [c[1] for c in k.calls if c[0] == "cgroup_mkdir"]  # pod init joins the pod's cgroups
    k = RecordingKernel()
    execute.set_up_cgroups(k, plan.pod_plan(RuntimeConfig(uuid="u", net=("none",), disable_paths=True), (), ETC))
    assert "cgroup_limit_devices" not in k.names()  # --insecure-options=paths: no device policy, as rkt


def test_teardown_unmounts_then_removes_the_cgroups_and_skips_what_was_never_made() -> None:
    k = RecordingKernel()
    execute.tear_down(k, "/data/pods/exited-garbage/u", "pyrkt/u")
    assert k.calls == [("unmount_all_under", "/data/pods/exited-garbage/u"), ("cgroup_remove", "pyrkt/u")]
    k = RecordingKernel()
    execute.tear_down(k, "/data/pods/garbage/u", "")
    assert k.names() == ["unmount_all_under"]
