"""ACI files through the real CLI: fetch ids, run, `pyrkt trust` and rkt's TestTrust sequence
with real gpg keys made by the test."""

from __future__ import annotations

import os
import re
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from tests.integration.conftest import GpgKeys
from tests.integration.pods import Cli
from tests.support.aci import aci_manifest, build_aci, sign

pytestmark = [
    pytest.mark.skipif(os.geteuid() != 0, reason="needs root: runs pods"),
    pytest.mark.skipif(shutil.which("gpg") is None, reason="needs gpg"),
]


@pytest.fixture
def cli(tmp_path: Path) -> Iterator[Cli]:
    c = Cli(tmp_path / "data", [f"--local-config={tmp_path / 'etc'}", f"--system-config={tmp_path / 'lib'}"])
    yield c
    c.collect_all()


def test_fetch_prints_rkts_ids_and_run_runs_the_aci(cli: Cli, tmp_path: Path) -> None:
    aci = tmp_path / "app.aci"
    full = build_aci(aci, compression="gzip")
    r = cli("--insecure-options=image", "fetch", str(aci))
    assert r.code == 0, r
    assert r.out == full[:len("sha512-") + 32] + "\n"
    r = cli("--insecure-options=image", "fetch", "--full", str(aci))
    assert r.out == full + "\n" and re.fullmatch(r"sha512-[0-9a-f]{64}\n", r.out)
    listed = cli("image", "list", "--no-legend")
    assert full[:19] in listed.out and "example.com/app:1.0.0" in listed.out
    r = cli("run", "--net=none", full[:20], timeout=120)
    assert r.code == 0, r
    assert "hello from aci" in r.out
    r = cli("--insecure-options=image", "run", "--net=none", str(aci), "--exec=/bin/sh", "--", "-c", "echo $((6*7))",
            timeout=120)
    assert r.code == 0, r
    assert "42" in r.out


def test_bad_aci_is_one_line_254_and_the_store_unchanged(cli: Cli, tmp_path: Path) -> None:
    aci = tmp_path / "bad.aci"
    build_aci(aci, aci_manifest(name="Bad Name"))
    r = cli("--insecure-options=image", "fetch", str(aci))
    assert r.code == 254
    assert r.err.strip().count("\n") == 0 and "is not a valid AC Identifier" in r.err
    assert cli("image", "list", "--no-legend").out == ""


def test_trust_sequence_as_rkt(cli: Cli, tmp_path: Path, gpg_keys: GpgKeys) -> None:
    fpr, pub, home = gpg_keys["alice"]
    bob_fpr, bob_pub, _ = gpg_keys["bob"]
    app, other = tmp_path / "app.aci", tmp_path / "other.aci"
    build_aci(app, aci_manifest("example.com/app"))
    build_aci(other, aci_manifest("example.org/other"))

    r = cli("fetch", str(app))
    assert r.code == 254 and "signature verification failed: no signature" in r.err, r  # unsigned
    sign(app, home, fpr)
    sign(other, home, fpr)
    r = cli("fetch", str(app))
    assert r.code == 254 and "no keys are trusted for 'example.com/app'" in r.err, r  # untrusted

    r = cli("trust", "--prefix=example.com/wrong", "--skip-fingerprint-review", str(pub))
    assert r.code == 0, r
    assert cli("fetch", str(app)).code == 254  # wrong prefix

    r = cli("trust", "--prefix=example.com/app", "--skip-fingerprint-review", str(bob_pub))
    assert r.code == 0 and bob_fpr in r.out, r
    r = cli("fetch", str(app))
    assert r.code == 254 and "signature verification failed for" in r.err, r  # wrong key
    assert cli("image", "list", "--no-legend").out == ""

    r = cli("trust", "--prefix=example.com/app", str(pub), input="no\n")
    assert r.code == 254 and "not trusted: the review was declined" in r.err, r
    r = cli("trust", "--prefix=example.com/app", str(pub), input="yes\n")
    assert r.code == 0 and fpr in r.out, r
    assert (tmp_path / "etc" / "trustedkeys" / "prefix.d" / "example.com" / "app" / fpr).is_file()
    assert cli("fetch", str(app)).code == 0  # right prefix
    r = cli("fetch", str(other))
    assert r.code == 254 and "no keys are trusted for 'example.org/other'" in r.err, r  # unrelated prefix

    r = cli("trust", "--root", str(pub))  # no stdin to confirm with
    assert r.code == 254 and "stdin is closed" in r.err, r
    r = cli("trust", "--root", "--skip-fingerprint-review", str(pub))
    assert r.code == 0, r
    assert (tmp_path / "etc" / "trustedkeys" / "root.d" / fpr).is_file()
    assert cli("fetch", str(app)).code == 0
    assert cli("fetch", str(other)).code == 0  # --root: both


def test_signature_flag_names_the_signature_file(cli: Cli, tmp_path: Path,
                                                  gpg_keys: GpgKeys) -> None:
    fpr, pub, home = gpg_keys["alice"]
    aci = tmp_path / "app.aci"
    build_aci(aci)
    sig = sign(aci, home, fpr, dest=tmp_path / "sig.asc")
    assert cli("trust", "--root", "--skip-fingerprint-review", str(pub)).code == 0
    assert cli("fetch", str(aci)).code == 254
    r = cli("fetch", str(aci), f"--signature={sig}")
    assert r.code == 0, r
    r = cli("run", "--net=none", str(aci), f"--signature={sig}", timeout=120)
    assert r.code == 0 and "hello from aci" in r.out, r


def pod_file(cli: Cli, uuid: str, app: str, path: str) -> str:
    """A file the app wrote, from its overlay's upper dir (after the pod has exited)."""
    return (cli.pod_dir(uuid) / "overlay" / app / "upper" / path).read_text()


def test_event_handlers_run_before_and_after_the_app_as_root(cli: Cli, tmp_path: Path) -> None:
    """rkt's TestPreStart: the handlers run as root in the app's root, also for a non-root app."""
    aci = tmp_path / "eh.aci"
    build_aci(aci, aci_manifest("example.com/eh", exec_=("/bin/sh", "-c", "cat /pre; id -u"), eventHandlers=[
        {"name": "pre-start", "exec": ["/bin/sh", "-c", "id -u > /pre"]},
        {"name": "post-stop", "exec": ["/bin/sh", "-c", "id -u > /post"]},
    ], user="1000", group="1000"))
    for user in ([], ["--user=1000"]):
        uuid_file = tmp_path / "uuid"
        r = cli("--insecure-options=image", "run", "--net=none", f"--uuid-file-save={uuid_file}", str(aci), *user,
                timeout=120)
        assert (r.code, r.out) == (0, "0\n1000\n"), r  # pre-start ran first, as root; the app as 1000
        uuid = uuid_file.read_text().strip()
        assert pod_file(cli, uuid, "eh", "post") == "0\n"


def test_the_fly_flavor_names_the_event_handlers_it_does_not_run(cli: Cli, tmp_path: Path) -> None:
    """rkt's stage1-fly runs no event handler; pyrkt's fly says so rather than drop them silently."""
    aci = tmp_path / "eh.aci"
    build_aci(aci, aci_manifest("example.com/eh", exec_=("/bin/sh", "-c", "test -e /pre || echo no-pre"),
                                eventHandlers=[{"name": "pre-start", "exec": ["/bin/sh", "-c", "echo > /pre"]}]))
    r = cli("--insecure-options=image", "run", "--stage1-name=fly", str(aci), timeout=120)
    assert (r.code, r.out) == (0, "no-pre\n"), r
    assert "warning: app eh: the pre-start event handler is not run by the fly flavor" in r.err, r


def test_a_failing_pre_start_handler_stops_the_app_with_one_line(cli: Cli, tmp_path: Path) -> None:
    aci = tmp_path / "eh.aci"
    build_aci(aci, aci_manifest("example.com/eh", exec_=("/bin/echo", "never"), eventHandlers=[
        {"name": "pre-start", "exec": ["/bin/sh", "-c", "exit 3"]}]))
    r = cli("--insecure-options=image", "run", "--net=none", str(aci), timeout=120)
    assert r.code == 254 and "never" not in r.out, r
    assert r.err == "pyrkt: app eh: pre-start event handler /bin/sh exited with 3\n", r


def test_stop_runs_the_post_stop_handler(cli: Cli, tmp_path: Path) -> None:
    aci = tmp_path / "eh.aci"
    build_aci(aci, aci_manifest("example.com/eh", exec_=("/bin/sleep", "600"), eventHandlers=[
        {"name": "post-stop", "exec": ["/bin/sh", "-c", "echo stopped > /post"]}]))
    uuid = cli("--insecure-options=image", "run", "--detach", "--net=none", str(aci), timeout=120).out.strip()
    assert cli("stop", uuid).code == 0
    assert cli("status", "--wait=10s", uuid).code == 0
    assert pod_file(cli, uuid, "eh", "post") == "stopped\n"
