"""A privileged app (``--privileged``, a CRI's privileged container): its plan has every
capability, no seccomp filter, no masked or read-only /proc and /sys paths and a read-write
/sys, and the executor applies exactly that to it, while the pod's other apps keep their
protections (no root: the recording kernel)."""

from __future__ import annotations

import pytest

from pyrkt.errors import UsageError
from pyrkt.kernel import caps
from pyrkt.kernel.recording import RecordingKernel
from pyrkt.model.abi import PRIVILEGED_ANNOTATION, RuntimeConfig
from pyrkt.model.devices import ANY, DeviceRule
from pyrkt.model.image import AppSpec
from pyrkt.model.plan import AppPlan, EtcFiles, PodPlan, from_plain, to_plain
from pyrkt.model.pod import RuntimeApp, RuntimeImage
from pyrkt.stage1 import execute, plan
from pyrkt.stage1.default import host_device_nodes
from pyrkt.stage1.isolators import NO_NEW_PRIVS
from pyrkt.stage1.users import Ids

ROOT = "/pod/rootfs"
ETC = EtcFiles("/pod/etc/hostname", hosts="/pod/etc/hosts-fallback")
KINDS = {f"{ROOT}/proc/kcore": "file", f"{ROOT}/sys/fs": "dir", f"{ROOT}/proc/sys": "dir"}


def app(name: str, *, privileged: bool = False, isolators: tuple[tuple[str, object], ...] = ()) -> RuntimeApp:
    annotations = ((PRIVILEGED_ANNOTATION, "true"),) if privileged else ()
    return RuntimeApp(name, RuntimeImage("sha512-x"), AppSpec(exec=("/bin/true",), isolators=isolators),
                      annotations=annotations)


def app_plan(ra: RuntimeApp, config: RuntimeConfig | None = None) -> AppPlan:
    return plan.app_plan(ra, config or RuntimeConfig(uuid="u"), lowers=("/l",), upper="/u", work="/w",
                         rootfs=ROOT, log="l", seccomp=b"BPF", etc=ETC)


def mounted(k: RecordingKernel) -> list[str]:
    return [c[2].removeprefix(ROOT) for c in k.calls if c[0] in ("mount", "bind")]


def test_a_privileged_app_has_every_capability_no_filter_and_may_gain_privileges() -> None:
    p = app_plan(app("admin", privileged=True))
    assert p.privileged
    assert p.caps == tuple(sorted(caps.ALL_CAPS))
    assert (p.seccomp, p.no_new_privs) == (b"", False)
    assert app_plan(app("admin", privileged=True, isolators=((NO_NEW_PRIVS, True),))).no_new_privs
    plain = app_plan(app("web"))
    assert not plain.privileged and plain.caps == tuple(sorted(caps.DEFAULT_CAPS))
    assert (plain.seccomp, plain.no_new_privs) == (b"BPF", True)


def test_a_privileged_app_has_no_masks_and_a_read_write_sys() -> None:
    mounts = {m.target: m for m in app_plan(app("admin", privileged=True)).mounts}
    assert not mounts["/sys"].flags & plan.MS_RDONLY
    assert not set(mounts) & {*plan.INACCESSIBLE, *plan.READ_ONLY}
    plain = {m.target: m for m in app_plan(app("web")).mounts}
    assert plain["/sys"].flags & plan.MS_RDONLY and {"/proc/kcore", "/proc/sys", "/sys/fs"} <= set(plain)


def test_the_executor_gives_the_privileged_app_only_what_its_plan_says() -> None:
    k = RecordingKernel(kinds=KINDS)
    p = app_plan(app("admin", privileged=True))
    execute.set_up_root(k, p)
    assert mounted(k)[:7] == ["/proc", "/dev", "/dev/console", "/dev/pts", "/dev/shm", "/dev/mqueue", "/sys"]
    assert not {"/proc/kcore", "/sys/fs", "/proc/sys"} & set(mounted(k))
    sysfs = next(c for c in k.calls if c[0] == "mount" and c[2] == f"{ROOT}/sys")
    assert not sysfs[4] & plan.MS_RDONLY
    k = RecordingKernel()
    execute.become(k, Ids(0, 0, (), "root", "/"), p.caps, p.seccomp, p.no_new_privs)
    assert ("drop_bounding", frozenset(caps.ALL_CAPS)) in k.calls
    assert ("set_caps", frozenset(caps.ALL_CAPS), 0) in k.calls
    assert "load_seccomp" not in k.names() and "no_new_privs" not in k.names()


def test_the_pods_other_apps_keep_their_protections() -> None:
    apps = (app_plan(app("admin", privileged=True)), app_plan(app("web")))
    pod = plan.pod_plan(RuntimeConfig(uuid="u"), apps, ETC)
    assert pod.device_rules is not None  # the pod's device policy stays closed
    k = RecordingKernel(kinds=KINDS)
    execute.set_up_root(k, pod.apps[1])
    assert {"/proc/kcore", "/sys/fs", "/proc/sys"} <= set(mounted(k))
    k = RecordingKernel()
    web = pod.apps[1]
    execute.become(k, Ids(0, 0, (), "root", "/"), web.caps, web.seccomp, web.no_new_privs)
    assert ("drop_bounding", frozenset(caps.DEFAULT_CAPS)) in k.calls
    assert ("load_seccomp", b"BPF") in k.calls and "no_new_privs" in k.names()
    assert from_plain(PodPlan, to_plain(pod)).apps[0].privileged  # crosses pod init's fork


def test_a_privileged_app_is_refused_in_a_pod_with_private_users() -> None:
    with pytest.raises(UsageError, match="app admin: a privileged app cannot run in a pod with --private-users"):
        app_plan(app("admin", privileged=True), RuntimeConfig(uuid="u", private_users="65536:65536"))


EVERY_DEVICE = (DeviceRule("c", ANY, ANY, "rwm"), DeviceRule("b", ANY, ANY, "rwm"))


def test_in_a_pod_with_a_privileged_app_each_app_holds_its_own_device_list() -> None:
    apps = (app_plan(app("admin", privileged=True)), app_plan(app("web")))
    pod = plan.pod_plan(RuntimeConfig(uuid="u"), apps, ETC)
    assert pod.apps_own_devices and pod.device_rules is not None
    assert [a.device_rules for a in pod.apps] == [EVERY_DEVICE, pod.device_rules]
    plain = plan.pod_plan(RuntimeConfig(uuid="u"), (apps[1],), ETC)
    assert not plain.apps_own_devices and plain.apps[0].device_rules is None  # as before: the pod's
    insecure = plan.pod_plan(RuntimeConfig(uuid="u", disable_paths=True), apps, ETC)
    assert insecure.device_rules is None and [a.device_rules for a in insecure.apps] == [None, None]


def test_v1_the_privileged_app_alone_is_allowed_every_device_after_the_pods_policy() -> None:
    apps = (app_plan(app("web")), app_plan(app("admin", privileged=True)))
    k = RecordingKernel(layout="v1")
    _, pod, _ = execute.set_up_cgroups(k, plan.pod_plan(RuntimeConfig(uuid="u"), apps, ETC))
    names = k.names()
    assert names.index("cgroup_limit_devices") < names.index("cgroup_limit_app_devices")
    devices = "/sys/fs/cgroup/devices/pyrkt/u"
    every = [("write", f"{devices}/admin/devices.allow", r) for r in ("c *:* rwm", "b *:* rwm")]
    assert every == [c for c in k.calls if c[:2] == ("write", f"{devices}/admin/devices.allow")]
    widened = ("write", f"{devices}/devices.allow", "b *:* rwm")  # no "a": the kernel refuses it once web's exists
    assert k.calls.index(("cgroup_mkdir", f"{devices}/web")) < k.calls.index(widened)
    web = [c[2] for c in k.calls if c[:2] == ("write", f"{devices}/web/devices.allow")]
    assert web == [r.v1() for r in pod.device_rules or ()]  # the pod's list, its own
    assert [f"{devices}/web", f"{devices}/admin"] == [next(c for c in a.cgroups if "/devices/" in c)
                                                       for a in pod.apps]


def test_a_privileged_app_gets_the_hosts_device_nodes_but_its_own_terminals() -> None:
    nodes = {d.path: d for d in host_device_nodes()}
    null = nodes["/dev/null"]
    assert (null.kind, null.major, null.minor) == ("c", 1, 3)
    assert not [p for p in nodes if p.startswith(("/dev/pts/", "/dev/shm/", "/dev/mqueue/"))]
    assert "/dev/console" not in nodes and "/dev/ptmx" not in nodes


def test_v2_the_pods_program_may_be_overridden_by_each_apps_own() -> None:
    apps = (app_plan(app("web")), app_plan(app("admin", privileged=True)))
    k = RecordingKernel(layout="v2")
    _, pod, _ = execute.set_up_cgroups(k, plan.pod_plan(RuntimeConfig(uuid="u"), apps, ETC))
    assert ("cgroup_limit_devices", "pyrkt/u", pod.device_rules, "apps_own") in k.calls
    assert [c[2:] for c in k.calls if c[0] == "cgroup_limit_app_devices"] == [
        ("web", pod.device_rules), ("admin", EVERY_DEVICE)]


def test_a_cni_networks_resolv_conf_keeps_the_privileged_apps_mounts_its_own() -> None:
    from pyrkt.stage1.default import with_resolv

    config = RuntimeConfig(uuid="u")
    pod = plan.pod_plan(config, (app_plan(app("admin", privileged=True)), app_plan(app("web"))), ETC)
    admin, web = (({m.target: m for m in a.mounts}) for a in with_resolv(pod, config, "/pod/resolv.conf").apps)
    assert "/etc/resolv.conf" in admin and "/proc/sys" not in admin and not admin["/sys"].flags & plan.MS_RDONLY
    assert "/etc/resolv.conf" in web and "/proc/sys" in web and web["/sys"].flags & plan.MS_RDONLY
