"""Deep trees from a hostile app or image never wedge gc, rm or the store, and a pod gc cannot
delete is reported while the others go.

An unprivileged app's 1200-deep dir in its /tmp once made every `gc` and `rm` raise
RecursionError; a 1500-deep image took minutes to import and then broke every store command.
Each test builds its hostile input itself and checks the host is untouched and everything still
works afterwards.
"""

from __future__ import annotations

import json
import os
import subprocess
import tarfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from tests.integration.pods import Cli, make_image, mounts_under
from tests.support.images import Entry, build_oci_layout

from pyrkt.kernel.trees import remove_tree

DIG = "cd /tmp; i=0; while [ $i -lt 1200 ]; do mkdir d; cd d; i=$((i+1)); done; "
IMAGE_DEPTH = 1500


@pytest.fixture
def base(tmp_path: Path) -> Iterator[Path]:
    yield tmp_path
    for name in os.listdir(tmp_path):  # pytest's own clean-up of tmp dirs recurses
        remove_tree(tmp_path / name)


def uuids_in(cli: Cli, *dirs: str) -> set[str]:
    pods = cli.data_dir / "pods"
    return {u for d in dirs if (pods / d).is_dir() for u in os.listdir(pods / d)}


def run_saved(cli: Cli, image: str, save: Path, *args: str) -> str:
    r = cli("run", "--net=none", f"--uuid-file-save={save}", image, *args, timeout=120)
    assert r.code == 0, r
    return save.read_text().strip()


def test_an_unprivileged_apps_1200_deep_dir_is_removed_by_rm_and_gc_with_the_other_pods(base: Path) -> None:
    cli = Cli(base / "data")
    image = cli("fetch", make_image(base / "busybox")).out.strip().splitlines()[-1]
    host = base / "host"
    host.mkdir()
    (host / "precious").write_text("keep me")
    # the app links out to a host path (meaningless inside, followed by a careless rm -rf) and
    # leaves its deep tree unsearchable
    hostile = ("--user=1000", "--exec=/bin/sh", "--", "-c",
               f"ln -s {host} /tmp/host; {DIG} cd /tmp; chmod 000 d; echo dug $i")
    try:
        for_rm = run_saved(cli, image, base / "a.uuid", *hostile)
        for_gc = run_saved(cli, image, base / "b.uuid", *hostile)
        normal = run_saved(cli, image, base / "c.uuid", "--exec=/bin/true")

        r = cli("rm", for_rm)
        assert (r.code, r.out, r.err) == (0, f'"{for_rm}"\n', ""), r
        r = cli("gc", "--grace-period=0s")
        assert r.code == 0, r
        assert sorted(r.out.splitlines()) == sorted(f'Garbage collecting pod "{u}"' for u in (for_gc, normal)), r
        assert "not removed" not in r.err, r
        assert uuids_in(cli, "run", "exited-garbage", "garbage") == set()
        assert (host / "precious").read_text() == "keep me" and os.listdir(host) == ["precious"]
        # and pods still run and go afterwards
        again = run_saved(cli, image, base / "d.uuid", "--exec=/bin/true")
        assert cli("rm", again).code == 0
    finally:
        cli.collect_all()
    assert mounts_under(base) == []


def test_gc_reports_a_pod_it_cannot_delete_on_one_line_collects_the_others_and_exits_0(base: Path) -> None:
    cli = Cli(base / "data")
    image = cli("fetch", make_image(base / "busybox")).out.strip().splitlines()[-1]
    marked = run_saved(cli, image, base / "b.uuid", "--exec=/bin/true")
    assert cli("gc", "--mark-only").code == 0  # -> exited-garbage/
    exited = run_saved(cli, image, base / "c.uuid", "--exec=/bin/true")
    prepared = cli("prepare", "--quiet", image, "--exec=/bin/true").out.strip()
    stuck = cli.data_dir / "pods" / "exited-garbage"
    subprocess.run(["chattr", "+i", str(stuck)], check=True)  # nothing can leave or enter it
    try:
        r = cli("gc", "--grace-period=0s", "--expire-prepared=0s")
        assert (r.code, r.out) == (0, f'Garbage collecting pod "{prepared}"\n'), r
        failed = [line for line in r.err.splitlines() if "not removed" in line]
        assert sorted(failed) == sorted([
            f'pyrkt: pod "{exited}" not removed: cannot move {cli.data_dir}/pods/run/{exited} to exited-garbage/: '
            "Operation not permitted",
            f'pyrkt: pod "{marked}" not removed: remove: {stuck}/{marked}: Operation not permitted',
        ]), r
    finally:
        subprocess.run(["chattr", "-i", str(stuck)], check=True)
    r = cli("gc", "--grace-period=0s")
    assert r.code == 0 and sorted(r.out.splitlines()) == sorted(
        f'Garbage collecting pod "{u}"' for u in (marked, exited)), r
    assert uuids_in(cli, "run", "prepared", "exited-garbage", "garbage") == set()


def deep_image_layout(dest: Path, depth: int, *, last: str = "") -> str:
    """An OCI layout whose one extra layer is ``depth`` nested dirs with a file at the bottom,
    then a file named ``last`` if given; returns the bottom file's path in the image."""
    spec: dict[str, bytes | Entry | None] = {}
    path = "deep"
    for _ in range(depth):
        spec[path + "/"] = Entry.dir()
        path += "/d"
    bottom = path.rsplit("/", 1)[0] + "/bottom"
    spec[bottom] = b"at the bottom\n"
    if last:
        spec[last] = b"x"
    build_oci_layout(dest, tag="1", extra_layers=[spec])
    return "/" + bottom


def store_leftovers(cli: Cli) -> list[str]:
    store = cli.data_dir / "store"
    found = [f"tmp/{n}" for n in os.listdir(store / "tmp")] if (store / "tmp").is_dir() else []
    layers = store / "layers" / "sha256"
    return found + ([f"layers/{n}" for n in os.listdir(layers)] if layers.is_dir() else [])


def test_a_1500_deep_image_imports_runs_exports_renders_verifies_and_goes(base: Path) -> None:
    cli = Cli(base / "data")
    bottom = deep_image_layout(base / "deep", IMAGE_DEPTH)
    start = time.monotonic()
    r = cli("fetch", f"oci:{base / 'deep'}:1", timeout=120)
    took = time.monotonic() - start
    assert r.code == 0, r
    print(f"fetching a {IMAGE_DEPTH}-deep image took {took:.1f}s")  # minutes before
    image_id = r.out.strip().splitlines()[-1]
    try:
        r = cli("image", "list", "--no-legend", "--fields=name")
        assert (r.code, r.out.split()) == (0, ["deep:1"]), r
        r = cli("run", "--net=none", "deep:1", "--exec=/bin/cat", "--", bottom, timeout=120)
        assert (r.code, r.out) == (0, "at the bottom\n"), r

        r = cli("image", "export", "deep:1", str(base / "deep.aci"), timeout=120)
        assert r.code == 0, r
        with tarfile.open(base / "deep.aci") as tf:
            member = tf.extractfile("rootfs" + bottom)
            assert member is not None and member.read() == b"at the bottom\n"
        for cmd in ("extract", "render"):
            r = cli("image", cmd, "deep:1", str(base / cmd), timeout=120)
            assert r.code == 0, r
            assert (base / cmd / ("rootfs" + bottom)).read_bytes() == b"at the bottom\n"
        r = cli("image", "render", "--rootfs-only", "--overwrite", "deep:1", str(base / "render"), timeout=120)
        assert r.code == 0 and (base / "render" / bottom[1:]).is_file(), r
        r = cli("image", "verify", "deep:1", timeout=120)
        assert r.code == 0 and r.out.rstrip().endswith('("deep:1"): OK'), r

        assert cli("gc", "--grace-period=0s").code == 0
        r = cli("image", "rm", "deep:1")
        assert r.code == 0 and "1 image(s) successfully removed" in r.out, r
        r = cli("image", "gc", "--grace-period=0s")
        assert r.code == 0, r
        assert store_leftovers(cli) == []
        assert json.loads(cli("image", "list", "--format=json").out) == []
        # the store still imports and runs
        again = cli("fetch", f"oci:{base / 'deep'}:1", timeout=120)
        assert again.code == 0 and again.out.strip().splitlines()[-1] == image_id, again
    finally:
        cli.collect_all()


def test_a_deep_tree_an_interrupted_import_left_in_store_tmp_is_cleaned_by_the_next_command(base: Path) -> None:
    cli = Cli(base / "data")
    image = make_image(base / "busybox", cmd=("sh", "-c", "echo ok"))
    assert cli("fetch", image).code == 0
    # what a SIGKILL during the unpack of a deep layer leaves: an import dir in store/tmp,
    # here 3000 levels deep (past PATH_MAX), one of them without any permission
    session = cli.data_dir / "store" / "tmp" / "import-999999-dead"
    session.mkdir(parents=True)
    fd = os.open(session, os.O_RDONLY | os.O_DIRECTORY)
    try:
        for level in range(3000):
            os.mkdir("d", dir_fd=fd)
            child = os.open("d", os.O_RDONLY | os.O_DIRECTORY, dir_fd=fd)
            os.close(fd)
            fd = child
            if level == 1500:
                os.fchmod(fd, 0o000)
    finally:
        os.close(fd)
    r = cli("image", "list", "--no-legend", "--fields=name")
    assert (r.code, r.err) == (0, ""), r
    assert os.listdir(cli.data_dir / "store" / "tmp") == []
    r = cli("run", "--net=none", "busybox:latest", timeout=120)
    assert (r.code, r.out) == (0, "ok\n"), r
    cli.collect_all()


def test_an_import_refused_after_unpacking_a_deep_tree_leaves_nothing_in_the_store(base: Path) -> None:
    cli = Cli(base / "data")
    deep_image_layout(base / "bad", IMAGE_DEPTH, last="deep/../../etc/passwd")
    r = cli("fetch", f"oci:{base / 'bad'}:1", timeout=120)
    assert r.code == 254 and len(r.err.splitlines()) == 1 and "'..'" in r.err, r
    assert store_leftovers(cli) == []
    assert json.loads(cli("image", "list", "--format=json").out) == []
