"""The pod's and its apps' cgroups as the host side makes them, through the recording kernel on
each layout (v1, unified v2, hybrid as on this machine): which directories, which limit files
with which values, where pod init goes, what is named when a controller is missing."""

from __future__ import annotations

import pytest

from pyrkt.errors import UsageError
from pyrkt.kernel.cgroups import Hierarchy
from pyrkt.kernel.recording import LAYOUTS, RecordingKernel
from pyrkt.model import isolators as iso
from pyrkt.model.abi import RuntimeConfig
from pyrkt.model.image import AppSpec
from pyrkt.model.plan import EtcFiles, PodPlan
from pyrkt.model.pod import RuntimeApp, RuntimeImage
from pyrkt.stage1 import execute, plan

ETC = EtcFiles("/pod/etc/hostname")
POD = "pyrkt/u"


def pod_with(*apps: tuple[str, tuple[tuple[str, object], ...]]) -> PodPlan:
    config = RuntimeConfig(uuid="u", net=("none",))
    plans = tuple(plan.app_plan(RuntimeApp(name, RuntimeImage("sha256:x"), AppSpec(exec=("/bin/true",),
                                                                                    isolators=isolators)),
                                config, lowers=(), upper="", work="", rootfs="", log="", seccomp=b"", etc=ETC)
                  for name, isolators in apps)
    return plan.pod_plan(config, plans, ETC)


LIMITED = (("web", (*iso.flag_isolators(memory="64M", cpu="500m", pids_limit="100"),)),)


def writes(k: RecordingKernel) -> dict[str, str]:
    return {c[1]: c[2] for c in k.calls if c[0] == "write"}


def made(k: RecordingKernel) -> list[str]:
    return [c[1] for c in k.calls if c[0] == "cgroup_mkdir"]


def test_hybrid_v1_controllers_get_the_app_cgroup_and_its_limit_files() -> None:
    k = RecordingKernel(layout="hybrid")
    joins, pod, warnings = execute.set_up_cgroups(k, pod_with(*LIMITED))
    base = "/sys/fs/cgroup/{}/pyrkt/u"
    assert joins == [base.format(c) for c in ("cpu", "cpuacct", "memory", "devices", "pids", "systemd")]
    assert made(k) == joins + [base.format(c) + "/web" for c in ("cpu", "cpuacct", "memory", "pids")]
    assert writes(k) == {
        base.format("cpu") + "/web/cpu.cfs_quota_us": "50000",  # 500m of each 100 ms period
        base.format("cpu") + "/web/cpu.shares": "512",  # the request, as Kubernetes weighs it
        base.format("memory") + "/web/memory.limit_in_bytes": "64000000",
        base.format("memory") + "/web/memory.soft_limit_in_bytes": "64000000",
        base.format("pids") + "/web/pids.max": "100",
    }
    [web] = pod.apps
    assert web.cgroups == tuple(base.format(c) + "/web" for c in ("cpu", "cpuacct", "memory", "pids"))
    assert web.oom_events == base.format("memory") + "/web/memory.oom_control"
    assert warnings == []
    assert not any("unified" in c[1] for c in k.calls if len(c) > 1 and isinstance(c[1], str))  # v2: no controller


def test_the_device_policy_then_the_limits_are_written_before_anyone_joins() -> None:
    k = RecordingKernel(layout="v1")
    execute.set_up_cgroups(k, pod_with(*LIMITED))
    names = k.names()  # the pod's policy first: an app's own list (a privileged app's) widens it on v1
    assert names.index("cgroup_create") < names.index("cgroup_limit_devices") < names.index("cgroup_create_app")
    assert "cgroup_join" not in names  # pod init joins once the host side forked it; apps join themselves


def test_unified_v2_enables_controllers_on_the_way_down_and_keeps_pod_init_in_a_leaf() -> None:
    k = RecordingKernel(layout="v2")
    joins, pod, warnings = execute.set_up_cgroups(k, pod_with(*LIMITED, ("db", ())))
    enable = "+cpu +memory +pids"
    assert [c for c in k.calls if c[0] != "cgroup_limit_devices"][:9] == [
        ("cgroup_create", POD),
        ("write", "/sys/fs/cgroup/cgroup.subtree_control", enable),
        ("cgroup_mkdir", "/sys/fs/cgroup/pyrkt"), ("write", "/sys/fs/cgroup/pyrkt/cgroup.subtree_control", enable),
        ("cgroup_mkdir", "/sys/fs/cgroup/pyrkt/u"), ("write", "/sys/fs/cgroup/pyrkt/u/cgroup.subtree_control", enable),
        ("cgroup_mkdir", "/sys/fs/cgroup/pyrkt/u/init.scope"),
        ("cgroup_create_app", POD, "web"), ("cgroup_mkdir", "/sys/fs/cgroup/pyrkt/u/web"),
    ]
    assert joins == ["/sys/fs/cgroup/pyrkt/u/init.scope"]  # no process in a cgroup whose children have controllers
    web = "/sys/fs/cgroup/pyrkt/u/web/"
    assert {p: v for p, v in writes(k).items() if p.startswith(web)} == {
        web + "memory.max": "64000000", web + "memory.low": "64000000", web + "cpu.max": "50000 100000",
        web + "cpu.weight": "20", web + "pids.max": "100"}
    db = "/sys/fs/cgroup/pyrkt/u/db/"
    assert {p: v for p, v in writes(k).items() if p.startswith(db)} == {db + "pids.max": str(iso.DEFAULT_PIDS_LIMIT)}
    assert [a.cgroups for a in pod.apps] == [(web.rstrip("/"),), (db.rstrip("/"),)]
    assert [a.oom_events for a in pod.apps] == [web + "memory.events", db + "memory.events"]
    assert warnings == []


def test_cpu_shares_win_over_the_cpu_request_and_map_to_v2_weights() -> None:
    shares = (("web", (*iso.flag_isolators(cpu="2", cpu_shares="262144"),)),)
    k = RecordingKernel(layout="v2")
    execute.set_up_cgroups(k, pod_with(*shares))
    assert writes(k)["/sys/fs/cgroup/pyrkt/u/web/cpu.weight"] == "10000"
    assert writes(k)["/sys/fs/cgroup/pyrkt/u/web/cpu.max"] == "200000 100000"
    k = RecordingKernel(layout="v1")
    execute.set_up_cgroups(k, pod_with(*shares))
    assert writes(k)["/sys/fs/cgroup/cpu/pyrkt/u/web/cpu.shares"] == "262144"


def test_a_cpu_request_of_more_than_256_cores_is_the_kernels_highest_weight_not_a_write_it_refuses() -> None:
    request = (("web", ((iso.CPU, {"request": "300", "limit": "300"}),)),)
    k = RecordingKernel(layout="v1")
    execute.set_up_cgroups(k, pod_with(*request))
    assert writes(k)["/sys/fs/cgroup/cpu/pyrkt/u/web/cpu.shares"] == "262144"
    k = RecordingKernel(layout="v2")
    execute.set_up_cgroups(k, pod_with(*request))
    assert writes(k)["/sys/fs/cgroup/pyrkt/u/web/cpu.weight"] == "10000"


def test_pids_limit_zero_writes_no_limit() -> None:
    k = RecordingKernel(layout="hybrid")
    execute.set_up_cgroups(k, pod_with(("web", ((iso.PIDS_LIMIT, 0),))))
    assert not any(p.endswith("pids.max") for p in writes(k))


def test_a_limit_no_controller_of_the_host_can_apply_is_named_in_a_warning() -> None:
    k = RecordingKernel(layout="v1")
    k.hierarchies = [h for h in LAYOUTS["v1"] if h.controllers != ("memory",) and h.controllers != ("pids",)]
    _, pod, warnings = execute.set_up_cgroups(k, pod_with(*LIMITED, ("db", ())))
    assert warnings == [
        "app web: resource/memory isolator set but this host has no memory cgroup controller: skipped",
        "app web: pyrkt/pids-limit isolator set but this host has no pids cgroup controller: skipped",
    ]  # db's default pids limit is skipped quietly: the user asked for nothing
    assert pod.apps[0].oom_events == ""


def test_a_hybrid_v2_offering_a_controller_v1_lacks_is_used_for_it() -> None:
    v1 = [h for h in LAYOUTS["v1"] if "pids" not in h.controllers]
    k = RecordingKernel()
    k.hierarchies = [*v1, Hierarchy("/sys/fs/cgroup/unified", 2, ("pids",))]
    from pyrkt.kernel.cgroups import pod_hierarchies

    k.hierarchies = pod_hierarchies(k.hierarchies)
    joins, pod, warnings = execute.set_up_cgroups(k, pod_with(*LIMITED))
    assert "/sys/fs/cgroup/unified/pyrkt/u/init.scope" in joins
    assert writes(k)["/sys/fs/cgroup/unified/pyrkt/u/web/pids.max"] == "100"
    assert "/sys/fs/cgroup/unified/pyrkt/u/web" in pod.apps[0].cgroups and warnings == []


def test_an_app_named_as_the_v1_tasks_file_gets_a_cgroup_beside_it() -> None:
    k = RecordingKernel(layout="v1")
    _, pod, _ = execute.set_up_cgroups(k, pod_with(("tasks", ())))
    assert pod.apps[0].cgroups[0] == "/sys/fs/cgroup/cpu/pyrkt/u/tasks.app"


# -- --cgroup-parent ------------------------------------------------------------------------------

PARENT = "kubepods/burstable/pod1"


def parented(*apps: tuple[str, tuple[tuple[str, object], ...]]) -> PodPlan:
    config = RuntimeConfig(uuid="u", net=("none",), cgroup_parent=PARENT)
    plans = tuple(plan.app_plan(RuntimeApp(name, RuntimeImage("sha256:x"), AppSpec(exec=("/bin/true",),
                                                                                    isolators=isolators)),
                                config, lowers=(), upper="", work="", rootfs="", log="", seccomp=b"", etc=ETC)
                  for name, isolators in apps)
    return plan.pod_plan(config, plans, ETC)


def test_a_parented_pod_goes_below_its_parent_in_every_v1_hierarchy_with_its_apps_below_it() -> None:
    for layout in ("v1", "hybrid"):
        k = RecordingKernel(layout=layout)
        joins, pod, _ = execute.set_up_cgroups(k, parented(*LIMITED))
        assert pod.cgroup == f"{PARENT}/pyrkt-u"
        base = "/sys/fs/cgroup/{}/" + PARENT + "/pyrkt-u"
        assert joins == [base.format(c) for c in ("cpu", "cpuacct", "memory", "devices", "pids", "systemd")]
        assert made(k) == joins + [base.format(c) + "/web" for c in ("cpu", "cpuacct", "memory", "pids")]
        assert writes(k)[base.format("memory") + "/web/memory.limit_in_bytes"] == "64000000"
        assert ("cgroup_limit_devices", f"{PARENT}/pyrkt-u", pod.device_rules) in k.calls
        assert not any("/pyrkt/" in str(c) for c in k.calls)  # nothing in pyrkt's own tree


def test_a_parented_pod_on_v2_enables_the_controllers_down_the_parents_path() -> None:
    k = RecordingKernel(layout="v2")
    joins, pod, _ = execute.set_up_cgroups(k, parented(*LIMITED))
    enable = "+cpu +memory +pids"
    path, steps = "/sys/fs/cgroup", [("write", "/sys/fs/cgroup/cgroup.subtree_control", enable)]
    for part in (*PARENT.split("/"), "pyrkt-u"):
        path += "/" + part
        steps += [("cgroup_mkdir", path), ("write", path + "/cgroup.subtree_control", enable)]
    assert k.calls[1:1 + len(steps)] == steps
    pod_dir = f"/sys/fs/cgroup/{PARENT}/pyrkt-u"
    assert joins == [pod_dir + "/init.scope"]
    assert pod.apps[0].cgroups == (pod_dir + "/web",)
    assert writes(k)[pod_dir + "/web/memory.max"] == "64000000"


def test_gc_removes_the_pods_own_cgroup_only_and_nothing_before_subcgroup_is_written() -> None:
    k = RecordingKernel()
    execute.tear_down(k, "/pods/u", f"{PARENT}/pyrkt-u")
    assert ("cgroup_remove", f"{PARENT}/pyrkt-u") in k.calls
    k = RecordingKernel()
    execute.tear_down(k, "/pods/u", "")  # killed before it wrote subcgroup: it made no cgroup yet
    assert "cgroup_remove" not in k.names()


def test_a_pod_manifests_pod_level_resource_isolators_limit_the_pods_own_cgroup() -> None:
    pod_isolators = (*iso.flag_isolators(memory="256M", cpu="2"), (iso.PIDS_LIMIT, 500),
                     ("os/linux/oom-score-adj", 5))  # a process's: not the pod's
    config = RuntimeConfig(uuid="u", net=("none",))
    app = plan.app_plan(RuntimeApp("web", RuntimeImage("sha256:x"), AppSpec(exec=("/bin/true",))), config,
                        lowers=(), upper="", work="", rootfs="", log="", seccomp=b"", etc=ETC)
    pod = plan.pod_plan(config, (app,), ETC, pod_isolators=pod_isolators)
    assert (pod.limits.memory, pod.limits.cpu, pod.limits.pids) == (256_000_000, 2000, 500)
    k = RecordingKernel(layout="hybrid")
    execute.set_up_cgroups(k, pod)
    w, base = writes(k), "/sys/fs/cgroup/{}/pyrkt/u"
    assert w[base.format("memory") + "/memory.limit_in_bytes"] == "256000000"
    assert (w[base.format("cpu") + "/cpu.cfs_quota_us"], w[base.format("pids") + "/pids.max"]) == ("200000", "500")
    assert w[base.format("pids") + "/web/pids.max"] == "4096"  # the app keeps its own default below
    assert k.names().index("cgroup_limit_pod") < k.names().index("cgroup_create_app")  # before any app
    k = RecordingKernel(layout="v2")
    execute.set_up_cgroups(k, pod)
    assert writes(k)["/sys/fs/cgroup/pyrkt/u/memory.max"] == "256000000"
    none = plan.pod_plan(config, (app,), ETC, pod_isolators=(*iso.flag_isolators(memory="64M"),))
    assert none.limits.pids == 0  # no default pids limit for the pod: each app has its own
    assert plan.pod_plan(config, (app,), ETC).limits.given == ()


def test_a_bad_pod_level_isolator_names_the_pod() -> None:
    with pytest.raises(UsageError, match="pod: isolator resource/memory"):
        iso.pod_limits((("resource/memory", {"limit": "lots"}),))
