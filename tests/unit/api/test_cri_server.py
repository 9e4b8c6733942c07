"""The pure parts of `pyrkt cri`: the socket address and a stale socket, image references as a
kubelet sends them, the request's credentials, the pod CIDR and the CNI config check."""

from __future__ import annotations

import base64
import socket
from pathlib import Path
from typing import Any

import grpc
import pytest

from pyrkt.api.cri import images, runtime, server
from pyrkt.api.proto import cri_pb2 as pb
from pyrkt.errors import PyrktError, UsageError

HEX = "0123456789abcdef" * 4


def test_listen_takes_unix_sockets_only() -> None:
    assert server.socket_path("unix:///run/pyrkt/cri.sock") == "/run/pyrkt/cri.sock"
    assert server.socket_path("unix:/tmp/x/../cri.sock") == "/tmp/cri.sock"
    for bad in ("tcp://127.0.0.1:1", "127.0.0.1:1234", "unix://relative.sock"):
        with pytest.raises(UsageError, match="--listen"):
            server.socket_path(bad)
    longest = "/run/" + "x" * (server.MAX_SOCKET_PATH - len("/run/"))
    assert server.socket_path(f"unix://{longest}") == longest
    with pytest.raises(UsageError, match=r"--listen=unix:///run/x+y: the path is 108 bytes, longer than a unix "
                                         r"socket's may be \(107\)"):
        server.socket_path(f"unix://{longest}y")


def test_a_stale_socket_is_removed_a_live_one_and_other_files_are_refused(tmp_path: Path) -> None:
    path = str(tmp_path / "cri.sock")
    server.clear_stale_socket(path)  # nothing there
    stale = socket.socket(socket.AF_UNIX)
    stale.bind(path)
    stale.close()  # bound, never listening: what a killed server leaves
    server.clear_stale_socket(path)
    assert not Path(path).exists()
    with socket.socket(socket.AF_UNIX) as live:
        live.bind(path)
        live.listen()
        with pytest.raises(PyrktError, match="a server is listening there already"):
            server.clear_stale_socket(path)
    Path(path).unlink()
    Path(path).write_text("")
    with pytest.raises(PyrktError, match="exists and is not a socket"):
        server.clear_stale_socket(path)


def test_every_declared_call_has_a_handler_and_the_unimplemented_name_themselves() -> None:
    for service in (server.RUNTIME_SERVICE, server.IMAGE_SERVICE):
        name = service.rpartition(".")[2]
        assert pb.DESCRIPTOR.services_by_name[name].methods  # the table is built from these
    assert server.not_wired("Exec").startswith("Exec is not implemented by pyrkt yet")
    called = ("Version", "Status", "UpdateRuntimeConfig", "RuntimeConfig")
    assert {m for m in called if hasattr(server.RuntimeService, m)} == set(called)
    assert all(hasattr(server.ImageService, m.name) for m in pb.DESCRIPTOR.services_by_name["ImageService"].methods)


@pytest.mark.parametrize(("text", "stored"), [
    ("busybox", "registry-1.docker.io/library/busybox:latest"),
    ("docker.io/library/busybox:latest", "registry-1.docker.io/library/busybox:latest"),
    ("localhost:5000/x@sha256:" + HEX, "localhost:5000/x@sha256:" + HEX),
    ("quay.io/a/b:1.0", "quay.io/a/b:1.0"),
])
def test_image_references_as_the_kubelet_sends_them(text: str, stored: str) -> None:
    ref = images.ImageRef(text)
    assert (ref.image_id, ref.stored_name) == ("", stored)


def test_image_ids_and_bad_references() -> None:
    assert images.ImageRef("sha256:" + HEX).image_id == "sha256:" + HEX
    assert images.ImageRef(HEX).image_id == "sha256:" + HEX
    for bad in ("", "Bad Ref", "x:bad tag"):
        with pytest.raises(UsageError):
            images.ImageRef(bad)
    assert images.shown_name("registry-1.docker.io/library/busybox") == "docker.io/library/busybox"
    assert images.shown_name("localhost:5000/x") == "localhost:5000/x"


def test_the_requests_credentials() -> None:
    creds, token = images.request_credentials(pb.AuthConfig(username="u", password="p"))
    assert creds is not None and (creds.user, creds.password, token) == ("u", "p", "")
    auth = base64.b64encode(b"alice:pa:ss").decode()
    creds, _ = images.request_credentials(pb.AuthConfig(auth=auth))
    assert creds is not None and (creds.user, creds.password) == ("alice", "pa:ss")
    creds, _ = images.request_credentials(pb.AuthConfig(identity_token="refresh"))
    assert creds is not None and creds.identity_token == "refresh"
    assert images.request_credentials(pb.AuthConfig(registry_token="tok")) == (None, "tok")
    assert images.request_credentials(pb.AuthConfig()) == (None, "")
    for bad in ("!!", base64.b64encode(b"no-colon").decode()):
        with pytest.raises(UsageError, match="AuthConfig.auth"):
            images.request_credentials(pb.AuthConfig(auth=bad))
    assert "s3cret" not in repr(images.request_credentials(pb.AuthConfig(username="u", password="s3cret"))[0])


def test_pod_cidr_is_checked_and_kept_on_disk(tmp_path: Path) -> None:
    assert runtime.check_cidr("10.244.1.0/24, fd00::/64") == "10.244.1.0/24,fd00::/64"
    with pytest.raises(UsageError, match="invalid pod CIDR 'nope'"):
        runtime.check_cidr("nope")
    state = str(tmp_path / "cri")
    request = pb.UpdateRuntimeConfigRequest(
        runtime_config=pb.RuntimeConfig(network_config=pb.NetworkConfig(pod_cidr="10.244.1.0/24")))
    runtime.update_runtime_config(state, request)
    assert runtime.read_runtime_config(state) == {"podCIDR": "10.244.1.0/24"}


def test_network_ready_needs_a_cni_network_config(tmp_path: Path) -> None:
    assert "cannot read CNI config dir" in runtime.cni_config(str(tmp_path / "none"))[1]
    assert runtime.cni_config(str(tmp_path)) == ("", f"no network config found in {tmp_path}")
    (tmp_path / "00-bad.conf").write_text("{")
    (tmp_path / "README").write_text("not a config")
    assert "00-bad.conf" in runtime.cni_config(str(tmp_path))[1]
    (tmp_path / "10-net.conflist").write_text('{"name": "pods", "plugins": [{"type": "bridge"}]}')
    assert runtime.cni_config(str(tmp_path)) == (str(tmp_path / "10-net.conflist"), "")
    settings = runtime.Settings(state_dir=str(tmp_path / "state"), cni_conf_dir=str(tmp_path))
    conditions = {c.type: c.status for c in runtime.status(settings).status.conditions}
    assert conditions == {"RuntimeReady": True, "NetworkReady": True}
    assert runtime.runtime_config().linux.cgroup_driver == pb.CGROUPFS
    v = runtime.version()
    assert (v.runtime_name, v.runtime_api_version) == ("pyrkt", "v1")


class Aborted(Exception):
    pass


class Context:
    def abort(self, code: grpc.StatusCode, details: str) -> None:
        raise Aborted(code, details)


class Refusing:
    """A service whose every call fails the test: the empty id must be refused before it."""

    def __getattr__(self, name: str) -> Any:
        def call(request: Any, context: Any) -> None:
            pytest.fail(f"{name} was called with an empty id")
        return call


def test_every_call_refuses_an_empty_sandbox_or_container_id_naming_the_field() -> None:
    handlers = server.method_table(server.RUNTIME_SERVICE, Refusing())
    checked = {}
    for method in pb.DESCRIPTOR.services_by_name["RuntimeService"].methods:
        for field in server.id_fields(method):
            checked[method.name] = field
            details = type("Details", (), {"method": f"/{server.RUNTIME_SERVICE}/{method.name}",
                                           "invocation_metadata": ()})()
            handler = handlers.service(details)
            request = getattr(pb, method.input_type.name)()
            with pytest.raises(Aborted) as refused:
                handler.unary_unary(request, Context())
            assert refused.value.args == (grpc.StatusCode.INVALID_ARGUMENT, f"{field} is empty"), method.name
    wired = {m for m in checked if hasattr(server.RuntimeService, m)}
    assert wired == {"StopPodSandbox", "RemovePodSandbox", "PodSandboxStatus", "CreateContainer", "StartContainer",
                     "StopContainer", "RemoveContainer", "ContainerStatus", "UpdateContainerResources",
                     "ReopenContainerLog", "ExecSync", "Exec", "Attach", "PortForward", "ContainerStats",
                     "PodSandboxStats"}
    assert checked["CreateContainer"] == "pod_sandbox_id" and checked["StartContainer"] == "container_id"
