"""--cgroup-parent on the real kernel (this machine: hybrid, v1 controllers): the pod's cgroup
is made below the parent in every hierarchy, the app's process is there, gc takes the pod's own
cgroup back and leaves the parent (which its owner, a kubelet, removes); likewise after pod
init was SIGKILLed."""

from __future__ import annotations

import os
import secrets
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from tests.integration.pods import Cli, remove_cgroup_tree
from tests.integration.test_limits import env

__all__ = ["env"]  # test_limits' fixture: a data dir with the busybox test image
pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="needs root: pods and cgroups")

ROOT = Path("/sys/fs/cgroup")
CONTROLLERS = ("memory", "cpu", "pids")
needs_v1 = pytest.mark.skipif(not all((ROOT / c / "cgroup.procs").exists() for c in CONTROLLERS),
                              reason="no cgroup v1 memory, cpu and pids controllers")


@pytest.fixture()
def parent(env: tuple[Cli, str]) -> Iterator[str]:
    """A parent path no cgroup has yet; once the test's pods are collected, every directory of
    it pyrkt made is removed."""
    top = f"pyrkt-test-{secrets.token_hex(4)}"
    yield f"/{top}/x"
    env[0].collect_all()
    remove_cgroup_tree(top)


def app_cgroups(pid: int) -> dict[str, str]:
    """controller -> cgroup path of a host process, from /proc/PID/cgroup."""
    out = {}
    for line in Path(f"/proc/{pid}/cgroup").read_text().splitlines():
        _, ctrls, path = line.split(":", 2)
        for c in ctrls.split(","):
            out[c] = path
    return out


def app_pid(cli: Cli, uuid: str) -> int:
    init = int(cli.status(uuid)["pid"])
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        children = Path(f"/proc/{init}/task/{init}/children").read_text().split()
        if children:
            return int(children[0])
        time.sleep(0.05)
    raise AssertionError("the app did not start")


@needs_v1
def test_the_pod_goes_below_its_parent_and_gc_leaves_the_parent(env: tuple[Cli, str], parent: str) -> None:
    cli, image = env
    r = cli("run", "--net=none", "--detach", f"--cgroup-parent={parent}", image, "--name=app", "--memory=64M",
            "--exec=/bin/sleep", "--", "1000")
    assert r.code == 0, r
    uuid = r.out.strip()
    own = f"{parent}/pyrkt-{uuid}"
    where = app_cgroups(app_pid(cli, uuid))
    for c in CONTROLLERS:
        assert where[c] == f"{own}/app", (c, where)
    assert (ROOT / "memory" / own.lstrip("/") / "app" / "memory.limit_in_bytes").read_text().strip() == "64000000"
    assert not (ROOT / "memory" / "pyrkt" / uuid).exists()
    cli("stop", "--force", uuid)
    cli.wait_exited(uuid)
    assert cli("gc", "--grace-period=0s").code == 0
    for c in CONTROLLERS:
        assert not (ROOT / c / own.lstrip("/")).exists()
        assert (ROOT / c / parent.lstrip("/")).is_dir()  # the parent's owner removes it


@needs_v1
def test_gc_after_pod_init_was_sigkilled_removes_the_pods_cgroup_below_the_parent(
        env: tuple[Cli, str], parent: str) -> None:
    cli, image = env
    r = cli("run", "--net=none", "--detach", f"--cgroup-parent={parent}", image, "--name=app",
            "--exec=/bin/sleep", "--", "1000")
    assert r.code == 0, r
    uuid = r.out.strip()
    os.kill(int(cli.status(uuid)["pid"]), signal.SIGKILL)
    cli.wait_exited(uuid)
    own = ROOT / "memory" / parent.lstrip("/") / f"pyrkt-{uuid}"
    assert own.is_dir()  # kept for its accounting until gc, as without a parent
    assert cli("gc", "--grace-period=0s").code == 0
    assert not own.exists() and own.parent.is_dir()


def test_a_systemd_slice_or_a_bad_path_is_refused_before_anything_is_made(env: tuple[Cli, str]) -> None:
    cli, image = env
    before = cli("list", "--no-legend").out
    for bad, why in (("kubepods-burstable-pod1.slice", "pyrkt's cgroup driver is cgroupfs"),
                     ("/a/../b", "'..' path segment"), ("/pyrkt/x", "pyrkt's own tree")):
        r = cli("run", "--net=none", f"--cgroup-parent={bad}", image, "--exec=/bin/true")
        assert r.code == 254 and why in r.err and len(r.err.strip().splitlines()) == 1, r
    r = cli("run", "--stage1-name=fly", "--cgroup-parent=/a", image, "--exec=/bin/true")
    assert r.code == 254 and "default flavor only" in r.err, r
    assert cli("list", "--no-legend").out == before
