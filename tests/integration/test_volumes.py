"""Volumes and mounts end to end, as a user runs them (rkt-behaviour §3.7): two apps sharing an
empty volume, a host volume that outlives its pod, read-only volumes and roots, a Docker image's
`VOLUME` filled from the image (pushed to the real registry with skopeo), hostile images whose
mount point is a link out of their root, gc after SIGKILL, and the one-line refusals."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from tests.integration.pods import Cli, make_image, mounts_under
from tests.support.images import Entry, build_oci_layout


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Cli, str, Path]]:
    base = tmp_path_factory.mktemp("volumes")
    cli = Cli(base / "data")
    image = cli("fetch", make_image(base / "busybox", cmd=("sh", "-c", "true"))).out.strip().splitlines()[-1]
    yield cli, image, base
    cli.collect_all()
    assert mounts_under(base) == []


def sh(cli: Cli, *args: str, timeout: float = 60) -> tuple[int, str, str]:
    r = cli("run", "--net=none", *args, timeout=timeout)
    return r.code, r.out, r.err


def one_line_error(r: tuple[int, str, str]) -> str:
    code, _, err = r
    assert code == 254, r
    lines = [ln for ln in err.strip().splitlines() if not ln.startswith("warning: ")]  # notices may come first
    assert len(lines) == 1 and lines[0].startswith("pyrkt: "), r
    return lines[0]


def test_two_apps_of_a_pod_share_an_empty_volume(env: tuple[Cli, str, Path]) -> None:
    cli, image, _ = env
    code, out, err = sh(cli, "--volume=shared,kind=empty,mode=0777", "--mount=volume=shared,target=/shared",
                        image, "--name=writer", "--exec=/bin/sh", "--", "-c", "echo from-writer > /shared/note", "---",
                        image, "--name=reader", "--exec=/bin/sh", "--", "-c",
                        "for i in $(seq 50); do [ -s /shared/note ] && break; sleep 0.1; done; cat /shared/note; "
                        "stat -c %a /shared")
    assert code == 0, err
    assert out.splitlines()[-2:] == ["from-writer", "777"]


def test_a_mount_after_an_image_is_that_apps_only(env: tuple[Cli, str, Path]) -> None:
    cli, image, _ = env
    code, out, err = sh(cli, "--volume=v,kind=empty", image, "--name=with", "--mount=volume=v,target=/v",
                        "--exec=/bin/sh", "--", "-c", "grep -c ' /v ' /proc/self/mounts", "---",
                        image, "--name=without", "--exec=/bin/sh", "--", "-c", "ls -d /v 2>&1 || echo none")
    assert code == 0, err
    assert "1" in out.split() and "none" in out.split()


def test_data_in_a_host_volume_outlives_the_pod_and_gc(env: tuple[Cli, str, Path]) -> None:
    cli, image, base = env
    host = base / "host-vol"
    host.mkdir()
    (host / "before").write_text("host file\n")
    save = base / "host.uuid"
    code, out, err = sh(cli, f"--uuid-file-save={save}", f"--volume=h,kind=host,source={host}", image,
                        "--mount=volume=h,target=/srv/h", "--exec=/bin/sh", "--", "-c",
                        "cat /srv/h/before; echo kept > /srv/h/after")
    assert code == 0, err
    assert out == "host file\n"
    uuid = save.read_text().strip()
    assert cli.status(uuid)["mounts-busybox"] == f"{host}:/srv/h:(read_only:false)"
    [pod] = [p for p in json.loads(cli("list", "--format=json").out) if p["name"] == uuid]
    assert pod["apps"][0]["mounts"] == [{"name": "h", "container_path": "/srv/h", "host_path": str(host),
                                         "read_only": False}]
    r = cli("gc", "--grace-period=0s")
    assert r.code == 0, r
    assert (host / "after").read_text() == "kept\n" and (host / "before").exists()


def test_read_only_volume_and_root_refuse_writes(env: tuple[Cli, str, Path]) -> None:
    cli, image, base = env
    host = base / "ro-vol"
    host.mkdir()
    code, out, err = sh(cli, f"--volume=ro,kind=host,source={host},readOnly=true", "--volume=rw,kind=empty",
                        image, "--readonly-rootfs", "--mount=volume=ro,target=/ro", "--mount=volume=rw,target=/rw",
                        "--exec=/bin/sh", "--", "-c",
                        "for f in /ro/x /rw/x /x /tmp/x /etc/hostname /dev/shm/x; do "
                        "touch $f 2>/dev/null && echo $f:ok || echo $f:refused; done")
    assert code == 0, err
    assert out.split() == ["/ro/x:refused", "/rw/x:ok", "/x:refused", "/tmp/x:refused", "/etc/hostname:refused",
                           "/dev/shm/x:ok"]
    assert os.listdir(host) == []


def test_a_recursive_read_only_volume_is_read_only_in_its_sub_mounts_too(env: tuple[Cli, str, Path]) -> None:
    cli, image, base = env
    host = base / "rec-vol"
    (host / "sub").mkdir(parents=True)
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(host / "sub")], check=True)
    try:
        code, out, err = sh(cli, f"--volume=r,kind=host,source={host},readOnly=true", image,
                            "--mount=volume=r,target=/r", "--exec=/bin/sh", "--", "-c",
                            "grep -c ' /r/sub tmpfs' /proc/self/mounts; touch /r/sub/x 2>/dev/null || echo refused")
        assert code == 0, err
        assert out.split() == ["1", "refused"]
        code, out, err = sh(cli, f"--volume=r,kind=host,source={host},recursive=false", image,
                            "--mount=volume=r,target=/r", "--exec=/bin/sh", "--", "-c",
                            "grep -c ' /r/sub ' /proc/self/mounts || true")
        assert code == 0, err
        assert out.split() == ["0"]
    finally:
        subprocess.run(["umount", str(host / "sub")], check=True)


def test_fly_binds_volumes_too(env: tuple[Cli, str, Path]) -> None:
    cli, image, base = env
    host = base / "fly-vol"
    host.mkdir()
    r = cli("run", "--stage1-name=fly", f"--volume=h,kind=host,source={host}", "--volume=e,kind=empty", image,
            "--mount=volume=h,target=/h", "--mount=volume=e,target=/e", "--exec=/bin/sh", "--", "-c",
            "echo fly > /h/f; touch /e/x && echo e-ok")
    assert r.code == 0, r
    assert r.out.split() == ["e-ok"]
    assert (host / "f").read_text() == "fly\n"


def test_mtab_links_to_proc_self_mounts(env: tuple[Cli, str, Path]) -> None:
    """rkt's TestMtabExistence."""
    cli, image, _ = env
    code, out, err = sh(cli, image, "--exec=/bin/sh", "--", "-c", "readlink /etc/mtab; grep -c ' / ' /etc/mtab")
    assert code == 0, err
    assert out.split() == ["../proc/self/mounts", "1"]


def test_hostile_mount_points_mount_nothing_on_the_host(env: tuple[Cli, str, Path]) -> None:
    cli, _, base = env
    canary = base / "canary"
    canary.mkdir()
    evil = {"to-host": Entry.symlink(str(canary)), "up": Entry.symlink("../../../../../.."),
            "slash": Entry.symlink("/"), "etc-link": Entry.symlink("/etc")}
    layout = make_image(base / "hostile", cmd=("sh", "-c", "true"), volumes=("/to-host/v", "/etc-link/v"),
                        extra_layers=(evil,))
    image = cli("fetch", layout).out.strip().splitlines()[-1]
    code, out, err = sh(cli, image, "--exec=/bin/sh", "--", "-c",
                        "grep -E ' /(tmp/[^ ]*canary/v|etc/v) ' /proc/self/mounts | cut -d' ' -f2")
    assert code == 0, err
    assert sorted(out.split())[0] == "/etc/v" and str(canary) + "/v" in out  # inside the app's root
    assert os.listdir(canary) == [] and not os.path.exists("/etc/v")
    for target in ("/up", "/slash"):
        r = sh(cli, "--volume=x,kind=empty", image, f"--mount=volume=x,target={target}", "--exec=/bin/true")
        assert "resolves to the root of the app" in one_line_error(r)
    host_points = [line.split()[4] for line in open("/proc/self/mountinfo")]
    assert not [p for p in host_points if p.startswith(str(canary)) or p in ("/etc/v", "/v")]


def test_a_docker_volume_is_filled_from_the_image_through_the_registry(env: tuple[Cli, str, Path]) -> None:
    """rkt's TestDockerVolumeSemantics: the image's files at a VOLUME path are in the volume."""
    from tests.integration.test_registry import REGISTRY_BIN, Registry

    if not os.path.exists(REGISTRY_BIN):
        pytest.skip("needs docker-registry and skopeo (make test-deps)")
    cli, image, base = env
    layout = build_oci_layout(base / "docker-vol", cmd=("sh", "-c", "cat /data/seed; ls -ld /data | cut -c1-10; "
                                                       "echo new > /data/new"),
                              volumes=("/data",), extra_layers=({"data": Entry.dir(0o750), "data/seed": b"seeded\n"},))
    registry = Registry(base / "registry")
    try:
        ref = registry.push(layout, "tests/dockervol")
        save = base / "dockervol.uuid"
        r = cli("--insecure-options=http", "run", "--net=none", f"--uuid-file-save={save}", ref)
    finally:
        registry.stop()
    assert r.code == 0, r
    assert r.out.split() == ["seeded", "drwxr-x---"]
    assert 'warning: no volume specified for mount point "volume-data", implicitly creating an "empty" volume' in r.err
    pod = cli.pod_dir(save.read_text().strip())
    assert (pod / "sharedVolumes" / "dockervol-volume-data" / "new").read_text() == "new\n"
    manifest = json.loads(cli("cat-manifest", save.read_text().strip()).out)
    assert {"name": "dockervol-volume-data", "kind": "empty"} in manifest["volumes"]
    assert ["dockervol-volume-data"] == [a["value"] for a in manifest["annotations"]
                                         if a["name"] == "pyrkt.io/prepopulated-volumes"]


def test_gc_after_a_sigkilled_pod_with_volumes_leaves_nothing(env: tuple[Cli, str, Path]) -> None:
    cli, image, base = env
    host = base / "kill-vol"
    host.mkdir()
    r = cli("run", "--net=none", "--detach", f"--volume=h,kind=host,source={host}", "--volume=e,kind=empty",
            "--mount=volume=h,target=/h", "--mount=volume=e,target=/e", image, "--exec=/bin/sleep", "--", "1000")
    assert r.code == 0, r
    uuid = r.out.strip()
    pod = cli.pod_dir(uuid)
    assert (pod / "sharedVolumes" / "e").is_dir()
    os.kill(int((pod / "pid").read_text()), signal.SIGKILL)
    deadline = time.monotonic() + 10
    while cli.status(uuid)["state"] == "running" and time.monotonic() < deadline:
        time.sleep(0.05)
    assert cli("gc", "--grace-period=0s").code == 0
    assert not pod.exists()
    assert mounts_under(cli.data_dir) == [] and os.listdir(host) == []


def pods_on_disk(cli: Cli) -> list[str]:
    root = cli.data_dir / "pods"
    return sorted(f"{d}/{p}" for d in os.listdir(root) for p in os.listdir(root / d)) if root.is_dir() else []


def test_bad_volumes_and_mounts_fail_in_one_line_leaving_nothing_prepared(env: tuple[Cli, str, Path]) -> None:
    cli, image, base = env
    cli("gc", "--grace-period=0s")
    before = pods_on_disk(cli)
    cases = [
        ((f"--volume=h,kind=host,source={base}/no-such-dir", image), f"volume h: source {base}/no-such-dir does not exist"),
        (("--volume=v,kind=empty", "--volume=v,kind=empty", image), "volume 'v' is defined more than once"),
        (("--mount=volume=nope,target=/x", image), "no volume named 'nope' for its mount at /x"),
        ((image, "--mount=volume=nope,target=/x"), "no volume named 'nope' for its mount at /x"),
        (("--volume=v,kind=floppy", image), "unrecognized volume kind 'floppy'"),
        (("--mount=volume=v", image), "want volume=NAME,target=PATH"),
        (("--volume=v,kind=empty", "--mount=volume=v,target=/sys", image),
         "target=/sys: mount target /sys is /sys, which pyrkt mounts in the app itself"),
        (("--volume=v,kind=empty", image, "--mount=volume=v,target=/sys/kernel/x"),
         "mount target /sys/kernel/x is below /sys"),
        (("--volume=v,kind=empty", "--mount=volume=v,target=//proc", image), "mount target //proc is /proc"),
    ]
    for args, message in cases:
        for command in ("run", "prepare"):
            r = cli(command, *(("--net=none",) if command == "run" else ()), *args)
            assert message in one_line_error((r.code, r.out, r.err)), (command, args)
    assert pods_on_disk(cli) == before


def test_an_image_volume_takes_the_pods_volume_of_its_name_and_prepare_keeps_it(env: tuple[Cli, str, Path]) -> None:
    cli, _, base = env
    host = base / "named-vol"
    host.mkdir()
    (host / "from-host").write_text("host\n")
    image = cli("fetch", make_image(base / "named", cmd=("sh", "-c", "cat /var/lib/db/from-host; touch /var/lib/db/x"),
                                    volumes=("/var/lib/db",))).out.strip().splitlines()[-1]
    r = cli("prepare", "--quiet", f"--volume=volume-var-lib-db,kind=host,source={host}", image)
    assert r.code == 0, r
    uuid = r.out.strip()
    assert cli("status", uuid).out.splitlines()[-1] == f"mounts-named={host}:/var/lib/db:(read_only:false)"
    r = cli("run-prepared", "--net=none", uuid)
    assert r.code == 0 and r.out == "host\n", r
    assert (host / "x").exists()


@pytest.mark.skipif(not os.path.exists("/dev/net/tun"), reason="needs /dev/net/tun")
def test_a_device_node_as_a_host_volume_is_bound_below_dev_and_allowed(env: tuple[Cli, str, Path]) -> None:
    """rkt's block-devices doc: a host volume whose source is a device node is usable."""
    cli, image, _ = env
    script = "exec 3<>/dev/net/tun && echo opened; ls /dev/net; exec 4<>/dev/null && echo null-ok"
    code, out, err = sh(cli, "--volume=tun,kind=host,source=/dev/net/tun", image,
                        "--mount=volume=tun,target=/dev/net/tun", "--exec=/bin/sh", "--", "-c", script)
    assert code == 0, err
    assert out.split() == ["opened", "tun", "null-ok"]
