"""The metadata service over real HTTP on loopback and its unix socket (no root needed): the
appc metadata API as the ACE validator reads it, pods found by their token file, the HMAC key
kept across restarts, and registration as `run --mds-register` does it."""

from __future__ import annotations

import base64
import json
import os
import stat
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from pyrkt.api import metadata
from pyrkt.cli import main as cli
from pyrkt.config import Config
from pyrkt.errors import PyrktError
from pyrkt.model import abi
from pyrkt.pods.pod import ensure_dirs
from pyrkt.pods.state import Dir
from pyrkt.stage0 import mds

Response = tuple[int, str, bytes]  # status, content type, body


class Service:
    def __init__(self, config: Config) -> None:
        self.config = config
        self.done = threading.Event()
        self.lines: list[str] = []
        self.error: list[BaseException] = []
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()
        deadline = time.monotonic() + 10
        while not any("running" in ln for ln in self.lines):
            assert not self.error, self.error
            assert time.monotonic() < deadline, self.lines
            time.sleep(0.01)
        self.port = int(self.lines[0].split(" port ")[1].split()[0])

    def _serve(self) -> None:
        try:
            metadata.serve(self.config, 0, say=self.lines.append, done=self.done)
        except BaseException as e:  # reported to the test by the constructor
            self.error.append(e)

    def stop(self) -> None:
        self.done.set()
        self.thread.join(10)

    def call(self, path: str, form: dict[str, str] | None = None) -> Response:
        data = urllib.parse.urlencode(form).encode() if form is not None else None
        req = urllib.request.Request(f"http://127.0.0.1:{self.port}{path}", data=data)
        try:
            with urllib.request.urlopen(req, timeout=10) as r:
                return r.status, r.headers["Content-Type"], r.read()
        except urllib.error.HTTPError as e:
            return e.code, e.headers["Content-Type"], e.read()


@pytest.fixture
def service(config: Config) -> Iterator[Callable[[], Service]]:
    started: list[Service] = []

    def start() -> Service:
        started.append(Service(config))
        return started[-1]

    yield start
    for s in started:
        s.stop()


@pytest.fixture
def pod(make_pod: Callable[..., Path]) -> Path:
    """A running pod of two apps, with annotations on the pod, an image and an app; its token."""
    path = make_pod(Dir.RUN, apps=("web", "side"))
    manifest = json.loads((path / abi.POD_MANIFEST).read_text())
    manifest["annotations"] = [{"name": "team", "value": "blue"}]
    manifest["apps"][0]["annotations"] = [{"name": "lorem", "value": "app"}, {"name": "extra", "value": "x"}]
    (path / abi.POD_MANIFEST).write_text(json.dumps(manifest))
    image = json.loads((path / abi.app_manifest("web")).read_text())
    image.update(acKind="ImageManifest", acVersion="0.8.11",
                 annotations=[{"name": "created", "value": "today"}, {"name": "lorem", "value": "image"}])
    (path / abi.app_manifest("web")).write_text(json.dumps(image))
    (path / abi.MDS_TOKEN).write_text("f00d" * 8 + "\n")
    return path


TOKEN = "/" + "f00d" * 8 + "/acMetadata/v1"
TEXT = "text/plain; charset=us-ascii"


def test_apps_read_their_pod_its_apps_and_images_by_token(service: Callable[[], Service], pod: Path) -> None:
    s = service()
    assert s.call(TOKEN + "/pod/uuid") == (200, TEXT, pod.name.encode())
    status, ctype, body = s.call(TOKEN + "/pod/manifest")
    assert (status, ctype) == (200, "application/json")
    assert json.loads(body) == json.loads((pod / abi.POD_MANIFEST).read_text())
    assert s.call(TOKEN + "/pod/annotations")[2] == b'[{"name": "team", "value": "blue"}]'
    assert s.call(TOKEN + "/pod/annotations/team") == (200, TEXT, b"blue")
    assert s.call(TOKEN + "/apps/web/image/id") == (200, TEXT, json.loads(body)["apps"][0]["image"]["id"].encode())
    image = json.loads(s.call(TOKEN + "/apps/web/image/manifest")[2])
    assert image["name"] == "example.com/web" and image["acKind"] == "ImageManifest"
    assert "id" not in image and "layers" not in image  # pyrkt's own record keys stay out
    # the image's annotations, overridden in place by the pod manifest's app ones, then the app's others
    assert json.loads(s.call(TOKEN + "/apps/web/annotations")[2]) == [
        {"name": "created", "value": "today"}, {"name": "lorem", "value": "app"}, {"name": "extra", "value": "x"}]
    assert s.call(TOKEN + "/apps/web/annotations/lorem") == (200, TEXT, b"app")
    assert s.call(TOKEN + "/apps/side/annotations")[2] == b"[]"
    assert any(ln.startswith("GET /<token>/acMetadata/v1/pod/uuid - 200") for ln in s.lines)
    assert not any("f00d" in ln for ln in s.lines)  # the token is never logged


def test_wrong_token_unknown_app_and_bad_names_are_refused(service: Callable[[], Service], pod: Path) -> None:
    s = service()
    assert s.call("/" + "beef" * 8 + "/acMetadata/v1/pod/uuid")[0] == 401
    assert s.call("//acMetadata/v1/pod/uuid")[0] == 404
    assert s.call(TOKEN + "/apps/nope/image/id")[0] == 404
    assert s.call(TOKEN + "/apps/Bad_Name/image/id")[0] == 400
    assert s.call(TOKEN + "/pod/annotations/missing")[:2] == (404, TEXT)
    assert s.call(TOKEN + "/pod/annotations/BAD")[0] == 400
    assert s.call(TOKEN + "/pod/elsewhere")[0] == 404
    (pod / abi.MDS_TOKEN).unlink()  # no token file: no longer registered
    assert s.call(TOKEN + "/pod/uuid")[0] == 401


def test_a_pod_that_left_run_is_no_longer_served(service: Callable[[], Service], pod: Path) -> None:
    s = service()
    garbage = pod.parent.parent / Dir.EXITED_GARBAGE.value / pod.name
    pod.rename(garbage)  # what gc does
    assert s.call(TOKEN + "/pod/uuid")[0] == 401


def test_signatures_verify_and_stay_valid_after_a_restart(service: Callable[[], Service], pod: Path,
                                                          config: Config) -> None:
    s = service()
    status, ctype, sig = s.call(TOKEN + "/pod/hmac/sign", {"content": "Old MacDonald"})
    assert (status, ctype) == (200, TEXT) and len(base64.b64decode(sig)) == 64
    good = {"content": "Old MacDonald", "uuid": pod.name, "signature": sig.decode()}
    assert s.call(TOKEN + "/pod/hmac/verify", good)[:2] == (200, TEXT)
    assert s.call(TOKEN + "/pod/hmac/verify", {**good, "content": "Old MacDonalD"})[0] == 403
    assert s.call(TOKEN + "/pod/hmac/verify", {**good, "signature": "%%%"})[0] == 400
    assert s.call(TOKEN + "/pod/hmac/verify", {**good, "uuid": "nope"})[0] == 400
    assert s.call(TOKEN + "/pod/hmac/sign", {})[0] == 400
    key = Path(mds.service_dir(config.data_dir)) / mds.HMAC_KEY
    assert stat.S_IMODE(key.stat().st_mode) == 0o600
    s.stop()
    again = service()
    assert again.call(TOKEN + "/pod/hmac/verify", good)[0] == 200
    assert again.call(TOKEN + "/pod/uuid")[0] == 200  # found again from its dir, not told again


def test_registration_gives_the_pod_a_token_and_the_port(service: Callable[[], Service], config: Config,
                                                        make_pod: Callable[..., Path]) -> None:
    s = service()
    path = make_pod(Dir.RUN)
    mds.check_reachable(config)
    token, port = mds.register(config, str(path), path.name)
    assert port == s.port and len(token) == 32 and int(token, 16) >= 0
    assert (path / abi.MDS_TOKEN).read_text().strip() == token
    assert stat.S_IMODE((path / abi.MDS_TOKEN).stat().st_mode) == 0o600
    assert s.call(f"/{token}/acMetadata/v1/pod/uuid")[2] == path.name.encode()
    assert mds.request(config, "PUT", "/pods/00000000-0000-4000-8000-00000000dead")[0] == 404
    assert mds.request(config, "PUT", f"/pods/../run/{path.name}")[0] == 404
    assert any(ln == f"PUT /pods/{path.name} - 200" for ln in s.lines)


def test_without_a_service_registration_fails_saying_how_to_start_one(config: Config,
                                                                      make_pod: Callable[..., Path]) -> None:
    with pytest.raises(PyrktError, match=r"could not reach the metadata service .*registration.sock.*"
                       r"start `pyrkt metadata-service`"):
        mds.check_reachable(config)
    path = make_pod(Dir.RUN)
    with pytest.raises(PyrktError, match="could not reach the metadata service"):
        mds.register(config, str(path), path.name)


def test_one_service_per_data_dir(service: Callable[[], Service], config: Config) -> None:
    service()
    with pytest.raises(PyrktError, match="a metadata service already serves"):
        metadata.serve(config, 0, say=lambda line: None, done=threading.Event())


def test_a_socket_left_by_a_killed_service_is_replaced(service: Callable[[], Service], config: Config) -> None:
    sock = mds.socket_path(config.data_dir)
    os.makedirs(os.path.dirname(sock), exist_ok=True)
    Path(sock).write_text("")  # what a SIGKILLed service leaves (its lock went with it)
    service()
    mds.check_reachable(config)


def test_a_data_dir_longer_than_a_unix_sockets_path_is_served(tmp_path: Path) -> None:
    # a unix socket's path is at most 107 bytes; the service and `run --mds-register` reach it
    # through the service dir's fd, so any --dir works
    data = tmp_path / ("a-long-data-dir-" * 8)
    ensure_dirs(data / "pods")
    config = Config(data_dir=str(data))
    assert len(mds.socket_path(config.data_dir)) > 107
    s = Service(config)
    try:
        mds.check_reachable(config)
        assert mds.request(config, "PUT", "/pods/00000000-0000-4000-8000-00000000dead")[0] == 404
    finally:
        s.stop()
    assert s.error == [] and not os.path.exists(mds.socket_path(config.data_dir))


def test_merged_annotations_keep_the_images_order() -> None:
    image = [{"name": "a", "value": "1"}, {"name": "b", "value": "2"}]
    app = [{"name": "c", "value": "3"}, {"name": "a", "value": "9"}]
    assert metadata.merged_annotations(image, app) == [
        {"name": "a", "value": "9"}, {"name": "b", "value": "2"}, {"name": "c", "value": "3"}]
    assert image[0]["value"] == "1"  # the inputs stay as they were


@pytest.mark.parametrize(("argv", "message"), [
    (["--listen-port=0"], "invalid --listen-port='0': want a TCP port, 1-65535"),
    (["--listen-port=http"], "invalid --listen-port='http'"),
    (["extra"], "metadata-service takes no arguments (got 'extra')"),
])
def test_command_refuses_bad_ports_and_arguments(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                                 argv: list[str], message: str) -> None:
    assert cli.main([f"--dir={tmp_path}", "metadata-service", *argv]) == 254
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1


def test_command_refuses_systemd_sockets(monkeypatch: pytest.MonkeyPatch, tmp_path: Path,
                                         capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("LISTEN_FDS", "1")
    assert cli.main([f"--dir={tmp_path}", "metadata-service"]) == 254
    assert "does not take sockets from systemd" in capsys.readouterr().err


def test_a_port_in_use_is_a_one_line_error(service: Callable[[], Service], config: Config, tmp_path: Path) -> None:
    busy = service().port
    other = Config(data_dir=str(tmp_path / "other"))
    with pytest.raises(PyrktError, match=f"cannot listen on port {busy}: Address already in use"):
        metadata.serve(other, busy, say=lambda line: None, done=threading.Event())


def raw(port: int, request: bytes, timeout: float = 10) -> bytes:
    """What the service answers to ``request``, sent as is, until it closes the connection."""
    import socket

    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
        sock.sendall(request)
        out = b""
        while chunk := sock.recv(65536):
            out += chunk
        return out


def test_a_signature_is_of_the_contents_bytes_not_of_their_utf8_replacement(service: Callable[[], Service],
                                                                             pod: Path) -> None:
    s = service()

    def post(path: str, body: bytes) -> tuple[bytes, bytes]:
        out = raw(s.port, f"POST {TOKEN}{path} HTTP/1.1\r\nContent-Length: {len(body)}\r\n"
                          "Connection: close\r\n\r\n".encode() + body)
        head, _, rest = out.partition(b"\r\n\r\n")
        return head.split(b"\r\n")[0], rest

    status, sig = post("/pod/hmac/sign", b"content=\xff")  # a raw byte, not UTF-8
    assert status == b"HTTP/1.1 200 OK" and len(base64.b64decode(sig)) == 64
    form = urllib.parse.urlencode({"uuid": pod.name, "signature": sig.decode()}).encode()
    assert post("/pod/hmac/verify", b"content=%ff&" + form)[0] == b"HTTP/1.1 200 OK"  # the same byte, escaped
    assert post("/pod/hmac/verify", b"content=%fe&" + form)[0] == b"HTTP/1.1 403 Forbidden"  # another one
    assert post("/pod/hmac/verify", b"content=\xef\xbf\xbd&" + form)[0] == b"HTTP/1.1 403 Forbidden"  # U+FFFD


@pytest.mark.parametrize("length", ["abc", "-5", "99999999999999999999999"])
def test_a_bad_content_length_is_a_400_and_the_service_goes_on(service: Callable[[], Service], pod: Path,
                                                                capfd: pytest.CaptureFixture[str], length: str) -> None:
    s = service()
    answer = raw(s.port, f"POST {TOKEN}/pod/hmac/sign HTTP/1.1\r\nContent-Length: {length}\r\n"
                         "Connection: close\r\n\r\ncontent=x".encode())
    assert answer.startswith(b"HTTP/1.1 400 ") or answer.startswith(b"HTTP/1.1 413 "), answer
    assert s.call(TOKEN + "/pod/uuid")[0] == 200
    assert "Traceback" not in capfd.readouterr().err


def test_a_body_that_never_comes_ends_its_connection_not_a_thread(service: Callable[[], Service], pod: Path,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    assert metadata.AppHandler.timeout == metadata.REQUEST_TIMEOUT > 0  # not None: no wait without end
    monkeypatch.setattr(metadata.AppHandler, "timeout", 0.5)
    s = service()
    start = time.monotonic()
    answer = raw(s.port, f"POST {TOKEN}/pod/hmac/sign HTTP/1.1\r\nContent-Length: 100\r\n\r\ncontent=x".encode())
    assert answer == b"" and time.monotonic() - start < 5  # closed, unanswered, after the timeout
    assert s.call(TOKEN + "/pod/uuid")[0] == 200
