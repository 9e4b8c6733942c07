"""What an app may do to the host through /proc and /sys, on the real kernel: host sysctls are
read-only inside a pod, the usual kernel files are masked, and ``--sysctl`` sets only
namespaced sysctls, in the pod's own namespaces."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from tests.integration.pods import Cli, fetched_image

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="needs root: runs pods")

# Host sysctls an app must not change. The test writes the host's current value back, except
# for vm.swappiness (harmless on this swapless machine), so a write that got through would show
# as a changed host value too; any change is undone at once (see host_sysctls_kept).
HOST_SYSCTLS = ("vm/swappiness", "kernel/randomize_va_space", "vm/overcommit_memory", "kernel/panic_on_oops",
                "fs/file-max")
CHANGED = "vm/swappiness"
READ_ONLY = ("/proc/sys", "/proc/sysrq-trigger", "/proc/irq", "/proc/bus", "/proc/fs")
MASKED = ("/proc/acpi", "/proc/kcore", "/proc/keys", "/proc/latency_stats", "/proc/timer_list", "/proc/timer_stats",
          "/proc/sched_debug", "/proc/scsi", "/sys/firmware", "/sys/devices/virtual/powercap")
UNPRIVILEGED_PORT = Path("/proc/sys/net/ipv4/ip_unprivileged_port_start")


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Cli, str]]:
    with fetched_image(tmp_path_factory.mktemp("sysctl"), cmd=("true",)) as env:
        yield env


def read_host(key: str) -> str:
    return Path("/proc/sys", key).read_text().strip()


@pytest.fixture
def host_sysctls_kept() -> Iterator[dict[str, str]]:
    """The host's values of HOST_SYSCTLS before the test; afterwards they must be the same.
    A value that changed anyway is written back at once, then the test fails."""
    before = {key: read_host(key) for key in (*HOST_SYSCTLS, "net/ipv4/ip_unprivileged_port_start")}
    yield before
    changed = {}
    for key, value in before.items():
        now = read_host(key)
        if now != value:
            changed[key] = now
            fd = os.open(Path("/proc/sys", key), os.O_WRONLY)
            try:
                os.write(fd, value.encode())
            finally:
                os.close(fd)
    assert not changed, f"a pod changed host sysctls (restored): {changed}"


def pod_output(cli: Cli, image: str, script: str, *flags: str, insecure: str = "") -> list[str]:
    options = [f"--insecure-options={insecure}"] if insecure else []
    r = cli(*options, "run", "--net=none", *flags, image, "--exec=/bin/sh", "--", "-c", script)
    assert r.code == 0, r
    return r.out.splitlines()


def mount_options(mountinfo: list[str]) -> dict[str, str]:
    """Mount point -> per-mount options, from mountinfo lines."""
    return {ln.split()[4]: ln.split()[5] for ln in mountinfo if len(ln.split()) > 5}


def test_root_app_cannot_write_host_sysctls(env: tuple[Cli, str], host_sysctls_kept: dict[str, str]) -> None:
    cli, image = env
    writes = []
    for key in HOST_SYSCTLS:
        value = str(int(host_sysctls_kept[key]) + 1) if key == CHANGED else host_sysctls_kept[key]
        writes.append(f"(echo {value} > /proc/sys/{key}) 2>&1; echo {key}=$?")
    out = pod_output(cli, image, "id -u; " + "; ".join(writes))
    assert out[0] == "0"  # the app is root in the pod
    text = "\n".join(out)
    for key in HOST_SYSCTLS:
        assert f"/proc/sys/{key}: Read-only file system" in text and f"{key}=1" in out, (key, out)
    # the host values are checked (and restored if need be) by host_sysctls_kept


def test_kernel_files_are_read_only_or_masked(env: tuple[Cli, str]) -> None:
    cli, image = env
    present = [p for p in MASKED if os.path.lexists(p)]
    assert "/proc/keys" in present and "/sys/firmware" in present  # on every kernel this runs on
    checks = []
    for p in present:
        checks.append(f"echo {p}=$(ls -A {p} | wc -l)" if os.path.isdir(p) else f"echo {p}=$(wc -c < {p})")
    out = pod_output(cli, image, "cat /proc/self/mountinfo; echo ---; " + "; ".join(checks))
    sep = out.index("---")
    options = mount_options(out[:sep])
    for p in READ_ONLY:
        if os.path.lexists(p):
            assert p in options and options[p].split(",")[0] == "ro", (p, options.get(p))
    sizes = dict(ln.split("=", 1) for ln in out[sep + 1:])
    assert sizes == {p: "0" for p in present}
    assert options["/sys"].split(",")[0] == "ro"


def test_insecure_paths_leaves_proc_as_the_kernel_shows_it(env: tuple[Cli, str]) -> None:
    cli, image = env
    out = pod_output(cli, image, "cat /proc/self/mountinfo; echo ---; wc -c < /proc/timer_list",
                     insecure="paths")
    sep = out.index("---")
    options = mount_options(out[:sep])
    assert not [p for p in (*READ_ONLY, *MASKED) if p in options]
    assert int(out[sep + 1]) > 0


def pods_on_disk(cli: Cli) -> dict[str, list[str]]:
    pods = cli.data_dir / "pods"
    return {d: sorted(os.listdir(pods / d)) for d in os.listdir(pods)}


def test_sysctl_flag_sets_namespaced_sysctls_in_the_pod_only(env: tuple[Cli, str],
                                                             host_sysctls_kept: dict[str, str]) -> None:
    cli, image = env
    host_shmmni = read_host("kernel/shmmni")
    wanted_shmmni = str(int(host_shmmni) - 1)
    out = pod_output(cli, image, "cat /proc/sys/net/ipv4/ip_unprivileged_port_start /proc/sys/kernel/shmmni; "
                     "(echo 5 > /proc/sys/net/ipv4/ip_unprivileged_port_start) 2>&1; true",
                     "--sysctl=net.ipv4.ip_unprivileged_port_start=0", f"--sysctl=kernel/shmmni={wanted_shmmni}")
    assert out[:2] == ["0", wanted_shmmni]
    assert "Read-only file system" in out[2]  # the app itself still cannot change it
    assert UNPRIVILEGED_PORT.read_text().strip() == host_sysctls_kept["net/ipv4/ip_unprivileged_port_start"]
    assert read_host("kernel/shmmni") == host_shmmni


def test_prepared_pod_keeps_its_sysctls_and_run_prepared_may_override_them(env: tuple[Cli, str]) -> None:
    cli, image = env
    r = cli("prepare", "--quiet", "--sysctl=net.ipv4.ip_unprivileged_port_start=80", "--sysctl=fs.mqueue.queues_max=64",
            image, "--exec=/bin/sh", "--", "-c",
            "cat /proc/sys/net/ipv4/ip_unprivileged_port_start /proc/sys/fs/mqueue/queues_max")
    assert r.code == 0, r
    uuid = r.out.strip()
    r = cli("run-prepared", "--net=host", uuid)  # the prepared net.* key needs the pod's own network
    assert r.code == 254 and "--net=host" in r.err and len(r.err.splitlines()) == 1, r
    assert cli.status(uuid)["state"] == "prepared"
    r = cli("run-prepared", "--net=none", "--sysctl=fs.mqueue.queues_max=65", uuid)
    assert r.code == 0, r
    assert r.out.splitlines() == ["80", "65"]


@pytest.mark.parametrize("flags, words", [
    (("--sysctl=vm.swappiness=61",), "vm.swappiness: not a sysctl of the pod's own namespaces"),
    (("--sysctl=kernel.randomize_va_space=0",), "kernel.randomize_va_space"),
    (("--sysctl=net/../vm/swappiness=61",), "invalid --sysctl key 'net/../vm/swappiness'"),
    (("--sysctl=kernel.hostname=x",), "--hostname"),
    (("--net=host", "--sysctl=net.ipv4.ip_unprivileged_port_start=0"), "net.ipv4.ip_unprivileged_port_start"),
    (("--ipc=parent", "--sysctl=kernel.shmmni=100"), "kernel.shmmni"),
    (("--stage1-name=fly", "--sysctl=net.ipv4.ip_unprivileged_port_start=0"), "fly flavor"),
    (("--sysctl=net.ipv4.ip_unprivileged_port_start=many",), "'many' for net.ipv4.ip_unprivileged_port_start"),
    (("--sysctl=kernel.sem=1 2",), "'1 2' for kernel.sem: want 4 integers"),
])
def test_sysctls_a_pod_may_not_own_are_refused_before_anything_is_prepared(
        env: tuple[Cli, str], host_sysctls_kept: dict[str, str], flags: tuple[str, ...], words: str) -> None:
    cli, image = env
    before = pods_on_disk(cli)
    net = [] if any(f.startswith("--net") for f in flags) else ["--net=none"]
    r = cli("run", *net, *flags, image)
    assert r.code == 254, r
    assert r.err.startswith("pyrkt: ") and words in r.err and len(r.err.splitlines()) == 1, r
    r = cli("prepare", *[f for f in flags if not f.startswith(("--net", "--ipc"))], image)
    if not any(f.startswith(("--net", "--ipc")) for f in flags):  # prepare cannot know the pod's namespaces
        assert r.code == 254 and words in r.err, r
    else:
        assert r.code == 0, r
        assert cli("rm", r.out.strip()).code == 0
    assert pods_on_disk(cli) == before


def test_sysctl_the_kernel_refuses_fails_the_pod_start_naming_it(env: tuple[Cli, str]) -> None:
    cli, image = env
    cli("gc", "--grace-period=0s")
    before = pods_on_disk(cli)
    for flag, words in (("--sysctl=net.ipv4.no_such_sysctl=1", "net.ipv4.no_such_sysctl"),
                        ("--sysctl=net.ipv4.ip_unprivileged_port_start=70000", "net.ipv4.ip_unprivileged_port_start")):
        r = cli("run", "--net=none", flag, image)
        assert r.code == 254, r
        assert r.err.startswith("pyrkt: ") and words in r.err and len(r.err.splitlines()) == 1, r
    assert pods_on_disk(cli) == before
    assert cli("run", "--net=none", image).code == 0  # and pods still run
