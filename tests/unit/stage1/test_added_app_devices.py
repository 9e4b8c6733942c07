"""Devices of an app added to a mutable pod (`app add --device`, a device volume): the app's own
allow-list, planned from the pod's and its own devices, and held in a devices cgroup of its own,
as the recording kernel sees it made on each layout: on v1 the pod's cgroup widened by what the
app needs and the app's own cgroup cut to exactly its list (a v1 child never has more than its
parent, and an allow is not passed on to the children the pod has, so its other apps keep
theirs); on v2 a program on the app's cgroup, which replaces the pod's (attached to let it)."""

from __future__ import annotations

import pytest

from pyrkt.kernel import cgroups
from pyrkt.kernel.recording import LAYOUTS, RecordingKernel
from pyrkt.model.abi import RuntimeConfig
from pyrkt.model.devices import DEFAULT_ALLOW, DeviceRule, HostDevice
from pyrkt.model.image import AppSpec
from pyrkt.model.plan import EtcFiles, Limits
from pyrkt.model.pod import RuntimeApp, RuntimeImage
from pyrkt.stage1 import execute, plan

ETC = EtcFiles("/pod/etc/hostname")
POD = "pyrkt/u"
FUSE = HostDevice("/dev/fuse", "c", 10, 229, "rw", 0o666)
DISK = HostDevice("/dev/sdc", "b", 8, 32, "r", target="/dev/xvdc")
SANDBOX = RuntimeConfig(uuid="u", net=("none",), mutable=True)


def added(config: RuntimeConfig = SANDBOX, devices: tuple[HostDevice, ...] = (FUSE,),
          volume_devices: tuple[DeviceRule, ...] = ()) -> plan.AppPlan:
    ra = RuntimeApp("web", RuntimeImage("sha256:x"), AppSpec(exec=("/bin/true",)))
    app = plan.app_plan(ra, config, lowers=(), upper="", work="", rootfs="", log="", seccomp=b"", etc=ETC,
                        devices=devices)
    return app.replace(device_rules=plan.added_app_device_rules(config, devices, volume_devices))


def test_the_added_apps_list_is_the_pods_then_its_devices_then_its_device_volumes() -> None:
    pod_dev = HostDevice("/dev/net/tun", "c", 10, 200)
    rules = plan.added_app_device_rules(SANDBOX.replace(devices=(pod_dev,)), (FUSE,), (DeviceRule("b", 7, 0, "r"),))
    assert rules == (*DEFAULT_ALLOW, DeviceRule("c", 10, 200, "rwm"), DeviceRule("c", 10, 229, "rw"),
                     DeviceRule("b", 7, 0, "r"))
    assert plan.added_app_device_rules(SANDBOX.replace(disable_paths=True), (FUSE,), ()) is None  # no policy


def test_the_added_apps_nodes_are_made_in_its_dev_at_their_container_path() -> None:
    app = added(devices=(FUSE, DISK))
    made = {d.path: (d.kind, d.major, d.minor, d.host) for d in app.devices}
    assert made["/dev/fuse"] == ("c", 10, 229, "/dev/fuse")
    assert made["/dev/xvdc"] == ("b", 8, 32, "/dev/sdc")  # the host's node, at the path the app asked for
    assert "/dev/sdc" not in made


def test_v1_widens_the_pod_and_gives_the_app_exactly_its_own_list() -> None:
    k = RecordingKernel(layout="hybrid")
    app, warnings = execute.set_up_app_cgroups(k, POD, added())
    pod, own = "/sys/fs/cgroup/devices/pyrkt/u", "/sys/fs/cgroup/devices/pyrkt/u/web"
    assert warnings == []
    assert own in app.cgroups  # the app joins it, before it makes its nodes
    i = k.calls.index(("cgroup_limit_app_devices", POD, "web", app.device_rules))
    steps = k.calls[i + 1:]
    assert steps[0] == ("cgroup_mkdir", own)
    rules = [r.v1() for r in (*DEFAULT_ALLOW, DeviceRule("c", 10, 229, "rw"))]
    assert [s[2] for s in steps if s[0] == "write" and s[1] == f"{pod}/devices.allow"] == rules
    own_writes = [(s[1].rsplit("/", 1)[1], s[2]) for s in steps if s[0] == "write" and s[1].startswith(own + "/")]
    assert own_writes == [("devices.deny", "a"), *(("devices.allow", r) for r in rules)]  # what it copied goes first
    last_pod_write = max(j for j, s in enumerate(steps) if s[0] == "write" and s[1].startswith(pod + "/devices"))
    first_own_write = min(j for j, s in enumerate(steps) if s[0] == "write" and s[1].startswith(own + "/"))
    assert last_pod_write < first_own_write  # a child is refused what its parent does not allow yet


def test_v2_puts_the_apps_program_on_its_own_cgroup_once() -> None:
    k = RecordingKernel(layout="v2")
    app, _ = execute.set_up_app_cgroups(k, POD, added())
    own = "/sys/fs/cgroup/pyrkt/u/web"
    assert app.cgroups.count(own) == 1  # the app's cgroup of its controllers is its devices one too
    i = k.calls.index(("cgroup_limit_app_devices", POD, "web", app.device_rules))
    assert k.calls[i + 1:] == [("cgroup_mkdir", own)]  # the program: attached there by the kernel module


def test_v2_steps_make_only_the_cgroup_and_v1_steps_write_nothing_else() -> None:
    rules = (DeviceRule("c", 1, 3),)
    v2 = cgroups.device_hierarchy(cgroups.pod_hierarchies(LAYOUTS["v2"]))
    assert v2 is not None
    assert cgroups.app_device_steps(v2, POD, "tasks", rules) == (
        [("cgroup_mkdir", "/sys/fs/cgroup/pyrkt/u/tasks.app")], "/sys/fs/cgroup/pyrkt/u/tasks.app")
    v1 = cgroups.device_hierarchy(cgroups.pod_hierarchies(LAYOUTS["v1"]))
    assert v1 is not None
    steps, path = cgroups.app_device_steps(v1, POD, "web", rules)
    assert {s[1].rsplit("/", 1)[1] for s in steps if s[0] == "write"} == {"devices.allow", "devices.deny"}


def test_an_app_without_its_own_list_gets_no_devices_cgroup() -> None:
    k = RecordingKernel(layout="hybrid")
    app, _ = execute.set_up_app_cgroups(k, POD, added().replace(device_rules=None))
    assert not any(c[0] == "cgroup_limit_app_devices" for c in k.calls)
    assert not any("devices" in d for d in app.cgroups)


@pytest.mark.parametrize(("mutable", "want"), [(True, ("apps_own",)), (False, ())])
def test_a_mutable_pods_own_list_lets_its_apps_hold_theirs(mutable: bool, want: tuple[str, ...]) -> None:
    k = RecordingKernel(layout="v2")
    config = SANDBOX.replace(mutable=mutable)
    pod = plan.pod_plan(config, (), ETC)
    assert pod.apps_own_devices is mutable
    execute.set_up_cgroups(k, pod)
    [call] = [c for c in k.calls if c[0] == "cgroup_limit_devices"]
    assert call == ("cgroup_limit_devices", POD, DEFAULT_ALLOW, *want)


def test_the_apps_list_crosses_to_pod_init_in_its_plan_file() -> None:
    from pyrkt.model.plan import AppPlan, from_plain, to_plain

    app = added().replace(limits=Limits(pids=10))
    back = from_plain(AppPlan, to_plain(app))
    assert back.device_rules == app.device_rules and back.devices == app.devices
    assert from_plain(AppPlan, to_plain(app.replace(device_rules=None))).device_rules is None
