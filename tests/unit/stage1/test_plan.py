"""The stage1 planners: what an app's root, ids, capabilities and seccomp filter will be, as
plan values, from the pod manifest and the runtime config (no root, no I/O)."""

from __future__ import annotations

import marshal

from pyrkt.kernel import caps
from pyrkt.model.abi import RuntimeConfig
from pyrkt.model.devices import HostDevice
from pyrkt.model.image import AppSpec
from pyrkt.model.plan import AppPlan, EtcFiles, Mount, from_plain, to_plain
from pyrkt.model.pod import RuntimeApp, RuntimeImage
from pyrkt.stage1 import plan

ETC = EtcFiles("/pod/etc/hostname", hosts="/pod/etc/hosts-fallback", resolv="/pod/etc/resolv.conf")


def runtime_app(**spec: object) -> RuntimeApp:
    app = AppSpec(exec=("/bin/sh", "-c", "true"), **spec)  # type: ignore[arg-type]
    return RuntimeApp("web", RuntimeImage("sha512-x"), app)


def default_plan(config: RuntimeConfig | None = None, **kw: object) -> AppPlan:
    return plan.app_plan(runtime_app(**kw), config or RuntimeConfig(uuid="u"), lowers=("/l2", "/l1"), upper="/u",
                         work="/w", rootfs="/r", log="logs/web.log", seccomp=b"BPF", etc=ETC)


def targets(mounts: tuple[Mount, ...]) -> list[str]:
    return [m.target for m in mounts]


def test_mount_order_proc_dev_sys_etc_then_masks_and_read_only_paths() -> None:
    got = targets(plan.app_mounts(ETC))
    assert got[:10] == ["/proc", "/dev", "/dev/console", "/dev/pts", "/dev/shm", "/dev/mqueue", "/sys",
                        "/etc/hostname", "/etc/hosts", "/etc/resolv.conf"]
    assert got[10:10 + len(plan.INACCESSIBLE)] == list(plan.INACCESSIBLE)
    assert got[10 + len(plan.INACCESSIBLE):] == list(plan.READ_ONLY)


def test_masks_and_read_only_paths_are_skipped_where_absent_and_left_out_when_insecure() -> None:
    mounts = plan.app_mounts(ETC)
    masked = [m for m in mounts if m.target in plan.INACCESSIBLE]
    assert {(m.make, m.when) for m in masked} == {("mask", "present")}
    ro = [m for m in mounts if m.target in plan.READ_ONLY]
    assert all(m.when == "present" and m.source == "" and m.flags & plan.MS_RDONLY and m.flags & plan.MS_BIND
               for m in ro)
    assert targets(plan.app_mounts(ETC, mask_paths=False))[-1] == "/etc/resolv.conf"


def test_sys_is_read_only_and_proc_nosuid_nodev_noexec() -> None:
    by_target = {m.target: m for m in plan.app_mounts(ETC)}
    assert by_target["/sys"].flags & plan.MS_RDONLY
    assert by_target["/proc"].flags == plan.NOSUID_NODEV_NOEXEC
    assert by_target["/dev/console"].source == "/dev/null"
    assert {m.source for m in plan.app_mounts(ETC, console="/dev/pts/7") if m.target == "/dev/console"} == {"/dev/pts/7"}


def test_etc_files_hosts_only_where_the_image_has_none_unless_a_flag_decided() -> None:
    fallback = plan.etc_mounts(ETC)[1]
    assert (fallback.target, fallback.when, fallback.flags & plan.MS_RDONLY) == ("/etc/hosts", "absent", 0)
    host = plan.etc_mounts(ETC.replace(hosts="/etc/hosts", hosts_override=True, hosts_readonly=True))[1]
    assert (host.when, bool(host.flags & plan.MS_RDONLY)) == ("", True)
    assert targets(tuple(plan.etc_mounts(EtcFiles("/h")))) == ["/etc/hostname"]  # no hosts, no resolv.conf


def test_devices_standard_nodes_then_device_flags_without_repeats() -> None:
    fuse = HostDevice("/dev/fuse", "c", 10, 229, mode=0o666)
    null = HostDevice("/dev/null", "c", 1, 3)
    devs = plan.app_devices((fuse, null))
    assert [d.path for d in devs] == ["/dev/null", "/dev/zero", "/dev/full", "/dev/random", "/dev/urandom",
                                      "/dev/tty", "/dev/fuse"]
    assert (devs[0].major, devs[0].minor, devs[0].mode) == (1, 3, 0o666)
    assert (devs[-1].major, devs[-1].minor, devs[-1].mode, devs[-1].host) == (10, 229, 0o666, "/dev/fuse")


def test_device_flag_in_the_runtime_config_reaches_every_app_plan() -> None:
    p = default_plan(RuntimeConfig(uuid="u", devices=(HostDevice("/dev/net/tun", "c", 10, 200),)))
    assert p.devices[-1].path == "/dev/net/tun"


def test_capabilities_default_set_or_all_when_insecure() -> None:
    assert set(default_plan().caps or ()) == set(caps.DEFAULT_CAPS)
    insecure = default_plan(RuntimeConfig(uuid="u", disable_capabilities=True))
    assert set(insecure.caps or ()) == set(caps.ALL_CAPS)


def test_seccomp_and_no_new_privs_of_the_default_flavor() -> None:
    p = default_plan()
    assert (p.seccomp, p.no_new_privs, p.switch_root) == (b"BPF", True, "pivot")


def test_app_fields_from_the_manifest() -> None:
    p = default_plan(user="1000", group="staff", supplementary_gids=(7,), working_directory="",
                     environment=(("A", "1"),), event_handlers=(("pre-start", ("/bin/true",)),))
    assert (p.user, p.group, p.supplementary_gids, p.cwd) == ("1000", "staff", (7,), "/")
    assert p.env == ("A=1", f"PATH={plan.STANDARD_PATH}", "AC_APP_NAME=web", "container=pyrkt")
    assert p.event_handlers == (("pre-start", ("/bin/true",)),)
    assert p.lowers == ("/l2", "/l1")


def test_plans_cross_marshal_and_json_lists_unchanged() -> None:
    p = default_plan(event_handlers=(("post-stop", ("/bin/echo", "bye")),))
    plain = to_plain(p)
    assert from_plain(AppPlan, marshal.loads(marshal.dumps(plain))) == p
    as_json = {k: [list(x) if isinstance(x, tuple) else x for x in v] if isinstance(v, tuple) else v
               for k, v in plain.items()}
    assert from_plain(AppPlan, as_json) == p


def test_fly_plan_binds_the_host_dev_proc_sys_and_chroots_without_touching_caps() -> None:
    p = plan.fly_app_plan(runtime_app(), lowers=("/l",), upper="/u", work="/w", rootfs="/r", log="/x.raw",
                          resolv=None, hosts=("stub", ""))
    assert [(m.source, m.target, m.flags) for m in p.mounts] == [
        (f"/{d}", f"/{d}", plan.MS_BIND | plan.MS_REC) for d in ("dev", "proc", "sys")]
    assert (p.switch_root, p.caps, p.seccomp, p.no_new_privs) == ("chroot", None, b"", False)
    assert [(f.path, f.when) for f in p.files] == [("/etc/hosts", "absent")]


def test_fly_plan_etc_files_of_its_flags() -> None:
    p = plan.fly_app_plan(runtime_app(), lowers=(), upper="", work="", rootfs="/r", log="",
                          resolv=("copy", "nameserver 10.0.0.1\n"), hosts=("bind", "/etc/hosts"))
    assert [(f.path, f.text) for f in p.files] == [("/etc/resolv.conf", "nameserver 10.0.0.1\n")]
    hosts = p.mounts[-1]
    assert (hosts.source, hosts.target, bool(hosts.flags & plan.MS_RDONLY)) == ("/etc/hosts", "/etc/hosts", True)
    p = plan.fly_app_plan(runtime_app(), lowers=(), upper="", work="", rootfs="/r", log="",
                          resolv=("bind", "/etc/resolv.conf"), hosts=("bind", "/pod/etc/hosts"))
    assert [(m.target, bool(m.flags & plan.MS_RDONLY)) for m in p.mounts[3:]] == [
        ("/etc/resolv.conf", True), ("/etc/hosts", False)]


# -- the pod -----------------------------------------------------------------------------------

def test_pod_plan_namespaces_hostname_cgroup_and_device_policy() -> None:
    from pyrkt.model.devices import DEFAULT_ALLOW

    p = plan.pod_plan(RuntimeConfig(uuid="u1", net=("none",)), (), ETC)
    assert p.ns_flags == (plan.CLONE_NEWNS | plan.CLONE_NEWUTS | plan.CLONE_NEWCGROUP | plan.CLONE_NEWIPC
                          | plan.CLONE_NEWNET)
    assert (p.hostname, p.cgroup, p.net, p.device_rules) == ("rkt-u1", "pyrkt/u1", "none", DEFAULT_ALLOW)
    shared = plan.pod_plan(RuntimeConfig(uuid="u", hostname="h", ipc="parent", net=("default",)), (), ETC)
    assert shared.ns_flags == plan.CLONE_NEWNS | plan.CLONE_NEWUTS | plan.CLONE_NEWCGROUP
    assert (shared.hostname, shared.net) == ("h", "cni")
    assert plan.pod_plan(RuntimeConfig(uuid="u", disable_paths=True), (), ETC).device_rules is None


def test_pod_plan_device_flag_is_allowed_and_sysctls_checked() -> None:
    import pytest

    from pyrkt.errors import UsageError

    p = plan.pod_plan(RuntimeConfig(uuid="u", devices=(HostDevice("/dev/fuse", "c", 10, 229, access="rw"),),
                                    sysctls=(("net.ipv4.ip_forward", "1"),)), (), ETC)
    assert p.device_rules is not None and p.device_rules[-1].v1() == "c 10:229 rw"
    assert p.sysctls == (("net.ipv4.ip_forward", "net/ipv4/ip_forward", "1"),)
    with pytest.raises(UsageError, match="net.ipv4.ip_forward"):
        plan.pod_plan(RuntimeConfig(uuid="u", net=("host",), sysctls=(("net.ipv4.ip_forward", "1"),)), (), ETC)


def test_pod_plan_crosses_marshal_with_its_apps() -> None:
    from pyrkt.model.plan import PodPlan

    p = plan.pod_plan(RuntimeConfig(uuid="u"), (default_plan(),), ETC, pod="/pods/u", tee=True)
    assert from_plain(PodPlan, marshal.loads(marshal.dumps(to_plain(p)))) == p


def test_capabilities_of_an_app_come_from_its_isolators() -> None:
    retain = (("os/linux/capabilities-retain-set", {"set": ["CAP_NET_BIND_SERVICE"]}),)
    assert default_plan(isolators=retain).caps == (caps.parse("CAP_NET_BIND_SERVICE"),)
    remove = (("os/linux/capabilities-remove-set", {"set": ["CAP_CHOWN"]}),)
    assert default_plan(isolators=remove).caps == tuple(sorted(caps.DEFAULT_CAPS - {caps.parse("CAP_CHOWN")}))
    insecure = RuntimeConfig(uuid="u", disable_capabilities=True)
    assert default_plan(insecure, isolators=retain).caps == tuple(sorted(caps.ALL_CAPS))
    assert default_plan(isolators=(("resource/memory", {"limit": "1G"}),)).caps == tuple(sorted(caps.DEFAULT_CAPS))


def test_an_apps_resource_isolators_become_its_limits_and_oom_score_and_cross_a_marshal() -> None:
    from pyrkt.model import isolators as iso
    from pyrkt.model.plan import Limits
    from pyrkt.stage1.fly import unapplied_limits

    isolators = ((iso.MEMORY, {"limit": "64Mi"}), (iso.OOM_SCORE_ADJ, 300), (iso.PIDS_LIMIT, 10))
    p = default_plan(isolators=isolators)
    assert p.limits == Limits(memory=64 * 2 ** 20, pids=10, given=(iso.MEMORY, iso.PIDS_LIMIT))
    assert p.oom_score_adj == 300
    assert from_plain(AppPlan, marshal.loads(marshal.dumps(to_plain(p)))) == p
    assert default_plan().limits == Limits(pids=iso.DEFAULT_PIDS_LIMIT) and default_plan().oom_score_adj is None
    assert unapplied_limits(isolators) == [iso.MEMORY, iso.PIDS_LIMIT, iso.OOM_SCORE_ADJ]  # fly names them


def test_mds_register_adds_the_metadata_url_once() -> None:
    app = plan.with_metadata_url(default_plan(), "172.16.28.1", 18112, "t0k3n")
    app = plan.with_metadata_url(app, "127.0.0.1", 1, "other")
    urls = [e for e in app.env if e.startswith("AC_METADATA_URL=")]
    assert urls == ["AC_METADATA_URL=http://127.0.0.1:1/other"]
    assert "AC_APP_NAME=web" in app.env


def moded_plan(config: RuntimeConfig | None = None, **modes: str) -> AppPlan:
    ra = runtime_app().replace(annotations=tuple((f"coreos.com/rkt/stage2/{s}", m) for s, m in modes.items()))
    return plan.app_plan(ra, config or RuntimeConfig(uuid="u"), lowers=("/l",), upper="/u", work="/w", rootfs="/r",
                         log="logs/web.log", seccomp=b"", etc=ETC)


def test_an_apps_stdio_modes_are_planned_from_its_annotations_and_cross_the_fork() -> None:
    assert (default_plan().stdin, default_plan().stdout, default_plan().stderr) == ("null", "log", "log")
    assert not default_plan().attachable
    p = moded_plan(stdin="tty", stdout="tty", stderr="stream")
    assert (p.stdin, p.stdout, p.stderr) == ("tty", "tty", "stream") and p.attachable
    assert from_plain(AppPlan, marshal.loads(marshal.dumps(to_plain(p)))) == p


def test_bad_stdio_annotations_and_modes_with_interactive_are_refused() -> None:
    import pytest

    from pyrkt.errors import UsageError

    with pytest.raises(UsageError, match='app web: invalid stdin mode "log"'):
        moded_plan(stdin="log")
    with pytest.raises(UsageError, match="--interactive cannot be used with --stdin"):
        moded_plan(RuntimeConfig(uuid="u", interactive=True), stdout="null")
    with pytest.raises(UsageError, match="fly flavor does not support --stdin"):
        plan.fly_app_plan(runtime_app().replace(annotations=(("coreos.com/rkt/stage2/stdin", "stream"),)),
                          lowers=(), upper="", work="", rootfs="/r", log="l", resolv=None, hosts=("stub", ""))
