"""A pod in the host's PID namespace (`--pid=host`, a CRI's hostPID): its plan, pod init as the
apps' subreaper, and the rule that pod init kills with kill(-1) only as PID 1 of the pod's own
namespace (in the host's, -1 is every process of the host): there, what is left of the pod is
killed through its cgroup, by pidfds. No process is signalled here: the calls are recorders."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from pyrkt.kernel.recording import RecordingKernel
from pyrkt.model.abi import RuntimeConfig
from pyrkt.model.plan import EtcFiles, PodPlan, from_plain, to_plain
from pyrkt.stage1 import execute, plan, podinit
from pyrkt.stage1.default import pod_procs_dir
from pyrkt.stage1.podinit import PodInit

ETC = EtcFiles("/pod/etc/hostname")


def test_pid_host_plans_no_pid_namespace_and_pod_init_as_the_subreaper() -> None:
    pod = plan.pod_plan(RuntimeConfig(uuid="u", pid="host"), (), ETC)
    assert pod.host_pid and from_plain(PodPlan, to_plain(pod)).host_pid
    k = RecordingKernel()
    execute.set_up_pod(k, pod)
    assert k.names()[:2] == ["set_child_subreaper", "unshare"]
    own = plan.pod_plan(RuntimeConfig(uuid="u"), (), ETC)
    k = RecordingKernel()
    execute.set_up_pod(k, own)
    assert not own.host_pid and "set_child_subreaper" not in k.names()


def fake_cgroup(root: Path, procs: dict[str, list[int]]) -> int:
    for sub, pids in procs.items():
        (root / sub).mkdir(parents=True, exist_ok=True)
        (root / sub / "cgroup.procs").write_text("".join(f"{p}\n" for p in pids))
    return os.open(root, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)


class Signals:
    """os.kill, os.pidfd_open and pidfd_send_signal recorded, never made: a process "killed"
    leaves the fake cgroup tree under ``root``; ``on_open`` runs as a pidfd is opened."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.kills: list[tuple[int, int]] = []  # os.kill's
        self.sent: list[tuple[int, int]] = []  # through a pidfd
        self.fds: dict[int, int] = {}
        self.on_open = lambda pid: None

    def leave(self, pid: int) -> None:
        for f in self.root.rglob("cgroup.procs"):
            f.write_text("".join(f"{p}\n" for p in f.read_text().split() if p != str(pid)))

    def kill(self, pid: int, sig: int) -> None:
        self.kills.append((pid, sig))
        self.leave(pid)

    def pidfd_open(self, pid: int, flags: int = 0) -> int:
        fd = os.open("/dev/null", os.O_RDONLY | os.O_CLOEXEC)
        self.fds[fd] = pid
        self.on_open(pid)
        return fd

    def pidfd_send_signal(self, fd: int, sig: int, *rest: object) -> None:
        self.sent.append((self.fds[fd], sig))
        self.leave(self.fds[fd])


@pytest.fixture
def signals(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Signals:
    rec = Signals(tmp_path)
    monkeypatch.setattr(os, "kill", rec.kill)
    monkeypatch.setattr(os, "pidfd_open", rec.pidfd_open)
    monkeypatch.setattr(podinit._signal, "pidfd_send_signal", rec.pidfd_send_signal)
    return rec


def pod_init(fd: int) -> PodInit:
    init = PodInit({"apps": [], "tee": False, "procs_dir_fd": fd})
    init.reap = lambda: None  # type: ignore[method-assign]  # nothing to reap: no process was started
    return init


def test_in_the_hosts_pid_namespace_finish_kills_the_pods_cgroup_and_never_minus_one(
        signals: Signals, tmp_path: Path) -> None:
    assert os.getpid() != 1
    fd = fake_cgroup(tmp_path / "cg", {".": [os.getpid(), 4001], "app-web": [4002, 4003], "app-db": []})
    try:
        assert pod_init(fd).finish() == 0
    finally:
        os.close(fd)
    assert sorted(signals.sent) == [(4001, 9), (4002, 9), (4003, 9)]  # all of the pod's, pod init's own pid not
    assert signals.kills == []  # no kill(-1), no kill by a bare pid


def test_a_pid_gone_from_the_cgroup_by_the_time_its_pidfd_is_open_is_not_signalled(
        signals: Signals, tmp_path: Path) -> None:
    fd = fake_cgroup(tmp_path / "cg", {".": [4001, 4002]})
    signals.on_open = lambda pid: signals.leave(4001) if pid == 4001 else None  # exited; the pid may be reused
    try:
        pod_init(fd).finish()
    finally:
        os.close(fd)
    assert signals.sent == [(4002, 9)]


def test_as_pid_1_of_its_own_namespace_pod_init_kills_minus_one(signals: Signals, tmp_path: Path,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    fd = fake_cgroup(tmp_path / "cg", {".": [1, 7]})
    monkeypatch.setattr(os, "getpid", lambda: 1)
    try:
        pod_init(fd).finish()
    finally:
        os.close(fd)
    assert (signals.kills, signals.sent) == ([(-1, 9)], [])


def test_no_cgroup_to_read_kills_nothing(signals: Signals) -> None:
    PodInit({"apps": [], "tee": False}).finish()
    assert signals.kills == signals.sent == []


def test_the_cgroup_pod_init_kills_by_holds_every_process_of_the_pod() -> None:
    k = RecordingKernel(layout="v2")  # pod init in a leaf beside the apps': the pod's cgroup is above it
    assert pod_procs_dir(k.cgroup_create("pyrkt/u")) == "/sys/fs/cgroup/pyrkt/u"
    k = RecordingKernel(layout="v1")
    assert pod_procs_dir(k.cgroup_create("pyrkt/u")) == "/sys/fs/cgroup/cpu/pyrkt/u"
