"""`docker://` images from the real Docker Distribution registry (Debian's `docker-registry`) on
127.0.0.1, plain HTTP, with images built by tests/support/images.py and pushed with `skopeo`:
fetch, run, a multi-arch index, no second download of a layer, a 404, a registry gone, and
through a fault-injecting proxy a layer download cut mid-way (resumed) and a registry that
stops mid-way."""

from __future__ import annotations

import base64
import http.client
import json
import os
import shutil
import signal
import socket
import ssl
import subprocess
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from tests.conftest import Pyrkt
from tests.support.images import build_oci_layout, host_arch, image_id_of

REGISTRY_BIN = "/usr/bin/docker-registry"
pytestmark = pytest.mark.skipif(not (os.path.exists(REGISTRY_BIN) and shutil.which("skopeo")),
                                reason="needs docker-registry and skopeo (make test-deps)")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Registry:
    """A docker-registry process on 127.0.0.1 with its storage and access log under ``root``."""

    def __init__(self, root: Path, extra_yaml: str = "", scheme: str = "http") -> None:
        """``extra_yaml`` is appended to the config (an ``auth:`` section, or ``tls:`` lines of ``http:``)."""
        self.root = root
        self.port = free_port()
        self.host = f"127.0.0.1:{self.port}"
        self.log = root / "registry.log"
        config = root / "config.yml"
        root.mkdir(parents=True, exist_ok=True)
        config.write_text(
            "version: 0.1\n"
            "log:\n  level: info\n  accesslog:\n    disabled: false\n"
            f"storage:\n  filesystem:\n    rootdirectory: {root / 'storage'}\n"
            f"http:\n  addr: {self.host}\n" + extra_yaml)
        with open(self.log, "wb") as log:
            self.proc = subprocess.Popen([REGISTRY_BIN, "serve", str(config)], stdout=log, stderr=log,
                                         stdin=subprocess.DEVNULL)
        deadline = time.monotonic() + 20
        while True:
            try:
                with urllib.request.urlopen(f"{scheme}://{self.host}/v2/", timeout=2,
                                            context=ssl._create_unverified_context()):
                    break
            except urllib.error.HTTPError:
                break  # 401: up, and asking for credentials
            except OSError:
                if self.proc.poll() is not None or time.monotonic() > deadline:
                    self.stop()
                    pytest.fail(f"docker-registry did not start: {self.log.read_text()[-2000:]}")
                time.sleep(0.1)

    def stop(self) -> None:
        if self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.kill(self.proc.pid, signal.SIGKILL)
                self.proc.wait()

    def push(self, layout: Path, name: str, tag: str = "latest", *, all_platforms: bool = False,
             creds: str | None = None) -> str:
        ref = f"{self.host}/{name}:{tag}"
        argv = ["skopeo", "copy", "--quiet", "--dest-tls-verify=false", f"oci:{layout}:{tag}", f"docker://{ref}"]
        if all_platforms:
            argv.insert(2, "--all")
        if creds:
            argv.insert(2, f"--dest-creds={creds}")
        subprocess.run(argv, check=True, capture_output=True, timeout=120)
        return f"docker://{ref}"

    def pyrkt_requests(self, kind: str) -> list[str]:
        """Access-log lines of requests pyrkt made for ``kind`` (``blobs`` or ``manifests``)."""
        return [line for line in self.log.read_text(errors="replace").splitlines()
                if f"/{kind}/" in line and '"pyrkt/' in line]


@pytest.fixture(scope="module")
def registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Registry]:
    reg = Registry(tmp_path_factory.mktemp("registry"))
    try:
        yield reg
    finally:
        reg.stop()


@pytest.fixture(scope="module")
def busybox(registry: Registry, tmp_path_factory: pytest.TempPathFactory) -> tuple[str, str]:
    """(docker:// reference, image id) of a single-platform image in the registry."""
    layout = build_oci_layout(tmp_path_factory.mktemp("bb") / "layout",
                              cmd=("sh", "-c", "echo hello from the registry"))
    return registry.push(layout, "tests/busybox"), image_id_of(layout)


def one_line_error(result: object, code: int, err: str) -> str:
    assert code == 254, result
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("pyrkt: "), result
    return lines[0]


def test_fetch_prints_the_image_id_and_image_list_shows_registry_and_repository(
        pyrkt: Pyrkt, registry: Registry, busybox: tuple[str, str]) -> None:
    ref, image_id = busybox
    r = pyrkt("--insecure-options=http", "fetch", ref)
    assert r.code == 0, r
    assert r.out.strip() == image_id[:len("sha256:") + 12]
    listing = pyrkt("image", "list", "--no-legend", check=True).out
    assert f"{registry.host}/tests/busybox:latest" in listing


def test_run_of_a_docker_reference_fetches_it_and_a_second_run_asks_the_registry_nothing(
        pyrkt: Pyrkt, registry: Registry, busybox: tuple[str, str]) -> None:
    ref, _ = busybox
    r = pyrkt("--insecure-options=http", "run", "--net=none", ref, timeout=120)
    assert r.code == 0 and r.out == "hello from the registry\n", r
    before = len(registry.pyrkt_requests("manifests")) + len(registry.pyrkt_requests("blobs"))
    r = pyrkt("--insecure-options=http", "run", "--net=none", ref, timeout=120)
    assert r.code == 0 and r.out == "hello from the registry\n", r
    after = len(registry.pyrkt_requests("manifests")) + len(registry.pyrkt_requests("blobs"))
    assert after == before  # pull policy new: the store has the name:tag


def test_a_second_fetch_asks_for_the_manifest_but_downloads_no_blob(
        pyrkt: Pyrkt, registry: Registry, busybox: tuple[str, str]) -> None:
    ref, _ = busybox
    pyrkt("--insecure-options=http", "fetch", ref, check=True)
    blobs, manifests = len(registry.pyrkt_requests("blobs")), len(registry.pyrkt_requests("manifests"))
    pyrkt("--insecure-options=http", "fetch", ref, check=True)
    assert len(registry.pyrkt_requests("manifests")) == manifests + 1  # pull policy update
    assert len(registry.pyrkt_requests("blobs")) == blobs


def test_a_multi_arch_index_gives_the_host_platform_image(
        pyrkt: Pyrkt, registry: Registry, tmp_path: Path) -> None:
    other = "linux/s390x" if host_arch() != "s390x" else "linux/amd64"
    layout = build_oci_layout(tmp_path / "multi", platforms=(other, f"linux/{host_arch()}"),
                              cmd=("sh", "-c", "uname -m"))
    ref = registry.push(layout, "tests/multi", all_platforms=True)
    r = pyrkt("--insecure-options=http", "fetch", "--full", ref)
    assert r.code == 0, r
    assert r.out.strip() == image_id_of(layout)
    run = pyrkt("run", "--net=none", ref, timeout=120)
    assert run.code == 0 and run.out.strip() == os.uname().machine, run


def test_a_layer_shared_with_a_stored_image_is_not_downloaded_again(
        pyrkt: Pyrkt, registry: Registry, tmp_path: Path) -> None:
    base = build_oci_layout(tmp_path / "base", cmd=("true",))
    child = build_oci_layout(tmp_path / "child", cmd=("sh", "-c", "cat /greeting"),
                             extra_layers=[{"greeting": b"from the top layer\n"}, {"etc/motd": b"hi\n"}])
    pyrkt("--insecure-options=http", "fetch", registry.push(base, "tests/base"), check=True)
    before = len(registry.pyrkt_requests("blobs"))
    ref = registry.push(child, "tests/child")
    pyrkt("--insecure-options=http", "fetch", ref, check=True)
    fetched = registry.pyrkt_requests("blobs")[before:]
    assert len(fetched) == 3  # the config and the two new layers; the busybox layer is in the store
    r = pyrkt("run", "--net=none", ref, timeout=120)
    assert r.code == 0 and r.out == "from the top layer\n", r


def test_zstd_layers_and_whiteouts_come_through_the_registry(pyrkt: Pyrkt, registry: Registry,
                                                            tmp_path: Path) -> None:
    layout = build_oci_layout(tmp_path / "zstd", compression="zstd", cmd=("sh", "-c", "ls /etc/motd /etc/group"),
                              extra_layers=[{"etc/motd": b"hi\n"}, {"etc/motd": None}])
    ref = registry.push(layout, "tests/zstd")
    r = pyrkt("--insecure-options=http", "run", "--net=none", ref, timeout=120)
    assert r.code == 1 and r.out == "/etc/group\n" and "/etc/motd" in r.err, r


def test_an_unknown_tag_is_one_line_with_exit_254(pyrkt: Pyrkt, registry: Registry,
                                                   busybox: tuple[str, str]) -> None:
    r = pyrkt("--insecure-options=http", "fetch", f"docker://{registry.host}/tests/busybox:nope")
    line = one_line_error(r, r.code, r.err)
    assert line == f"pyrkt: {registry.host}/tests/busybox: manifest nope: not found in the registry (404)"
    assert "tests/busybox" not in pyrkt("image", "list", "--no-legend").out


def test_plain_http_needs_the_insecure_option(pyrkt: Pyrkt, registry: Registry, busybox: tuple[str, str]) -> None:
    ref, _ = busybox
    r = pyrkt("fetch", ref)
    line = one_line_error(r, r.code, r.err)
    assert "--insecure-options=http" in line


def test_a_stopped_registry_is_one_line_naming_it_and_the_store_stays_empty(
        pyrkt: Pyrkt, tmp_path: Path) -> None:
    reg = Registry(tmp_path / "gone")
    try:
        layout = build_oci_layout(tmp_path / "layout")
        ref = reg.push(layout, "tests/gone")
    finally:
        reg.stop()
    r = pyrkt("--insecure-options=http", "fetch", ref)
    line = one_line_error(r, r.code, r.err)
    assert line.startswith(f"pyrkt: {reg.host}/tests/gone: cannot connect to {reg.host}") and "attempts" in line
    assert pyrkt("image", "list", "--no-legend").out.strip() == ""


class CuttingProxy:
    """An HTTP proxy in front of the registry that cuts the first big blob response after
    ``cut`` bytes (closing the connection); with ``then_stop`` it also stops listening, as a
    registry that goes away mid-download. ``ranges`` records the Range headers it forwarded."""

    def __init__(self, upstream: str, *, cut: int = 200_000, then_stop: bool = False) -> None:
        self.upstream = upstream
        self.cut, self.then_stop = cut, then_stop
        self.ranges: list[str] = []
        self.cuts = 0
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: object) -> None:
                pass

            def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
                headers = {k: v for k, v in self.headers.items() if k.lower() not in ("host", "connection")}
                if "Range" in headers:
                    proxy.ranges.append(headers["Range"])
                conn = http.client.HTTPConnection(proxy.upstream, timeout=30)
                conn.request("GET", self.path, headers=headers)
                resp = conn.getresponse()
                body = resp.read()
                conn.close()
                cutting = "/blobs/" in self.path and len(body) > proxy.cut and proxy.cuts == 0
                self.send_response(resp.status)
                for k, v in resp.getheaders():
                    if k.lower() not in ("connection", "transfer-encoding", "content-length"):
                        self.send_header(k, v)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                if not cutting:
                    self.wfile.write(body)
                    return
                proxy.cuts += 1
                self.wfile.write(body[:proxy.cut])
                self.wfile.flush()
                self.close_connection = True
                if proxy.then_stop:
                    proxy.server.server_close()  # no new connections: "connection refused" from now on
                self.connection.shutdown(socket.SHUT_RDWR)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.host = f"127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(timeout=10)


@pytest.fixture
def cutting_proxy(registry: Registry) -> Iterator[CuttingProxy]:
    proxy = CuttingProxy(registry.host)
    try:
        yield proxy
    finally:
        proxy.close()


def test_a_layer_download_cut_mid_way_is_resumed_where_it_stopped(
        pyrkt: Pyrkt, registry: Registry, busybox: tuple[str, str], cutting_proxy: CuttingProxy) -> None:
    ref, image_id = busybox
    r = pyrkt("--insecure-options=http", "fetch", "--full", ref.replace(registry.host, cutting_proxy.host))
    assert r.code == 0, r
    assert r.out.strip() == image_id
    assert cutting_proxy.cuts == 1 and cutting_proxy.ranges == ["bytes=200000-"]


def test_a_registry_stopping_mid_download_is_one_line_naming_the_layer_and_nothing_is_stored(
        pyrkt: Pyrkt, registry: Registry, busybox: tuple[str, str]) -> None:
    ref, _ = busybox
    proxy = CuttingProxy(registry.host, then_stop=True)
    try:
        r = pyrkt("--insecure-options=http", "fetch", ref.replace(registry.host, proxy.host))
    finally:
        proxy.close()
    assert proxy.cuts == 1
    line = one_line_error(r, r.code, r.err)
    assert line.startswith(f"pyrkt: {proxy.host}/tests/busybox: layer sha256:"), line
    assert f"cannot connect to {proxy.host}" in line and "attempts" in line
    assert pyrkt("image", "list", "--no-legend").out.strip() == ""
    assert [p for p in (pyrkt.data_dir / "store").rglob("*") if p.is_file() and "blobs" in p.parts] == []


# -- credentials: HTTP basic (htpasswd) and bearer tokens (a token server of the test's own) ----

USER, PASSWORD = "alice", "s3cret-Pa55"


def bcrypt_hash(password: str) -> str:
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        try:
            import crypt  # libxcrypt's bcrypt, which htpasswd files and Distribution accept
        except ImportError:  # gone in Python 3.13
            pytest.skip("needs the crypt module (Python < 3.13) to write an htpasswd file")

        return crypt.crypt(password, crypt.mksalt(crypt.METHOD_BLOWFISH, rounds=1 << 5))


def docker_auth_dir(root: Path, registry: str, user: str, password: str) -> Path:
    """A --local-config dir with an rkt-style auth.d dockerAuth file for ``registry``."""
    (root / "auth.d").mkdir(parents=True)
    (root / "auth.d" / "registry.json").write_text(json.dumps({
        "rktKind": "dockerAuth", "rktVersion": "v1", "registries": [registry],
        "credentials": {"user": user, "password": password}}))
    return root


@pytest.fixture(scope="module")
def basic_registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Registry, str]]:
    root = tmp_path_factory.mktemp("basic")
    (root / "htpasswd").write_text(f"{USER}:{bcrypt_hash(PASSWORD)}\n")
    reg = Registry(root, extra_yaml=f"auth:\n  htpasswd:\n    realm: pyrkt-tests\n    path: {root / 'htpasswd'}\n")
    try:
        layout = build_oci_layout(root / "layout", cmd=("sh", "-c", "echo basic auth works"))
        yield reg, reg.push(layout, "private/app", creds=f"{USER}:{PASSWORD}")
    finally:
        reg.stop()


def test_basic_auth_credentials_from_auth_d_are_used(pyrkt: Pyrkt, basic_registry: tuple[Registry, str],
                                                     tmp_path: Path) -> None:
    reg, ref = basic_registry
    conf = docker_auth_dir(tmp_path / "conf", reg.host, USER, PASSWORD)
    r = pyrkt("--insecure-options=http", f"--local-config={conf}", "run", "--net=none", ref, timeout=120)
    assert r.code == 0 and r.out == "basic auth works\n", r


def test_basic_auth_credentials_from_docker_config_json_are_used(
        pyrkt: Pyrkt, basic_registry: tuple[Registry, str], tmp_path: Path) -> None:
    reg, ref = basic_registry
    docker_dir = tmp_path / "docker"
    docker_dir.mkdir()
    auth = base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()
    (docker_dir / "config.json").write_text(json.dumps({"auths": {f"http://{reg.host}": {"auth": auth}}}))
    r = pyrkt("--insecure-options=http", "fetch", ref, env={**os.environ, "DOCKER_CONFIG": str(docker_dir)})
    assert r.code == 0, r


def test_basic_auth_without_or_with_wrong_credentials_is_one_line_without_the_password(
        pyrkt: Pyrkt, basic_registry: tuple[Registry, str], tmp_path: Path) -> None:
    reg, ref = basic_registry
    env = {**os.environ, "DOCKER_CONFIG": str(tmp_path / "none")}
    r = pyrkt("--insecure-options=http", "fetch", ref, env=env)
    assert "needs a user name and password (401)" in one_line_error(r, r.code, r.err)
    conf = docker_auth_dir(tmp_path / "conf", reg.host, USER, "wrong-Pa55word")
    r = pyrkt("--insecure-options=http", f"--local-config={conf}", "fetch", ref, env=env)
    line = one_line_error(r, r.code, r.err)
    assert f"refused the credentials of user '{USER}'" in line and "wrong-Pa55word" not in r.err + r.out
    assert pyrkt("image", "list", "--no-legend").out.strip() == ""


class TokenServer:
    """A Docker token service: HTTP basic in (GET), or an OAuth2 refresh-token grant (a form POST
    with REFRESH_TOKEN, USER's identity token), an RS256 JWT (x5c: a self-signed cert that the
    registry trusts) out, granting the requested actions to USER and nothing to anyone else."""

    REFRESH_TOKEN = "r3fresh-t0ken-of-pyrkt-user"

    def __init__(self, root: Path) -> None:
        self.key, self.cert = root / "token.key", root / "token.crt"
        subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(self.key),
                        "-out", str(self.cert), "-days", "1", "-subj", "/CN=pyrkt-test-token-issuer"],
                       check=True, capture_output=True)
        der = subprocess.run(["openssl", "x509", "-in", str(self.cert), "-outform", "DER"],
                             check=True, capture_output=True).stdout
        self.x5c = base64.b64encode(der).decode()
        self.requests: list[dict[str, list[str]]] = []
        self.posts: list[dict[str, list[str]]] = []  # the forms of the OAuth2 POSTs
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: object) -> None:
                pass

            def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
                query = urllib.parse.parse_qs(urllib.parse.urlparse(self.path).query)
                server.requests.append(query)
                wanted = "Basic " + base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()
                given = self.headers.get("Authorization")
                if given is not None and given != wanted:
                    self.send_response(401)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                access: list[dict[str, object]] = []
                for scope in query.get("scope", []) if given == wanted else []:
                    kind, name, actions = scope.split(":")
                    access.append({"type": kind, "name": name, "actions": actions.split(",")})
                body = json.dumps({"token": server.token(query.get("service", [""])[0], access)}).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def do_POST(self) -> None:  # noqa: N802 (http.server's naming)
                raw = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                form = urllib.parse.parse_qs(raw.decode())
                server.posts.append(form)
                one = {k: v[0] for k, v in form.items() if len(v) == 1}
                status, answer = 200, {}
                if (self.headers.get("Content-Type") != "application/x-www-form-urlencoded"
                        or one.get("grant_type") != "refresh_token" or one.get("client_id") != "pyrkt"
                        or not one.get("service") or not one.get("scope") or "Authorization" in self.headers):
                    status, answer = 400, {"error": "invalid_request"}
                elif one.get("refresh_token") != TokenServer.REFRESH_TOKEN:
                    status, answer = 400, {"error": "invalid_grant"}
                else:
                    access: list[dict[str, object]] = []
                    for scope in one["scope"].split(" "):
                        kind, name, actions = scope.split(":")
                        access.append({"type": kind, "name": name, "actions": actions.split(",")})
                    answer = {"access_token": server.token(one["service"], access), "expires_in": 300,
                              "scope": one["scope"]}
                body = json.dumps(answer).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.realm = f"http://127.0.0.1:{self.server.server_address[1]}/token"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def token(self, service: str, access: list[dict[str, object]]) -> str:
        def b64(data: bytes) -> str:
            return base64.urlsafe_b64encode(data).rstrip(b"=").decode()

        now = int(time.time())
        header = {"alg": "RS256", "typ": "JWT", "x5c": [self.x5c]}
        claims = {"iss": "pyrkt-tests", "sub": USER, "aud": service, "exp": now + 300, "nbf": now - 10,
                  "iat": now, "jti": f"{now}-{len(self.requests)}", "access": access}
        signing_input = f"{b64(json.dumps(header).encode())}.{b64(json.dumps(claims).encode())}"
        signature = subprocess.run(["openssl", "dgst", "-sha256", "-sign", str(self.key)],
                                   input=signing_input.encode(), check=True, capture_output=True).stdout
        return f"{signing_input}.{b64(signature)}"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(timeout=10)


@pytest.fixture(scope="module")
def token_registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Registry, TokenServer, str]]:
    root = tmp_path_factory.mktemp("token")
    tokens = TokenServer(root)
    try:
        reg = Registry(root, extra_yaml=(f"auth:\n  token:\n    realm: {tokens.realm}\n    service: pyrkt-test-registry\n"
                                   f"    issuer: pyrkt-tests\n    rootcertbundle: {tokens.cert}\n"))
        try:
            layout = build_oci_layout(root / "layout", cmd=("sh", "-c", "echo token auth works"))
            yield reg, tokens, reg.push(layout, "private/tok", creds=f"{USER}:{PASSWORD}")
        finally:
            reg.stop()
    finally:
        tokens.close()


def test_bearer_token_is_fetched_with_credentials_for_the_pull_scope(
        pyrkt: Pyrkt, token_registry: tuple[Registry, TokenServer, str], tmp_path: Path) -> None:
    reg, tokens, ref = token_registry
    conf = docker_auth_dir(tmp_path / "conf", reg.host, USER, PASSWORD)
    tokens.requests.clear()
    r = pyrkt("--insecure-options=http", f"--local-config={conf}", "run", "--net=none", ref, timeout=120)
    assert r.code == 0 and r.out == "token auth works\n", r
    assert tokens.requests[0]["scope"] == ["repository:private/tok:pull"]
    assert tokens.requests[0]["service"] == ["pyrkt-test-registry"]


def test_an_anonymous_token_without_access_is_refused_in_one_line(
        pyrkt: Pyrkt, token_registry: tuple[Registry, TokenServer, str], tmp_path: Path) -> None:
    reg, _, ref = token_registry
    r = pyrkt("--insecure-options=http", "fetch", ref, env={**os.environ, "DOCKER_CONFIG": str(tmp_path / "none")})
    line = one_line_error(r, r.code, r.err)
    assert line.startswith(f"pyrkt: {reg.host}/private/tok: manifest latest: access denied (401)"), line


def test_a_token_service_refusing_the_password_names_the_user_only(
        pyrkt: Pyrkt, token_registry: tuple[Registry, TokenServer, str], tmp_path: Path) -> None:
    reg, _, ref = token_registry
    conf = docker_auth_dir(tmp_path / "conf", reg.host, USER, "not-the-Pa55word")
    r = pyrkt("--insecure-options=http", f"--local-config={conf}", "fetch", ref)
    line = one_line_error(r, r.code, r.err)
    assert f"token service refused the credentials of user '{USER}'" in line
    assert "not-the-Pa55word" not in r.err + r.out


# -- TLS ----------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def tls_registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Registry, str]]:
    """A registry serving https with a certificate no system CA signed."""
    root = tmp_path_factory.mktemp("tls")
    key, cert = root / "reg.key", root / "reg.crt"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key), "-out",
                    str(cert), "-days", "1", "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1"],
                   check=True, capture_output=True)
    reg = Registry(root, extra_yaml=f"  tls:\n    certificate: {cert}\n    key: {key}\n", scheme="https")
    try:
        layout = build_oci_layout(root / "layout", cmd=("sh", "-c", "echo tls works"))
        yield reg, reg.push(layout, "tls/app")
    finally:
        reg.stop()


def test_an_untrusted_certificate_is_refused_unless_tls_is_insecure(
        pyrkt: Pyrkt, tls_registry: tuple[Registry, str]) -> None:
    reg, ref = tls_registry
    r = pyrkt("fetch", ref)
    line = one_line_error(r, r.code, r.err)
    assert line.startswith(f"pyrkt: {reg.host}/tls/app: TLS with {reg.host} failed: ") and "verify" in line, line
    assert "--insecure-options=tls" in line
    r = pyrkt("--insecure-options=tls", "run", "--net=none", ref, timeout=120)
    assert r.code == 0 and r.out == "tls works\n", r
