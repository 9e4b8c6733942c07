"""ACI downloads over http(s) against an in-process mock server (httpx.MockTransport): pull
policies and the remote cache, revalidation, resumed and retried downloads, signatures that are
deferred (202) or missing, refusals. The real HTTPS server and gpg are in tests/integration."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest
from tests.support.aci import aci_tar
from tests.support.fetchui import Notices
from tests.support.stores import assert_store_empty

from pyrkt.errors import FetchError, ImageError, NotFound
from pyrkt.fetch import FetchOptions
from pyrkt.fetch.https import HttpClient, check_url, import_https
from pyrkt.fetch.trust import SignatureError
from pyrkt.fetch.ui import HEADLESS, FetchUI
from pyrkt.model.image import Image
from pyrkt.store import Store
from pyrkt.store.remotes import RemoteCache

URL = "https://example.com/app-1.0.aci"
ACI = aci_tar()
Handler = Callable[[httpx.Request], httpx.Response]


class Server:
    """Routes by path; every request is logged (method, path, headers)."""

    def __init__(self) -> None:
        self.routes: dict[str, Handler] = {}
        self.log: list[httpx.Request] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.log.append(request)
        handler = self.routes.get(request.url.path)
        return handler(request) if handler else httpx.Response(404, content=b"no")

    def client(self, *, attempts: int = 4, insecure: frozenset[str] = frozenset(),
               config_dirs: list[Path] | None = None) -> HttpClient:
        return HttpClient(transport=httpx.MockTransport(self), backoff=0, attempts=attempts, insecure=insecure,
                          config_dirs=config_dirs or [])

    def paths(self) -> list[str]:
        return [r.url.path for r in self.log]


def serve(body: bytes, status: int = 200, **headers: str) -> Handler:
    return lambda request: httpx.Response(status, content=body, headers=headers)


def cut_body(body: bytes, at: int) -> Iterator[bytes]:
    yield body[:at]
    raise httpx.ReadError("connection reset by peer")


def ranged(body: bytes, cut_first_at: int | None = None, etag: str = '"e1"') -> Handler:
    """Serves ``body`` with ETag and byte ranges; the first answer breaks after ``cut_first_at``."""
    state = {"n": 0}

    def handler(request: httpx.Request) -> httpx.Response:
        state["n"] += 1
        rng = request.headers.get("range", "")
        headers = {"ETag": etag}
        if rng.startswith("bytes=") and request.headers.get("if-range", etag) == etag:
            start = int(rng[len("bytes="):].rstrip("-"))
            headers |= {"Content-Range": f"bytes {start}-{len(body) - 1}/{len(body)}",
                        "Content-Length": str(len(body) - start)}
            return httpx.Response(206, content=body[start:], headers=headers)
        headers["Content-Length"] = str(len(body))
        if state["n"] == 1 and cut_first_at is not None:
            return httpx.Response(200, content=cut_body(body, cut_first_at), headers=headers)
        return httpx.Response(200, content=body, headers=headers)

    return handler


# -- the download ---------------------------------------------------------------------------


def test_download_writes_the_body_and_reads_cache_headers(tmp_path: Path) -> None:
    server = Server()
    server.routes["/app-1.0.aci"] = serve(ACI, ETag='"v1"', **{"Cache-Control": "public, max-age=90"})
    with server.client() as http:
        answer = http.download(URL, tmp_path / "f")
    assert (answer.status, answer.etag, answer.max_age) == (200, '"v1"', 90)
    assert (tmp_path / "f").read_bytes() == ACI
    assert server.log[0].headers.get("if-none-match") is None


def test_revalidation_with_a_304_downloads_nothing(tmp_path: Path) -> None:
    server = Server()
    server.routes["/app-1.0.aci"] = lambda r: (httpx.Response(304, headers={"ETag": '"v1"'})
                                               if r.headers.get("if-none-match") == '"v1"' else httpx.Response(200))
    with server.client() as http:
        answer = http.download(URL, tmp_path / "f", etag='"v1"')
    assert answer.status == 304 and answer.etag == '"v1"'
    assert not (tmp_path / "f").exists()


def test_a_broken_download_is_resumed_with_range_and_if_range(tmp_path: Path) -> None:
    server = Server()
    server.routes["/app-1.0.aci"] = ranged(ACI, cut_first_at=5000)
    with server.client() as http:
        http.download(URL, tmp_path / "f")
    assert (tmp_path / "f").read_bytes() == ACI
    assert len(server.log) == 2
    assert server.log[1].headers["range"] == "bytes=5000-" and server.log[1].headers["if-range"] == '"e1"'


def test_a_server_ignoring_ranges_sends_it_all_again(tmp_path: Path) -> None:
    server = Server()
    calls = []

    def handler(request: httpx.Request) -> httpx.Response:
        calls.append(request)
        content = cut_body(ACI, 3000) if len(calls) == 1 else ACI
        return httpx.Response(200, content=content, headers={"Content-Length": str(len(ACI))})

    server.routes["/app-1.0.aci"] = handler
    with server.client() as http:
        http.download(URL, tmp_path / "f")
    assert (tmp_path / "f").read_bytes() == ACI


def test_a_download_that_keeps_breaking_gives_up_naming_the_url(tmp_path: Path) -> None:
    server = Server()
    server.routes["/app-1.0.aci"] = lambda r: httpx.Response(200, content=cut_body(ACI, 100),
                                                             headers={"Content-Length": str(len(ACI))})
    with server.client(attempts=3) as http, pytest.raises(FetchError) as err:
        http.download(URL, tmp_path / "f")
    assert str(err.value).startswith(f"{URL}: the download broke at byte 100 of {len(ACI)}")
    assert "(after 3 attempts)" in str(err.value) and len(server.log) == 3


def test_5xx_and_429_are_retried_then_given_up(tmp_path: Path) -> None:
    server = Server()
    answers = iter([httpx.Response(503), httpx.Response(429), httpx.Response(200, content=ACI)])
    server.routes["/app-1.0.aci"] = lambda r: next(answers)
    with server.client() as http:
        http.download(URL, tmp_path / "f")
    assert (tmp_path / "f").read_bytes() == ACI and len(server.log) == 3

    server.routes["/app-1.0.aci"] = serve(b"", 502)
    with server.client(attempts=2) as http, pytest.raises(FetchError) as err:
        http.download(URL, tmp_path / "f")
    assert str(err.value) == f"{URL}: the server answered 502 Bad Gateway (after 2 attempts)"


@pytest.mark.parametrize(("status", "error", "text"), [
    (404, NotFound, f"{URL}: not found (404)"),
    (403, FetchError, f"{URL}: access denied (403)"),
    (401, FetchError, f"{URL}: access denied (401): it may need credentials"),
    (418, FetchError, f"{URL}: the server answered 418 I'm a teapot"),
])
def test_http_errors_are_one_line_naming_the_url(tmp_path: Path, status: int, error: type[Exception],
                                                 text: str) -> None:
    server = Server()
    server.routes["/app-1.0.aci"] = serve(b"no", status)
    with server.client() as http, pytest.raises(error) as err:
        http.download(URL, tmp_path / "f")
    assert str(err.value).startswith(text) and "\n" not in str(err.value)


def test_a_401_is_answered_with_the_auth_d_credentials_of_the_host(tmp_path: Path) -> None:
    auth_d = tmp_path / "etc" / "auth.d"
    auth_d.mkdir(parents=True)
    (auth_d / "a.json").write_text(json.dumps({
        "rktKind": "auth", "rktVersion": "v1", "domains": ["example.com"], "type": "oauth",
        "credentials": {"token": "sesame"}}))
    server = Server()
    server.routes["/app-1.0.aci"] = lambda r: (httpx.Response(200, content=ACI)
                                               if r.headers.get("authorization") == "Bearer sesame"
                                               else httpx.Response(401))
    with server.client(config_dirs=[tmp_path / "etc"]) as http:
        http.download(URL, tmp_path / "f")
    assert [r.headers.get("authorization") for r in server.log] == [None, "Bearer sesame"]


def test_a_redirect_to_plain_http_is_refused(tmp_path: Path) -> None:
    server = Server()
    server.routes["/app-1.0.aci"] = serve(b"", 302, Location="http://example.com/plain.aci")
    server.routes["/plain.aci"] = serve(ACI)
    with server.client() as http, pytest.raises(FetchError, match="redirect to http://example.com/plain.aci"):
        http.download(URL, tmp_path / "f")
    with server.client(insecure=frozenset({"http"})) as http:
        http.download(URL, tmp_path / "f")
    assert (tmp_path / "f").read_bytes() == ACI


def test_plain_http_needs_the_insecure_option() -> None:
    with pytest.raises(FetchError) as err:
        check_url("http://example.com/a.aci", frozenset())
    assert str(err.value) == ("refusing to fetch http://example.com/a.aci over plain http "
                              "(use https, or --insecure-options=http)")
    check_url("http://example.com/a.aci", frozenset({"http"}))
    check_url(URL, frozenset())


# -- the signature --------------------------------------------------------------------------


def test_a_deferred_signature_is_asked_for_again(tmp_path: Path) -> None:
    server = Server()
    answers = iter([httpx.Response(202), httpx.Response(202), httpx.Response(200, content=b"SIG")])
    server.routes["/app-1.0.aci.asc"] = lambda r: next(answers)
    with server.client() as http:
        http.download_signature(URL + ".asc", tmp_path / "s", aci_url=URL)
    assert (tmp_path / "s").read_bytes() == b"SIG" and len(server.log) == 3


def test_a_signature_deferred_for_ever_fails(tmp_path: Path) -> None:
    server = Server()
    server.routes["/app-1.0.aci.asc"] = serve(b"", 202)
    with server.client() as http, pytest.raises(FetchError, match="still not ready .202 Accepted"):
        http.download_signature(URL + ".asc", tmp_path / "s", aci_url=URL)


def test_a_missing_signature_is_the_signature_error(tmp_path: Path) -> None:
    server = Server()
    with server.client() as http, pytest.raises(SignatureError) as err:
        http.download_signature(URL + ".asc", tmp_path / "s", aci_url=URL)
    assert str(err.value) == (f"signature verification failed: no signature {URL}.asc for {URL} "
                              "(404; use --insecure-options=image to skip the check)")


# -- import_https: policies and the remote cache --------------------------------------------


def fetch(store: Store, server: Server, policy: str = "update", insecure: frozenset[str] = frozenset({"image"}),
          check: Callable[[Image], None] | None = None, ui: FetchUI = HEADLESS) -> Image:
    options = FetchOptions(insecure=insecure, pull_policy=policy, ui=ui)
    return import_https(store, URL, source=URL, options=options, client=server.client(), check=check)


class DebugLines(FetchUI):
    def __init__(self) -> None:
        self.lines: list[str] = []

    def debug(self, message: str) -> None:
        self.lines.append(message)


def test_debug_lines_say_whether_the_url_was_fetched_or_the_store_used_as_rkt(store: Store) -> None:
    server = Server()
    server.routes["/app-1.0.aci"] = serve(ACI, ETag='"v1"', **{"Cache-Control": "max-age=600"})
    ui = DebugLines()
    image = fetch(store, server, "new", ui=ui)
    assert fetch(store, server, "new", ui=ui) == image and fetch(store, server, "update", ui=ui) == image
    assert ui.lines == [f"fetching image from {URL}", f"using image from local store for url {URL}",
                        f"image for {URL} isn't expired, not fetching."]


def test_policies_use_the_cache_record(store: Store) -> None:
    server = Server()
    server.routes["/app-1.0.aci"] = ranged(ACI, etag='"v1"')
    with pytest.raises(NotFound, match="not found in the store .pull policy never"):
        fetch(store, server, "never")
    assert server.log == [] and RemoteCache(store.root).get(URL) is None

    image = fetch(store, server, "new")
    assert image.name == "example.com/app" and len(server.log) == 1
    record = RemoteCache(store.root).get(URL)
    assert record is not None and (record.image_id, record.etag) == (image.id, '"v1"')

    assert fetch(store, server, "new") == image and fetch(store, server, "never") == image
    assert len(server.log) == 1  # neither asked

    assert fetch(store, server, "update") == image  # revalidated: 304
    assert len(server.log) == 2 and server.log[1].headers["if-none-match"] == '"v1"'


def test_a_304_answer_only_refreshes_the_record(store: Store) -> None:
    server = Server()
    server.routes["/app-1.0.aci"] = serve(ACI, ETag='"v1"')
    image = fetch(store, server)
    before = RemoteCache(store.root).get(URL)
    server.routes["/app-1.0.aci"] = serve(b"", 304, ETag='"v1"', **{"Cache-Control": "max-age=3600"})
    assert fetch(store, server) == image
    after = RemoteCache(store.root).get(URL)
    assert before is not None and after is not None
    assert after.max_age == 3600 and after.download_time >= before.download_time and after.image_id == image.id
    assert len(store.list()) == 1


def test_a_fresh_record_means_no_request_and_a_stale_one_revalidates(store: Store) -> None:
    server = Server()
    server.routes["/app-1.0.aci"] = serve(ACI, ETag='"v1"', **{"Cache-Control": "max-age=600"})
    image = fetch(store, server)
    assert fetch(store, server) == image and len(server.log) == 1
    cache = RemoteCache(store.root)
    record = cache.get(URL)
    assert record is not None
    cache.put(record.replace(download_time=record.download_time - 601))
    server.routes["/app-1.0.aci"] = serve(b"", 304)
    assert fetch(store, server) == image and len(server.log) == 2


def test_a_record_whose_image_was_removed_is_downloaded_again(store: Store) -> None:
    server = Server()
    server.routes["/app-1.0.aci"] = serve(ACI, ETag='"v1"')
    image = fetch(store, server)
    store.remove(image.id)
    with pytest.raises(NotFound):
        fetch(store, server, "never")
    assert fetch(store, server, "new") == image
    assert len(server.log) == 2 and "if-none-match" not in server.log[1].headers


def test_not_an_aci_is_refused_and_nothing_is_recorded(store: Store) -> None:
    server = Server()
    server.routes["/app-1.0.aci"] = serve(b"<html>hello</html>")
    with pytest.raises(ImageError, match=f"^{URL}: not an ACI"):
        fetch(store, server)
    assert RemoteCache(store.root).get(URL) is None
    assert_store_empty(store)


def test_the_signature_is_fetched_after_the_aci_unless_image_is_insecure(store: Store) -> None:
    server = Server()
    server.routes["/app-1.0.aci"] = serve(ACI)
    with pytest.raises(SignatureError, match="no signature"):
        fetch(store, server, insecure=frozenset())
    assert server.paths() == ["/app-1.0.aci", "/app-1.0.aci.asc"]
    assert_store_empty(store)
    fetch(store, server)
    assert server.paths()[2:] == ["/app-1.0.aci"]


def test_check_may_refuse_a_cached_image(store: Store) -> None:
    server = Server()
    server.routes["/app-1.0.aci"] = serve(ACI)
    fetch(store, server)

    def refuse(image: Image) -> None:
        raise ImageError("wrong labels")

    with pytest.raises(ImageError, match="wrong labels"):
        fetch(store, server, "new", check=refuse)


def test_a_signature_file_is_checked_instead_of_the_urls(store: Store, tmp_path: Path) -> None:
    server = Server()
    server.routes["/app-1.0.aci"] = serve(ACI)
    sig = tmp_path / "local.asc"
    sig.write_text("not a signature\n")
    options = FetchOptions(pull_policy="update", signature=sig)
    with pytest.raises(SignatureError):
        import_https(store, URL, source=URL, options=options, client=server.client())
    assert server.paths() == ["/app-1.0.aci"]  # the URL's .asc is never asked for
    assert_store_empty(store)


def test_a_signature_file_not_checked_for_a_reused_image_is_warned_about(store: Store, tmp_path: Path) -> None:
    server = Server()
    server.routes["/app-1.0.aci"] = serve(ACI)
    image = fetch(store, server)
    ui = Notices()
    options = FetchOptions(pull_policy="new", signature=tmp_path / "local.asc", ui=ui)
    assert import_https(store, URL, source=URL, options=options, client=server.client()) == image
    assert ui.lines == [f"warning: --signature {tmp_path / 'local.asc'} for {URL} was not checked: the image "
                        f"{image.id} was taken from the store, not fetched"]
