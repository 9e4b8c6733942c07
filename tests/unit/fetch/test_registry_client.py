"""The registry client against an in-process fake registry (httpx.MockTransport) serving images
built by tests/support/images.py: auth flows, retries, verification, manifest kinds, errors.
The real Docker Distribution registry is exercised in tests/integration/test_registry.py."""

from __future__ import annotations

import base64
import json
import os
import stat
import urllib.parse
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest
from tests.support.images import BUSYBOX, Entry, build_oci_layout, image_id_of
from tests.support.stores import assert_store_empty

from pyrkt.config import Config
from pyrkt.errors import FetchError, ImageError, IntegrityError, NotFound
from pyrkt.fetch.auth import Credentials
from pyrkt.fetch.manifests import host_platform
from pyrkt.fetch.reference import parse_reference
from pyrkt.fetch.registry import RegistryClient, import_registry
from pyrkt.stage0.images import resolve_image
from pyrkt.store import Store, imports

HOST = "reg.test"
TOKEN = "t0ken-for-busybox"
REFRESH = "r3fresh-t0ken-of-alice"


class FakeRegistry:
    """Serves an OCI layout's tags and blobs for one repository, as Distribution would."""

    def __init__(self, layout: Path, repository: str = "busybox") -> None:
        self.layout = layout
        self.repository = repository
        self.requests: list[httpx.Request] = []
        self.auth: str | None = None          # None, "basic" or "bearer"
        self.user, self.password = "alice", "s3cret-pw"
        self.refresh_token = REFRESH          # the identity token the token service takes in a POST
        self.rotate_to: str | None = None     # a new refresh token to hand out with the access token
        self.fault: Callable[[httpx.Request], httpx.Response | None] = lambda request: None
        self.manifest_override: dict[str, tuple[bytes, str]] = {}

    def blob(self, digest: str) -> bytes | None:
        path = self.layout / "blobs" / "sha256" / digest.split(":", 1)[1]
        return path.read_bytes() if path.is_file() else None

    def tag(self, tag: str) -> str | None:
        index = json.loads((self.layout / "index.json").read_bytes())
        for m in index["manifests"]:
            if m.get("annotations", {}).get("org.opencontainers.image.ref.name") == tag:
                return str(m["digest"])
        return None

    def _authorized(self, request: httpx.Request) -> bool:
        header = request.headers.get("authorization", "")
        if self.auth == "basic":
            return header == "Basic " + base64.b64encode(f"{self.user}:{self.password}".encode()).decode()
        if self.auth == "bearer":
            return header == f"Bearer {TOKEN}"
        return True

    def handle(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        faulty = self.fault(request)
        if faulty is not None:
            return faulty
        path = request.url.path
        if request.url.host == "auth.test" and path == "/token" and request.method == "POST":
            form = urllib.parse.parse_qs(request.content.decode())
            if form.get("grant_type") != ["refresh_token"] or form.get("refresh_token") != [self.refresh_token]:
                return httpx.Response(400, json={"error": "invalid_grant"})
            answer: dict[str, object] = {"access_token": TOKEN, "expires_in": 300, "scope": form["scope"][0]}
            if self.rotate_to:
                answer["refresh_token"] = self.refresh_token = self.rotate_to
            return httpx.Response(200, json=answer)
        if request.url.host == "auth.test" and path == "/token":
            wanted = "Basic " + base64.b64encode(f"{self.user}:{self.password}".encode()).decode()
            if request.headers.get("authorization") != wanted:
                return httpx.Response(401)
            return httpx.Response(200, json={"token": TOKEN})
        if not self._authorized(request):
            challenge = ('Basic realm="fake"' if self.auth == "basic" else
                         f'Bearer realm="https://auth.test/token",service="{HOST}",'
                         f'scope="repository:{self.repository}:pull"')
            return httpx.Response(401, headers={"WWW-Authenticate": challenge})
        if path == "/v2/":
            return httpx.Response(200, json={})
        prefix = f"/v2/{self.repository}/"
        if not path.startswith(prefix):
            return httpx.Response(404, json={"errors": [{"code": "NAME_UNKNOWN"}]})
        kind, _, ref = path[len(prefix):].partition("/")
        if kind == "manifests":
            if ref in self.manifest_override:
                data, media_type = self.manifest_override[ref]
                return httpx.Response(200, content=data, headers={"Content-Type": media_type})
            digest = ref if ref.startswith("sha256:") else self.tag(ref)
            data = self.blob(digest) if digest else None
            if data is None:
                return httpx.Response(404, json={"errors": [{"code": "MANIFEST_UNKNOWN"}]})
            return httpx.Response(200, content=data, headers={"Content-Type": json.loads(data)["mediaType"],
                                                              "Docker-Content-Digest": str(digest)})
        if kind == "blobs":
            data = self.blob(ref)
            if data is None:
                return httpx.Response(404, json={"errors": [{"code": "BLOB_UNKNOWN"}]})
            return httpx.Response(200, content=data)
        return httpx.Response(404)

    def paths(self, kind: str) -> list[str]:
        return [r.url.path for r in self.requests if f"/{kind}/" in r.url.path]


@pytest.fixture
def registry(tmp_path: Path) -> FakeRegistry:
    return FakeRegistry(build_oci_layout(tmp_path / "layout", tag="latest", cmd=("echo", "hi")))


def pull(store: Store, registry: FakeRegistry, text: str = f"{HOST}/busybox:latest",
         credentials: Credentials | None = None, attempts: int = 4) -> str:
    ref = parse_reference(text)
    client = RegistryClient(ref, credentials=credentials, backoff=0, attempts=attempts,
                            transport=httpx.MockTransport(registry.handle))
    return import_registry(store, ref, source=f"docker://{text}", client=client).id


def test_anonymous_pull_stores_the_image_as_registry_slash_repository_with_its_tag(
        store: Store, registry: FakeRegistry, tmp_path: Path) -> None:
    image_id = pull(store, registry)
    assert image_id == image_id_of(tmp_path / "layout")
    [rec] = store.list()
    assert rec.display_name == f"{HOST}/busybox:latest"
    assert store.resolve(f"{HOST}/busybox:latest").app.exec == ("echo", "hi")  # type: ignore[union-attr]


def test_a_second_pull_asks_for_the_manifest_but_downloads_no_blob(store: Store, registry: FakeRegistry) -> None:
    pull(store, registry)
    assert len(registry.paths("blobs")) == 2  # config and the one layer
    registry.requests.clear()
    pull(store, registry)
    assert registry.paths("manifests") == ["/v2/busybox/manifests/latest"]
    assert registry.paths("blobs") == []


def test_layers_of_a_pull_are_unpacked_together_and_keep_lower_dir_attributes(store: Store, tmp_path: Path) -> None:
    layout = build_oci_layout(tmp_path / "layers", tag="latest", extra_layers=[
        {"tmp/a": b"first", "srv/": Entry.dir(0o700)},
        {"tmp/b": b"second", "srv/www/index.html": b"hi"},
        {"srv/www/index.html": b"replaced", "opt/x": b"x"},
    ])
    image = store.resolve(pull(store, FakeRegistry(layout)))
    dirs = store.layer_dirs(image)
    assert len(dirs) == 4
    for d in dirs[1:3]:  # neither lists /tmp: each keeps the base layer's 1777 dir
        assert stat.S_IMODE(os.lstat(d / "tmp").st_mode) == 0o1777
    assert stat.S_IMODE(os.lstat(dirs[2] / "srv").st_mode) == 0o700
    assert (dirs[3] / "srv/www/index.html").read_bytes() == b"replaced"
    assert not any(store.tmp.iterdir())


def test_bearer_token_is_asked_of_the_realm_with_credentials_and_the_pull_scope(
        store: Store, registry: FakeRegistry) -> None:
    registry.auth = "bearer"
    pull(store, registry, credentials=Credentials("alice", "s3cret-pw", "config.json"))
    [token_request] = [r for r in registry.requests if r.url.host == "auth.test"]
    assert token_request.url.params["scope"] == "repository:busybox:pull"
    assert token_request.url.params["service"] == HOST
    assert all(r.headers.get("authorization") == f"Bearer {TOKEN}" for r in registry.requests
               if "/blobs/" in r.url.path)


def test_refused_credentials_name_the_user_but_never_the_password(store: Store, registry: FakeRegistry) -> None:
    registry.auth = "bearer"
    with pytest.raises(FetchError) as err:
        pull(store, registry, credentials=Credentials("alice", "wrong-pw", "/root/.docker/config.json"))
    assert "'alice'" in str(err.value) and "refused" in str(err.value)
    assert "wrong-pw" not in str(err.value) and "\n" not in str(err.value)
    assert "wrong-pw" not in repr(Credentials("alice", "wrong-pw", "x"))
    assert_store_empty(store)


def test_basic_auth_is_sent_when_the_registry_asks_for_it(store: Store, registry: FakeRegistry) -> None:
    registry.auth = "basic"
    pull(store, registry, credentials=Credentials("alice", "s3cret-pw", "auth.d/r.json"))
    assert store.list()


def test_basic_auth_without_credentials_says_where_to_put_them(store: Store, registry: FakeRegistry) -> None:
    registry.auth = "basic"
    with pytest.raises(FetchError, match=r"needs a user name and password \(401\).*config.json"):
        pull(store, registry)


def test_transient_503_and_429_are_retried(store: Store, registry: FakeRegistry) -> None:
    failures = iter([503, 429, 502])

    def flaky(request: httpx.Request) -> httpx.Response | None:
        if "/blobs/" in request.url.path:
            code = next(failures, None)
            return httpx.Response(code) if code else None
        return None

    registry.fault = flaky
    pull(store, registry)
    assert len(store.list()) == 1


def test_a_registry_failing_every_try_gives_one_line_naming_the_blob(store: Store, registry: FakeRegistry) -> None:
    registry.fault = lambda r: httpx.Response(503) if "/blobs/" in r.url.path else None
    with pytest.raises(FetchError, match=rf"^{HOST}/busybox: (config|layer) sha256:[0-9a-f]{{64}}: "
                                         r"the registry answered 503 Service Unavailable \(after 4 attempts\)$"):
        pull(store, registry)
    assert_store_empty(store)


def test_a_dropped_connection_is_retried_then_reported(store: Store, registry: FakeRegistry) -> None:
    def drop(request: httpx.Request) -> httpx.Response | None:
        if "/blobs/" in request.url.path:
            raise httpx.RemoteProtocolError("peer closed connection", request=request)
        return None

    registry.fault = drop
    with pytest.raises(FetchError, match=rf"{HOST}/busybox: .*connection to {HOST} broke.*after 2 attempts"):
        pull(store, registry, attempts=2)
    assert_store_empty(store)


def test_wrong_layer_bytes_are_refused_naming_the_digest(store: Store, registry: FakeRegistry) -> None:
    def corrupt(request: httpx.Request) -> httpx.Response | None:
        data = registry.blob(request.url.path.rsplit("/", 1)[1]) if "/blobs/" in request.url.path else None
        if data is not None and len(data) > 10000:
            return httpx.Response(200, content=data[:-1] + bytes([data[-1] ^ 1]))
        return None

    registry.fault = corrupt
    with pytest.raises(IntegrityError, match=rf"{HOST}/busybox: layer sha256:[0-9a-f]{{64}}: digest mismatch"):
        pull(store, registry)
    assert_store_empty(store)


def test_short_layer_bytes_are_refused(store: Store, registry: FakeRegistry) -> None:
    def short(request: httpx.Request) -> httpx.Response | None:
        data = registry.blob(request.url.path.rsplit("/", 1)[1]) if "/blobs/" in request.url.path else None
        if data is not None and len(data) > 10000:
            return httpx.Response(200, content=data[:1000])
        return None

    registry.fault = short
    with pytest.raises(IntegrityError, match=r"layer sha256:[0-9a-f]{64}: (size|digest) mismatch"):
        pull(store, registry)
    assert_store_empty(store)


def test_unknown_tag_is_not_found(store: Store, registry: FakeRegistry) -> None:
    with pytest.raises(NotFound, match=rf"^{HOST}/busybox: manifest nope: not found in the registry \(404\)$"):
        pull(store, registry, f"{HOST}/busybox:nope")


def test_pull_by_digest_checks_the_manifest_bytes(store: Store, registry: FakeRegistry) -> None:
    digest = registry.tag("latest")
    assert digest is not None
    pull(store, registry, f"{HOST}/busybox@{digest}")
    assert store.list()[0].display_name == f"{HOST}/busybox"
    other = "sha256:" + "0" * 64
    registry.manifest_override[other] = (registry.blob(digest) or b"", "application/vnd.oci.image.manifest.v1+json")
    with pytest.raises(IntegrityError, match=f"manifest {other}: digest mismatch"):
        pull(store, registry, f"{HOST}/busybox@{other}")


def test_an_index_is_narrowed_to_the_host_platform(store: Store, tmp_path: Path) -> None:
    host = host_platform()
    other = "linux/s390x" if host.architecture != "s390x" else "linux/amd64"
    layout = build_oci_layout(tmp_path / "multi", platforms=(other, f"linux/{host.architecture}"))
    registry = FakeRegistry(layout)
    assert pull(store, registry) == image_id_of(layout)
    assert len(registry.paths("manifests")) == 2


def test_an_index_without_the_host_platform_is_refused(store: Store, tmp_path: Path) -> None:
    layout = build_oci_layout(tmp_path / "other", platforms=("windows/amd64", "linux/mips64"))
    with pytest.raises(ImageError, match=r"manifest sha256:[0-9a-f]{64} has no image for linux/.* "
                                         r"\(it has: linux/mips64, windows/amd64\)"):
        pull(store, FakeRegistry(layout))
    assert_store_empty(store)


def test_schema1_and_unknown_manifest_types_are_refused(store: Store, registry: FakeRegistry) -> None:
    registry.manifest_override["old"] = (json.dumps({"schemaVersion": 1, "name": "busybox"}).encode(),
                                         "application/vnd.docker.distribution.manifest.v1+prettyjws")
    with pytest.raises(ImageError, match="Docker schema 1 manifest"):
        pull(store, registry, f"{HOST}/busybox:old")
    registry.manifest_override["odd"] = (json.dumps({"schemaVersion": 2, "mediaType": "text/odd"}).encode(),
                                         "text/odd")
    with pytest.raises(ImageError, match=rf"{HOST}/busybox: manifest sha256:[0-9a-f]{{64}} has unknown media type"):
        pull(store, registry, f"{HOST}/busybox:odd")
    assert_store_empty(store)


class BreakingStream(httpx.SyncByteStream):
    """A body that sends ``data`` and then loses the connection."""

    def __init__(self, data: bytes) -> None:
        self.data = data

    def __iter__(self) -> Iterator[bytes]:
        if self.data:
            yield self.data
        raise httpx.ReadError("connection reset by peer")


def layer_fault(registry: FakeRegistry, respond: Callable[[httpx.Request, bytes], httpx.Response | None]
                ) -> Callable[[httpx.Request], httpx.Response | None]:
    """A fault for the big blob (the busybox layer) only."""
    def fault(request: httpx.Request) -> httpx.Response | None:
        data = registry.blob(request.url.path.rsplit("/", 1)[1]) if "/blobs/" in request.url.path else None
        return respond(request, data) if data is not None and len(data) > 10000 else None
    return fault


def test_a_broken_layer_transfer_is_resumed_where_it_stopped(store: Store, registry: FakeRegistry) -> None:
    def respond(request: httpx.Request, data: bytes) -> httpx.Response:
        start = int(request.headers.get("range", "bytes=0-")[len("bytes="):].rstrip("-"))
        if start == 0:
            return httpx.Response(200, stream=BreakingStream(data[:5000]), headers={"Content-Length": str(len(data))})
        if start < 20000:  # break once more, later on
            return httpx.Response(206, stream=BreakingStream(data[start:20000]),
                                  headers={"Content-Range": f"bytes {start}-{len(data) - 1}/{len(data)}"})
        return httpx.Response(206, content=data[start:],
                              headers={"Content-Range": f"bytes {start}-{len(data) - 1}/{len(data)}"})

    registry.fault = layer_fault(registry, respond)
    pull(store, registry, attempts=2)  # two breaks, each after progress: never two in a row
    ranges = [r.headers.get("range") for r in registry.requests if r.headers.get("range")]
    assert ranges == ["bytes=5000-", "bytes=20000-"]
    assert len(store.list()) == 1


def layered_registry(tmp_path: Path, top: dict[str, bytes | Entry] | None = None) -> FakeRegistry:
    """busybox and three small layers on it: a pull unpacks the four while they download."""
    return FakeRegistry(build_oci_layout(tmp_path / "layered", tag="latest", extra_layers=[
        {"opt/a": b"a" * 3000}, {"opt/b": b"b" * 3000}, top or {"opt/c": b"c" * 3000}]))


def children_of_this_process() -> list[int]:
    out = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            with open(f"/proc/{pid}/stat") as f:
                if int(f.read().rsplit(")", 1)[1].split()[1]) == os.getpid():
                    out.append(int(pid))
        except OSError:
            continue
    return out


def test_layers_are_unpacked_while_they_download_even_across_a_resumed_transfer(
        store: Store, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    registry = layered_registry(tmp_path)

    def respond(request: httpx.Request, data: bytes) -> httpx.Response:
        start = int(request.headers.get("range", "bytes=0-")[len("bytes="):].rstrip("-"))
        if start == 0:
            return httpx.Response(200, stream=BreakingStream(data[:5000]), headers={"Content-Length": str(len(data))})
        return httpx.Response(206, content=data[start:],
                              headers={"Content-Range": f"bytes {start}-{len(data) - 1}/{len(data)}"})

    registry.fault = layer_fault(registry, respond)
    layer_requests_at_fork: list[int] = []
    real_fork = os.fork

    def fork() -> int:
        layer_requests_at_fork.append(len([p for p in registry.paths("blobs")]))
        return real_fork()

    monkeypatch.setattr(os, "fork", fork)
    image = store.resolve(pull(store, registry, attempts=2))
    assert len(layer_requests_at_fork) == 4 and max(layer_requests_at_fork) == 1  # only the config came first
    dirs = store.layer_dirs(image)
    assert (dirs[0] / "bin/busybox").read_bytes() == BUSYBOX.read_bytes()
    assert (dirs[3] / "opt/c").read_bytes() == b"c" * 3000
    assert children_of_this_process() == []


def test_layers_beyond_those_unpacked_while_downloading_are_unpacked_after(
        store: Store, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(imports, "MAX_STREAMED_LAYERS", 2)
    image = store.resolve(pull(store, layered_registry(tmp_path)))
    dirs = store.layer_dirs(image)
    assert [(d / f"opt/{n}").read_bytes() for d, n in zip(dirs[1:], "abc", strict=True)] == [
        b"a" * 3000, b"b" * 3000, b"c" * 3000]
    assert (dirs[0] / "bin/busybox").read_bytes() == BUSYBOX.read_bytes()
    assert stat.S_IMODE(os.lstat(dirs[2] / "opt").st_mode) == 0o755
    assert not any(store.tmp.iterdir())


def test_wrong_bytes_of_one_of_several_layers_are_refused_and_nothing_is_left(store: Store, tmp_path: Path) -> None:
    registry = layered_registry(tmp_path)
    registry.fault = layer_fault(registry, lambda request, data: httpx.Response(
        200, content=data[:-1] + bytes([data[-1] ^ 1])))
    with pytest.raises(IntegrityError, match=rf"{HOST}/busybox: layer sha256:[0-9a-f]{{64}}: digest mismatch"):
        pull(store, registry)
    assert_store_empty(store)
    assert children_of_this_process() == []


def test_an_unsafe_layer_among_several_is_refused_naming_it_and_nothing_is_left(store: Store, tmp_path: Path) -> None:
    registry = layered_registry(tmp_path, {"evil": Entry.symlink("/etc"), "evil/passwd": b"owned"})
    with pytest.raises(ImageError, match=r"layer sha256:[0-9a-f]{64}: member 'evil/passwd' would be written "
                                         "through symlink"):
        pull(store, registry)
    assert_store_empty(store)
    assert children_of_this_process() == []


def test_a_server_ignoring_the_range_sends_it_all_and_what_was_read_is_skipped(
        store: Store, registry: FakeRegistry) -> None:
    def respond(request: httpx.Request, data: bytes) -> httpx.Response:
        if "range" not in request.headers:
            return httpx.Response(200, stream=BreakingStream(data[:7000]))
        return httpx.Response(200, content=data)

    registry.fault = layer_fault(registry, respond)
    pull(store, registry)
    assert len(store.list()) == 1


def test_a_transfer_breaking_without_progress_gives_up_naming_the_layer_and_byte(
        store: Store, registry: FakeRegistry) -> None:
    def respond(request: httpx.Request, data: bytes) -> httpx.Response:
        return httpx.Response(200 if "range" not in request.headers else 206,
                              stream=BreakingStream(b"" if "range" in request.headers else data[:3000]),
                              headers={"Content-Range": f"bytes 3000-{len(data) - 1}/{len(data)}"})

    registry.fault = layer_fault(registry, respond)
    with pytest.raises(FetchError, match=rf"^{HOST}/busybox: layer sha256:[0-9a-f]{{64}}: the connection to "
                                         rf"{HOST} broke: connection reset by peer at byte 3000 \(after 3 attempts\)$"):
        pull(store, registry, attempts=3)
    assert_store_empty(store)


def test_run_policy_new_finds_a_pulled_image_by_its_docker_reference(store: Store, registry: FakeRegistry,
                                                                     tmp_path: Path) -> None:
    image_id = pull(store, registry)
    config = Config(data_dir=tmp_path / "data")
    for arg in (f"docker://{HOST}/busybox", f"docker:{HOST}/busybox:latest"):
        assert resolve_image(config, store, arg, pull_policy="new").id == image_id
    with pytest.raises(NotFound, match=rf'image "docker://{HOST}/busybox:2" not found in the store \(pull policy never\)'):
        resolve_image(config, store, f"docker://{HOST}/busybox:2", pull_policy="never")


# -- identity tokens (the OAuth2 refresh-token grant) -------------------------------------------

def identity(token: str = REFRESH) -> Credentials:
    return Credentials("", "", "credential helper docker-credential-test", identity_token=token)


def token_posts(registry: FakeRegistry) -> list[httpx.Request]:
    return [r for r in registry.requests if r.url.host == "auth.test" and r.method == "POST"]


def test_an_identity_token_is_traded_for_the_bearer_token_by_an_oauth2_post_to_the_realm(
        store: Store, registry: FakeRegistry) -> None:
    registry.auth = "bearer"
    pull(store, registry, credentials=identity())
    [post] = token_posts(registry)
    assert [r for r in registry.requests if r.url.host == "auth.test"] == [post]  # no GET with basic auth
    assert post.headers["content-type"] == "application/x-www-form-urlencoded"
    assert "authorization" not in post.headers
    assert urllib.parse.parse_qs(post.content.decode()) == {
        "grant_type": ["refresh_token"], "refresh_token": [REFRESH], "service": [HOST],
        "scope": ["repository:busybox:pull"], "client_id": ["pyrkt"]}
    blobs = [r for r in registry.requests if "/blobs/" in r.url.path]
    assert blobs and all(r.headers.get("authorization") == f"Bearer {TOKEN}" for r in blobs)
    assert not any(REFRESH in str(r.headers) or REFRESH.encode() in r.content
                   for r in registry.requests if r.url.host == HOST)
    assert store.list()


def test_a_refused_identity_token_is_one_line_naming_its_origin_but_never_the_token(
        store: Store, registry: FakeRegistry) -> None:
    registry.auth = "bearer"
    with pytest.raises(FetchError) as err:
        pull(store, registry, credentials=identity("stale-r3fresh-t0ken"))
    assert str(err.value) == (f"{HOST}/busybox: the token service refused the identity token from "
                              "credential helper docker-credential-test (400)")
    assert "stale-r3fresh-t0ken" not in repr(identity("stale-r3fresh-t0ken"))
    assert_store_empty(store)


def test_a_token_service_without_the_oauth2_post_is_one_line_without_the_token(
        store: Store, registry: FakeRegistry) -> None:
    registry.auth = "bearer"
    registry.fault = lambda r: httpx.Response(404) if r.method == "POST" else None
    with pytest.raises(FetchError, match=r"token service https://auth.test/token does not take identity "
                                         r"tokens \(its OAuth2 POST answered 404 Not Found\)") as err:
        pull(store, registry, credentials=identity())
    assert REFRESH not in str(err.value)
    assert_store_empty(store)


def test_a_basic_auth_registry_cannot_use_an_identity_token_and_never_sees_it(
        store: Store, registry: FakeRegistry) -> None:
    registry.auth = "basic"
    with pytest.raises(FetchError) as err:
        pull(store, registry, credentials=identity())
    assert str(err.value) == (f"{HOST}/busybox: {HOST} asks for HTTP basic auth, which cannot use the identity "
                              "token from credential helper docker-credential-test (it needs a user name and password)")
    assert not any("authorization" in r.headers for r in registry.requests)
    assert_store_empty(store)


def test_a_refresh_token_rotated_by_the_token_service_is_the_one_asked_with_next(
        store: Store, registry: FakeRegistry) -> None:
    registry.auth = "bearer"
    registry.rotate_to = "r0tated-refresh"
    expired = [True]

    def expire_once(request: httpx.Request) -> httpx.Response | None:
        if "/blobs/" in request.url.path and expired[0]:  # the access token ran out mid-pull
            expired[0] = False
            return httpx.Response(401, headers={"WWW-Authenticate": f'Bearer realm="https://auth.test/token",'
                                                                    f'service="{HOST}"'})
        return None

    registry.fault = expire_once
    credentials = identity()
    pull(store, registry, credentials=credentials)
    sent = [urllib.parse.parse_qs(r.content.decode())["refresh_token"] for r in token_posts(registry)]
    assert sent == [[REFRESH], ["r0tated-refresh"]]
    assert credentials.identity_token == REFRESH  # the caller's credentials are not changed
    assert store.list()


def test_a_config_field_of_the_wrong_type_is_refused_before_any_layer_is_downloaded(store: Store,
                                                                                    tmp_path: Path) -> None:
    registry = FakeRegistry(build_oci_layout(tmp_path / "typed", tag="latest", user=5))
    with pytest.raises(ImageError, match=rf"^{HOST}/busybox: config sha256:[0-9a-f]{{64}}: config.User is a number "
                                         r"\(5\), want a string$"):
        pull(store, registry)
    layers = json.loads(registry.blob(registry.tag("latest") or "") or b"{}")["layers"]
    fetched = {r.url.path.rpartition("/")[2] for r in registry.requests if "/blobs/" in r.url.path}
    assert layers and not fetched & {layer["digest"] for layer in layers}  # only the config was fetched
    assert_store_empty(store)
