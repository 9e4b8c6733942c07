"""`pyrkt cri` driven as a kubelet drives a runtime: a gRPC client on the unix socket asks for
the version and status, pulls images from a real registry on 127.0.0.1 (anonymously and with
the request's credentials against an htpasswd registry), lists, inspects and removes them, and
sees a restart of the server lose nothing. The server is ended by its pid."""

from __future__ import annotations

import base64
import http.client
import json
import os
import signal
import socket
import stat
import subprocess
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import grpc
import pytest
from tests.conftest import PYRKT_BIN
from tests.integration import test_registry
from tests.integration.test_registry import PASSWORD, REGISTRY_BIN, USER, Registry, TokenServer, bcrypt_hash
from tests.support.images import build_oci_layout, image_id_of

from pyrkt.api.cri import images as cri_images
from pyrkt.api.proto import cri_pb2 as pb
from pyrkt.store import Store

token_registry = test_registry.token_registry  # a registry behind a token service of the tests' own (a fixture)
pytestmark = pytest.mark.skipif(not os.path.exists(REGISTRY_BIN), reason="needs docker-registry and skopeo (make test-deps)")


class Client:
    def __init__(self, sock: Path) -> None:
        self.channel = grpc.insecure_channel(f"unix://{sock}")

    def call(self, service: str, method: str, request: Any, response: Any) -> Any:
        return self.channel.unary_unary(f"/runtime.v1.{service}/{method}",
                                        request_serializer=type(request).SerializeToString,
                                        response_deserializer=response.FromString)(request, timeout=120)

    def image(self, method: str, request: Any, response: Any) -> Any:
        return self.call("ImageService", method, request, response)

    def status(self, ref: str) -> pb.ImageStatusResponse:
        return self.image("ImageStatus", pb.ImageStatusRequest(image=pb.ImageSpec(image=ref)), pb.ImageStatusResponse)

    def pull(self, ref: str, auth: pb.AuthConfig | None = None) -> str:
        return str(self.image("PullImage", pb.PullImageRequest(image=pb.ImageSpec(image=ref), auth=auth),
                              pb.PullImageResponse).image_ref)

    def list(self, ref: str = "") -> list[pb.Image]:
        request = pb.ListImagesRequest(filter=pb.ImageFilter(image=pb.ImageSpec(image=ref)) if ref else None)
        return list(self.image("ListImages", request, pb.ListImagesResponse).images)


@dataclass
class Cri:
    data_dir: Path
    sock: Path
    cni_conf: Path
    proc: subprocess.Popen[str]
    client: Client

    def stop(self) -> tuple[int, str]:
        self.client.channel.close()
        if self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGTERM)
        try:
            _, err = self.proc.communicate(timeout=30)
        except subprocess.TimeoutExpired:  # fail, but leave no server behind
            self.proc.kill()
            self.proc.communicate()
            raise
        return self.proc.returncode, err


def start(data_dir: Path, sock: Path, cni_conf: Path, *extra: str) -> Cri:
    proc = subprocess.Popen([str(PYRKT_BIN), f"--dir={data_dir}", "--insecure-options=http", "cri",
                             f"--listen=unix://{sock}", f"--cni-conf-dir={cni_conf}", *extra],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL, text=True)
    assert proc.stderr is not None
    line = proc.stderr.readline()
    assert line == f"pyrkt cri: serving runtime.v1 on unix://{sock}\n", (line, proc.poll())
    return Cri(data_dir, sock, cni_conf, proc, Client(sock))


@pytest.fixture(scope="module")
def registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Registry, str, str]]:
    """A registry with an htpasswd (user alice) and one image pushed with those credentials:
    (registry, its reference without a scheme, its image id)."""
    root = tmp_path_factory.mktemp("cri-registry")
    (root / "htpasswd").write_text(f"{USER}:{bcrypt_hash(PASSWORD)}\n")
    reg = Registry(root, extra_yaml=f"auth:\n  htpasswd:\n    realm: pyrkt-tests\n    path: {root / 'htpasswd'}\n")
    try:
        layout = build_oci_layout(root / "layout", tag="1.36", entrypoint=("sh", "-c"), cmd=("echo from the cri",))
        ref = reg.push(layout, "k8s/busybox", tag="1.36", creds=f"{USER}:{PASSWORD}")
        yield reg, ref.removeprefix("docker://"), image_id_of(layout)
    finally:
        reg.stop()


@pytest.fixture()
def cri(data_dir: Path, tmp_path: Path) -> Iterator[Cri]:
    conf = tmp_path / "net.d"
    conf.mkdir()
    server = start(data_dir, tmp_path / "run" / "cri.sock", conf)
    try:
        yield server
    finally:
        server.stop()


ALICE = pb.AuthConfig(username=USER, password=PASSWORD)


def test_version_and_status_network_ready_once_a_cni_config_is_there(cri: Cri) -> None:
    v = cri.client.call("RuntimeService", "Version", pb.VersionRequest(), pb.VersionResponse)
    assert (v.runtime_name, v.runtime_api_version) == ("pyrkt", "v1")
    c = cri.client.call("RuntimeService", "RuntimeConfig", pb.RuntimeConfigRequest(), pb.RuntimeConfigResponse)
    assert c.linux.cgroup_driver == pb.CGROUPFS  # what a kubelet asks at start, to match its own
    mode = os.stat(cri.sock).st_mode
    assert stat.S_ISSOCK(mode) and stat.S_IMODE(mode) == 0o660 and os.stat(cri.sock).st_uid == 0

    def conditions() -> dict[str, tuple[bool, str]]:
        s = cri.client.call("RuntimeService", "Status", pb.StatusRequest(), pb.StatusResponse)
        return {c.type: (c.status, c.reason) for c in s.status.conditions}

    assert conditions() == {"RuntimeReady": (True, ""), "NetworkReady": (False, "NetworkPluginNotReady")}
    (cri.cni_conf / "10-pods.conflist").write_text(
        '{"cniVersion": "1.0.0", "name": "pods", "plugins": [{"type": "bridge"}]}')
    assert conditions() == {"RuntimeReady": (True, ""), "NetworkReady": (True, "")}
    s = cri.client.call("RuntimeService", "Status", pb.StatusRequest(verbose=True), pb.StatusResponse)
    config = json.loads(s.info["config"])
    host, _, port = config["streamAddress"].rpartition(":")
    assert host == "127.0.0.1" and int(port) > 0, config  # the port --stream-addr's 0 chose
    assert config["cniConfig"] == str(cri.cni_conf / "10-pods.conflist"), config


def test_pull_with_the_requests_credentials_then_list_status_and_remove(cri: Cri, registry: tuple[Registry, str, str]) -> None:
    reg, ref, image_id = registry
    assert cri.client.status(ref).HasField("image") is False  # not there: an answer without an image, no error
    with pytest.raises(grpc.RpcError) as refused:
        cri.client.pull(ref)  # no credentials: the registry's 401, one line
    assert refused.value.code() == grpc.StatusCode.UNAUTHENTICATED  # the registry wants to know who we are
    assert "needs a user name and password (401)" in str(refused.value.details())
    assert cri.client.pull(ref, ALICE) == image_id

    image = cri.client.status(ref).image
    assert image.id == image_id and image.size > 0
    assert list(image.repo_tags) == [ref]
    assert [d.partition("@")[0] for d in image.repo_digests] == [ref.rpartition(":")[0]]
    assert image.uid.value == 0
    assert cri.client.status(image_id).image.id == image_id  # by its id, as kubelet asks after a pull
    assert cri.client.status(image.repo_digests[0]).image.id == image_id  # by digest
    verbose = cri.client.image("ImageStatus", pb.ImageStatusRequest(image=pb.ImageSpec(image=ref), verbose=True),
                               pb.ImageStatusResponse)
    assert verbose.info["source"] == f"docker://{ref}"

    assert [i.id for i in cri.client.list()] == [image_id]
    assert [i.id for i in cri.client.list(ref)] == [image_id]
    store = Store(cri.data_dir / "store")
    try:  # what a container's args without a command will follow
        assert cri_images.entrypoint(store, image_id) == ("sh", "-c")
    finally:
        store.close()
    assert cri.client.list(f"{reg.host}/k8s/other:1") == []

    fs = cri.client.image("ImageFsInfo", pb.ImageFsInfoRequest(), pb.ImageFsInfoResponse).image_filesystems
    assert [f.fs_id.mountpoint for f in fs] == [str(cri.data_dir / "store")]
    assert fs[0].used_bytes.value >= image.size and fs[0].inodes_used.value > 0

    cri.client.image("RemoveImage", pb.RemoveImageRequest(image=pb.ImageSpec(image=ref)), pb.RemoveImageResponse)
    assert cri.client.list() == [] and not cri.client.status(image_id).HasField("image")
    cri.client.image("RemoveImage", pb.RemoveImageRequest(image=pb.ImageSpec(image=ref)), pb.RemoveImageResponse)


def test_pull_with_auth_and_registry_token_forms(cri: Cri, registry: tuple[Registry, str, str]) -> None:
    _, ref, image_id = registry
    auth = base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()
    assert cri.client.pull(ref, pb.AuthConfig(auth=auth)) == image_id
    with pytest.raises(grpc.RpcError) as bad:
        cri.client.pull(ref, pb.AuthConfig(auth="not base64!"))
    assert bad.value.code() == grpc.StatusCode.INVALID_ARGUMENT and "AuthConfig.auth" in str(bad.value.details())
    with pytest.raises(grpc.RpcError) as wrong:
        cri.client.pull(ref, pb.AuthConfig(username=USER, password="wrong-Pa55"))
    assert "refused the credentials of user 'alice'" in str(wrong.value.details())
    assert "wrong-Pa55" not in str(wrong.value.details())


def test_pull_with_a_registry_token_sends_it_as_the_bearer_token(
        cri: Cri, token_registry: tuple[Registry, TokenServer, str]) -> None:
    reg, tokens, ref = token_registry
    ref = ref.removeprefix("docker://")
    token = tokens.token("pyrkt-test-registry", [{"type": "repository", "name": "private/tok", "actions": ["pull"]}])
    tokens.requests.clear()
    image_id = cri.client.pull(ref, pb.AuthConfig(registry_token=token))
    assert cri.client.status(ref).image.id == image_id
    assert tokens.requests == []  # the registry took the request's token: none was asked for
    with pytest.raises(grpc.RpcError) as refused:
        cri.client.pull(ref, pb.AuthConfig(registry_token="not-a-token"))
    assert "not-a-token" not in str(refused.value.details())


def test_unknown_image_in_the_registry_is_not_found_and_bad_refs_are_invalid(
        cri: Cri, registry: tuple[Registry, str, str]) -> None:
    reg, _, _ = registry
    with pytest.raises(grpc.RpcError) as missing:
        cri.client.pull(f"{reg.host}/k8s/busybox:no-such-tag", ALICE)
    assert missing.value.code() == grpc.StatusCode.NOT_FOUND
    with pytest.raises(grpc.RpcError) as bad:
        cri.client.status("Not A/Ref")
    assert bad.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "\n" not in str(bad.value.details()) and "Traceback" not in str(bad.value.details())


def test_calls_not_wired_are_unimplemented_naming_the_call(cri: Cri) -> None:
    with pytest.raises(grpc.RpcError) as e:
        cri.client.call("RuntimeService", "CheckpointContainer", pb.CheckpointContainerRequest(),
                        pb.CheckpointContainerResponse)
    assert e.value.code() == grpc.StatusCode.UNIMPLEMENTED
    assert str(e.value.details()).startswith("CheckpointContainer is not implemented by pyrkt yet")
    with pytest.raises(grpc.RpcError) as e:
        cri.client.call("RuntimeService", "ListMetricDescriptors", pb.ListMetricDescriptorsRequest(),
                        pb.ListMetricDescriptorsResponse)
    assert e.value.code() == grpc.StatusCode.UNIMPLEMENTED and "ListMetricDescriptors" in str(e.value.details())


@pytest.mark.parametrize(("flag", "line"), [
    ("--listen=tcp://127.0.0.1:1", "pyrkt: --listen=tcp://127.0.0.1:1: want a unix socket, unix:///path/to/cri.sock"),
    ("--stream-addr=nowhere", "pyrkt: --stream-addr='nowhere': want HOST:PORT, e.g. 127.0.0.1:0"),
    ("--listen=unix:///proc/nowhere/cri.sock",
     "pyrkt: cannot listen on /proc/nowhere/cri.sock: cannot make /proc/nowhere: No such file or directory"),
    ("--listen=unix:///etc/hostname/cri.sock",
     "pyrkt: cannot listen on /etc/hostname/cri.sock: cannot make /etc/hostname: not a directory"),
])
def test_bad_flags_are_one_line_exit_254(data_dir: Path, flag: str, line: str) -> None:
    r = subprocess.run([str(PYRKT_BIN), f"--dir={data_dir}", "cri", flag], capture_output=True, text=True, timeout=60)
    assert (r.returncode, r.stderr.splitlines()) == (254, [line])


def test_a_file_that_is_not_a_socket_is_left_alone(data_dir: Path, tmp_path: Path) -> None:
    path = tmp_path / "cri.sock"
    path.write_text("mine")
    r = subprocess.run([str(PYRKT_BIN), f"--dir={data_dir}", "cri", f"--listen=unix://{path}"],
                       capture_output=True, text=True, timeout=60)
    assert (r.returncode, r.stderr) == (254, f"pyrkt: cannot listen on {path}: it exists and is not a socket\n")
    assert path.read_text() == "mine"


def test_restart_keeps_images_and_the_pod_cidr_a_second_server_is_refused(
        cri: Cri, registry: tuple[Registry, str, str]) -> None:
    _, ref, image_id = registry
    assert cri.client.pull(ref, ALICE) == image_id
    cri.client.call("RuntimeService", "UpdateRuntimeConfig", pb.UpdateRuntimeConfigRequest(
        runtime_config=pb.RuntimeConfig(network_config=pb.NetworkConfig(pod_cidr="10.244.1.0/24"))),
        pb.UpdateRuntimeConfigResponse)

    second = subprocess.run([str(PYRKT_BIN), f"--dir={cri.data_dir}", "cri", f"--listen=unix://{cri.sock}"],
                            capture_output=True, text=True, timeout=60)
    assert second.returncode == 254
    assert second.stderr.splitlines() == [f"pyrkt: cannot listen on {cri.sock}: a server is listening there already"]

    code, err = cri.stop()
    assert code == 0 and err.endswith("pyrkt cri: exiting\n"), err
    assert not cri.sock.exists()
    killed = start(cri.data_dir, cri.sock, cri.cni_conf)  # SIGKILLed next: its socket stays behind
    os.kill(killed.proc.pid, signal.SIGKILL)
    killed.proc.wait(timeout=30)
    killed.client.channel.close()
    assert cri.sock.exists()
    with socket.socket(socket.AF_UNIX) as s, pytest.raises(ConnectionRefusedError):
        s.connect(str(cri.sock))

    again = start(cri.data_dir, cri.sock, cri.cni_conf)  # the stale socket is replaced
    cri.proc, cri.client = again.proc, again.client
    assert [i.id for i in cri.client.list()] == [image_id]
    s = cri.client.call("RuntimeService", "Status", pb.StatusRequest(verbose=True), pb.StatusResponse)
    assert '"podCIDR": "10.244.1.0/24"' in s.info["config"]
    t0 = time.monotonic()
    assert cri.client.pull(ref, ALICE) == image_id and time.monotonic() - t0 < 30


class TricklingProxy:
    """An HTTP proxy in front of the registry that sends big blobs a little at a time (2 kB per
    50 ms), so that a pull is under way long enough to be cut; ``trickling`` is set when one
    starts, ``dropped`` counts the downloads the client closed before their end."""

    def __init__(self, upstream: str) -> None:
        self.trickling = threading.Event()
        self.stopping = threading.Event()
        self.dropped = 0
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: object) -> None:
                pass

            def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
                headers = {k: v for k, v in self.headers.items() if k.lower() not in ("host", "connection")}
                conn = http.client.HTTPConnection(upstream, timeout=30)
                conn.request("GET", self.path, headers=headers)
                resp = conn.getresponse()
                body = resp.read()
                conn.close()
                self.send_response(resp.status)
                for k, v in resp.getheaders():
                    if k.lower() not in ("connection", "transfer-encoding", "content-length"):
                        self.send_header(k, v)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                if "/blobs/" not in self.path or len(body) < 100_000:
                    self.wfile.write(body)
                    return
                proxy.trickling.set()
                try:
                    for i in range(0, len(body), 2048):
                        if proxy.stopping.is_set():
                            break
                        self.wfile.write(body[i:i + 2048])
                        self.wfile.flush()
                        time.sleep(0.05)
                except (BrokenPipeError, ConnectionResetError):
                    proxy.dropped += 1
                self.close_connection = True

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.host = f"127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.stopping.set()
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(timeout=10)


def wait_for(check: Any, seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while not check():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.1)
    return True


def test_a_pull_the_kubelet_gives_up_on_stops_and_sigterm_mid_pull_exits_cleanly(
        cri: Cri, registry: tuple[Registry, str, str]) -> None:
    reg, ref, _ = registry
    proxy = TricklingProxy(reg.host)
    slow = ref.replace(reg.host, proxy.host)
    try:
        request = pb.PullImageRequest(image=pb.ImageSpec(image=slow), auth=ALICE)
        rpc = cri.client.channel.unary_unary("/runtime.v1.ImageService/PullImage",
                                             request_serializer=pb.PullImageRequest.SerializeToString,
                                             response_deserializer=pb.PullImageResponse.FromString)
        with pytest.raises(grpc.RpcError) as gave_up:
            rpc(request, timeout=3)  # the kubelet's deadline
        assert gave_up.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED
        assert wait_for(lambda: proxy.dropped == 1, 15), "the pull went on after the kubelet gave up"
        assert cri.client.list() == []

        proxy.trickling.clear()
        errors: list[grpc.RpcError] = []

        def pull() -> None:
            try:
                rpc(request, timeout=120)
            except grpc.RpcError as e:
                errors.append(e)

        puller = threading.Thread(target=pull)
        puller.start()
        assert proxy.trickling.wait(30)
        t0 = time.monotonic()
        code, err = cri.stop()
        assert code == 0 and time.monotonic() - t0 < 15, err
        assert err.endswith("pyrkt cri: exiting\n") and "Traceback" not in err, err
        puller.join(timeout=30)
        assert errors and errors[0].code() in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.CANCELLED)
    finally:
        proxy.close()
    again = start(cri.data_dir, cri.sock, cri.cni_conf)
    cri.proc, cri.client = again.proc, again.client
    assert cri.client.list() == []  # nothing half-imported is listed
