"""The pod's device policy on the real kernel: an app that is root with the default caps can
neither make nor open a host device beyond the allow-list (whether it mknods the node or the
image ships it), the standard devices still work, the pod cgroup's v1 ``devices.list`` is
exactly the allow-list, ``--device`` passes one device in, and gc removes the cgroup. The v2
program is loaded and attached to a cgroup of the host's cgroup2 mount and tried for real.

The hostile nodes are opened without writing a byte (``: > node``), so even a broken policy
writes nothing to the host's kernel log."""

from __future__ import annotations

import contextlib
import errno
import os
import uuid as uuidlib
from collections.abc import Iterator
from pathlib import Path

import pytest
from tests.integration.pods import Cli, make_image, mounts_under, pod_cgroups
from tests.support.images import Entry

from pyrkt.model.devices import DEFAULT_ALLOW, policy

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="needs root: pods, cgroups, bpf(2)")

DEVICES_V1 = Path("/sys/fs/cgroup/devices")
UNIFIED = Path("/sys/fs/cgroup/unified")
# (name in the image's /nodes, kind, major, minor): what an image might ship to reach the host
HOSTILE = (("kmsg", "c", 1, 11), ("kvm", "c", 10, 232), ("tty1", "c", 4, 1), ("loop-control", "c", 10, 237),
           ("mem", "c", 1, 1), ("sda", "b", 8, 0))
EPERM = "Operation not permitted"


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory) -> tuple[Cli, str]:
    base = tmp_path_factory.mktemp("devices")
    cli = Cli(base / "data")
    nodes = {f"/nodes/{name}": Entry("block" if kind == "b" else "char", devmajor=major, devminor=minor, mode=0o666)
             for name, kind, major, minor in HOSTILE}
    src = make_image(base / "busybox", cmd=("sh", "-c", "true"), extra_layers=[{"/nodes/": Entry.dir(), **nodes}])
    r = cli("fetch", src)
    assert r.code == 0, r
    image = r.out.strip().splitlines()[-1]
    yield cli, image
    cli.collect_all()
    assert mounts_under(base) == []


needs_v1 = pytest.mark.skipif(not (DEVICES_V1 / "devices.list").exists(), reason="no cgroup v1 devices controller")
needs_loop_control = pytest.mark.skipif(not os.path.exists("/dev/loop-control"), reason="no /dev/loop-control")


@contextlib.contextmanager
def detached(cli: Cli, image: str, *flags: str, insecure: str = "") -> Iterator[str]:
    """A pod sleeping in the background, given ``flags``; its UUID. Stopped afterwards."""
    before = [f"--insecure-options={insecure}"] if insecure else []
    r = cli(*before, "run", "--net=none", "--detach", *flags, image, "--exec=/bin/sleep", "--", "60")
    assert r.code == 0, r
    uuid = r.out.strip()
    try:
        yield uuid
    finally:
        cli("stop", "--force", uuid)


def devices_list(uuid: str) -> list[str]:
    return (DEVICES_V1 / "pyrkt" / uuid / "devices.list").read_text().splitlines()


def sh(cli: Cli, image: str, script: str, *flags: str) -> str:
    r = cli("run", "--net=none", *flags, image, "--exec=/bin/sh", "--", "-c", script + "; exit 0", timeout=60)
    assert r.code == 0, r
    return r.out + r.err


def test_image_shipped_device_nodes_do_not_open(env: tuple[Cli, str]) -> None:
    cli, image = env
    script = "; ".join(f"ls -l /nodes/{n} | cut -c1; (: < /nodes/{n}) 2>&1; (: > /nodes/{n}) 2>&1"
                       for n, *_ in HOSTILE)
    out = sh(cli, image, script).splitlines()
    for i, (name, kind, *_) in enumerate(HOSTILE):
        kind_line, read_err, write_err = out[3 * i: 3 * i + 3]
        assert kind_line == kind, (name, out)  # the store kept the node: the image really ships it
        assert read_err.endswith(EPERM) and write_err.endswith(EPERM), (name, read_err, write_err)


def test_apps_with_cap_mknod_cannot_make_device_nodes(env: tuple[Cli, str]) -> None:
    cli, image = env
    script = ("grep CapEff /proc/self/status; mknod /tmp/k c 1 11 2>&1; echo mknod=$?; [ -c /tmp/k ]; echo char=$?; "
              "mknod /tmp/kvm c 10 232 2>&1; mknod /tmp/disk b 8 0 2>&1; mknod /tmp/null c 1 3; echo null=$?")
    out = sh(cli, image, script)
    assert "CapEff:\t00000000a80425fb" in out  # CAP_MKNOD (bit 27) is held ...
    assert "mknod: /tmp/k: " + EPERM in out and "mknod=1" in out and "char=1" in out  # ... yet the cgroup says no
    assert "mknod: /tmp/kvm: " + EPERM in out and "mknod: /tmp/disk: " + EPERM in out
    assert "null=0" in out  # allowed devices may be made


def test_standard_devices_still_work(env: tuple[Cli, str]) -> None:
    cli, image = env
    script = ("echo x > /dev/null && echo null ok; head -c 5 /dev/zero | wc -c; head -c 7 /dev/urandom | wc -c; "
              "head -c 3 /dev/random | wc -c; (: > /dev/full) && echo full ok; (: > /dev/console) && echo console ok; "
              "exec 3<>/dev/ptmx && echo ptmx ok; (: < /dev/tty) 2>&1")
    out = sh(cli, image, script).splitlines()
    assert out[:7] == ["null ok", "5", "7", "3", "full ok", "console ok", "ptmx ok"], out
    assert out[7].endswith("No such device or address")  # allowed; the app just has no controlling tty


@needs_v1
def test_pod_cgroup_holds_exactly_the_allow_list_and_gc_removes_it(env: tuple[Cli, str]) -> None:
    cli, image = env
    with detached(cli, image) as uuid:
        assert devices_list(uuid) == [rule.v1() for rule in DEFAULT_ALLOW]
        pod_init = int((cli.pod_dir(uuid) / "pid").read_text())
        assert f"devices:/pyrkt/{uuid}" in Path(f"/proc/{pod_init}/cgroup").read_text()
        procs = [int(p) for p in (DEVICES_V1 / "pyrkt" / uuid / "cgroup.procs").read_text().split()]
        assert pod_init in procs and len(procs) == 2  # pod init and the app, from the start
    cli.wait_exited(uuid)
    assert cli("gc", "--grace-period=0s").code == 0
    assert pod_cgroups(uuid) == []


def test_enter_is_held_to_the_pod_policy(env: tuple[Cli, str]) -> None:
    cli, image = env
    with detached(cli, image) as uuid:
        e = cli("enter", uuid, "/bin/sh", "-c", "(: > /nodes/kmsg) 2>&1; mknod /tmp/k c 1 11 2>&1; echo x > /dev/null && echo null ok")
        assert e.code == 0, e
        assert e.out.splitlines() == [f"/bin/sh: can't create /nodes/kmsg: {EPERM}", f"mknod: /tmp/k: {EPERM}", "null ok"]


@needs_loop_control
def test_device_flag_passes_one_device_into_every_app(env: tuple[Cli, str]) -> None:
    cli, image = env
    probe = "ls -l /dev/loop-control | cut -c1-10; (: < /dev/loop-control) 2>&1 && echo opened; (: > /nodes/kvm) 2>&1; exit 0"
    save = cli.data_dir.parent / "device.uuid"
    r = cli("run", "--net=none", "--device=/dev/loop-control", f"--uuid-file-save={save}",
            image, "--name=a", "--exec=/bin/sh", "--", "-c", probe, "---",
            image, "--name=b", "--exec=/bin/sh", "--", "-c", "sleep 0.3; " + probe)
    assert r.code == 0, r
    lines = r.out.splitlines()
    for app in range(2):
        assert lines[3 * app: 3 * app + 3] == ["crw-------", "opened", f"/bin/sh: can't create /nodes/kvm: {EPERM}"], lines
    rc = (cli.pod_dir(save.read_text().strip()) / "runtime-config").read_text()
    assert '"path": "/dev/loop-control", "kind": "c", "major": 10, "minor": 237, "access": "rwm"' in rc


@needs_loop_control
def test_device_flag_may_make_the_node_at_another_path_in_dev(env: tuple[Cli, str]) -> None:
    cli, image = env
    out = sh(cli, image, "ls -l /dev/lc | cut -c1; (: < /dev/lc) && echo opened; ls /dev/loop-control 2>&1",
             "--device=/dev/loop-control:/dev/lc:r").splitlines()
    assert out == ["c", "opened", "ls: /dev/loop-control: No such file or directory"], out


@needs_v1
@needs_loop_control
def test_device_flag_access_limits_what_the_app_may_do(env: tuple[Cli, str]) -> None:
    cli, image = env
    with detached(cli, image, "--device=/dev/loop-control:r") as uuid:  # no m: the host node is bound in
        assert devices_list(uuid)[-1] == "c 10:237 r"
        e = cli("enter", uuid, "/bin/sh", "-c", "(: < /dev/loop-control) && echo read ok; (: > /dev/loop-control) 2>&1")
        assert e.out.splitlines() == ["read ok", f"/bin/sh: can't create /dev/loop-control: {EPERM}"], e


@pytest.mark.parametrize(("flag", "why"), [
    ("/etc/hostname", "under /dev"), ("/dev/shm", "not a character or block device"),
    ("/dev/null:rwx", "ACCESS is one or more of r, w and m"), ("/dev/does-not-exist", "No such file or directory"),
])
def test_bad_device_flag_prepares_nothing(env: tuple[Cli, str], flag: str, why: str) -> None:
    cli, image = env
    before = {d: sorted(os.listdir(cli.data_dir / "pods" / d)) for d in os.listdir(cli.data_dir / "pods")}
    for cmd in ("run", "prepare"):
        r = cli(cmd, f"--device={flag}", image)
        assert r.code == 254, r
        assert r.err.count("\n") == 1 and why in r.err and r.err.startswith("pyrkt: "), r
    assert {d: sorted(os.listdir(cli.data_dir / "pods" / d)) for d in os.listdir(cli.data_dir / "pods")} == before


@needs_v1
def test_insecure_paths_turns_the_device_policy_off_as_in_rkt(env: tuple[Cli, str]) -> None:
    cli, image = env
    with detached(cli, image, insecure="paths") as uuid:
        assert devices_list(uuid) == ["a *:* rwm"]


@pytest.mark.skipif(not (UNIFIED / "cgroup.procs").exists() and not Path("/sys/fs/cgroup/cgroup.controllers").exists(),
                    reason="no cgroup2 mount")
def test_v2_device_program_is_enforced_by_the_kernel(tmp_path: Path) -> None:
    from pyrkt.kernel import bpf

    root = UNIFIED if (UNIFIED / "cgroup.procs").exists() else Path("/sys/fs/cgroup")
    cgroup = root / f"pyrkt-test-{uuidlib.uuid4().hex[:12]}"
    cgroup.mkdir()
    try:
        bpf.limit_devices(str(cgroup), policy())
        r, w = os.pipe()
        pid = os.fork()
        if pid == 0:
            code = 0
            try:
                os.close(r)
                (cgroup / "cgroup.procs").write_text("0")
                results = []
                for path, flags in (("/dev/null", os.O_WRONLY), ("/dev/urandom", os.O_RDONLY),
                                    ("/dev/loop-control", os.O_RDONLY), ("/dev/kvm", os.O_RDONLY)):
                    try:
                        os.close(os.open(path, flags))
                        results.append(f"{path}=ok")
                    except OSError as e:
                        results.append(f"{path}={errno.errorcode[e.errno or 0]}")
                for name, dev in (("kmsg", os.makedev(1, 11)), ("zero", os.makedev(1, 5))):
                    try:
                        os.mknod(str(tmp_path / name), 0o20600, dev)
                        results.append(f"mknod {name}=ok")
                    except OSError as e:
                        results.append(f"mknod {name}={errno.errorcode[e.errno or 0]}")
                os.write(w, ",".join(results).encode())
            except BaseException:
                code = 1
            os._exit(code)
        os.close(w)
        with os.fdopen(r) as f:
            got = f.read().split(",")
        _, status = os.waitpid(pid, 0)
        assert os.waitstatus_to_exitcode(status) == 0
        want = ["/dev/null=ok", "/dev/urandom=ok"]
        want += ["/dev/loop-control=EPERM"] if os.path.exists("/dev/loop-control") else ["/dev/loop-control=ENOENT"]
        want += ["/dev/kvm=EPERM"] if os.path.exists("/dev/kvm") else ["/dev/kvm=ENOENT"]
        assert got == [*want, "mknod kmsg=EPERM", "mknod zero=ok"]
    finally:
        cgroup.rmdir()
    assert not cgroup.exists()
