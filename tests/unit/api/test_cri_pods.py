"""The pure parts of the CRI's sandboxes and containers: container ids, app names per attempt,
label selectors, the kubelet's annotations without pyrkt's own, container states of a stopped
pod, the launcher's answers, the CNI conf dir as a config dir's net.d, the cgroup stats."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from pyrkt import errors
from pyrkt.api.cri import launch, pods, server, stats
from pyrkt.api.cri.runtime import Settings
from pyrkt.api.proto import cri_pb2 as pb
from pyrkt.config import Config
from pyrkt.kernel import cgroups
from pyrkt.pods.info import AppInfo, PodInfo
from pyrkt.pods.state import Dir, State

UUID = "0123abcd-0000-4000-8000-00000000beef"


def test_container_ids_name_pod_and_app() -> None:
    cid = pods.container_id(UUID, "web-1")
    assert cid == f"{UUID}-web-1" and pods.split_container_id(cid) == (UUID, "web-1")
    for bad in ("nope", UUID, UUID + "-", UUID + "xweb"):
        with pytest.raises(errors.NotFound, match="not found"):
            pods.split_container_id(bad)


def test_an_attempt_after_the_first_is_an_app_of_its_own() -> None:
    assert pods.app_name(pb.ContainerMetadata(name="web")) == "web"
    assert pods.app_name(pb.ContainerMetadata(name="web", attempt=2)) == "web-2"


def test_label_selectors_and_annotations() -> None:
    assert pods.matches({"a": "1"}.items(), {"a": "1", "b": "2"})
    assert not pods.matches({"a": "1", "c": "3"}.items(), {"a": "1"})
    assert pods.matches([], {})
    assert pods.kubelet_annotations([("io.kubernetes.cri.sandbox-name", "x"), (pods.ATTEMPT, "0"),
                                     ("io.kubernetes.pod.uid", "u"), ("note", "n")]) == {
        "io.kubernetes.pod.uid": "u", "note": "n"}


@pytest.mark.parametrize(("pod_state", "app_state", "code", "want"), [
    (State.RUNNING, "created", None, pb.CONTAINER_CREATED),
    (State.RUNNING, "running", None, pb.CONTAINER_RUNNING),
    (State.RUNNING, "exited", 1, pb.CONTAINER_EXITED),
    (State.EXITED, "running", 0, pb.CONTAINER_EXITED),  # pod init recorded its end
    (State.EXITED, "running", None, pb.CONTAINER_UNKNOWN),  # pod init was killed: nothing recorded
    (State.EXITED, "created", None, pb.CONTAINER_CREATED),
    (State.RUNNING, "unknown", None, pb.CONTAINER_UNKNOWN),
])
def test_container_states(pod_state: State, app_state: str, code: int | None, want: int) -> None:
    info = PodInfo(uuid=UUID, state=pod_state, where=Dir.RUN)
    app = AppInfo(name="a", image_name="i", image_id="sha256:x", state=app_state, exit_code=code)
    assert pods.container_state(info, app) == want


@pytest.mark.parametrize(("code", "signaled", "oom", "want"), [
    (0, None, False, (0, "Completed")),
    (3, None, False, (3, "Error")),
    (0, 143, False, (143, "Error")),  # StopContainer's TERM killed it: rkt records 0, containerd says 143
    (0, 137, False, (137, "Error")),
    (137, None, True, (137, "OOMKilled")),
    (None, None, False, (-1, "Error")),
])
def test_an_exited_container_reports_the_status_its_process_really_ended_with(
        code: int | None, signaled: int | None, oom: bool, want: tuple[int, str]) -> None:
    app = AppInfo(name="a", image_name="i", image_id="sha256:x", state="exited", exit_code=code,
                  signaled_code=signaled)
    assert pods.container_exit(app, oom) == want


def test_the_launchers_answer_is_the_uuid_or_its_error_again() -> None:
    assert launch.raise_answer(json.dumps({"uuid": UUID}) + "\n") == UUID
    with pytest.raises(errors.UsageError, match="bad hostname"):
        launch.raise_answer('{"error": "UsageError", "message": "bad hostname"}')
    with pytest.raises(errors.PyrktError, match="odd") as e:
        launch.raise_answer('{"error": "ValueError", "message": "odd"}')  # not one of pyrkt's: its base
    assert type(e.value) is errors.PyrktError
    with pytest.raises(errors.PyrktError, match="gave no answer"):
        launch.raise_answer("")


def test_the_kubelets_cni_dir_is_the_net_d_of_a_config_dir(tmp_path: Path) -> None:
    conf = tmp_path / "kubelet-net.d"
    conf.mkdir()
    settings = Settings(state_dir=str(tmp_path / "cri"), cni_conf_dir=str(conf))
    p = pods.Pods(Config(data_dir=str(tmp_path / "data")), settings, ["pyrkt"])
    assert p.config.dirs.user == str(tmp_path / "cri" / "config")
    assert not (tmp_path / "cri").exists()  # made when a sandbox is run, not before
    p.link_cni_conf_dir()
    assert os.readlink(tmp_path / "cri" / "config" / "net.d") == str(conf)
    other = tmp_path / "other"
    other.mkdir()
    again = pods.Pods(Config(data_dir=str(tmp_path / "data")), settings.replace(cni_conf_dir=str(other)), [])
    again.link_cni_conf_dir()
    assert os.readlink(Path(again.config.dirs.user or "") / "net.d") == str(other)  # replaced, not stacked
    with pytest.raises(errors.InvalidState, match="no pod network: no network config found"):
        p.network()
    (conf / "10-pods.conflist").write_text('{"cniVersion": "1.0.0", "name": "pods", "plugins": [{"type": "ptp"}]}')
    assert p.network() == "pods"


def test_the_wired_calls_have_handlers() -> None:
    wired = {"RunPodSandbox", "StopPodSandbox", "RemovePodSandbox", "PodSandboxStatus", "ListPodSandbox",
             "CreateContainer", "StartContainer", "StopContainer", "RemoveContainer", "ListContainers",
             "ContainerStatus", "ExecSync", "UpdateContainerResources", "ReopenContainerLog", "ContainerStats",
             "ListContainerStats", "PodSandboxStats", "ListPodSandboxStats", "Exec", "Attach", "PortForward",
             "GetContainerEvents"}
    assert all(hasattr(server.RuntimeService, m) for m in wired)
    assert not any(hasattr(server.RuntimeService, m) for m in ("CheckpointContainer", "ListMetricDescriptors"))


def test_stats_from_v1_and_v2_accounting_files(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    v1, v2 = tmp_path / "v1", tmp_path / "v2"
    app1, app2 = v1 / "pyrkt" / UUID / "a", v2 / "pyrkt" / UUID / "a"
    app1.mkdir(parents=True)
    app2.mkdir(parents=True)
    (app1 / "cpuacct.usage").write_text("5000\n")
    (app1 / "memory.usage_in_bytes").write_text("1000\n")
    (app1 / "memory.stat").write_text("rss 300\ntotal_inactive_file 400\ntotal_rss 350\n")
    (app1 / "memory.oom_control").write_text("oom_kill_disable 0\nunder_oom 0\noom_kill 2\n")
    hs = [cgroups.Hierarchy(str(v1), 1, ("memory", "cpuacct"))]
    monkeypatch.setattr(cgroups, "pod_hierarchies", lambda: hs)
    cpu, mem = stats.usage(f"pyrkt/{UUID}/a")
    assert cpu.usage_core_nano_seconds.value == 5000 and cpu.timestamp > 0
    assert (mem.usage_bytes.value, mem.working_set_bytes.value, mem.rss_bytes.value) == (1000, 600, 350)
    assert stats.oom_kills(f"pyrkt/{UUID}/a") == 2
    (app2 / "cpu.stat").write_text("usage_usec 7\nuser_usec 5\n")
    (app2 / "memory.current").write_text("2000\n")
    (app2 / "memory.stat").write_text("anon 100\ninactive_file 3000\n")
    hs[:] = [cgroups.Hierarchy(str(v2), 2, ("memory", "cpu"))]
    cpu, mem = stats.usage(f"pyrkt/{UUID}/a")
    assert cpu.usage_core_nano_seconds.value == 7000
    assert (mem.usage_bytes.value, mem.working_set_bytes.value) == (2000, 0)  # never below zero
    assert stats.oom_kills(f"pyrkt/{UUID}/a") == 0 and stats.oom_kills("pyrkt/nope") == 0


def test_an_exec_command_is_some_words_without_a_nul() -> None:
    pods.check_command("ExecSync", ["echo", "hi"])
    with pytest.raises(errors.UsageError, match=r"^ExecSync: no command given$"):
        pods.check_command("ExecSync", [])
    with pytest.raises(errors.UsageError, match=r"^Exec: word 1 of the command has a NUL character$"):
        pods.check_command("Exec", ["echo", "a\0b"])


def test_exec_sync_timeouts_negative_refused_huge_none() -> None:
    assert pods.exec_timeout(0) is None and pods.exec_timeout(30) == 30.0
    assert pods.exec_timeout(2**62) is None  # past what a wait can take: no timeout, not an OverflowError
    with pytest.raises(errors.UsageError, match=r"ExecSync: timeout -5s is negative \(0 is no timeout\)"):
        pods.exec_timeout(-5)
