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
from tests.integration.pods import Cli, mounts_under, shared_mount
from tests.integration.test_limits import env

__all__ = ["env"]  # test_limits' fixture: a data dir with the busybox test image
pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="needs root: pods and mounts")


def sh(*argv: str) -> None:
    subprocess.run(argv, check=True, capture_output=True)


@pytest.fixture()
def shared_source(env: tuple[Cli, str], tmp_path: Path) -> Iterator[Path]:
    """A directory on a shared mount of its own; the test's pods are collected before its
    mounts go."""
    with shared_mount(tmp_path / "src") as src:
        try:
            yield src
        finally:
            env[0].collect_all()


def running(cli: Cli, image: str, *args: str) -> str:
    r = cli("run", "--net=none", "--detach", *args, image, "--name=app", "--exec=/bin/sleep", "--", "1000")
    assert r.code == 0, r
    return r.out.strip()


def test_a_host_mount_made_after_the_app_started_shows_in_an_rslave_volume(
        env: tuple[Cli, str], shared_source: Path) -> None:
    cli, image = env
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


def test_a_private_volume_sees_no_later_host_mount(env: tuple[Cli, str], shared_source: Path) -> None:
    cli, image = env
    uuid = running(cli, image, f"--volume=v,kind=host,source={shared_source}", "--mount=volume=v,target=/mnt")
    sh("mount", "-t", "tmpfs", "-o", "size=1m", "late", str(shared_source / "sub"))
    (shared_source / "sub" / "hello").write_text("from the host\n")
    r = cli("enter", uuid, "/bin/sh", "-c", "ls /mnt/sub")
    assert r.code == 0 and "hello" not in r.out, r
    sh("umount", str(shared_source / "sub"))


def test_a_mount_the_app_makes_in_an_rshared_volume_shows_on_the_host(
        env: tuple[Cli, str], shared_source: Path) -> None:
    cli, image = env
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


def refused(cli: Cli, *args: str) -> str:
    """The one line of a run that failed with 254 and left no pod."""
    before = cli("list", "--no-legend").out
    r = cli("run", *args, "--mount=volume=v,target=/mnt", "--exec=/bin/true")
    assert r.code == 254 and len(r.err.strip().splitlines()) == 1, r
    assert cli("list", "--no-legend").out == before
    return r.err.strip()


def test_a_source_on_a_private_mount_is_refused_before_anything_is_made(
        env: tuple[Cli, str], tmp_path: Path) -> None:
    cli, image = env
    err = refused(cli, "--net=none", f"--volume=v,kind=host,source={tmp_path},propagation=rshared", image)
    assert f"{tmp_path} is on " in err and "which is private" in err, err


def test_the_fly_flavor_refuses_a_propagating_volume_before_anything_is_made(
        env: tuple[Cli, str], shared_source: Path) -> None:
    cli, image = env
    err = refused(cli, "--stage1-name=fly", f"--volume=v,kind=host,source={shared_source},propagation=rslave", image)
    assert err == "pyrkt: volume v: propagation=rslave works with the default flavor only"
