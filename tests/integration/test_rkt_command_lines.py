"""rkt users' command lines through the installed CLI: ACIs found by rkt's image names in every
image subcommand, a command's flags before its name, rkt's deprecated --store-only/--no-store,
names appc accepts though its documented pattern does not (``shorthash--8``), and ACIs without
an os label (fetched as rkt does; refused to run an app as rkt's stage0 does; fine as a
dependency)."""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

import pytest
from tests.integration import test_aci_dependencies as aci_tests
from tests.integration.pods import Cli, Result
from tests.support.aci import aci_manifest, appc_arch, build_aci, build_files_aci, dependency

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="needs root: runs pods")

INSECURE = aci_tests.INSECURE
cli = aci_tests.cli  # the fixture: a data dir of the test's own, collected and checked for mounts after
fetch = aci_tests.fetch


def one_line_254(r: Result, text: str) -> None:
    assert r.code == 254 and r.err.count("\n") == 1 and text in r.err, r


def test_image_subcommands_find_an_aci_by_its_rkt_name(cli: Cli, tmp_path: Path) -> None:
    build_aci(tmp_path / "foo-1.30.aci", aci_manifest("coreos.com/foo", version="1.30.0"))
    old = fetch(cli, tmp_path / "foo-1.30.aci")

    r = cli("image", "cat-manifest", "coreos.com/foo")
    assert r.code == 0, r
    manifest = json.loads(r.out)
    assert manifest["name"] == "coreos.com/foo"
    assert {"name": "version", "value": "1.30.0"} in manifest["labels"]
    assert cli("image", "cat-manifest", f"coreos.com/foo:1.30.0,os=linux,arch={appc_arch()}").code == 0
    one_line_254(cli("image", "cat-manifest", "coreos.com/foo:2.0.0"), "not found in the store")
    one_line_254(cli("image", "cat-manifest", "coreos.com/foo,channel=beta"), "not found in the store")

    r = cli("image", "export", "coreos.com/foo", str(tmp_path / "out.aci"))
    assert r.code == 0, r
    assert (tmp_path / "out.aci").stat().st_size > 0
    r = cli("image", "extract", "coreos.com/foo", str(tmp_path / "x"))
    assert r.code == 0, r
    assert (tmp_path / "x" / "rootfs" / "bin" / "sh").exists()
    r = cli("image", "render", "coreos.com/foo:1.30.0", str(tmp_path / "y"))
    assert r.code == 0, r
    assert (tmp_path / "y" / "rootfs" / "bin" / "sh").exists()

    # No version asked: any version, the newest import (rkt's store); a version asked: that one.
    build_aci(tmp_path / "foo-1.31.aci", aci_manifest("coreos.com/foo", version="1.31.0", exec_=("/bin/true",)))
    new = fetch(cli, tmp_path / "foo-1.31.aci")
    labels = json.loads(cli("image", "cat-manifest", "coreos.com/foo").out)["labels"]
    assert {"name": "version", "value": "1.31.0"} in labels

    r = cli("image", "rm", "coreos.com/foo:1.30.0")
    assert r.code == 0, r
    assert old in r.out and new not in r.out
    listed = cli("image", "list", "--no-legend", "--full").out
    assert new in listed and old not in listed
    one_line_254(cli("image", "rm", "coreos.com/foo:1.30.0"), "not found in the store")
    assert cli("image", "rm", new[:20]).code == 0  # and by id prefix
    assert cli("image", "list", "--no-legend").out == ""


def test_a_commands_flags_may_come_before_its_name(cli: Cli, tmp_path: Path) -> None:
    build_aci(tmp_path / "foo.aci", aci_manifest("coreos.com/foo", version="1.30.0"))
    image_id = fetch(cli, tmp_path / "foo.aci")

    r = cli("--net=none", "run", "coreos.com/foo", timeout=120)  # pyrkt --dir=… --net=none run NAME
    assert r.code == 0, r
    assert "hello from aci" in r.out
    r = cli("--pull-policy=never", "fetch", "coreos.com/foo:1.30.0")
    assert r.code == 0, r
    assert image_id.startswith(r.out.strip())
    r = cli("--pretty-print=false", "image", "cat-manifest", "coreos.com/foo")
    assert r.code == 0 and r.out.count("\n") == 1, r
    # per-app flags after an image keep their meaning
    r = cli("--net=none", "run", "coreos.com/foo", "--exec=/bin/sh", "--", "-c", "echo $((6*7))", timeout=120)
    assert r.code == 0 and "42" in r.out, r
    one_line_254(cli("--no-such-flag", "list"), "unknown flag: --no-such-flag")


def test_rkts_deprecated_store_flags_set_the_pull_policy(cli: Cli, tmp_path: Path) -> None:
    build_aci(tmp_path / "foo.aci", aci_manifest("coreos.com/foo", version="1.30.0"))
    image_id = fetch(cli, tmp_path / "foo.aci")

    r = cli("fetch", "--store-only", "coreos.com/foo")
    assert r.code == 0 and image_id.startswith(r.out.strip()), r
    assert r.err == "pyrkt: Flag --store-only has been deprecated, please use --pull-policy=never\n"
    r = cli("--store-only", "fetch", "coreos.com/bar:1.0.0")  # never: no discovery, no network
    assert r.code == 254 and "not found in the store (pull policy never)" in r.err, r
    r = cli("fetch", "--store-only", "--no-store", "coreos.com/foo")
    assert r.code == 254 and r.err.splitlines()[-1] == "pyrkt: both --store-only and --no-store specified", r
    r = cli("--store-only", "--net=none", "run", "coreos.com/foo", timeout=120)
    assert r.code == 0 and "hello from aci" in r.out, r
    r = cli("--net=none", "run", "coreos.com/foo", "--cap-retain=CAP_NET_ADMIN", timeout=120)
    assert r.code == 0 and "hello from aci" in r.out, r
    assert "Flag --cap-retain has been deprecated, use --caps-retain instead" in r.err, r


def test_identifiers_with_separators_side_by_side_are_appcs(cli: Cli, tmp_path: Path) -> None:
    build_aci(tmp_path / "s.aci", aci_manifest("example.com/shorthash--8", version="1.0.0",
                                              exec_=("/bin/sh", "-c", "echo ran")))
    fetch(cli, tmp_path / "s.aci")
    r = cli("--net=none", "run", "example.com/shorthash--8", timeout=120)
    assert r.code == 0 and "ran" in r.out, r
    for extra, app_name in (([], "shorthash--8"), (["--name=build--2"], "build--2")):  # rkt's default name, as given
        r = cli("--net=none", "run", "--detach", "example.com/shorthash--8", *extra,
                "--exec=/bin/sleep", "--", "30", timeout=120)
        assert r.code == 0, r
        uuid = r.out.strip().splitlines()[-1]
        manifest = json.loads(cli("cat-manifest", uuid).out)
        assert [a["name"] for a in manifest["apps"]] == [app_name]
        assert cli("stop", uuid).code == 0


def test_an_aci_without_os_label_fetches_and_serves_as_a_dependency(cli: Cli, tmp_path: Path) -> None:
    noarch = aci_manifest("example.com/scripts", version="1.0.0")
    noarch["labels"] = [{"name": "version", "value": "1.0.0"}]  # no os, no arch: appc's noarch image
    build_aci(tmp_path / "scripts.aci", noarch)
    base = fetch(cli, tmp_path / "scripts.aci")
    assert re.fullmatch(r"sha512-[0-9a-f]{64}", base)
    assert "example.com/scripts:1.0.0" in cli("image", "list", "--no-legend").out

    build_files_aci(tmp_path / "app.aci", "example.com/app", {"/greeting": b"hi from the app\n"},
                    dependencies=[dependency("example.com/scripts", "1.0.0")],
                    exec_=("/bin/cat", "/greeting"))
    fetch(cli, tmp_path / "app.aci")
    r = cli("--net=none", "run", "example.com/app", timeout=120)
    assert r.code == 0 and "hi from the app" in r.out, r

    # rkt's stage0 runs an app only from an image that names its os and arch
    r = cli("--net=none", "run", "example.com/scripts", timeout=120)
    one_line_254(r, "missing os label in the image manifest")
