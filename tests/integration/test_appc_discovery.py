"""appc discovery through the real CLI against a real HTTPS server on 127.0.0.1:443 (names such
as ``localhost/app`` have no port): discovery pages, signed ACIs and public keys made with real
gpg, fetch and run by name, the walk up the name, rkt's label errors, ``--trust-keys-from-https``,
``trust --prefix`` without key files and the pull policies."""

from __future__ import annotations

import base64
import json
import os
import re
import select
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from tests.integration.pods import Cli
from tests.support.aci import (
    aci_manifest,
    appc_arch,
    build_aci,
    build_files_aci,
    dependency,
    new_key,
    sign,
    stop_agent,
)
from tests.support.webserver import Reply, WebServer, port_free

pytestmark = [
    pytest.mark.skipif(os.geteuid() != 0, reason="needs root: binds port 443 and runs pods"),
    pytest.mark.skipif(shutil.which("gpg") is None, reason="needs gpg"),
]

ARCH = appc_arch()
TEMPLATE = "https://localhost/images/{name}-{version}-{os}-{arch}.{ext}"


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[WebServer]:
    if not port_free(443):
        pytest.skip("port 443 on 127.0.0.1 is taken: discovery needs a host name on the standard port")
    ws = WebServer(tmp_path_factory.mktemp("tls"), port=443)
    yield ws
    ws.close()


@pytest.fixture(scope="module")
def key(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path, Path]]:
    home = tmp_path_factory.mktemp("gnupg")
    fpr, pub = new_key(home, "discovery@example.com")
    yield fpr, pub, home
    stop_agent(home)


class Site:
    """What the server publishes for one test: discovery pages, signed ACIs, the public key."""

    def __init__(self, server: WebServer, root: Path, key: tuple[str, Path, Path]) -> None:
        self.server, self.root = server, root
        self.fpr, self.pub, self.home = key
        server.routes.clear()
        server.requests.clear()
        server.routes["/pubkeys.asc"] = Reply(self.pub.read_bytes())

    def page(self, path: str, *tags: tuple[str, str]) -> None:
        meta = "".join(f'<meta name="{name}" content="{content}">\n' for name, content in tags)
        self.server.routes[f"{path}?ac-discovery=1"] = Reply(f"<html><head>\n{meta}</head></html>\n".encode())

    def aci(self, name: str, version: str, url_path: str | None = None, **app: object) -> str:
        """Build and sign ``name`` ``version``; serve it (and its .asc) at ``url_path``; its id."""
        url_path = url_path or f"/images/{name}-{version}-linux-{ARCH}.aci"
        aci = self.root / f"{name.replace('/', '_')}-{version}.aci"
        image_id = build_aci(aci, aci_manifest(name, version=version, **app))  # type: ignore[arg-type]
        sig = sign(aci, self.home, self.fpr)
        self.server.routes[url_path] = Reply(aci.read_bytes())
        self.server.routes[url_path + ".asc"] = Reply(sig.read_bytes())
        return image_id

    def asked(self) -> list[str]:
        return self.server.paths()


@pytest.fixture
def site(server: WebServer, tmp_path: Path, key: tuple[str, Path, Path]) -> Site:
    return Site(server, tmp_path, key)


@pytest.fixture
def cli(tmp_path: Path, server: WebServer) -> Iterator[Cli]:
    c = Cli(tmp_path / "data", [f"--local-config={tmp_path / 'etc'}", f"--system-config={tmp_path / 'lib'}"],
            env=server.env())
    yield c
    c.collect_all()


def trusted_key(tmp_path: Path, prefix: str, fpr: str) -> Path:
    return tmp_path / "etc" / "trustedkeys" / "prefix.d" / prefix / fpr


def short(image_id: str) -> str:
    return image_id[:len("sha512-") + 32]


def test_fetch_by_name_discovers_the_signed_aci_and_run_uses_the_store(cli: Cli, site: Site) -> None:
    site.page("/app", ("ac-discovery", f"localhost/app {TEMPLATE}"))
    old = site.aci("localhost/app", "1.0.0")
    new = site.aci("localhost/app", "2.0.0", exec_=("/bin/echo", "hello from 2.0.0"))
    assert cli("trust", "--prefix=localhost/app", "--skip-fingerprint-review", str(site.pub)).code == 0

    r = cli("fetch", "localhost/app:1.0.0")
    assert (r.code, r.out) == (0, short(old) + "\n"), r
    assert site.asked() == ["/app?ac-discovery=1", f"/images/localhost/app-1.0.0-linux-{ARCH}.aci",
                            f"/images/localhost/app-1.0.0-linux-{ARCH}.aci.asc"]
    r = cli("fetch", f"localhost/app:2.0.0,os=linux,arch={ARCH}")
    assert (r.code, r.out) == (0, short(new) + "\n"), r
    assert "localhost/app:1.0.0" in cli("image", "list", "--no-legend").out

    site.server.requests.clear()
    r = cli("run", "--net=none", "localhost/app", timeout=120)  # pull policy new: the newest stored, no network
    assert r.code == 0 and "hello from 2.0.0" in r.out, r
    r = cli("run", "--net=none", "localhost/app:1.0.0,os=linux", timeout=120)
    assert r.code == 0 and "hello from aci" in r.out, r
    assert site.asked() == []


def test_discovery_walks_up_the_name_to_the_page_that_knows_it(cli: Cli, site: Site) -> None:
    site.page("/org", ("ac-discovery", f"localhost/org {TEMPLATE}"))
    image_id = site.aci("localhost/org/app", "1.0.0")
    assert cli("trust", "--prefix=localhost/org", "--skip-fingerprint-review", str(site.pub)).code == 0
    r = cli("fetch", "--full", "localhost/org/app:1.0.0")
    assert (r.code, r.out) == (0, image_id + "\n"), r
    assert site.asked()[:2] == ["/org/app?ac-discovery=1", "/org?ac-discovery=1"]


def test_discovery_failure_names_the_image_and_every_url_tried(cli: Cli, site: Site) -> None:
    site.page("/", ("ac-discovery", f"other.org {TEMPLATE}"))
    r = cli("--insecure-options=image", "fetch", "localhost/org/app:1.0")
    assert r.code == 254 and r.err.count("\n") == 1, r
    assert f"discovery failed for 'localhost/org/app:1.0,os=linux,arch={ARCH}'" in r.err
    for url in ("https://localhost/org/app?ac-discovery=1: answered 404", "https://localhost/org?ac-discovery=1",
                "https://localhost?ac-discovery=1: no ac-discovery meta tag for localhost/org/app"):
        assert url in r.err, r
    r = cli("--insecure-options=image,http", "fetch", "localhost/org/app:1.0")  # http after each https failure
    assert r.code == 254 and r.err.count("\n") == 1, r
    assert re.findall(r"https?://localhost[^ ;:]*", r.err) == [
        "https://localhost/org/app?ac-discovery=1", "http://localhost/org/app?ac-discovery=1",
        "https://localhost/org?ac-discovery=1", "http://localhost/org?ac-discovery=1",
        "https://localhost?ac-discovery=1"], r  # the last one answered a page: no http asked
    assert "https://localhost?ac-discovery=1: no ac-discovery meta tag for localhost/org/app" in r.err, r
    assert cli("image", "list", "--no-legend").out == ""


@pytest.mark.parametrize(("name", "message"), [
    ("localhost/app:2.0", 'requested value for label "version": "2.0" differs from fetched aci label value: "1.2.0"'),
    ("localhost/app:latest", 'requested value for label "version": "latest" differs from fetched aci label value: '
                             '"1.2.0"'),
    ("localhost/app,unexistinglabel=bla", 'requested label "unexistinglabel" not provided by the image manifest'),
])
def test_different_discovery_labels_fail_as_rkt(cli: Cli, site: Site, name: str, message: str) -> None:
    site.page("/app", ("ac-discovery", "localhost/app https://localhost/images/app.{ext}"))
    site.aci("localhost/app", "1.2.0", url_path="/images/app.aci")
    assert cli("trust", "--prefix=localhost/app", "--skip-fingerprint-review", str(site.pub)).code == 0
    r = cli("fetch", name)
    assert r.code == 254 and message in r.err and r.err.count("\n") == 1, r
    assert cli("image", "list", "--no-legend").out == ""


def test_trust_keys_from_https_trusts_the_discovered_key_once(cli: Cli, site: Site, tmp_path: Path) -> None:
    site.page("/app", ("ac-discovery", f"localhost/app {TEMPLATE}"),
              ("ac-discovery-pubkeys", "localhost/app https://localhost/pubkeys.asc"))
    first = site.aci("localhost/app", "1.0.0")
    second = site.aci("localhost/app", "2.0.0")
    r = cli("--trust-keys-from-https", "fetch", "localhost/app:1.0.0")
    assert (r.code, r.out) == (0, short(first) + "\n"), r
    spaced = " ".join(site.fpr.upper()[i:i + 4] for i in range(0, 40, 4))
    assert 'prefix: "localhost/app"' in r.err and spaced[:24] in r.err.replace("  ", " "), r
    assert "pyrkt test <discovery@example.com>" in r.err
    assert 'Trusting "https://localhost/pubkeys.asc" for prefix "localhost/app" without fingerprint review.' in r.err
    assert trusted_key(tmp_path, "localhost/app", site.fpr).read_bytes() == site.pub.read_bytes()
    assert site.asked().count("/pubkeys.asc") == 1

    site.server.requests.clear()
    r = cli("fetch", "localhost/app:2.0.0")  # the key is trusted now: nothing asked of the user or the server
    assert (r.code, r.out) == (0, short(second) + "\n"), r
    assert "/pubkeys.asc" not in site.asked() and "prefix:" not in r.err


def test_without_trust_keys_from_https_an_untrusted_name_is_refused(cli: Cli, site: Site, tmp_path: Path) -> None:
    site.page("/app", ("ac-discovery", f"localhost/app {TEMPLATE}"),
              ("ac-discovery-pubkeys", "localhost/app https://localhost/pubkeys.asc"))
    site.aci("localhost/app", "1.0.0")
    r = cli("fetch", "localhost/app:1.0.0")
    assert r.code == 254 and r.err.count("\n") == 1, r
    assert "no keys are trusted for 'localhost/app'" in r.err
    assert "pyrkt trust --prefix=localhost/app" in r.err and "--trust-keys-from-https" in r.err
    assert not (tmp_path / "etc" / "trustedkeys").exists()
    assert cli("image", "list", "--no-legend").out == ""
    assert not any(p.startswith("/images/") for p in site.asked())


def test_a_name_without_trusted_or_discovered_keys_is_refused(cli: Cli, site: Site) -> None:
    site.page("/app", ("ac-discovery", f"localhost/app {TEMPLATE}"))
    site.aci("localhost/app", "1.0.0")
    r = cli("--trust-keys-from-https", "fetch", "localhost/app:1.0.0")
    assert r.code == 254 and r.err.count("\n") == 1, r
    assert "no keys are trusted for 'localhost/app' and discovery found none" in r.err
    assert "https://localhost?ac-discovery=1: answered 404" in r.err
    assert cli("image", "list", "--no-legend").out == ""
    r = cli("--insecure-options=image", "fetch", "localhost/app:1.0.0")  # no signature check: no keys needed
    assert r.code == 0, r


def test_trust_prefix_without_key_files_discovers_the_keys(cli: Cli, site: Site, tmp_path: Path) -> None:
    site.page("/", ("ac-discovery-pubkeys", "localhost/app https://localhost/pubkeys.asc"))
    r = cli("trust", "--prefix=localhost/app", input="no\n")
    assert r.code == 254 and "not trusted: the review was declined" in r.err, r
    assert site.fpr in r.out and "https://localhost/pubkeys.asc" in r.out
    assert not trusted_key(tmp_path, "localhost/app", site.fpr).exists()
    assert site.asked() == ["/app?ac-discovery=1", "/?ac-discovery=1", "/pubkeys.asc"]

    r = cli("trust", "--prefix=localhost/app", input="yes\n")
    assert r.code == 0 and r.out.splitlines()[-1] == (
        f'Added key for prefix "localhost/app" at "{trusted_key(tmp_path, "localhost/app", site.fpr)}"'), r
    assert trusted_key(tmp_path, "localhost/app", site.fpr).read_bytes() == site.pub.read_bytes()

    r = cli("trust", "--prefix=localhost/app/sub", "--skip-fingerprint-review")
    assert r.code == 0 and trusted_key(tmp_path, "localhost/app/sub", site.fpr).is_file(), r
    r = cli("trust", "--prefix=localhost/other", "--skip-fingerprint-review")
    assert r.code == 254 and r.err.count("\n") == 1, r
    assert "discovery of keys for prefix 'localhost/other' failed" in r.err
    assert "https://localhost?ac-discovery=1: no ac-discovery-pubkeys meta tag for localhost/other" in r.err


def test_trust_takes_a_key_url_as_rkt_not_a_file_of_that_name(cli: Cli, site: Site, tmp_path: Path) -> None:
    r = cli("trust", "--prefix=localhost/app", "--skip-fingerprint-review", "https://localhost/pubkeys.asc")
    assert r.code == 0 and trusted_key(tmp_path, "localhost/app", site.fpr).read_bytes() == site.pub.read_bytes(), r
    r = cli("trust", "--root", "--skip-fingerprint-review", "https://localhost/pubkeys.asc")
    assert r.code == 0 and (tmp_path / "etc" / "trustedkeys" / "root.d" / site.fpr).is_file(), r
    r = cli("trust", "--prefix=localhost/app", "--skip-fingerprint-review", "http://localhost/pubkeys.asc")
    assert (r.code, r.err.count("\n")) == (254, 1) and "over plain http" in r.err, r
    r = cli("trust", "--prefix=localhost/app", "--skip-fingerprint-review", "https://localhost/nokey.asc")
    assert (r.code, r.err) == (254, "pyrkt: cannot fetch the key https://localhost/nokey.asc: answered 404\n"), r
    r = cli("trust", "--prefix=localhost/app", "--skip-fingerprint-review", "")
    assert (r.code, r.err) == (254, "pyrkt: an empty key file name\n"), r


def test_pull_policies_new_and_never_stay_off_the_network_and_update_asks_again(cli: Cli, site: Site) -> None:
    site.page("/app", ("ac-discovery", f"localhost/app {TEMPLATE}"))
    image_id = site.aci("localhost/app", "1.0.0")
    assert cli("trust", "--prefix=localhost/app", "--skip-fingerprint-review", str(site.pub)).code == 0
    r = cli("fetch", "--pull-policy=never", "localhost/app:1.0.0")
    assert r.code == 254 and "not found in the store (pull policy never)" in r.err, r
    assert site.asked() == []
    assert cli("fetch", "--pull-policy=new", "localhost/app:1.0.0").out == short(image_id) + "\n"
    assert site.asked()[0] == "/app?ac-discovery=1"

    site.server.requests.clear()
    for policy in ("new", "never"):
        r = cli("fetch", f"--pull-policy={policy}", "localhost/app:1.0.0")
        assert (r.code, r.out) == (0, short(image_id) + "\n"), r
    assert site.asked() == []
    r = cli("fetch", "localhost/app:1.0.0")  # update: discovery again
    assert (r.code, r.out) == (0, short(image_id) + "\n"), r
    assert site.asked()[0] == "/app?ac-discovery=1"


def _on_a_terminal(cli: Cli, answer: str, *args: str) -> tuple[int, str, str]:
    """Run pyrkt with stdin and stderr on a pty; answer the first question; (code, stdout, terminal)."""
    master, slave = os.openpty()
    proc = subprocess.Popen(cli.argv(*args), stdin=slave, stdout=subprocess.PIPE, stderr=slave, env=cli.env,
                            text=True)
    os.close(slave)
    seen = b""
    deadline = time.monotonic() + 60
    try:
        while b"(yes/no)?" not in seen and time.monotonic() < deadline and proc.poll() is None:
            if select.select([master], [], [], 0.5)[0]:
                seen += os.read(master, 4096)
        os.write(master, answer.encode() + b"\n")
        out, _ = proc.communicate(timeout=60)
        while select.select([master], [], [], 0.2)[0]:
            try:
                chunk = os.read(master, 4096)
            except OSError:  # EIO: the other side is closed
                break
            if not chunk:
                break
            seen += chunk
    finally:
        os.close(master)
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    return proc.returncode, out, seen.decode(errors="replace")


def test_on_a_terminal_the_discovered_key_is_shown_and_asked_about(cli: Cli, site: Site, tmp_path: Path) -> None:
    site.page("/app", ("ac-discovery", f"localhost/app {TEMPLATE}"),
              ("ac-discovery-pubkeys", "localhost/app https://localhost/pubkeys.asc"))
    image_id = site.aci("localhost/app", "1.0.0")
    code, out, terminal = _on_a_terminal(cli, "no", "fetch", "localhost/app:1.0.0")
    assert code == 254 and "pyrkt test <discovery@example.com>" in terminal, terminal
    assert "the discovered keys were declined" in terminal
    assert not trusted_key(tmp_path, "localhost/app", site.fpr).exists()
    code, out, terminal = _on_a_terminal(cli, "yes", "fetch", "localhost/app:1.0.0")
    assert (code, out) == (0, short(image_id) + "\n"), terminal
    assert "after fingerprint review" in terminal
    assert trusted_key(tmp_path, "localhost/app", site.fpr).is_file()


def test_a_401_on_discovery_is_answered_with_the_auth_config_of_the_host(cli: Cli, site: Site,
                                                                          tmp_path: Path) -> None:
    page = Reply(f'<meta name="ac-discovery" content="localhost/app {TEMPLATE}">'.encode())
    expected = "Basic " + base64.b64encode(b"alice:s3cret").decode()
    site.server.routes["/app?ac-discovery=1"] = Reply(handler=lambda req: page if req.headers.get(
        "Authorization") == expected else Reply(b"who are you?", 401, {"WWW-Authenticate": 'Basic realm="x"'}))
    site.aci("localhost/app", "1.0.0")
    r = cli("--insecure-options=image", "fetch", "localhost/app:1.0.0")
    assert r.code == 254 and "https://localhost/app?ac-discovery=1: answered 401" in r.err, r
    auth_d = tmp_path / "etc" / "auth.d"
    auth_d.mkdir(parents=True)
    (auth_d / "localhost.json").write_text(json.dumps({
        "rktKind": "auth", "rktVersion": "v1", "domains": ["localhost"], "type": "basic",
        "credentials": {"user": "alice", "password": "s3cret"}}))
    r = cli("--insecure-options=image", "fetch", "localhost/app:1.0.0")
    assert r.code == 0, r
    assert [r.headers.get("Authorization") for r in site.server.requests if r.path == "/app?ac-discovery=1"] == \
        [None, None, expected]


def test_a_dependency_missing_from_the_store_is_discovered_and_fetched(cli: Cli, site: Site, tmp_path: Path) -> None:
    site.page("/base", ("ac-discovery", f"localhost/base {TEMPLATE}"))
    base_id = site.aci("localhost/base", "1.0.0")
    top = tmp_path / "top.aci"
    build_files_aci(top, "localhost/top", {"etc/top": b"from top\n"},
                    dependencies=[dependency("localhost/base", "1.0.0")], exec_=("/bin/cat", "/etc/top"))
    sign(top, site.home, site.fpr)
    assert cli("trust", "--prefix=localhost", "--skip-fingerprint-review", str(site.pub)).code == 0

    r = cli("fetch", str(top))
    assert r.code == 0, r
    assert f"/images/localhost/base-1.0.0-linux-{ARCH}.aci.asc" in site.asked()
    listed = cli("image", "list", "--no-legend", "--full").out
    assert base_id in listed and "localhost/top" in listed
    r = cli("run", "--net=none", "localhost/top:1.0.0", timeout=120)  # /bin/cat comes from the dependency
    assert (r.code, r.out) == (0, "from top\n"), r

    site.server.requests.clear()
    assert cli("fetch", str(top)).code == 0  # the dependency is stored now: not fetched again
    assert site.asked() == []


def test_a_dependency_discovery_cannot_find_is_one_line_naming_it(cli: Cli, site: Site, tmp_path: Path) -> None:
    top = tmp_path / "top.aci"
    build_files_aci(top, "localhost/top", {"etc/top": b""}, dependencies=[dependency("localhost/nosuch", "1.0.0")])
    r = cli("--insecure-options=image", "fetch", str(top))
    assert r.code == 254 and r.err.count("\n") == 1, r
    assert r.err.startswith("pyrkt: dependency localhost/nosuch:1.0.0: discovery failed for "), r
    assert cli("image", "list", "--no-legend").out == ""
