"""Resource limits on the real kernel (this machine: hybrid, v1 controllers): each app in its
own cgroup below its pod's, ``--memory`` ends in an OOM kill that status reports, ``--cpu``
holds a busy loop to its quota, ``--pids-limit`` stops a fork loop, ``--oom-score-adj`` is
what the app sees, and gc removes the cgroups of a pod whose pod init was SIGKILLed."""

from __future__ import annotations

import json
import os
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from tests.integration.pods import Cli, fetched_image, pod_cgroups

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="needs root: pods and cgroups")

V1 = Path("/sys/fs/cgroup")
CAP_SYS_RESOURCE = 24
needs_v1 = pytest.mark.skipif(not all((V1 / c / "cgroup.procs").exists() for c in ("memory", "cpuacct", "pids")),
                              reason="no cgroup v1 memory, cpuacct and pids controllers")


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Cli, str]]:
    with fetched_image(tmp_path_factory.mktemp("limits"), cmd=("sh", "-c", "true")) as env:
        yield env


def detached(cli: Cli, image: str, *args: str) -> str:
    r = cli("run", "--net=none", "--detach", image, "--name=app", *args)
    assert r.code == 0, r
    return r.out.strip()


def finish(cli: Cli, uuid: str) -> None:
    cli("stop", "--force", uuid)
    cli.wait_exited(uuid)
    assert cli("rm", uuid).code == 0
    assert pod_cgroups(uuid) == []


def app_cgroup(controller: str, uuid: str) -> Path:
    return V1 / controller / "pyrkt" / uuid / "app"


@needs_v1
def test_an_app_over_its_memory_limit_is_oom_killed_and_reported(env: tuple[Cli, str], tmp_path: Path) -> None:
    cli, image = env
    save = tmp_path / "uuid"
    r = cli("run", "--net=none", f"--uuid-file-save={save}", image, "--name=app", "--memory=32M",
            "--exec=/bin/sh", "--", "-c", 'a=$(head -c 134217728 /dev/zero | tr "\\0" x); echo survived')
    assert r.code == 137 and "survived" not in r.out, r  # killed by SIGKILL, the pod's exit code
    uuid = save.read_text().strip()
    st = cli.status(uuid)
    assert (st["app-app"], st["oom-killed"]) == ("137", "app")
    [app] = json.loads(cli("status", "--format=json", uuid).out)["apps"]
    assert app["oom_killed"] is True and app["limits"]["memory"] == 32_000_000
    assert "oom_kill 1" in (app_cgroup("memory", uuid) / "memory.oom_control").read_text()
    assert cli("rm", uuid).code == 0 and pod_cgroups(uuid) == []


@needs_v1
def test_a_cpu_limit_holds_a_busy_loop_near_its_quota(env: tuple[Cli, str]) -> None:
    cli, image = env
    uuid = detached(cli, image, "--cpu=200m", "--exec=/bin/sh", "--", "-c", "while :; do :; done")
    try:
        usage = app_cgroup("cpuacct", uuid) / "cpuacct.usage"
        assert (app_cgroup("cpu", uuid) / "cpu.cfs_quota_us").read_text().strip() == "20000"
        time.sleep(0.3)  # the loop runs
        before, t0 = int(usage.read_text()), time.monotonic()
        time.sleep(1.0)
        used = (int(usage.read_text()) - before) / 1e9 / (time.monotonic() - t0)
        assert 0.05 < used < 0.32, used  # 20 % of a core, not the whole core a busy loop takes
        [app] = json.loads(cli("list", "--format=json").out)[0]["apps"]
        assert app["limits"]["cpu_millis"] == 200
    finally:
        finish(cli, uuid)


@needs_v1
def test_a_fork_loop_stops_at_the_pids_limit(env: tuple[Cli, str], tmp_path: Path) -> None:
    cli, image = env
    save = tmp_path / "uuid"
    r = cli("run", "--net=none", f"--uuid-file-save={save}", image, "--name=app", "--pids-limit=20",
            "--exec=/bin/sh", "--", "-c", "i=0; while [ $i -lt 60 ]; do echo $i; sleep 1000 & i=$((i+1)); done; "
            "echo looped")
    # the shell and 19 sleeps make 20: the 20th sleep is not forked, and the shell gives up
    assert r.code != 0 and r.out.split()[-1] == "19" and "can't fork" in r.err, r
    uuid = save.read_text().strip()
    pids = app_cgroup("pids", uuid)
    assert (pids / "pids.max").read_text().strip() == "20"
    assert int((pids / "pids.events").read_text().split()[1]) > 0  # the kernel counted the refusals
    assert cli("rm", uuid).code == 0 and pod_cgroups(uuid) == []


def test_pods_get_the_default_pids_limit_and_zero_lifts_it(env: tuple[Cli, str]) -> None:
    cli, image = env
    for flags, want in (((), "4096"), (("--pids-limit=0",), "max")):
        uuid = detached(cli, image, *flags, "--exec=/bin/sleep", "--", "1000")
        try:
            assert (app_cgroup("pids", uuid) / "pids.max").read_text().strip() == want
        finally:
            finish(cli, uuid)


def test_oom_score_adj_is_what_the_app_sees_and_a_lower_one_is_refused_here(env: tuple[Cli, str]) -> None:
    cli, image = env
    r = cli("run", "--net=none", image, "--oom-score-adj=500", "--exec=/bin/cat", "--", "/proc/self/oom_score_adj")
    assert (r.code, r.out) == (0, "500\n"), r
    eff = next(int(line.split()[1], 16) for line in Path("/proc/self/status").read_text().splitlines()
               if line.startswith("CapEff:"))
    if eff & (1 << CAP_SYS_RESOURCE):
        return  # a host with CAP_SYS_RESOURCE allows a negative score
    r = cli("run", "--net=none", image, "--oom-score-adj=-500", "--exec=/bin/true")
    assert r.code == 254 and "oom_score_adj: cannot lower it to -500: that needs CAP_SYS_RESOURCE" in r.err, r


def test_bad_limit_flags_fail_before_anything_is_made(env: tuple[Cli, str]) -> None:
    cli, image = env
    before = set(os.listdir(cli.data_dir / "pods" / "garbage")) if (cli.data_dir / "pods" / "garbage").exists() else set()
    for flag, message in (("--memory=16m", "too low"), ("--cpu=lots", "invalid --cpu=lots"),
                          ("--cpu-shares=1", "between 2 and 262144"), ("--pids-limit=-5", "between 0 and")):
        r = cli("run", "--net=none", image, flag)
        assert r.code == 254 and message in r.err and len(r.err.splitlines()) == 1, r
    after = set(os.listdir(cli.data_dir / "pods" / "garbage")) if (cli.data_dir / "pods" / "garbage").exists() else set()
    assert after == before


@needs_v1
def test_gc_removes_the_app_cgroups_of_a_pod_whose_pod_init_was_sigkilled(env: tuple[Cli, str]) -> None:
    cli, image = env
    uuid = detached(cli, image, "--memory=64M", "--exec=/bin/sleep", "--", "1000")
    pid = int(cli.status(uuid)["pid"])
    assert (app_cgroup("memory", uuid) / "memory.limit_in_bytes").read_text().strip() == "64000000"
    app_pids = (app_cgroup("memory", uuid) / "cgroup.procs").read_text().split()
    assert app_pids and str(pid) not in app_pids  # the app is in its own cgroup, pod init in the pod's
    os.kill(pid, signal.SIGKILL)
    cli.wait_exited(uuid)
    assert app_cgroup("memory", uuid).exists()  # kept for its accounting until gc, as rkt
    assert cli("gc", "--grace-period=0s").code == 0
    assert pod_cgroups(uuid) == []


@needs_v1
def test_an_acis_resource_isolators_apply_and_a_flag_overrides_its_own(env: tuple[Cli, str], tmp_path: Path) -> None:
    from tests.support.aci import aci_manifest, build_aci

    cli, _ = env
    aci = tmp_path / "limited.aci"
    build_aci(aci, aci_manifest("example.com/limited", exec_=("/bin/sleep", "1000"), isolators=[
        {"name": "resource/memory", "value": {"limit": "40Mi"}},
        {"name": "os/linux/cpu-shares", "value": 300},
        {"name": "resource/block-bandwidth", "value": {"default": True, "limit": "1M"}}]))
    r = cli("--insecure-options=image", "run", "--net=none", "--detach", str(aci), "--name=app", "--cpu-shares=600")
    assert r.code == 0, r
    assert "isolator resource/block-bandwidth is not honoured yet: ignored" in r.err, r  # unknown: named
    assert "resource/memory" not in r.err and "cpu-shares" not in r.err, r
    uuid = r.out.strip()
    try:
        assert (app_cgroup("memory", uuid) / "memory.limit_in_bytes").read_text().strip() == str(40 * 2 ** 20)
        assert (app_cgroup("cpu", uuid) / "cpu.shares").read_text().strip() == "600"  # the flag's, not the image's
    finally:
        finish(cli, uuid)


def test_the_fly_flavor_names_the_limits_it_does_not_apply(env: tuple[Cli, str]) -> None:
    cli, image = env
    r = cli("run", "--stage1-name=fly", image, "--name=app", "--memory=64M", "--exec=/bin/true")
    assert r.code == 0, r
    assert ("warning: app app: resource/memory isolator set but the fly flavor applies no resource limits "
            "(as rkt's stage1-fly): ignored") in r.err, r


@needs_v1
def test_an_oom_kill_stops_a_pod_of_several_apps_by_rkts_rules(env: tuple[Cli, str], tmp_path: Path) -> None:
    cli, image = env
    save = tmp_path / "uuid"
    r = cli("run", "--net=none", f"--uuid-file-save={save}",
            image, "--name=hog", "--memory=32M", "--exec=/bin/sh", "--", "-c",
            'sleep 0.3; a=$(head -c 134217728 /dev/zero | tr "\\0" x)', "---",
            image, "--name=idle", "--memory=128M", "--exec=/bin/sleep", "--", "1000", timeout=60)
    assert r.code == 137, r  # the failing app's code becomes the pod's
    uuid = save.read_text().strip()
    st = cli.status(uuid)
    assert (st["app-hog"], st["app-idle"], st["oom-killed"]) == ("137", "0", "hog")
    assert (V1 / "memory" / "pyrkt" / uuid / "idle" / "memory.limit_in_bytes").read_text().strip() == "128000000"
    assert cli("rm", uuid).code == 0 and pod_cgroups(uuid) == []


@needs_v1
def test_enter_joins_the_apps_cgroups_so_its_limits_count_what_enters(env: tuple[Cli, str]) -> None:
    cli, image = env
    uuid = detached(cli, image, "--pids-limit=3", "--exec=/bin/sleep", "--", "1000")
    try:
        r = cli("enter", uuid, "/bin/cat", "/proc/self/cgroup")
        assert r.code == 0 and all(line.endswith(":/") for line in r.out.splitlines()), r  # the app's own, as root
        # the app's sleep, enter's own process and the shell make 3 of 3: the shell forks nothing
        r = cli("enter", uuid, "/bin/sh", "-c", "sleep 5 & sleep 5 & wait")
        assert r.code != 0 and "can't fork" in r.err, r
    finally:
        finish(cli, uuid)


@needs_v1
def test_prepare_keeps_the_limits_in_the_pod_manifest_for_run_prepared(env: tuple[Cli, str]) -> None:
    cli, image = env
    r = cli("prepare", "--quiet", image, "--name=app", "--memory=48Mi", "--pids-limit=7", "--exec=/bin/sleep", "--",
            "1000")
    assert r.code == 0, r
    uuid = r.out.strip()
    [app] = json.loads(cli("status", "--format=json", uuid).out)["apps"]
    assert app["limits"] == {"memory": 48 * 2 ** 20, "memory_request": 48 * 2 ** 20, "pids": 7}
    assert cli("run-prepared", "--net=none", "--detach", uuid).code == 0
    try:
        assert (app_cgroup("memory", uuid) / "memory.limit_in_bytes").read_text().strip() == str(48 * 2 ** 20)
        assert (app_cgroup("pids", uuid) / "pids.max").read_text().strip() == "7"
    finally:
        finish(cli, uuid)


@needs_v1
def test_an_oom_kill_after_pod_init_slimmed_down_is_recorded_too(env: tuple[Cli, str]) -> None:
    cli, image = env
    uuid = detached(cli, image, "--memory=32M", "--exec=/bin/sh", "--", "-c",
                    'sleep 1.5; a=$(head -c 134217728 /dev/zero | tr "\\0" x)')  # pod init re-executes at 0.5 s
    assert cli("status", "--wait=30s", uuid).code == 0
    st = cli.status(uuid)
    assert (st["app-app"], st["oom-killed"]) == ("137", "app"), st
    assert cli("rm", uuid).code == 0 and pod_cgroups(uuid) == []


@needs_v1
def test_an_app_reads_its_own_limits_in_a_read_only_sys_fs_cgroup_and_nothing_else_of_sys_fs(
        env: tuple[Cli, str]) -> None:
    """What runtimes that size themselves by their cgroup (a JVM's heap, Go's GOMAXPROCS) read:
    its own cgroups as the root of /sys/fs/cgroup (its cgroup namespace), read-only; the rest
    of /sys/fs stays hidden, as rkt hid it. A privileged app's are writable."""
    cli, image = env
    script = ("ls /sys/fs; cat /sys/fs/cgroup/memory/memory.limit_in_bytes /sys/fs/cgroup/pids/pids.max; "
              "mkdir /sys/fs/cgroup/pids/sub 2>/dev/null || echo ro; "
              "grep ' /sys/fs/cgroup/memory ' /proc/self/mountinfo | cut -d' ' -f4")
    r = cli("run", "--net=none", image, "--memory=48M", "--pids-limit=77", "--exec=/bin/sh", "--", "-c", script)
    assert r.code == 0, r
    listing, limit, *rest = r.out.split()
    assert listing == "cgroup" and 0 <= 48_000_000 - int(limit) < 4096, r.out  # the kernel keeps whole pages
    assert rest == ["77", "ro", "/"], r.out  # the app's own cgroup is the root it sees
    r = cli("run", "--net=none", image, "--privileged", "--exec=/bin/sh", "--", "-c",
            "mkdir /sys/fs/cgroup/pids/sub && rmdir /sys/fs/cgroup/pids/sub && echo rw")
    assert (r.code, r.out.strip()) == (0, "rw"), r
