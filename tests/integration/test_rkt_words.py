"""The words rkt's users and their scripts grep for, written as their command lines: trust's
``Added … key`` lines, rkt's tab-padded tables, ``--debug``'s image lines, and the quoted
names in rkt's errors (``bad os "freebsd"``, ``no matches found for "…"``)."""

from __future__ import annotations

import os
import re
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from tests.integration.conftest import GpgKeys
from tests.integration.pods import Cli
from tests.support.aci import aci_manifest, build_aci

pytestmark = [
    pytest.mark.privileged,
    pytest.mark.skipif(os.geteuid() != 0, reason="needs root: runs pods"),
]

UUID = r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}"
FULL_TIME = r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d(\.\d{1,3})? [+-]\d{4} \S+"


@pytest.fixture
def cli(tmp_path: Path) -> Iterator[Cli]:
    c = Cli(tmp_path / "data", [f"--local-config={tmp_path / 'etc'}", f"--system-config={tmp_path / 'lib'}"])
    yield c
    c.collect_all()


@pytest.fixture
def aci(tmp_path: Path) -> Path:
    path = tmp_path / "app.aci"
    build_aci(path, aci_manifest("example.com/app", version="1.30.0", exec_=("/bin/true",)))
    return path


@pytest.mark.skipif(shutil.which("gpg") is None, reason="needs gpg")
def test_trust_prints_rkts_added_key_lines(cli: Cli, tmp_path: Path, gpg_keys: GpgKeys) -> None:
    fpr, pub, _ = gpg_keys["alice"]
    r = cli("trust", "--root", "--skip-fingerprint-review", str(pub))
    root_key = tmp_path / "etc" / "trustedkeys" / "root.d" / fpr
    assert r.code == 0 and r.out.splitlines()[-1] == f'Added root key at "{root_key}"', r
    r = cli("trust", "--prefix=example.com/app", str(pub), input="yes\n")
    prefix_key = tmp_path / "etc" / "trustedkeys" / "prefix.d" / "example.com" / "app" / fpr
    assert r.code == 0 and r.out.splitlines()[-1] == f'Added key for prefix "example.com/app" at "{prefix_key}"', r
    assert root_key.is_file() and prefix_key.is_file()


def test_list_and_image_list_full_are_tab_padded_with_rkts_columns(cli: Cli, aci: Path) -> None:
    r = cli("--insecure-options=image", "run", "--net=none", str(aci), timeout=120)
    assert r.code == 0, r
    header, row = cli("list", "--full").out.splitlines()
    assert re.split(r"\t+", header) == ["UUID", "APP", "IMAGE NAME", "IMAGE ID", "STATE", "CREATED", "STARTED",
                                        "NETWORKS"]
    assert " " not in row.split("\t")[0] and "  " not in row  # tabs between columns, never spaces
    uuid, app, name, image_id, state, created, started, nets = re.split(r"\t+", row)
    assert re.fullmatch(UUID, uuid) and (app, name, state, nets) == ("app", "example.com/app:1.30.0", "exited", "")
    assert re.fullmatch(r"sha512-[0-9a-f]{12}", image_id) and re.fullmatch(FULL_TIME, created), row
    assert re.fullmatch(FULL_TIME, started), row
    short = cli("list", "--no-legend").out
    assert short.split("\t")[0] == uuid[:8]  # `rkt list --no-legend | cut -f1`

    header, row = cli("image", "list", "--full").out.splitlines()
    assert re.split(r"\t+", header) == ["ID", "NAME", "SIZE", "IMPORT TIME", "LAST USED"]
    full_id, name, size, imported, used = re.split(r"\t+", row)
    assert full_id.startswith(image_id) and len(full_id) > 19 and name == "example.com/app:1.30.0"
    assert size.isdigit() and re.fullmatch(FULL_TIME, imported) and re.fullmatch(FULL_TIME, used), row
    assert cli("image", "list", "--no-legend", "--fields=name,id").out == f"example.com/app:1.30.0\t{image_id}\n"


def test_debug_says_where_each_image_came_from(cli: Cli, aci: Path) -> None:
    r = cli("--debug", "--insecure-options=image", "fetch", str(aci))
    assert r.code == 0 and f"image: using image from file {aci}\n" in r.err, r
    r = cli("--debug", "run", "--net=none", "example.com/app:1.30.0", timeout=120)
    assert r.code == 0 and "image: using image from local store for image name example.com/app:1.30.0\n" in r.err, r
    image_id = cli("fetch", "--pull-policy=never", "example.com/app:1.30.0").out.strip()
    r = cli("--debug", "run", "--net=none", image_id, timeout=120)
    assert r.code == 0 and re.search(rf"^image: using image from the store with hash {image_id}[0-9a-f]+$",
                                     r.err, re.M), r
    r = cli("run", "--net=none", "example.com/app:1.30.0", timeout=120)
    assert r.code == 0 and "using image" not in r.err, r  # only with --debug


def test_errors_quote_names_as_rkt_does(cli: Cli, tmp_path: Path) -> None:
    freebsd = tmp_path / "freebsd.aci"
    manifest = aci_manifest("example.com/bsd")
    manifest["labels"] = [{"name": "os", "value": "freebsd"}, {"name": "arch", "value": "amd64"}]
    build_aci(freebsd, manifest)
    r = cli("--insecure-options=image", "run", "--net=none", str(freebsd))
    assert r.code == 254 and 'bad os "freebsd"' in r.err and r.err.count("\n") == 1, r
    r = cli("status", "0000")
    assert (r.code, r.err) == (254, 'pyrkt: no matches found for "0000"\n'), r
    r = cli("image", "cat-manifest", "example.com/nosuch:1.0")
    assert (r.code, r.err) == (254, 'pyrkt: image "example.com/nosuch:1.0" not found in the store\n'), r


def test_stop_enter_and_run_prepared_say_what_rkt_says(cli: Cli, aci: Path) -> None:
    uuid = cli("--insecure-options=image", "prepare", str(aci)).out.strip()
    assert re.fullmatch(UUID, uuid)
    r = cli("stop", uuid)
    assert r.code == 254 and f'pyrkt: pod "{uuid}" is not running\n' in r.err, r
    r = cli("enter", uuid, "/bin/true")
    assert (r.code, r.err) == (254, f'pyrkt: pod "{uuid}" isn\'t currently running\n'), r
    assert cli("run-prepared", "--net=none", uuid, timeout=120).code == 0
    r = cli("run-prepared", "--net=none", uuid)
    assert r.code == 254 and f'pod "{uuid}" is not prepared' in r.err, r
    r = cli("stop", uuid)
    assert (r.code, r.out) == (0, f'pod "{uuid}" is already stopped\n'), r  # as rkt: not an error


def test_enter_without_a_command_names_the_shell_it_assumes_in_quotes(cli: Cli, tmp_path: Path) -> None:
    sleeper = tmp_path / "sleeper.aci"
    build_aci(sleeper, aci_manifest("example.com/sleeper", exec_=("/bin/sleep", "60")))
    uuid = cli("--insecure-options=image", "run", "--net=none", "--detach", str(sleeper), timeout=120).out.strip()
    try:
        r = cli("enter", uuid)  # stdin is /dev/null: the shell exits at once
        assert r.code == 0 and 'pyrkt: no command specified, assuming "/bin/sh"\n' in r.err, r
    finally:
        cli("stop", "--force", uuid)
