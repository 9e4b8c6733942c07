"""Which cgroups a pod gets and where its device policy goes, decided from the hierarchies a
host mounts (v1, v2, hybrid with and without a v1 ``devices`` controller)."""

from __future__ import annotations

from pathlib import Path

import pytest

from pyrkt.kernel import cgroups
from pyrkt.kernel.cgroups import Hierarchy, device_hierarchy, pod_hierarchies, tree

V2 = Hierarchy("/sys/fs/cgroup/unified", 2, ())
MEMORY = Hierarchy("/sys/fs/cgroup/memory", 1, ("memory",))
PIDS = Hierarchy("/sys/fs/cgroup/pids", 1, ("pids",))
DEVICES = Hierarchy("/sys/fs/cgroup/devices", 1, ("devices",))
FREEZER = Hierarchy("/sys/fs/cgroup/freezer", 1, ("freezer",))


def test_hybrid_host_with_v1_devices_uses_its_v1_cgroups_only() -> None:
    hs = [MEMORY, PIDS, DEVICES, FREEZER, V2]
    assert pod_hierarchies(hs) == [MEMORY, PIDS, DEVICES]
    assert device_hierarchy(pod_hierarchies(hs)) == DEVICES


def test_hybrid_host_without_v1_devices_adds_the_v2_cgroup_for_the_device_program() -> None:
    hs = [MEMORY, PIDS, FREEZER, V2]
    assert pod_hierarchies(hs) == [MEMORY, PIDS, V2]
    assert device_hierarchy(pod_hierarchies(hs)) == V2


def test_pure_v2_host_puts_everything_in_v2() -> None:
    assert pod_hierarchies([V2]) == [V2]
    assert device_hierarchy([V2]) == V2


def test_host_without_a_device_controller_has_no_device_hierarchy() -> None:
    assert pod_hierarchies([MEMORY]) == [MEMORY]
    assert device_hierarchy([MEMORY]) is None


def test_own_procs_file_finds_the_callers_cgroup_on_each_layout() -> None:
    from pyrkt.kernel.cgroups import Hierarchy, own_procs_file

    v1 = [Hierarchy("/sys/fs/cgroup/cpu,cpuacct", 1, ("cpu", "cpuacct")), Hierarchy("/sys/fs/cgroup/pids", 1, ("pids",))]
    v2 = [Hierarchy("/sys/fs/cgroup/unified", 2, ())]
    text = "12:pids:/user/a\n4:cpu,cpuacct:/user/b\n1:name=systemd:/x\n0::/init.scope\n"
    assert own_procs_file(text, v1 + v2) == "/sys/fs/cgroup/cpu,cpuacct/user/b/cgroup.procs"
    assert own_procs_file(text, v2) == "/sys/fs/cgroup/unified/init.scope/cgroup.procs"
    assert own_procs_file("0::/\n", [Hierarchy("/sys/fs/cgroup", 2, ())]) == "/sys/fs/cgroup/cgroup.procs"
    assert own_procs_file("3:memory:/m\n", v1) is None


def test_removal_order_is_children_before_their_pod(tmp_path: Path) -> None:
    pod = tmp_path / "memory" / "pyrkt" / "u"
    for app in ("web", "db"):
        (pod / app).mkdir(parents=True)
    order = tree([str(pod)])
    assert order[-1] == str(pod) and sorted(order[:-1]) == [str(pod / "db"), str(pod / "web")]
    assert tree([]) == []



def test_a_single_threaded_caller_joins_v1_through_tasks_and_v2_through_cgroup_procs(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from pyrkt.kernel import cgroups

    v1, v2 = tmp_path / "v1", tmp_path / "v2"
    for d in (v1, v2):
        d.mkdir()
        (d / "cgroup.procs").write_text("")
    (v1 / "tasks").write_text("")
    monkeypatch.setattr(cgroups, "single_threaded", lambda: True)
    cgroups.join([str(v1), str(v2)])
    assert ((v1 / "tasks").read_text(), (v1 / "cgroup.procs").read_text()) == ("0", "")
    assert (v2 / "cgroup.procs").read_text() == "0"
    cgroups.join([str(v1)], pid=42)  # another process: the whole of it, through cgroup.procs
    assert (v1 / "cgroup.procs").read_text() == "42"
    for name in ("tasks", "cgroup.procs"):
        (v1 / name).write_text("")
    monkeypatch.setattr(cgroups, "single_threaded", lambda: False)  # tasks would move one thread only
    cgroups.join([str(v1)])
    assert ((v1 / "tasks").read_text(), (v1 / "cgroup.procs").read_text()) == ("", "0")


def test_write_each_writes_every_text_through_one_open_and_names_a_refused_one(tmp_path: Path) -> None:
    from pyrkt.errors import KernelError

    target = tmp_path / "devices.allow"
    target.write_text("")
    cgroups.write_each(str(target), ["c 1:3 rwm", "c 5:0 rwm"])
    assert target.read_text() == "c 1:3 rwmc 5:0 rwm"  # two writes (on cgroupfs: two rules)
    cgroups.write_each(str(tmp_path / "missing"), [])  # nothing to write: not even opened
    with pytest.raises(KernelError, match="'c 1:3 rwm' to /dev/full"):
        cgroups.write_each("/dev/full", ["c 1:3 rwm", "c 5:0 rwm"])  # ENOSPC: the kernel refuses it
    with pytest.raises(KernelError, match=f"'a' to {tmp_path}/missing"):
        cgroups.write_each(str(tmp_path / "missing"), ["a"])


def test_prime_join_on_v1_starts_no_thread_and_create_reuses_its_hierarchies(monkeypatch: pytest.MonkeyPatch) -> None:
    v1 = [Hierarchy("/sys/fs/cgroup/memory", 1, ("memory",)), Hierarchy("/sys/fs/cgroup/pids", 1, ("pids",))]
    reads: list[int] = []
    monkeypatch.setattr(cgroups, "pod_hierarchies", lambda: reads.append(1) or v1)
    monkeypatch.setattr(cgroups, "run_steps", lambda steps: None)
    started: list[object] = []
    import _thread

    monkeypatch.setattr(_thread, "start_new_thread", lambda *a: started.append(a))
    cgroups.prime_join()
    assert started == [] and not cgroups._priming[0]  # v1: pod init joins through `tasks`, no wait to pay
    joins = cgroups.create("pyrkt/u")
    assert joins == ["/sys/fs/cgroup/memory/pyrkt/u", "/sys/fs/cgroup/pids/pyrkt/u"]
    assert len(reads) == 1  # mountinfo read once, by prime_join
    cgroups.create("pyrkt/v")  # a later pod (a long-running CRI server's) reads them again
    assert len(reads) == 2
