"""ACIs over https through the real CLI: a real HTTPS server on 127.0.0.1 (tests/support/
webserver.py, its self-signed certificate trusted through SSL_CERT_FILE), real gpg signatures.
Fetch and run, the remote cache (ETag, Cache-Control, pull policies), TLS and plain-http
refusals, a cut download resumed, a deferred (202) signature, and one-line errors that leave
the store as it was."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler
from pathlib import Path

import pytest
from tests.integration.conftest import GpgKeys
from tests.integration.pods import Cli
from tests.support.aci import build_aci, sign
from tests.support.webserver import Reply, WebServer

pytestmark = [
    pytest.mark.skipif(os.geteuid() != 0, reason="needs root: runs pods"),
    pytest.mark.skipif(shutil.which("gpg") is None or shutil.which("openssl") is None,
                       reason="needs gpg and openssl"),
]

ACI_PATH = "/images/app-1.0.aci"
ETAG = '"app-v1"'


class Signed:
    """A signed ACI: its bytes, signature and rkt id."""

    def __init__(self, root: Path, home: Path, fpr: str) -> None:
        aci = root / "app-1.0.aci"
        self.id = build_aci(aci, compression="gzip")
        self.body = aci.read_bytes()
        self.sig = sign(aci, home, fpr).read_bytes()
        self.short = self.id[:len("sha512-") + 32]


@pytest.fixture(scope="module")
def signed(tmp_path_factory: pytest.TempPathFactory, gpg_keys: GpgKeys) -> Signed:
    fpr, _, home = gpg_keys["alice"]
    return Signed(tmp_path_factory.mktemp("aci"), home, fpr)


@pytest.fixture
def server(tmp_path: Path) -> Iterator[WebServer]:
    s = WebServer(tmp_path / "tls")
    yield s
    s.close()


def make_cli(tmp_path: Path, env: dict[str, str]) -> Cli:
    return Cli(tmp_path / "data", [f"--local-config={tmp_path / 'etc'}", f"--system-config={tmp_path / 'lib'}"],
               env=env)


@pytest.fixture
def cli(tmp_path: Path, server: WebServer, gpg_keys: GpgKeys) -> Iterator[Cli]:
    """A CLI that trusts the server's certificate and alice's key for example.com/app."""
    c = make_cli(tmp_path, server.env())
    r = c("trust", "--prefix=example.com/app", "--skip-fingerprint-review", str(gpg_keys["alice"][1]))
    assert r.code == 0, r
    yield c
    c.collect_all()


def revalidating(body: bytes, etag: str = ETAG, **headers: str) -> Reply:
    """Serves ``body`` with ``etag``; answers 304 to a matching If-None-Match."""
    def handler(h: BaseHTTPRequestHandler) -> Reply:
        if h.headers.get("If-None-Match") == etag:
            return Reply(b"", 304, {"ETag": etag, **headers})
        return Reply(body, headers={"ETag": etag, **headers})
    return Reply(handler=handler)


def serve_signed(server: WebServer, signed: Signed, **headers: str) -> str:
    server.routes[ACI_PATH] = revalidating(signed.body, **headers)
    server.routes[ACI_PATH + ".asc"] = Reply(signed.sig)
    return server.base + ACI_PATH


def store_is_empty(cli: Cli) -> bool:
    store = cli.data_dir / "store"
    remotes = store / "remotes"
    return (cli("image", "list", "--no-legend").out == ""
            and not (remotes.is_dir() and os.listdir(remotes))
            and not ((store / "tmp").is_dir() and os.listdir(store / "tmp")))


def one_line_254(r: object, *needles: str) -> None:
    assert r.code == 254, r  # type: ignore[attr-defined]
    err: str = r.err  # type: ignore[attr-defined]
    assert err.startswith("pyrkt: ") and err.count("\n") == 1, r
    for needle in needles:
        assert needle in err, r


def test_fetch_then_fetch_again_revalidates_and_run_asks_nothing(cli: Cli, server: WebServer,
                                                                 signed: Signed) -> None:
    url = serve_signed(server, signed)
    r = cli("fetch", url)
    assert r.code == 0, r
    assert r.out == signed.short + "\n"
    assert server.paths() == [ACI_PATH, ACI_PATH + ".asc"]
    assert "If-None-Match" not in server.requests[0].headers
    assert "example.com/app:1.0.0" in cli("image", "list", "--no-legend").out

    r = cli("fetch", url)  # pull policy update: revalidate with the ETag, 304, nothing downloaded
    assert r.code == 0 and r.out == signed.short + "\n", r
    assert server.paths() == [ACI_PATH, ACI_PATH + ".asc", ACI_PATH]
    assert server.requests[2].headers.get("If-None-Match") == ETAG

    r = cli("run", "--net=none", url, timeout=120)  # pull policy new: the store has it
    assert r.code == 0 and "hello from aci" in r.out, r
    assert len(server.requests) == 3


def test_cache_control_max_age_means_no_request_at_all(cli: Cli, server: WebServer, signed: Signed) -> None:
    url = serve_signed(server, signed, **{"Cache-Control": "max-age=3600"})
    assert cli("fetch", url).code == 0
    r = cli("fetch", "--full", url)
    assert r.code == 0 and r.out == signed.id + "\n", r
    assert len(server.requests) == 2  # the ACI and its signature, once


def test_pull_policy_never_needs_a_fetch_first(cli: Cli, server: WebServer, signed: Signed) -> None:
    url = serve_signed(server, signed)
    r = cli("fetch", "--pull-policy=never", url)
    one_line_254(r, url, "not found in the store (pull policy never)")
    assert server.requests == []
    assert cli("fetch", "--pull-policy=new", url).code == 0
    r = cli("fetch", "--pull-policy=never", url)
    assert r.code == 0 and r.out == signed.short + "\n", r
    assert len(server.requests) == 2


def test_an_untrusted_certificate_fails_unless_tls_is_insecure(tmp_path: Path, server: WebServer,
                                                               signed: Signed) -> None:
    url = serve_signed(server, signed)
    cli = make_cli(tmp_path, {"SSL_CERT_FILE": "/nonexistent/ca.pem"})
    r = cli("--insecure-options=image", "fetch", url)
    one_line_254(r, url, "certificate verify failed", "--insecure-options=tls")
    assert store_is_empty(cli)
    r = cli("--insecure-options=image,tls", "fetch", url)
    assert r.code == 0 and r.out == signed.short + "\n", r


def test_plain_http_is_refused_without_the_insecure_option(tmp_path: Path, signed: Signed) -> None:
    plain = WebServer(tmp_path / "plain", tls=False)
    try:
        plain.routes[ACI_PATH] = Reply(signed.body)
        url = plain.base + ACI_PATH
        assert url.startswith("http://")
        cli = make_cli(tmp_path, {})
        r = cli("--insecure-options=image", "fetch", url)
        one_line_254(r, f"refusing to fetch {url} over plain http", "--insecure-options=http")
        assert plain.requests == []
        r = cli("--insecure-options=image,http", "fetch", url)
        assert r.code == 0 and r.out == signed.short + "\n", r
    finally:
        plain.close()


def test_a_missing_aci_is_one_line_and_the_store_unchanged(cli: Cli, server: WebServer) -> None:
    url = server.base + "/images/nothing-here.aci"
    one_line_254(cli("fetch", url), f"{url}: not found (404)")
    assert store_is_empty(cli)


def test_a_missing_signature_is_the_signature_error(cli: Cli, server: WebServer, signed: Signed) -> None:
    url = serve_signed(server, signed)
    del server.routes[ACI_PATH + ".asc"]
    one_line_254(cli("fetch", url), f"signature verification failed: no signature {url}.asc")
    assert store_is_empty(cli)


def test_a_bad_signature_leaves_the_store_unchanged(cli: Cli, server: WebServer, signed: Signed,
                                                    gpg_keys: GpgKeys,
                                                    tmp_path: Path) -> None:
    bob_fpr, _, bob_home = gpg_keys["bob"]
    copy = tmp_path / "copy.aci"
    copy.write_bytes(signed.body)
    url = serve_signed(server, signed)
    server.routes[ACI_PATH + ".asc"] = Reply(sign(copy, bob_home, bob_fpr).read_bytes())  # an untrusted key
    one_line_254(cli("fetch", url), f"signature verification failed for {url}")
    assert store_is_empty(cli)


def test_not_an_aci_is_one_line(cli: Cli, server: WebServer) -> None:
    server.routes[ACI_PATH] = Reply(b"<html>a login page</html>\n")
    url = server.base + ACI_PATH
    one_line_254(cli("--insecure-options=image", "fetch", url), f"{url}: not an ACI")
    assert store_is_empty(cli)


def test_server_errors_are_retried_then_one_line(cli: Cli, server: WebServer) -> None:
    server.routes[ACI_PATH] = Reply(b"busy", 503)
    url = server.base + ACI_PATH
    one_line_254(cli("--insecure-options=image", "fetch", url), f"{url}: the server answered 503",
                 "attempts)")
    assert len(server.requests) > 1
    assert store_is_empty(cli)


def test_a_body_shorter_than_its_length_fails_after_retries(cli: Cli, server: WebServer, signed: Signed) -> None:
    server.routes[ACI_PATH] = Reply(signed.body, cut=1000)  # every answer breaks at byte 1000
    url = server.base + ACI_PATH
    one_line_254(cli("--insecure-options=image", "fetch", url),
                 f"{url}: the download broke at byte 1000 of {len(signed.body)}")
    assert store_is_empty(cli)


def ranges(body: bytes, *, cut_first_at: int) -> Reply:
    """Honours ``Range`` (when ``If-Range`` matches); the first full answer breaks mid-way."""
    state = {"full": 0}

    def handler(h: BaseHTTPRequestHandler) -> Reply:
        rng = h.headers.get("Range", "")
        if rng.startswith("bytes=") and h.headers.get("If-Range", ETAG) == ETAG:
            start = int(rng[len("bytes="):].rstrip("-"))
            return Reply(body[start:], 206, {"ETag": ETAG, "Content-Range": f"bytes {start}-{len(body) - 1}/{len(body)}"})
        state["full"] += 1
        return Reply(body, headers={"ETag": ETAG}, cut=cut_first_at if state["full"] == 1 else None)

    return Reply(handler=handler)


def test_a_cut_download_is_resumed_with_range(cli: Cli, server: WebServer, signed: Signed) -> None:
    url = serve_signed(server, signed)
    cut = len(signed.body) // 2
    server.routes[ACI_PATH] = ranges(signed.body, cut_first_at=cut)
    r = cli("fetch", url)
    assert r.code == 0 and r.out == signed.short + "\n", r
    gets = [q for q in server.requests if q.path == ACI_PATH]
    assert len(gets) == 2
    assert gets[1].headers.get("Range") == f"bytes={cut}-" and gets[1].headers.get("If-Range") == ETAG


def test_a_deferred_signature_is_fetched_after_the_aci(cli: Cli, server: WebServer, signed: Signed) -> None:
    url = serve_signed(server, signed)
    state = {"asked": 0}

    def deferred(h: BaseHTTPRequestHandler) -> Reply:
        state["asked"] += 1
        return Reply(b"", 202) if state["asked"] == 1 else Reply(signed.sig)

    server.routes[ACI_PATH + ".asc"] = Reply(handler=deferred)
    r = cli("fetch", url)
    assert r.code == 0 and r.out == signed.short + "\n", r
    assert server.paths() == [ACI_PATH, ACI_PATH + ".asc", ACI_PATH + ".asc"]


def test_image_rm_forgets_the_url_of_the_image(cli: Cli, server: WebServer, signed: Signed) -> None:
    url = serve_signed(server, signed)
    assert cli("fetch", url).code == 0
    assert os.listdir(cli.data_dir / "store" / "remotes")
    assert cli("image", "rm", signed.short).code == 0
    assert store_is_empty(cli)
    server.requests.clear()
    assert cli("run", "--net=none", url, timeout=120).code == 0  # policy new: fetched again
    assert server.paths() == [ACI_PATH, ACI_PATH + ".asc"]


def test_a_fetch_killed_at_any_moment_leaves_nothing_half_stored(cli: Cli, server: WebServer,
                                                                signed: Signed) -> None:
    url = serve_signed(server, signed)
    server.routes[ACI_PATH] = Reply(signed.body, headers={"ETag": ETAG}, pace=0.02)  # a slow download
    store = cli.data_dir / "store"
    for delay in (0.1, 0.3, 0.6, 1.0, 1.5):  # before, during and after the download and the import
        p = cli.popen("fetch", url, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(delay)
        p.send_signal(signal.SIGKILL)
        p.wait()
        listed = cli("image", "list", "--no-legend", "--full").out  # opening the store cleans a dead import
        assert listed == "" or signed.id in listed, listed
        assert not (store / "tmp").is_dir() or os.listdir(store / "tmp") == [], f"leftovers after {delay}s"
        if (store / "remotes").is_dir() and os.listdir(store / "remotes"):
            assert signed.id in listed, f"a URL recorded for an image not stored, after {delay}s"
        cli("image", "rm", signed.short)
    r = cli("fetch", url)
    assert (r.code, r.out) == (0, signed.short + "\n"), r
