"""Mount propagation of host volumes on the real kernel: ``propagation=rslave`` (the CRI's
HostToContainer) shows the app a mount the host makes below the source after the app started;
``propagation=rshared`` (Bidirectional) shows the host a mount the app makes there; a source on
a private mount is refused as containerd refuses it. The test's sources are bind mounts of
their own made shared; no mount is left on the host afterwards."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from tests.integration.pods import Cli, make_image, mounts_under

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="needs root: pods and mounts")


def sh(*argv: str) -> None:
    subprocess.run(argv, check=True, capture_output=True)


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Cli, str, Path]]:
    base = tmp_path_factory.mktemp("propagation")
    cli = Cli(base / "data")
    r = cli("fetch", make_image(base / "busybox", cmd=("sh", "-c", "true")))
    assert r.code == 0, r
    yield cli, r.out.strip().splitlines()[-1], base
    cli.collect_all()
    assert mounts_under(base) == []


@pytest.fixture()
def shared_source(env: tuple[Cli, str, Path], tmp_path: Path) -> Iterator[Path]:
    """A directory on a shared mount of its own (as a kubelet's root dir is); at the end the
    test's pods are collected and every mount below it is gone."""
    src = tmp_path / "src"
    (src / "sub").mkdir(parents=True)
    sh("mount", "--bind", str(src), str(src))
    try:
        sh("mount", "--make-shared", str(src))
        yield src
    finally:
        env[0].collect_all()
        for point in mounts_under(src):
            subprocess.run(["umount", "-l", point], check=False)
    assert mounts_under(tmp_path) == []


def running(cli: Cli, image: str, *args: str) -> str:
    r = cli("run", "--net=none", "--detach", *args, image, "--name=app", "--exec=/bin/sleep", "--", "1000")
    assert r.code == 0, r
    return r.out.strip()


def test_a_host_mount_made_after_the_app_started_shows_in_an_rslave_volume(
        env: tuple[Cli, str, Path], shared_source: Path) -> None:
    cli, image, _ = env
    uuid = running(cli, image, "--insecure-options=capabilities,seccomp",  # an app that may mount
                   f"--volume=v,kind=host,source={shared_source},propagation=rslave", "--mount=volume=v,target=/mnt")
    sh("mount", "-t", "tmpfs", "-o", "size=1m", "late", str(shared_source / "sub"))
    (shared_source / "sub" / "hello").write_text("from the host\n")
    r = cli("enter", uuid, "/bin/cat", "/mnt/sub/hello")
    assert (r.code, r.out) == (0, "from the host\n"), r
    # a slave: what the app mounts there stays in the app
    r = cli("enter", uuid, "/bin/sh", "-c", "mkdir -p /mnt/sub/in && mount -t tmpfs -o size=1m inner /mnt/sub/in")
    assert r.code == 0, r
    assert sorted(mounts_under(shared_source)) == [str(shared_source), str(shared_source / "sub")]
    assert cli("enter", uuid, "/bin/umount", "/mnt/sub/in").code == 0
    sh("umount", str(shared_source / "sub"))  # the host's unmount reaches the app as its mount did
    r = cli("enter", uuid, "/bin/sh", "-c", "ls /mnt/sub")
    assert r.code == 0 and "hello" not in r.out, r


def test_a_private_volume_sees_no_later_host_mount(env: tuple[Cli, str, Path], shared_source: Path) -> None:
    cli, image, _ = env
    uuid = running(cli, image, f"--volume=v,kind=host,source={shared_source}", "--mount=volume=v,target=/mnt")
    sh("mount", "-t", "tmpfs", "-o", "size=1m", "late", str(shared_source / "sub"))
    (shared_source / "sub" / "hello").write_text("from the host\n")
    r = cli("enter", uuid, "/bin/sh", "-c", "ls /mnt/sub")
    assert r.code == 0 and "hello" not in r.out, r
    sh("umount", str(shared_source / "sub"))


def test_a_mount_the_app_makes_in_an_rshared_volume_shows_on_the_host(
        env: tuple[Cli, str, Path], shared_source: Path) -> None:
    cli, image, _ = env
    uuid = running(cli, image, "--insecure-options=capabilities,seccomp",  # an app that may mount
                   f"--volume=v,kind=host,source={shared_source},propagation=rshared", "--mount=volume=v,target=/mnt")
    r = cli("enter", uuid, "/bin/sh", "-c", "mount -t tmpfs -o size=1m inner /mnt/sub && echo made > /mnt/sub/f")
    assert r.code == 0, r
    assert str(shared_source / "sub") in mounts_under(shared_source)
    assert (shared_source / "sub" / "f").read_text() == "made\n"
    sh("umount", str(shared_source / "sub"))  # the host takes it back, in the app too
    r = cli("enter", uuid, "/bin/sh", "-c", "ls /mnt/sub")
    assert r.code == 0 and "f" not in r.out.split(), r
    cli("stop", "--force", uuid)
    cli.wait_exited(uuid)
    assert mounts_under(shared_source) == [str(shared_source)]


def test_a_source_on_a_private_mount_is_refused_before_anything_is_made(
        env: tuple[Cli, str, Path], tmp_path: Path) -> None:
    cli, image, _ = env
    before = cli("list", "--no-legend").out
    r = cli("run", "--net=none", f"--volume=v,kind=host,source={tmp_path},propagation=rshared",
            "--mount=volume=v,target=/mnt", image, "--exec=/bin/true")
    assert r.code == 254 and f"{tmp_path} is on " in r.err and "which is private" in r.err, r
    assert len(r.err.strip().splitlines()) == 1
    assert cli("list", "--no-legend").out == before
