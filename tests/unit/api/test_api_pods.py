"""Pods as the API shows them: states, apps, networks, times and rkt's filters (AND within a
filter, OR between filters), from synthetic pod dirs, without a server."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from pyrkt.api import pods
from pyrkt.api.proto import v1alpha_pb2 as pb
from pyrkt.api.service import PublicAPI
from pyrkt.config import Config
from pyrkt.model import abi
from pyrkt.pods.info import read_pod
from pyrkt.pods.pod import Pod
from pyrkt.pods.state import Dir, State

NS = 1_000_000_000
T0 = 1_700_000_000
NET = [{"netName": "default", "ifName": "eth0", "ip": "172.16.28.5"}, {"netName": "v6", "ip": "fd00::5"}]


def message(pods_dir: Path, path: Path, where: Dir) -> pb.Pod:
    info = read_pod(Pod(str(pods_dir), path.name, where))
    assert info is not None
    return pods.pod_message(info)


def test_every_pod_state_has_rkts_api_state() -> None:
    assert {s.value: pb.PodState.Name(pods.POD_STATES[s]) for s in pods.POD_STATES} == {
        "embryo": "POD_STATE_EMBRYO", "preparing": "POD_STATE_PREPARING",
        "aborted prepare": "POD_STATE_ABORTED_PREPARE", "prepared": "POD_STATE_PREPARED",
        "running": "POD_STATE_RUNNING", "exited": "POD_STATE_EXITED", "exited deleting": "POD_STATE_DELETING",
        "deleting": "POD_STATE_DELETING", "exited garbage": "POD_STATE_GARBAGE", "garbage": "POD_STATE_GARBAGE"}
    assert State.GONE not in pods.POD_STATES


def test_a_running_pod_has_its_pid_times_networks_cgroup_and_running_apps(
        make_pod: Callable[..., Path], pods_dir: Path, holder: Any) -> None:
    path = make_pod(Dir.RUN, apps=("web", "db"), created=T0, pid=4242, started=T0 + 2, nets=NET,
                    stamps={"web": (T0, T0 + 1, None), "db": (T0, T0 + 1, 3)})
    (path / abi.SUBCGROUP).write_text("pyrkt/" + path.name + "\n")
    holder.lock(path)
    pod = message(pods_dir, path, Dir.RUN)
    assert (pod.id, pod.state, pod.pid) == (path.name, pb.POD_STATE_RUNNING, 4242)
    assert (pod.created_at, pod.started_at, pod.gc_marked_at) == (T0 * NS, (T0 + 2) * NS, 0)
    assert pod.cgroup == "/pyrkt/" + path.name
    assert [(n.name, n.ipv4, n.ipv6) for n in pod.networks] == [("default", "172.16.28.5", ""), ("v6", "", "fd00::5")]
    assert [(a.name, a.state, a.exit_code) for a in pod.apps] == [
        ("web", pb.APP_STATE_RUNNING, -1), ("db", pb.APP_STATE_EXITED, 3)]
    web = pod.apps[0].image
    assert (web.id, web.name, web.version, web.base_format.type) == (
        "sha256:" + "0123456789ab" * 5 + "cdef", "example.com/web", "1.0", pb.IMAGE_TYPE_OCI)
    assert pod.manifest == b""  # only when asked for


def test_an_exited_pod_has_its_exit_codes_networks_and_no_cgroup(
        make_pod: Callable[..., Path], pods_dir: Path) -> None:
    path = make_pod(Dir.RUN, pid=77, started=T0, nets=NET, stamps={"web": (T0, T0 + 1, 0)})
    (path / abi.SUBCGROUP).write_text("pyrkt/x\n")
    pod = message(pods_dir, path, Dir.RUN)
    assert (pod.state, pod.pid, pod.cgroup, len(pod.networks)) == (pb.POD_STATE_EXITED, 77, "", 2)
    assert [(a.state, a.exit_code) for a in pod.apps] == [(pb.APP_STATE_EXITED, 0)]


def test_a_prepared_pod_has_apps_but_no_pid_networks_or_app_states(
        make_pod: Callable[..., Path], pods_dir: Path) -> None:
    path = make_pod(Dir.PREPARED, nets=NET)
    pod = message(pods_dir, path, Dir.PREPARED)
    assert (pod.state, pod.pid, len(pod.networks), pod.started_at) == (pb.POD_STATE_PREPARED, -1, 0, 0)
    assert [(a.name, a.state, a.exit_code) for a in pod.apps] == [("web", pb.APP_STATE_UNDEFINED, -1)]


def test_a_garbage_pod_has_its_gc_mark_time(make_pod: Callable[..., Path], pods_dir: Path) -> None:
    path = make_pod(Dir.EXITED_GARBAGE, pid=5, started=T0, nets=NET)
    pod = message(pods_dir, path, Dir.EXITED_GARBAGE)
    assert pod.state == pb.POD_STATE_GARBAGE and pod.gc_marked_at > 0
    assert len(pod.networks) == 0  # as rkt: networks of running and exited pods only


def test_an_embryo_is_its_id_and_state_only(make_pod: Callable[..., Path], pods_dir: Path) -> None:
    path = make_pod(Dir.EMBRYO, pid=5)
    pod = message(pods_dir, path, Dir.EMBRYO)
    assert pod == pb.Pod(id=path.name, state=pb.POD_STATE_EMBRYO, pid=-1)


def test_pod_and_app_annotations_come_from_the_pod_manifest(make_pod: Callable[..., Path], pods_dir: Path) -> None:
    path = make_pod(Dir.PREPARED)
    doc = json.loads((path / abi.POD_MANIFEST).read_text())
    doc["annotations"] = [{"name": "team", "value": "a"}]
    doc["apps"][0]["annotations"] = [{"name": "app-test", "value": "yes"}]
    (path / abi.POD_MANIFEST).write_text(json.dumps(doc))
    pod = message(pods_dir, path, Dir.PREPARED)
    assert [(kv.Key, kv.value) for kv in pod.annotations] == [("team", "a")]
    assert [(kv.Key, kv.value) for kv in pod.apps[0].annotations] == [("app-test", "yes")]


def test_list_and_inspect_read_what_list_shows_and_only_detail_carries_the_manifest(
        make_pod: Callable[..., Path], config: Config, holder: Any) -> None:
    running = make_pod(Dir.RUN, pid=1, started=T0, stamps={"web": (T0, T0 + 1, None)})
    holder.lock(running)
    prepared = make_pod(Dir.PREPARED)
    make_pod(Dir.GARBAGE)  # not listed, as by `list`
    api = PublicAPI(config)
    listed = api.ListPods(pb.ListPodsRequest(), None)  # type: ignore[arg-type]
    assert [(p.id, p.state) for p in listed.pods] == [(prepared.name, pb.POD_STATE_PREPARED),
                                                      (running.name, pb.POD_STATE_RUNNING)]
    assert all(p.manifest == b"" for p in listed.pods)
    detailed = api.ListPods(pb.ListPodsRequest(detail=True), None)  # type: ignore[arg-type]
    assert [p.manifest for p in detailed.pods] == [(prepared / "pod").read_bytes(), (running / "pod").read_bytes()]
    inspected = api.InspectPod(pb.InspectPodRequest(id=running.name[:8]), None).pod  # type: ignore[arg-type]
    assert inspected == detailed.pods[1]


# -- filters --------------------------------------------------------------------------------

def pod(uuid: str, state: int = pb.POD_STATE_RUNNING, apps: tuple[tuple[str, str], ...] = (("web", "img-1"),),
        nets: tuple[str, ...] = ("default",), annotations: dict[str, str] | None = None, cgroup: str = "") -> pb.Pod:
    return pb.Pod(id=uuid, state=state,  # type: ignore[arg-type]
                  apps=[pb.App(name=n, image=pb.Image(id=i)) for n, i in apps],
                  networks=[pb.Network(name=n) for n in nets], cgroup=cgroup,
                  annotations=pods.key_values((annotations or {}).items()))


A = pod("a", apps=(("web", "img-1"), ("db", "img-2")), nets=("default", "other"), annotations={"k": "1", "j": "2"},
        cgroup="/pyrkt/a")
B = pod("b", state=pb.POD_STATE_EXITED, apps=(("web", "img-1"),), annotations={"k": "2"})
C = pod("c", state=pb.POD_STATE_PREPARED, apps=(), nets=())


def chosen(*filters: pb.PodFilter) -> list[str]:
    return [p.id for p in (A, B, C) if pods.matches_any(p, filters)]


@pytest.mark.parametrize("f, want", [
    (pb.PodFilter(), ["a", "b", "c"]),
    (pb.PodFilter(ids=["b", "c", "z"]), ["b", "c"]),
    (pb.PodFilter(states=[pb.POD_STATE_EXITED, pb.POD_STATE_PREPARED]), ["b", "c"]),
    (pb.PodFilter(app_names=["web"]), ["a", "b"]),
    (pb.PodFilter(app_names=["web", "db"]), ["a"]),  # all of them
    (pb.PodFilter(image_ids=["img-1", "img-2"]), ["a"]),
    (pb.PodFilter(network_names=["default", "other"]), ["a"]),
    (pb.PodFilter(annotations=[pb.KeyValue(Key="k", value="2")]), ["b"]),
    (pb.PodFilter(annotations=[pb.KeyValue(Key="k", value="1"), pb.KeyValue(Key="j", value="2")]), ["a"]),
    (pb.PodFilter(annotations=[pb.KeyValue(Key="k", value="1"), pb.KeyValue(Key="j", value="3")]), []),
    (pb.PodFilter(cgroups=["/pyrkt/a"]), ["a"]),
    (pb.PodFilter(pod_sub_cgroups=["/pyrkt/a/web", "/elsewhere"]), ["a"]),
    (pb.PodFilter(pod_sub_cgroups=["/pyrkt"]), []),
])
def test_each_condition_of_a_pod_filter(f: pb.PodFilter, want: list[str]) -> None:
    assert chosen(f) == want


def test_conditions_of_one_filter_are_anded_and_filters_are_ored() -> None:
    web_exited = pb.PodFilter(app_names=["web"], states=[pb.POD_STATE_EXITED])
    assert chosen(web_exited) == ["b"]
    assert chosen(web_exited, pb.PodFilter(ids=["c"])) == ["b", "c"]
    assert chosen(pb.PodFilter(ids=["z"]), pb.PodFilter(ids=["y"])) == []
