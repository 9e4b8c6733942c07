"""Devices of apps added to a running mutable pod, on the real kernel: `app add --device` (at its
host path, or at another path in the app) and a device volume (`--mnt-volume` of a device node)
give that app the device, made in its /dev and allowed in its own devices cgroup; another app of
the same pod, started with the pod's list, still gets EPERM, and so do `enter` and `app exec`
into it, while into the device's app they see what the app sees.

The device is a loop device the test attaches to a file of its own (read and written without
touching anything of the host's); the image ships a node of every loop device's numbers, so an
app that was not given the device has a node to try."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from tests.integration.pods import Cli, loop_device, make_image, mounts_under, pod_cgroups
from tests.support.images import Entry

pytestmark = pytest.mark.skipif(os.geteuid() != 0 or not os.path.exists("/dev/loop-control"),
                                reason="needs root and loop devices")

EPERM = "Operation not permitted"
DEVICES_V1 = Path("/sys/fs/cgroup/devices")
needs_v1 = pytest.mark.skipif(not (DEVICES_V1 / "devices.list").exists(), reason="no cgroup v1 devices controller")
CONTENT = b"hello-device"


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Cli, str]]:
    base = tmp_path_factory.mktemp("app-devices")
    cli = Cli(base / "data")
    nodes = {f"/nodes/loop{n}": Entry("block", devmajor=7, devminor=n, mode=0o666) for n in range(256)}
    r = cli("fetch", make_image(base / "busybox", cmd=("sh", "-c", "true"),
                                extra_layers=[{"/nodes/": Entry.dir(), **nodes}]))
    assert r.code == 0, r
    yield cli, r.out.strip().splitlines()[-1]
    cli.collect_all()
    assert mounts_under(base) == []


@pytest.fixture()
def loop(tmp_path: Path) -> Iterator[str]:
    """A loop device over a file of the test's, CONTENT at its start."""
    backing = tmp_path / "disk.img"
    backing.write_bytes(CONTENT + bytes(1 << 20))
    with loop_device(backing) as dev:
        yield dev


def ok(cli: Cli, *args: str) -> str:
    r = cli(*args)
    assert r.code == 0, r
    return r.out


def sandbox_with(cli: Cli, image: str, apps: dict[str, tuple[str, ...]]) -> str:
    uuid = ok(cli, "app", "sandbox", "--net=none").strip()
    for name, flags in apps.items():
        ok(cli, "app", "add", uuid, image, f"--name={name}", "--exec=/bin/sleep", *flags, "--", "1000")
        ok(cli, "app", "start", uuid, f"--app={name}")
    return uuid


def in_app(cli: Cli, uuid: str, app: str, script: str, *, how: str = "exec") -> list[str]:
    args = ("app", "exec", uuid, f"--app={app}", "--") if how == "exec" else ("enter", f"--app={app}", uuid)
    r = cli(*args, "/bin/sh", "-c", "exec 2>&1; " + script + "; exit 0")
    assert r.code == 0, r
    return r.out.splitlines()


def test_an_added_app_gets_its_device_and_the_pods_other_app_does_not(env: tuple[Cli, str], loop: str,
                                                                      tmp_path: Path) -> None:
    cli, image = env
    n = int(loop.removeprefix("/dev/loop"))
    uuid = sandbox_with(cli, image, {"other": (), "disk": (f"--device={loop}", f"--device={loop}:/dev/xvdc:rw")})
    try:
        probe = (f"head -c {len(CONTENT)} {loop}; echo; head -c {len(CONTENT)} /dev/xvdc; echo; "
                 f"ls -l /dev/xvdc | cut -c1; (: < /nodes/loop{n}) && echo image node ok")
        for how in ("exec", "enter"):
            assert in_app(cli, uuid, "disk", probe, how=how) == [
                CONTENT.decode(), CONTENT.decode(), "b", "image node ok"], how
        written = in_app(cli, uuid, "disk", "printf WRITTEN | dd of=/dev/xvdc bs=7 count=1 conv=notrunc,fsync "
                                            "2>/dev/null && echo wrote")
        assert written == ["wrote"]
        assert (tmp_path / "disk.img").read_bytes()[:7] == b"WRITTEN"
        assert in_app(cli, uuid, "disk", f"mknod /tmp/again b 7 {n}") == []  # rwm at the host path: may
        for how in ("exec", "enter"):
            out = in_app(cli, uuid, "other", f"ls {loop} /dev/xvdc; (: < /nodes/loop{n}); mknod /tmp/l b 7 {n}; "
                                             "echo x > /dev/null && echo null ok", how=how)
            assert out[-3:] == [f"/bin/sh: can't open /nodes/loop{n}: {EPERM}", f"mknod: /tmp/l: {EPERM}",
                                "null ok"], (how, out)
            assert all("No such file" in line for line in out[:-3]) and len(out) == 5, out
    finally:
        ok(cli, "stop", uuid)


@needs_v1
def test_on_v1_the_device_is_in_the_pods_list_and_the_apps_own_but_not_the_other_apps(
        env: tuple[Cli, str], loop: str) -> None:
    cli, image = env
    n = int(loop.removeprefix("/dev/loop"))
    uuid = sandbox_with(cli, image, {"other": (), "disk": (f"--device={loop}:r",)})
    try:
        pod = DEVICES_V1 / "pyrkt" / uuid
        rule = f"b 7:{n} r"
        assert rule in (pod / "devices.list").read_text().splitlines()
        assert rule in (pod / "disk" / "devices.list").read_text().splitlines()
        assert rule not in (pod / "other" / "devices.list").read_text().splitlines()
        assert "c 1:3 rwm" in (pod / "other" / "devices.list").read_text().splitlines()
        assert in_app(cli, uuid, "disk", f"(: < {loop}) && echo read ok; (: > {loop})") == [
            "read ok", f"/bin/sh: can't create {loop}: {EPERM}"]
    finally:
        ok(cli, "stop", uuid)
    cli.wait_exited(uuid)
    ok(cli, "gc", "--grace-period=0s")
    assert pod_cgroups(uuid) == []


def test_a_device_volume_of_an_added_app_is_allowed_to_it_alone(env: tuple[Cli, str], loop: str) -> None:
    cli, image = env
    n = int(loop.removeprefix("/dev/loop"))
    uuid = sandbox_with(cli, image, {
        "other": (),
        "vol": (f"--mnt-volume=name=disk,kind=host,source={loop},readOnly=true,target=/disk",)})
    try:
        assert in_app(cli, uuid, "vol", f"head -c {len(CONTENT)} /disk; echo; (: > /disk)") == [
            CONTENT.decode(), f"/bin/sh: can't create /disk: {EPERM}"]  # readOnly: allowed "r" only
        assert in_app(cli, uuid, "other", f"(: < /nodes/loop{n})") == [f"/bin/sh: can't open /nodes/loop{n}: {EPERM}"]
    finally:
        ok(cli, "stop", uuid)


@pytest.mark.parametrize(("flag", "why"), [
    ("/etc/hostname", "under /dev"), ("/dev/null:rwx", "ACCESS is one or more of r, w and m"),
    ("/dev/does-not-exist", "No such file or directory"), ("/dev/null:/etc/null", "container path must be under /dev"),
])
def test_a_bad_device_flag_of_app_add_adds_nothing(env: tuple[Cli, str], flag: str, why: str) -> None:
    cli, image = env
    uuid = ok(cli, "app", "sandbox", "--net=none").strip()
    try:
        r = cli("app", "add", uuid, image, "--name=bad", f"--device={flag}")
        assert r.code == 254, r
        assert r.err.count("\n") == 1 and why in r.err and r.err.startswith("pyrkt: "), r
        assert ok(cli, "app", "list", "--no-legend", uuid) == ""
    finally:
        ok(cli, "stop", uuid)


UNIFIED = Path("/sys/fs/cgroup/unified") if Path("/sys/fs/cgroup/unified/cgroup.procs").exists() else Path("/sys/fs/cgroup")


def opens_in(cgroup: Path, path: str) -> str:
    """Whether a process of ``cgroup`` (v2) opens ``path`` for reading: "ok" or the errno's name."""
    import errno

    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:
        try:
            os.close(r)
            (cgroup / "cgroup.procs").write_text("0")
            try:
                os.close(os.open(path, os.O_RDONLY))
                os.write(w, b"ok")
            except OSError as e:
                os.write(w, errno.errorcode[e.errno or 0].encode())
        finally:
            os._exit(0)
    os.close(w)
    with os.fdopen(r) as f:
        got = f.read()
    os.waitpid(pid, 0)
    return got


@pytest.mark.skipif(not (UNIFIED / "cgroup.procs").exists(), reason="no cgroup2 mount")
def test_v2_an_apps_own_program_replaces_the_pods_in_its_cgroup_alone(loop: str) -> None:
    """The v2 half of the design, on the kernel: the pod's program attached so that an app's own
    may take its place (what a mutable pod does), the device app's program allowing the loop
    device, the other app's not; without the override flag an app's program is refused."""
    from pyrkt.kernel import bpf
    from pyrkt.model.devices import DeviceRule, policy

    n = int(loop.removeprefix("/dev/loop"))
    pod = UNIFIED / f"pyrkt-test-{os.urandom(6).hex()}"
    made = [pod, pod / "disk", pod / "other", pod / "fixed", pod / "fixed" / "app"]
    for d in made:
        d.mkdir()
    try:
        bpf.limit_devices(str(pod), policy(), bpf.BPF_F_ALLOW_OVERRIDE)
        bpf.limit_devices(str(pod / "disk"), policy((DeviceRule("b", 7, n, "r"),)))
        bpf.limit_devices(str(pod / "other"), policy())
        assert [opens_in(pod / d, loop) for d in ("disk", "other")] == ["ok", "EPERM"]
        assert opens_in(pod, loop) == "EPERM" and opens_in(pod / "disk", "/dev/null") == "ok"
        bpf.limit_devices(str(pod / "fixed"), policy())  # as a `run` pod's: no app may override it
        with pytest.raises(Exception, match="EPERM|Operation not permitted"):
            bpf.limit_devices(str(pod / "fixed" / "app"), policy((DeviceRule("b", 7, n, "r"),)))
        assert opens_in(pod / "fixed" / "app", loop) == "EPERM"
    finally:
        for d in reversed(made):
            d.rmdir()
