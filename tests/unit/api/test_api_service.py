"""The service over a real gRPC channel on loopback (no root needed): rkt's method paths,
GetInfo, errors as gRPC status codes, ListenEvents refused; and the command's own checks."""

from __future__ import annotations

import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import grpc
import pytest

import pyrkt.api
from pyrkt.api import service
from pyrkt.api.proto import v1alpha_pb2 as pb
from pyrkt.cli import main as cli
from pyrkt.config import Config, ConfigDirs
from pyrkt.errors import AccessDenied, FetchError, ImageError, IntegrityError, PyrktError, UsageError
from pyrkt.pods.state import Dir


class Client:
    """A v1alpha client as one generated from rkt's proto would call: by method path."""

    def __init__(self, channel: grpc.Channel) -> None:
        self.channel = channel

    def call(self, method: str, request: Any, response: Any) -> Any:
        rpc = self.channel.unary_unary(f"/v1alpha.PublicAPI/{method}", request_serializer=type(request).SerializeToString,
                                       response_deserializer=response.FromString)
        return rpc(request, timeout=10)

    def stream(self, method: str, request: Any, response: Any) -> list[Any]:
        rpc = self.channel.unary_stream(f"/v1alpha.PublicAPI/{method}", request_serializer=type(request).SerializeToString,
                                        response_deserializer=response.FromString)
        return list(rpc(request, timeout=10))


@pytest.fixture
def served(config: Config) -> Iterator[Callable[[Config], Client]]:
    servers: list[service.Server] = []
    channels: list[grpc.Channel] = []

    def start(cfg: Config = config) -> Client:
        server = service.Server(cfg, "127.0.0.1:0")
        servers.append(server)
        channels.append(grpc.insecure_channel(f"127.0.0.1:{server.port}"))
        return Client(channels[-1])

    yield start
    for ch in channels:
        ch.close()
    for s in servers:
        s.stop(0)


def code_of(call: Callable[[], Any]) -> tuple[grpc.StatusCode, str]:
    with pytest.raises(grpc.RpcError) as info:
        call()
    err: Any = info.value
    return err.code(), err.details()


def test_get_info_reports_versions_and_the_global_flags(served: Callable[[Config], Client], tmp_path: Path) -> None:
    cfg = Config(data_dir=str(tmp_path / "d"), dirs=ConfigDirs(system="/s", local="/l", user="/u"),
                 insecure=frozenset({"tls", "image"}), trust_keys_from_https=True)
    info = served(cfg).call("GetInfo", pb.GetInfoRequest(), pb.GetInfoResponse).info
    assert (info.api_version, info.appc_version) == ("1.0.0-alpha", "0.8.11")
    assert info.global_flags == pb.GlobalFlags(dir=str(tmp_path / "d"), system_config_dir="/s", local_config_dir="/l",
                                               user_config_dir="/u", insecure_flags="image,tls",
                                               trust_keys_from_https=True)


def test_errors_are_grpc_status_codes(served: Callable[[Config], Client], make_pod: Callable[..., Path]) -> None:
    client = served()  # type: ignore[call-arg]
    make_pod(Dir.PREPARED, uuid="aaaa0001-0000-4000-8000-000000000000")
    make_pod(Dir.PREPARED, uuid="aaaa0002-0000-4000-8000-000000000000")
    assert code_of(lambda: client.call("InspectPod", pb.InspectPodRequest(id="bbbb"), pb.InspectPodResponse)) == (
        grpc.StatusCode.NOT_FOUND, 'no matches found for "bbbb"')
    assert code_of(lambda: client.call("InspectPod", pb.InspectPodRequest(id="aaaa"), pb.InspectPodResponse))[0] == (
        grpc.StatusCode.INVALID_ARGUMENT)
    assert code_of(lambda: client.call("InspectPod", pb.InspectPodRequest(), pb.InspectPodResponse))[0] == (
        grpc.StatusCode.INVALID_ARGUMENT)
    assert code_of(lambda: client.call("InspectImage", pb.InspectImageRequest(id="sha256:abcdef"),
                                       pb.InspectImageResponse))[0] == grpc.StatusCode.NOT_FOUND
    assert code_of(lambda: client.stream("GetLogs", pb.GetLogsRequest(pod_id="bbbb"), pb.GetLogsResponse))[0] == (
        grpc.StatusCode.NOT_FOUND)


def test_listen_events_streams_until_its_until_time(served: Callable[[Config], Client],
                                                   make_pod: Callable[..., Path]) -> None:
    client = served()  # type: ignore[call-arg]
    until = int(time.time()) + 3
    made: list[Path] = []
    maker = threading.Timer(0.5, lambda: made.append(make_pod(Dir.PREPARED)))
    maker.start()
    got = client.stream("ListenEvents", pb.ListenEventsRequest(filter=pb.EventFilter(until_time=until)),
                        pb.ListenEventsResponse)
    maker.join()
    assert [(e.type, e.id) for r in got for e in r.events] == [(pb.EVENT_TYPE_POD_PREPARED, made[0].name)]
    assert time.time() >= until


def test_an_empty_data_dir_has_no_pods_and_no_images(served: Callable[[Config], Client], tmp_path: Path) -> None:
    client = served(Config(data_dir=str(tmp_path / "never-used")))
    assert list(client.call("ListPods", pb.ListPodsRequest(), pb.ListPodsResponse).pods) == []
    assert list(client.call("ListImages", pb.ListImagesRequest(), pb.ListImagesResponse).images) == []
    assert not (tmp_path / "never-used").exists()  # reading creates nothing


def test_listen_addresses() -> None:
    assert service.check_listen("localhost:15441") == "localhost:15441"
    assert service.check_listen(":15441") == "[::]:15441"
    assert service.check_listen("[::1]:80") == "[::1]:80"
    for bad in ("localhost", "localhost:http", "host:70000", ""):
        with pytest.raises(UsageError, match="want host:port"):
            service.check_listen(bad)


def test_serve_says_where_it_listens_and_stops_when_told(config: Config) -> None:
    said: list[str] = []
    done = threading.Event()
    t = threading.Thread(target=service.serve, args=(config, "127.0.0.1:0"), kwargs={"say": said.append, "done": done})
    t.start()
    for _ in range(100):
        if "API service running" in said:
            break
        threading.Event().wait(0.05)
    done.set()
    t.join(10)
    assert said[0] == "API service starting..." and said[1].startswith("Listening on 127.0.0.1:")
    assert said[2:] == ["API service running", "API service exiting..."]


def test_command_refuses_systemd_sockets_and_arguments(monkeypatch: pytest.MonkeyPatch, tmp_path: Path,
                                                       capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main([f"--dir={tmp_path}", "api-service", "extra"]) == 254
    assert "api-service takes no arguments" in capsys.readouterr().err
    monkeypatch.setenv("LISTEN_FDS", "1")
    assert cli.main([f"--dir={tmp_path}", "api-service"]) == 254
    assert "does not take sockets from systemd" in capsys.readouterr().err


def test_command_without_grpc_says_what_to_install(monkeypatch: pytest.MonkeyPatch, tmp_path: Path,
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setitem(sys.modules, "grpc", None)  # as if grpcio were not installed
    for module in ("rpc", "service"):
        monkeypatch.delitem(sys.modules, f"pyrkt.api.{module}", raising=False)
        monkeypatch.delattr(pyrkt.api, module, raising=False)
    assert cli.main([f"--dir={tmp_path}", "api-service"]) == 254
    assert "api-service needs the grpcio and protobuf packages (pip install 'pyrkt[api]')" in capsys.readouterr().err


def test_a_port_in_use_is_a_one_line_error(config: Config) -> None:
    first = service.Server(config, "127.0.0.1:0")
    try:
        with pytest.raises(Exception, match=f"could not listen on 127.0.0.1:{first.port}"):
            service.Server(config, f"127.0.0.1:{first.port}")
    finally:
        first.stop(0)


def test_a_huge_id_is_named_cut_short_in_the_error(served: Callable[[Config], Client]) -> None:
    client = served()  # type: ignore[call-arg]
    code, details = code_of(lambda: client.call("InspectPod", pb.InspectPodRequest(id="b" * 100_000),
                                                pb.InspectPodResponse))
    assert code == grpc.StatusCode.NOT_FOUND  # not RESOURCE_EXHAUSTED: the reply fits gRPC's metadata limit
    assert details.startswith('no matches found for "bbbb') and details.endswith("…")
    assert len(details) == service.MAX_DETAILS


@pytest.mark.parametrize(("error", "code"), [
    (AccessDenied("r/x: the registry needs a user name and password (401)"), grpc.StatusCode.UNAUTHENTICATED),
    (AccessDenied("r/x: access denied (403): pull", 403), grpc.StatusCode.PERMISSION_DENIED),
    (IntegrityError("layer sha256:ab: digest mismatch"), grpc.StatusCode.DATA_LOSS),
    (ImageError("app 'a': executable '/x' not found in image 'i'"), grpc.StatusCode.FAILED_PRECONDITION),
    (FetchError("r/x: registry answered 503 Service Unavailable"), grpc.StatusCode.UNAVAILABLE),
    (PyrktError("something pyrkt got wrong"), grpc.StatusCode.INTERNAL),
])
def test_what_went_wrong_picks_the_status_code(error: PyrktError, code: grpc.StatusCode) -> None:
    """A caller (the kubelet's events, a monitoring tool) sees whose problem it is: a registry's
    refusal, a corrupt download, an image unfit for the request, a server unreachable, or pyrkt's."""
    assert service.status_of(error) == (code, str(error))
