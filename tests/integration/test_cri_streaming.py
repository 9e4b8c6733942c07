"""`pyrkt cri`'s streaming server as a kubelet's client uses it: Exec and PortForward answer a URL
on 127.0.0.1, and a WebSocket client (Kubernetes' channel protocols) runs a command with stdin,
with a terminal, and fetches a page from an httpd inside the pod through the tunnel; unknown
and used tokens are refused. The same over SPDY/3.1 (what a kubelet sends a runtime), with an
independent client: Go, on the SPDY library Kubernetes uses (tests/support/spdy.py)."""

from __future__ import annotations

import json
import os
import socket
import struct
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import grpc
import pytest
from tests.integration import test_cri_pods
from tests.integration.test_cri import Cri
from tests.integration.test_cri_pods import (
    HTTPD,
    containers,
    create,
    rt,
    run_sandbox,
    sandbox_config,
    wait_state,
)
from tests.support import spdy

from pyrkt.api.cri import websocket as ws
from pyrkt.api.proto import cri_pb2 as pb

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="pods need root")
image = test_cri_pods.image  # the fixtures: a data dir with busybox, a server on it
cri = test_cri_pods.cri


class Client:
    """A WebSocket client of a streaming URL (masked frames, as RFC 6455 asks of clients)."""

    def __init__(self, url: str, protocols: tuple[str, ...] = ("v5.channel.k8s.io", "v4.channel.k8s.io")) -> None:
        u = urlsplit(url)
        assert u.hostname == "127.0.0.1", url
        self.sock = socket.create_connection((u.hostname, u.port or 80), timeout=60)
        key = ws.new_key()
        offer = f"Sec-WebSocket-Protocol: {', '.join(protocols)}\r\n" if protocols else ""
        self.sock.sendall((f"GET {u.path}{'?' + u.query if u.query else ''} HTTP/1.1\r\nHost: {u.netloc}\r\n"
                           "Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\n"
                           f"Sec-WebSocket-Key: {key}\r\n{offer}\r\n").encode())
        head = b""
        while b"\r\n\r\n" not in head:
            chunk = self.sock.recv(1)
            assert chunk, head
            head += chunk
        lines = head.decode().split("\r\n")
        self.status = lines[0]
        self.headers = {k.lower(): v.strip() for k, _, v in (ln.partition(":") for ln in lines[1:] if ln)}
        if self.status.startswith("HTTP/1.1 101"):
            assert self.headers["sec-websocket-accept"] == ws.accept_key(key)
        self.reader = ws.Reader(self.sock.recv, self.sock.sendall, masked=False)

    def send(self, channel: int, data: bytes) -> None:
        self.sock.sendall(ws.encode(ws.BINARY, bytes([channel]) + data, mask=True))

    def messages(self) -> Iterator[tuple[int, bytes]]:
        while True:
            try:
                _, data = self.reader.message()
            except ws.Closed:
                return
            yield data[0], data[1:]

    def collect(self) -> dict[int, bytes]:
        out: dict[int, bytes] = {}
        for channel, data in self.messages():
            out[channel] = out.get(channel, b"") + data
        self.sock.close()
        return out


def running(cri: Cri, tmp_path: Path, image_id: str, name: str, *command: str) -> tuple[str, str]:
    config = sandbox_config(tmp_path, name)
    sid = run_sandbox(cri, config)
    cid = create(cri, sid, config, image_id, "main", *command)
    rt(cri, "StartContainer", pb.StartContainerRequest(container_id=cid))
    wait_state(cri, cid, pb.CONTAINER_RUNNING)
    return sid, cid


def remove(cri: Cri, sid: str) -> None:
    rt(cri, "StopPodSandbox", pb.StopPodSandboxRequest(pod_sandbox_id=sid))
    rt(cri, "RemovePodSandbox", pb.RemovePodSandboxRequest(pod_sandbox_id=sid))


def test_exec_with_stdin_then_tty_and_refused_tokens(cri: Cri, image: tuple[Path, str], tmp_path: Path) -> None:
    sid, cid = running(cri, tmp_path, image[1], "streamer", "sleep", "1000")
    try:
        url = rt(cri, "Exec", pb.ExecRequest(container_id=cid, cmd=["sh", "-c", "tr a-z A-Z; echo oops >&2; exit 3"],
                                             stdin=True, stdout=True, stderr=True)).url
        assert url.startswith("http://127.0.0.1:") and "/exec/" in url
        c = Client(url)
        assert c.status.startswith("HTTP/1.1 101"), c.status
        assert c.headers["sec-websocket-protocol"] == "v5.channel.k8s.io"
        assert next(c.messages()) == (1, b"")  # the streams are set up
        c.send(0, b"hello from stdin\n")
        c.send(255, b"\x00")  # v5: the client's stdin is closed
        got = c.collect()
        assert got[1] == b"HELLO FROM STDIN\n"
        assert got[2] == b"oops\n"
        status = json.loads(got[3])
        assert status["status"] == "Failure" and status["reason"] == "NonZeroExitCode"
        assert status["details"]["causes"] == [{"reason": "ExitCode", "message": "3"}]

        again = Client(url)  # a token is good once
        assert again.status.startswith("HTTP/1.1 404"), again.status
        unknown = Client(url.rsplit("/", 1)[0] + "/AAAAAAAAAAA")
        assert unknown.status.startswith("HTTP/1.1 404"), unknown.status

        # v4 and a terminal: the command sees a tty of the size sent on the resize channel
        url = rt(cri, "Exec", pb.ExecRequest(container_id=cid, cmd=["sh", "-c", "read x; stty size; echo got $x"],
                                             stdin=True, stdout=True, tty=True)).url
        c = Client(url, ("v4.channel.k8s.io",))
        assert c.headers["sec-websocket-protocol"] == "v4.channel.k8s.io"
        c.send(4, json.dumps({"Width": 91, "Height": 33}).encode())
        c.send(0, b"word\r")
        got = c.collect()
        out = got.get(1, b"").decode()
        assert "33 91" in out and "got word" in out, out  # the terminal echoes "word" too
        assert json.loads(got[3]) == {"metadata": {}, "status": "Success"}

        # channel.k8s.io (v1): the status is the error's text
        url = rt(cri, "Exec", pb.ExecRequest(container_id=cid, cmd=["sh", "-c", "exit 4"], stdout=True)).url
        c = Client(url, ("channel.k8s.io",))
        assert c.collect() == {1: b"", 3: b"command terminated with non-zero exit code: error executing command "
                                        b"[sh -c exit 4], exit code 4"}

        # a client gone before its command ends: the command is ended too
        url = rt(cri, "Exec", pb.ExecRequest(container_id=cid, cmd=["sleep", "777"], stdout=True)).url
        c = Client(url)
        assert c.status.startswith("HTTP/1.1 101"), c.status

        def sleeping() -> bool:
            return b"sleep 777" in rt(cri, "ExecSync", pb.ExecSyncRequest(container_id=cid, cmd=["ps"], timeout=30)).stdout

        for _ in range(200):
            if sleeping():
                break
            time.sleep(0.05)
        assert sleeping()
        c.sock.close()
        for _ in range(200):
            if not sleeping():
                break
            time.sleep(0.05)
        assert not sleeping()

        # neither WebSocket nor SPDY: refused, naming both
        url = rt(cri, "Exec", pb.ExecRequest(container_id=cid, cmd=["true"], stdout=True)).url
        u = urlsplit(url)
        with socket.create_connection((u.hostname, u.port)) as s:
            s.sendall(f"GET {u.path} HTTP/1.1\r\nHost: x\r\nUpgrade: h2c\r\nConnection: Upgrade\r\n\r\n".encode())
            answer = s.recv(4096).decode()
        assert answer.startswith("HTTP/1.1 400") and "Upgrade: SPDY/3.1" in answer, answer

        with pytest.raises(grpc.RpcError) as e:
            rt(cri, "Exec", pb.ExecRequest(container_id=cid, cmd=["true"], tty=True, stdout=True, stderr=True))
        assert e.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        with pytest.raises(grpc.RpcError) as e:
            rt(cri, "Exec", pb.ExecRequest(container_id=f"{sid}-nothere", cmd=["true"], stdout=True))
        assert e.value.code() == grpc.StatusCode.NOT_FOUND
    finally:
        remove(cri, sid)


def attachable(cri: Cri, sid: str, config: pb.PodSandboxConfig, image_id: str, name: str, script: str, *,
               tty: bool) -> str:
    c = pb.ContainerConfig(metadata=pb.ContainerMetadata(name=name), image=pb.ImageSpec(image=image_id),
                           command=["sh", "-c", script], log_path=f"{name}/0.log", stdin=True, tty=tty)
    cid = str(rt(cri, "CreateContainer", pb.CreateContainerRequest(pod_sandbox_id=sid, config=c,
                                                                    sandbox_config=config)).container_id)
    rt(cri, "StartContainer", pb.StartContainerRequest(container_id=cid))
    wait_state(cri, cid, pb.CONTAINER_RUNNING)
    return cid


def test_attach_to_stream_and_tty_containers(cri: Cri, image: tuple[Path, str], tmp_path: Path) -> None:
    sid, plain = running(cri, tmp_path, image[1], "attached", "sleep", "1000")
    config = sandbox_config(tmp_path, "attached")
    try:
        with pytest.raises(grpc.RpcError) as e:  # no stdin, no tty: nothing to attach to
            rt(cri, "Attach", pb.AttachRequest(container_id=plain, stdout=True))
        assert e.value.code() == grpc.StatusCode.FAILED_PRECONDITION
        assert "created without stdin or tty" in (e.value.details() or "")

        cid = attachable(cri, sid, config, image[1], "echoer", 'while read l; do [ "$l" = quit ] && exit 0; '
                         'echo "got $l"; echo "err $l" >&2; done', tty=False)
        url = rt(cri, "Attach", pb.AttachRequest(container_id=cid, stdin=True, stdout=True, stderr=True)).url
        assert "/attach/" in url
        c = Client(url)
        assert c.status.startswith("HTTP/1.1 101"), c.status
        c.send(0, b"one\n")
        c.send(0, b"quit\n")
        got = c.collect()
        assert got[1] == b"got one\n" and got[2] == b"err one\n", got
        assert json.loads(got[3]) == {"metadata": {}, "status": "Success"}
        assert wait_state(cri, cid, pb.CONTAINER_EXITED).exit_code == 0

        cid = attachable(cri, sid, config, image[1], "term", "read x; stty size; echo got $x", tty=True)
        url = rt(cri, "Attach", pb.AttachRequest(container_id=cid, stdin=True, stdout=True, tty=True)).url
        c = Client(url)
        c.send(4, json.dumps({"Width": 77, "Height": 22}).encode())
        c.send(0, b"hi\r")
        got = c.collect()
        assert "22 77" in got[1].decode() and "got hi" in got[1].decode(), got
    finally:
        remove(cri, sid)


def httpd_sandbox(cri: Cri, image_id: str, tmp_path: Path, name: str, subnet: str) -> str:
    """A sandbox on a CNI network of its own (``subnet``) whose container "web" serves httpd on
    the pod's own 127.0.0.1:8080, listening; its id."""
    (cri.cni_conf / "10-k8s.conflist").write_text(json.dumps({
        "cniVersion": "0.4.0", "name": "k8s-pods", "plugins": [
            {"type": "ptp", "ipam": {"type": "host-local", "subnet": subnet, "dataDir": str(tmp_path / "ipam")}}]}))
    config = sandbox_config(tmp_path, name, host_net=False)
    sid = run_sandbox(cri, config)
    try:
        cid = create(cri, sid, config, image_id, "web", "sh", "-c", HTTPD.replace("-p 8080", "-p 127.0.0.1:8080"))
        rt(cri, "StartContainer", pb.StartContainerRequest(container_id=cid))
        wait_state(cri, cid, pb.CONTAINER_RUNNING)
        for _ in range(100):  # httpd listening
            r = rt(cri, "ExecSync", pb.ExecSyncRequest(container_id=cid, cmd=["sh", "-c", "netstat -ltn | grep -c :8080"],
                                                       timeout=30))
            if r.exit_code == 0:
                break
    except BaseException:
        remove(cri, sid)
        raise
    return sid


def test_port_forward_to_an_httpd_in_the_pod(cri: Cri, image: tuple[Path, str], tmp_path: Path) -> None:
    """httpd listens on the pod's own 127.0.0.1: only a connection made in its netns reaches it."""
    sid = httpd_sandbox(cri, image[1], tmp_path, "forwarded", "10.226.9.0/24")
    try:
        url = rt(cri, "PortForward", pb.PortForwardRequest(pod_sandbox_id=sid, port=[8080])).url
        assert "/portforward/" in url
        c = Client(url, ())  # no subprotocol: the kubelet's default, as v4.channel.k8s.io
        assert c.status.startswith("HTTP/1.1 101"), c.status
        first = c.messages()
        assert next(first) == (0, struct.pack("<H", 8080))  # each channel opened with its port
        assert next(first) == (1, struct.pack("<H", 8080))
        c.send(0, b"GET /index.html HTTP/1.0\r\nHost: x\r\n\r\n")
        got = c.collect()
        assert b"served by web" in got[0], got
        assert 1 not in got, got

        url = rt(cri, "PortForward", pb.PortForwardRequest(pod_sandbox_id=sid, port=[8081])).url  # nothing there
        got = Client(url, ("v4.channel.k8s.io",)).collect()
        assert got[0] == struct.pack("<H", 8081)
        assert got[1][2:] == (f"error forwarding port 8081 to pod {sid}: cannot connect to 127.0.0.1:8081 in its "
                              "network namespace: Connection refused").encode()
    finally:
        remove(cri, sid)
    assert containers(cri) == {}


def test_another_loopback_stream_address_and_one_in_use(image: tuple[Path, str], tmp_path: Path) -> None:
    from tests.integration.test_cri import PYRKT_BIN, start

    server = start(image[0], tmp_path / "cri.sock", tmp_path, "--stream-addr=127.0.0.2:0")
    try:
        assert server.proc.stderr is not None
        line = server.proc.stderr.readline()
        assert line.startswith("pyrkt cri: streaming (exec, attach, port-forward) on http://127.0.0.2:"), line
        port = line.rstrip().rpartition(":")[2]
        r = subprocess.run([str(PYRKT_BIN), f"--dir={image[0]}", "cri", f"--listen=unix://{tmp_path}/other.sock",
                            f"--stream-addr=127.0.0.2:{port}"], capture_output=True, text=True, timeout=60)
        assert (r.returncode, r.stderr.splitlines()) == (
            254, [f"pyrkt: --stream-addr=127.0.0.2:{port}: cannot listen there: Address already in use"])
    finally:
        code, err = server.stop()
    assert code == 0 and "warning" not in err, err


# -- SPDY/3.1 ------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def spdy_client(tmp_path_factory: pytest.TempPathFactory) -> Path:
    if spdy.go_missing():
        pytest.skip(spdy.MISSING_GO)
    return spdy.build_client(tmp_path_factory.mktemp("spdy"))


def test_spdy_exec_with_stdin_a_terminal_and_exit_codes(cri: Cri, image: tuple[Path, str], tmp_path: Path,
                                                        spdy_client: Path) -> None:
    sid, cid = running(cri, tmp_path, image[1], "spdyexec", "sleep", "1000")
    try:
        url = rt(cri, "Exec", pb.ExecRequest(container_id=cid, cmd=["sh", "-c", "tr a-z A-Z; echo oops >&2; exit 3"],
                                             stdin=True, stdout=True, stderr=True)).url
        got = spdy.run_client(spdy_client, "exec", url, "-stdin", "-stdout", "-stderr", input=b"hello from stdin\n")
        assert (got["status"], got["protocol"]) == ("101 Switching Protocols", "v5.channel.k8s.io")
        assert got["pinged"]  # its PING echoed
        assert (got["stdout"], got["stderr"]) == ("HELLO FROM STDIN\n", "oops\n")
        status = json.loads(got["error"])
        assert status["status"] == "Failure" and status["reason"] == "NonZeroExitCode"
        assert status["details"]["causes"] == [{"reason": "ExitCode", "message": "3"}]

        again = spdy.run_client(spdy_client, "exec", url, "-stdout")  # a token is good once
        assert again["status"] == "404 Not Found", again
        bad = spdy.run_client(spdy_client, "exec", url.rsplit("/", 1)[0] + "/AAAAAAAAAAA", "-stdout")
        assert bad["status"] == "404 Not Found" and "token not found" in bad["body"], bad

        # more than the 64 KiB window, to a client that does no flow control (as Kubernetes')
        url = rt(cri, "Exec", pb.ExecRequest(container_id=cid, cmd=["sh", "-c", "head -c 300000 /dev/zero | tr '\\0' x"],
                                             stdout=True)).url
        got = spdy.run_client(spdy_client, "exec", url, "-protocols", "v4.channel.k8s.io", "-stdout")
        assert got["protocol"] == "v4.channel.k8s.io"
        assert got["stdout"] == "x" * 300000
        assert json.loads(got["error"]) == {"metadata": {}, "status": "Success"}

        # a terminal: the command sees the size sent on the resize stream
        url = rt(cri, "Exec", pb.ExecRequest(container_id=cid, cmd=["sh", "-c", "read x; stty size; echo got $x"],
                                             stdin=True, stdout=True, tty=True)).url
        got = spdy.run_client(spdy_client, "exec", url, "-stdin", "-stdout", "-tty", "-resize", "91x33",
                              input=b"word\r")
        assert "33 91" in got["stdout"] and "got word" in got["stdout"], got
        assert json.loads(got["error"]) == {"metadata": {}, "status": "Success"}

        # v2: the status is the error's text
        url = rt(cri, "Exec", pb.ExecRequest(container_id=cid, cmd=["sh", "-c", "exit 4"], stdout=True)).url
        got = spdy.run_client(spdy_client, "exec", url, "-protocols", "v2.channel.k8s.io", "-stdout")
        assert (got["protocol"], got["error"]) == ("v2.channel.k8s.io", "command terminated with non-zero exit code: "
                                                   "error executing command [sh -c exit 4], exit code 4")

        url = rt(cri, "Exec", pb.ExecRequest(container_id=cid, cmd=["true"], stdout=True)).url
        got = spdy.run_client(spdy_client, "exec", url, "-protocols", "v9.channel.k8s.io", "-stdout")
        assert got["status"] == "403 Forbidden" and "unable to negotiate protocol" in got["body"], got
    finally:
        remove(cri, sid)


def test_spdy_attach_to_a_running_container(cri: Cri, image: tuple[Path, str], tmp_path: Path,
                                            spdy_client: Path) -> None:
    sid, _ = running(cri, tmp_path, image[1], "spdyattach", "sleep", "1000")
    config = sandbox_config(tmp_path, "spdyattach")
    try:
        cid = attachable(cri, sid, config, image[1], "echoer", 'while read l; do [ "$l" = quit ] && exit 0; '
                         'echo "got $l"; echo "err $l" >&2; done', tty=False)
        url = rt(cri, "Attach", pb.AttachRequest(container_id=cid, stdin=True, stdout=True, stderr=True)).url
        got = spdy.run_client(spdy_client, "attach", url, "-stdin", "-stdout", "-stderr", input=b"one\nquit\n")
        assert (got["stdout"], got["stderr"]) == ("got one\n", "err one\n"), got
        assert json.loads(got["error"]) == {"metadata": {}, "status": "Success"}
        assert wait_state(cri, cid, pb.CONTAINER_EXITED).exit_code == 0
    finally:
        remove(cri, sid)


def test_spdy_port_forward_to_an_httpd_in_the_pod(cri: Cri, image: tuple[Path, str], tmp_path: Path,
                                                  spdy_client: Path) -> None:
    sid = httpd_sandbox(cri, image[1], tmp_path, "spdyforward", "10.226.10.0/24")
    try:
        request = "GET /index.html HTTP/1.0\\r\\nHost: x\\r\\n\\r\\n"
        url = rt(cri, "PortForward", pb.PortForwardRequest(pod_sandbox_id=sid, port=[8080])).url
        got = spdy.run_client(spdy_client, "portforward", url, "-port", "8080", "-requests", "2", "-send", request)
        assert got["protocol"] == "portforward.k8s.io"
        assert [("served by web" in f["data"], f["error"]) for f in got["forwards"]] == [(True, "")] * 2, got
        url = rt(cri, "PortForward", pb.PortForwardRequest(pod_sandbox_id=sid, port=[8080])).url
        got = spdy.run_client(spdy_client, "portforward", url, "-port", "8080", "-send", request, "-fin")
        assert "served by web" in got["forwards"][0]["data"], got  # the client's half-close, passed on

        # an old client's pairs (no requestID), a port with nothing there, a port that is none
        url = rt(cri, "PortForward", pb.PortForwardRequest(pod_sandbox_id=sid)).url
        got = spdy.run_client(spdy_client, "portforward", url, "-port", "8081", "-legacy")
        [forward] = got["forwards"]
        assert forward["data"] == "" and json.loads(forward["error"]) == {
            "closeConnection": True, "message": f"error forwarding port 8081 to pod {sid}: cannot connect to "
            "127.0.0.1:8081 in its network namespace: Connection refused"}
        url = rt(cri, "PortForward", pb.PortForwardRequest(pod_sandbox_id=sid)).url
        got = spdy.run_client(spdy_client, "portforward", url, "-port", "0")
        assert got["refused"] == ["Stream reset"] and "forwards" not in got, got
    finally:
        remove(cri, sid)
    assert containers(cri) == {}
