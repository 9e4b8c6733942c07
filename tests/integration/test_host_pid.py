"""`--pid=host` on the real kernel: the apps see the host's processes, `enter` and `app exec`
work, their orphans come back to pod init, and `stop` (and `stop --force`) ends the pod's
processes and no other; `app add --privileged` in a mutable pod."""

from __future__ import annotations

import os
import subprocess
import time
from collections.abc import Iterator

import pytest
from tests.integration.pods import Cli, fetched_image, pids_of_pod

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="needs root: runs pods")

ORPHAN = "sleep\x001001\x00"


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Cli, str]]:
    with fetched_image(tmp_path_factory.mktemp("hostpid"), cmd=("sh", "-c", "echo hello")) as env:
        yield env


@pytest.fixture
def bystander() -> Iterator[subprocess.Popen[bytes]]:
    """A host process that no pod's stop may touch."""
    p = subprocess.Popen(["sleep", "300"])
    yield p
    p.kill()
    p.wait()


def cmdline(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/cmdline") as f:
            return f.read()
    except OSError:
        return ""


def orphan_of(uuid: str) -> int:
    for _ in range(200):
        found = [p for p in pids_of_pod(uuid) if cmdline(p) == ORPHAN]
        if found:
            return found[0]
        time.sleep(0.05)
    raise AssertionError(f"no orphan in pod {uuid}")


def ppid(pid: int) -> int:
    with open(f"/proc/{pid}/status") as f:
        return int(next(line.split()[1] for line in f if line.startswith("PPid:")))


@pytest.mark.parametrize("force", [False, True])
def test_a_host_pid_pod_sees_the_host_and_its_stop_ends_only_its_own(env: tuple[Cli, str], force: bool,
                                                                     bystander: subprocess.Popen[bytes]) -> None:
    cli, image = env
    r = cli("run", "--net=none", "--pid=host", "--detach", image, "--exec=/bin/sh", "--", "-c",
            "(sleep 1001 &); exec sleep 1000")
    assert r.code == 0, r
    uuid = r.out.strip()
    init = int((cli.pod_dir(uuid) / "pid").read_text())
    assert ppid(orphan_of(uuid)) == init  # re-parented to pod init, the apps' subreaper
    e = cli("enter", uuid, "/bin/cat", f"/proc/{bystander.pid}/cmdline")
    assert (e.code, e.out) == (0, "sleep\x00300\x00"), e
    r = cli("stop", *(["--force"] if force else []), uuid)
    assert r.code == 0, r
    assert cli.wait_exited(uuid)["state"] == "exited"
    deadline = time.monotonic() + 10
    while pids_of_pod(uuid) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert pids_of_pod(uuid) == []
    assert bystander.poll() is None  # no kill(-1) in the host's namespace
    assert cli("rm", uuid).code == 0


def test_a_foreground_host_pid_pod_leaves_no_orphan_when_its_app_exits(env: tuple[Cli, str],
                                                                        bystander: subprocess.Popen[bytes]) -> None:
    cli, image = env
    r = cli("run", "--net=none", "--pid=host", image, "--exec=/bin/sh", "--", "-c",
            f"test -d /proc/{bystander.pid} && echo sees the host; (sleep 1002 &)")
    assert (r.code, r.out) == (0, "sees the host\n"), r
    left = [d for d in os.listdir("/proc") if d.isdigit() and cmdline(int(d)) == "sleep\x001002\x00"]
    assert left == [] and bystander.poll() is None


def test_pid_refusals(env: tuple[Cli, str]) -> None:
    cli, image = env
    r = cli("run", "--net=none", "--pid=shared", image)
    assert (r.code, r.err.strip()) == (254, "pyrkt: invalid --pid='shared': want private or host"), r
    r = cli("run", "--net=none", "--stage1-name=fly", "--pid=private", image)
    assert r.code == 254 and "the fly flavor's apps share the host's PID namespace" in r.err, r


def test_a_host_pid_sandbox_with_a_privileged_app_beside_an_ordinary_one(env: tuple[Cli, str],
                                                                          bystander: subprocess.Popen[bytes]) -> None:
    cli, image = env
    r = cli("app", "sandbox", "--net=none", "--pid=host")
    assert r.code == 0, r
    uuid = r.out.strip()
    try:
        for name, flags in (("admin", ["--privileged"]), ("web", [])):
            r = cli("app", "add", uuid, image, f"--name={name}", *flags, "--exec=/bin/sleep", "--", "1000")
            assert r.code == 0, r
            assert cli("app", "start", uuid, f"--app={name}").code == 0
        caps = {}
        for name in ("admin", "web"):
            r = cli("app", "exec", uuid, f"--app={name}", "--", "sh", "-c",
                    f"grep CapEff /proc/self/status; test -e /proc/{bystander.pid} && echo host")
            assert r.code == 0, r
            caps[name] = r.out.split()[1]
            assert r.out.split()[2] == "host", r
        with open("/proc/self/status") as f:
            every = next(line.split()[1] for line in f if line.startswith("CapBnd:"))
        assert caps["admin"] == every != caps["web"]
    finally:
        assert cli("stop", uuid).code == 0
        cli.wait_exited(uuid)
    assert pids_of_pod(uuid) == [] and bystander.poll() is None
