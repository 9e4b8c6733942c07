"""`pyrkt api-service` as a monitoring tool uses it: a gRPC client (called by rkt's method paths,
as one generated from rkt's api.proto would) sees the pods `list` shows, with the same states,
the images `image list` shows, and reads the apps' logs, while pods run and exit around it."""

from __future__ import annotations

import json
import signal
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
import pytest
from tests.integration.pods import Cli, make_image

from pyrkt.api.proto import v1alpha_pb2 as pb

STATES = {"prepared": pb.POD_STATE_PREPARED, "running": pb.POD_STATE_RUNNING, "exited": pb.POD_STATE_EXITED,
          "aborted prepare": pb.POD_STATE_ABORTED_PREPARE, "exited garbage": pb.POD_STATE_GARBAGE}
APP_STATES = {"running": pb.APP_STATE_RUNNING, "exited": pb.APP_STATE_EXITED}


class Client:
    def __init__(self, address: str) -> None:
        self.channel = grpc.insecure_channel(address)

    def call(self, method: str, request: Any, response: Any) -> Any:
        return self.channel.unary_unary(f"/v1alpha.PublicAPI/{method}", request_serializer=type(request).SerializeToString,
                                        response_deserializer=response.FromString)(request, timeout=30)

    def logs(self, timeout: float = 30, **request: Any) -> Any:
        rpc = self.channel.unary_stream("/v1alpha.PublicAPI/GetLogs", request_serializer=pb.GetLogsRequest.SerializeToString,
                                        response_deserializer=pb.GetLogsResponse.FromString)
        return rpc(pb.GetLogsRequest(**request), timeout=timeout)

    def log_lines(self, **request: Any) -> list[str]:
        return [line for response in self.logs(**request) for line in response.lines]

    def pods(self, *filters: pb.PodFilter, detail: bool = False) -> list[pb.Pod]:
        return list(self.call("ListPods", pb.ListPodsRequest(filters=filters, detail=detail), pb.ListPodsResponse).pods)


@dataclass
class Served:
    cli: Cli
    conf: Path
    client: Client
    running: str  # a detached pod on the default network
    exited: str  # a pod whose app wrote to stdout and stderr and exited 3
    service: subprocess.Popen[str]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start_service(cli: Cli) -> tuple[subprocess.Popen[str], str]:
    address = f"127.0.0.1:{free_port()}"
    proc = cli.popen("api-service", f"--listen={address}", stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                     stdin=subprocess.DEVNULL)
    assert proc.stderr is not None
    said = []
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        line = proc.stderr.readline()
        said.append(line)
        if line == "API service running\n" or not line:
            break
    assert said[-1] == "API service running\n", (said, proc.poll())
    assert f"Listening on {address}\n" in said
    return proc, address


@pytest.fixture(scope="module")
def served(net_env: tuple[Cli, str, Path], tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    cli, image, conf = net_env
    save = tmp_path_factory.mktemp("api") / "exited.uuid"
    r = cli("run", "--net=none", f"--uuid-file-save={save}", image, "--name=once", "--exec=/bin/sh", "--", "-c",
            'echo first; head -c 20000 /dev/zero | tr "\\0" a; echo; echo second >&2; exit 3')  # 20000: P+F records
    assert r.code == 3, r
    exited = save.read_text().strip()
    r = cli("run", "--net=default", "--detach", image, "--name=ticker", "--exec=/bin/sh", "--", "-c",
            "echo hello; sleep 1000")
    assert r.code == 0, r
    running = r.out.strip().splitlines()[-1]
    assert cli("status", "--wait-ready=20s", running).code == 0
    proc, address = start_service(cli)
    client = Client(address)
    try:
        yield Served(cli, conf, client, running, exited, proc)
    finally:
        client.channel.close()
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)  # ended by its pid, as a service manager would
            proc.communicate(timeout=30)
        cli("stop", running)


def listed(cli: Cli) -> dict[str, dict[str, Any]]:
    r = cli("list", "--format=json")
    assert r.code == 0, r
    return {p["name"]: p for p in json.loads(r.out)}


def test_get_info_reports_the_services_data_dir_and_config(served: Served) -> None:
    info = served.client.call("GetInfo", pb.GetInfoRequest(), pb.GetInfoResponse).info
    assert info.api_version == "1.0.0-alpha"
    assert (info.global_flags.dir, info.global_flags.local_config_dir) == (str(served.cli.data_dir), str(served.conf))
    assert info.global_flags.insecure_flags == "none"


def test_list_pods_shows_the_pods_list_shows_with_the_same_states(served: Served) -> None:
    want = listed(served.cli)
    pods = {p.id: p for p in served.client.pods()}
    assert set(pods) == set(want) >= {served.running, served.exited}
    for uuid, pod in pods.items():
        row = want[uuid]
        assert pod.state == STATES[row["state"]], (uuid, row["state"])
        assert [a.name for a in pod.apps] == row.get("app_names", [])
        for app, app_row in zip(pod.apps, row.get("apps", []), strict=True):
            assert app.state == APP_STATES.get(app_row["state"], pb.APP_STATE_UNDEFINED)
            assert app.exit_code == app_row.get("exit_code", -1)
            assert app.image.id == app_row["image_id"]
        assert (pod.created_at, pod.started_at) == (row.get("created_at", 0), row.get("started_at", 0))
        assert pod.manifest == b""  # without detail
    nets = [(n["netName"], n["ip"]) for n in want[served.running]["networks"]]
    assert nets and [(n.name, n.ipv4) for n in pods[served.running].networks] == nets
    assert pods[served.running].cgroup == f"/pyrkt/{served.running}"
    assert pods[served.exited].cgroup == ""


def test_inspect_pod_agrees_with_status_and_carries_the_pod_manifest(served: Served) -> None:
    pod = served.client.call("InspectPod", pb.InspectPodRequest(id=served.exited[:8]), pb.InspectPodResponse).pod
    status = served.cli.status(served.exited)
    assert (pod.id, pod.state, pod.pid) == (served.exited, pb.POD_STATE_EXITED, int(status["pid"]))
    assert [(a.name, a.state, a.exit_code) for a in pod.apps] == [("once", pb.APP_STATE_EXITED, 3)]
    assert status["app-once"] == "3"
    cat = served.cli("cat-manifest", served.exited)
    assert json.loads(pod.manifest) == json.loads(cat.out)
    running = served.client.call("InspectPod", pb.InspectPodRequest(id=served.running), pb.InspectPodResponse).pod
    assert (running.state, running.pid) == (pb.POD_STATE_RUNNING, int(served.cli.status(served.running)["pid"]))
    assert [(a.name, a.state, a.exit_code) for a in running.apps] == [("ticker", pb.APP_STATE_RUNNING, -1)]
    with pytest.raises(grpc.RpcError) as err:
        served.client.call("InspectPod", pb.InspectPodRequest(id="ffffffff"), pb.InspectPodResponse)
    assert err.value.code() == grpc.StatusCode.NOT_FOUND  # type: ignore[attr-defined]


def test_pod_filters_and_within_or_between(served: Served) -> None:
    def ids(*filters: pb.PodFilter) -> set[str]:
        return {p.id for p in served.client.pods(*filters)} & {served.running, served.exited}

    running = pb.PodFilter(states=[pb.POD_STATE_RUNNING])
    assert ids(running) == {served.running}
    assert ids(pb.PodFilter(app_names=["once"])) == {served.exited}
    assert ids(pb.PodFilter(network_names=["default"])) == {served.running}
    assert ids(pb.PodFilter(cgroups=[f"/pyrkt/{served.running}"])) == {served.running}
    assert ids(pb.PodFilter(states=[pb.POD_STATE_RUNNING], app_names=["once"])) == set()  # AND
    assert ids(running, pb.PodFilter(ids=[served.exited])) == {served.running, served.exited}  # OR
    [detailed] = served.client.pods(pb.PodFilter(ids=[served.running]), detail=True)
    assert json.loads(detailed.manifest) == json.loads(served.cli("cat-manifest", served.running).out)


def test_images_are_those_of_image_list(served: Served) -> None:
    r = served.cli("image", "list", "--format=json")
    assert r.code == 0, r
    want = json.loads(r.out)
    images = served.client.call("ListImages", pb.ListImagesRequest(), pb.ListImagesResponse).images
    assert [(i.id, f"{i.name}:{i.version}", i.size, i.import_timestamp) for i in images] == [
        (w["id"], w["name"], w["size"], w["import_time"] // 1_000_000_000) for w in want]
    image = images[0]
    inspected = served.client.call("InspectImage", pb.InspectImageRequest(id=image.id[:19]),
                                   pb.InspectImageResponse).image
    assert inspected.id == image.id and inspected.base_format.type == pb.IMAGE_TYPE_OCI
    assert json.loads(inspected.manifest) == json.loads(served.cli("image", "cat-manifest", image.id).out)
    by_name = pb.ImageFilter(base_names=[image.name.rpartition("/")[2]])
    chosen = served.client.call("ListImages", pb.ListImagesRequest(filters=[by_name]), pb.ListImagesResponse).images
    assert [i.id for i in chosen] == [image.id]
    nothing = pb.ImageFilter(base_names=[image.name], keywords=["no-such-word"])
    assert not served.client.call("ListImages", pb.ListImagesRequest(filters=[nothing]), pb.ListImagesResponse).images


def test_get_logs_reads_what_the_apps_wrote(served: Served) -> None:
    assert served.client.log_lines(pod_id=served.exited) == ["first", "a" * 20000, "second"]
    assert served.client.log_lines(pod_id=served.exited, app_name="once", lines=1) == ["second"]
    assert served.client.log_lines(pod_id=served.exited, since_time=int(time.time()) + 3600) == []
    assert served.client.log_lines(pod_id=served.running) == ["hello"]
    with pytest.raises(grpc.RpcError) as err:
        served.client.log_lines(pod_id=served.exited, app_name="nope")
    assert err.value.code() == grpc.StatusCode.NOT_FOUND  # type: ignore[attr-defined]


def test_listen_events_follows_pods_apps_and_images_as_they_change(served: Served, tmp_path: Path) -> None:
    cli, client = served.cli, served.client
    got: list[pb.Event] = []
    rpc = client.channel.unary_stream("/v1alpha.PublicAPI/ListenEvents",
                                      request_serializer=pb.ListenEventsRequest.SerializeToString,
                                      response_deserializer=pb.ListenEventsResponse.FromString)
    call = rpc(pb.ListenEventsRequest(filter=pb.EventFilter(until_time=int(time.time()) + 120)), timeout=150)

    def read() -> None:
        try:
            for response in call:
                got.extend(response.events)
        except grpc.RpcError as e:
            assert e.code() == grpc.StatusCode.CANCELLED  # type: ignore[attr-defined]

    def wait_for(kind: int, subject: str) -> Any:
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            for e in list(got):
                if e.type == kind and e.id.startswith(subject):  # `fetch` prints a short image id
                    return e
            time.sleep(0.1)
        raise AssertionError(f"no {pb.EventType.Name(kind)} for {subject}: {got}")

    reader = threading.Thread(target=read)
    reader.start()
    try:
        time.sleep(1)  # the call's first sample is its baseline
        save = tmp_path / "uuid"
        r = cli("run", "--net=none", f"--uuid-file-save={save}",
                client.call("ListImages", pb.ListImagesRequest(), pb.ListImagesResponse).images[0].id,
                "--name=brief", "--exec=/bin/sh", "--", "-c", "exit 4")
        assert r.code == 4, r
        uuid = save.read_text().strip()
        exited = wait_for(pb.EVENT_TYPE_POD_EXITED, uuid)
        mine = [(pb.EventType.Name(e.type), getattr(e, "from")) for e in got if e.id == uuid]
        assert mine == [("EVENT_TYPE_POD_STARTED", uuid), ("EVENT_TYPE_APP_STARTED", "brief"),
                        ("EVENT_TYPE_APP_EXITED", "brief"), ("EVENT_TYPE_POD_EXITED", uuid)]
        app_exit = next(e for e in got if e.type == pb.EVENT_TYPE_APP_EXITED and e.id == uuid)
        assert [(kv.Key, kv.value) for kv in app_exit.data] == [("exit_code", "4")]
        assert exited.time >= app_exit.time > 0
        assert cli("rm", uuid).code == 0
        wait_for(pb.EVENT_TYPE_POD_GARBAGE_COLLECTED, uuid)
        r = cli("fetch", make_image(tmp_path / "another", cmd=("true",)))
        assert r.code == 0, r
        new_id = r.out.strip().splitlines()[-1]
        assert getattr(wait_for(pb.EVENT_TYPE_IMAGE_IMPORTED, new_id), "from") == "another:latest"
        assert cli("image", "rm", new_id).code == 0
        wait_for(pb.EVENT_TYPE_IMAGE_REMOVED, new_id)
    finally:
        call.cancel()
        reader.join(10)


def test_a_sandbox_shows_its_apps_as_they_come_and_go(served: Served) -> None:
    cli, client = served.cli, served.client
    r = cli("app", "sandbox", "--net=none")
    assert r.code == 0, r
    uuid = r.out.strip()

    def apps() -> list[tuple[str, int]]:
        pod = client.call("InspectPod", pb.InspectPodRequest(id=uuid), pb.InspectPodResponse).pod
        assert pod.state == pb.POD_STATE_RUNNING
        return [(a.name, a.state) for a in pod.apps]

    try:
        assert apps() == []
        image = json.loads(cli("cat-manifest", served.running).out)["apps"][0]["image"]["id"]
        assert cli("app", "add", uuid, image, "--name=late", "--exec=/bin/sleep", "--", "1000").code == 0
        assert cli("app", "start", uuid, "--app=late").code == 0
        assert apps() == [("late", pb.APP_STATE_RUNNING)]
        assert cli("app", "rm", uuid, "--app=late").code == 0
        assert apps() == []
    finally:
        cli("stop", uuid)
        cli("rm", uuid)


def test_following_logs_never_holds_up_a_command_and_ends_with_the_pod(served: Served) -> None:
    """Runs last in this module: it stops the running pod."""
    cli, client = served.cli, served.client
    got: list[list[str]] = []
    stream = client.logs(pod_id=served.running, follow=True, timeout=60)

    def read() -> None:
        for response in stream:
            got.append(list(response.lines))

    reader = threading.Thread(target=read)
    reader.start()
    deadline = time.monotonic() + 20
    while not got and time.monotonic() < deadline:
        time.sleep(0.05)
    assert got and got[0] == ["hello"]
    # the service reads while commands change the pod: none of them waits for it
    started = time.monotonic()
    assert cli("stop", served.running, timeout=30).code == 0
    assert cli("gc", "--mark-only", timeout=30).code == 0
    assert time.monotonic() - started < 20
    reader.join(30)
    assert not reader.is_alive(), "the followed stream did not end with its pod"
    [pod] = client.pods(pb.PodFilter(ids=[served.running]))
    assert pod.state == pb.POD_STATE_GARBAGE and pod.gc_marked_at > 0
    assert listed(cli)[served.running]["state"] == "exited garbage"
    # the service ends on SIGTERM, by its pid
    served.service.send_signal(signal.SIGTERM)
    _, err = served.service.communicate(timeout=30)
    assert served.service.returncode == 0 and err.endswith("API service exiting...\n")

