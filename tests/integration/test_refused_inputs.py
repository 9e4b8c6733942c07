"""Bad input end to end: one line (``pyrkt: ...``), exit 254, never a traceback, and the host
and the store as they were. A read-only data dir for fetch and run; a network whose CNI_ARGS
its plugin refuses (ADD fails, and gc used to replay the args on DEL forever); a run flag that
is not valid; image names carrying newlines and terminal escapes."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from tests.integration.pods import Cli, make_image, mounts_under

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="mounts, pods and CNI need root")


def mount(*args: str) -> None:
    subprocess.run(["mount", *args], check=True)


def umount(path: Path) -> None:
    subprocess.run(["umount", str(path)], check=True)


@pytest.fixture(scope="module")
def image(tmp_path_factory: pytest.TempPathFactory) -> str:
    return make_image(tmp_path_factory.mktemp("img") / "busybox")


@pytest.fixture
def stored(tmp_path: Path, image: str) -> Iterator[tuple[Cli, str]]:
    """A data dir holding ``image`` and one exited pod of it."""
    cli = Cli(tmp_path / "data")
    r = cli("run", "--net=none", image, "--exec=/bin/true")
    assert r.code == 0, r
    image_id = cli("fetch", image).out.strip()
    yield cli, image_id
    cli.collect_all()
    assert mounts_under(tmp_path) == []


def test_a_read_only_data_dir_refuses_fetch_and_run_in_one_line(stored: tuple[Cli, str], image: str,
                                                               tmp_path: Path) -> None:
    cli, image_id = stored
    data = cli.data_dir
    other = make_image(tmp_path / "other", tag="2")
    listed = cli("image", "list", "--no-legend", "--full").out
    pods = cli("list", "--no-legend", "--full").out
    mount("--bind", str(data), str(data))
    try:
        mount("-o", "remount,bind,ro", str(data))
        line = f"pyrkt: data directory {data} is not writable: read-only file system\n"
        for argv in (["fetch", other], ["fetch", image], ["run", "--net=none", image, "--exec=/bin/true"],
                     ["prepare", image], ["run", "--net=none", image_id]):
            r = cli(*argv)
            assert (r.code, r.out, r.err) == (254, "", line), (argv, r)
        # reading still works
        assert cli("image", "list", "--no-legend", "--full").out == listed
        assert cli("list", "--no-legend", "--full").out == pods
    finally:
        umount(data)
    assert cli("image", "list", "--no-legend", "--full").out == listed  # nothing changed meanwhile
    assert cli("list", "--no-legend", "--full").out == pods
    r = cli("fetch", other)
    assert r.code == 0, r
    r = cli("run", "--net=none", image_id, "--exec=/bin/true")
    assert r.code == 0, r


def test_a_read_only_empty_data_dir_and_one_below_it_are_one_line(tmp_path: Path, image: str) -> None:
    ro = tmp_path / "ro"
    ro.mkdir()
    mount("-t", "tmpfs", "-o", "ro,size=1m", "tmpfs", str(ro))
    try:
        for data, where in ((ro, ""), (ro / "below" / "data", f" (at {ro})")):
            cli = Cli(data)
            for argv in (["fetch", image], ["run", image], ["prepare", image]):
                r = cli(*argv)
                assert (r.code, r.out, r.err) == (
                    254, "", f"pyrkt: data directory {data} is not writable: read-only file system{where}\n"), r
        assert os.listdir(ro) == []
    finally:
        umount(ro)


def test_a_data_dir_that_is_a_file_is_one_line(tmp_path: Path, image: str) -> None:
    (tmp_path / "file").write_text("x")
    cli = Cli(tmp_path / "file")
    for argv in (["run", image], ["fetch", image], ["list"], ["gc"], ["rm", "abc"]):
        r = cli(*argv)
        assert (r.code, r.out, r.err) == (254, "", f"pyrkt: data directory {tmp_path}/file is not a directory\n"), r
    assert (tmp_path / "file").read_text() == "x"


def test_an_invalid_hostname_is_refused_before_anything_runs(stored: tuple[Cli, str], image: str) -> None:
    cli, _ = stored
    before = sorted(p.name for p in (cli.data_dir / "pods").glob("*/*"))
    r = cli("run", "--net=none", "--hostname=bad_host.example", image)
    assert (r.code, r.out, r.err) == (
        254, "", "pyrkt: invalid hostname 'bad_host.example': want dot-separated labels of 1-63 letters, "
                 "digits and inner hyphens (RFC 1123)\n"), r
    assert sorted(p.name for p in (cli.data_dir / "pods").glob("*/*")) == before


def traces_of(uuid: str) -> list[str]:
    """What a pod's networks could leave on the host, found by its UUID (other tests may run
    pods meanwhile): its netns file or mount, iptables rules, IPAM reservations."""
    found = [f"netns {p}" for p in Path("/run/pyrkt/netns").glob(f"*{uuid}*")]
    found += [f"mount {ln.split()[1]}" for ln in Path("/proc/self/mounts").read_text().splitlines() if uuid in ln]
    rules = subprocess.run(["iptables-save"], capture_output=True, text=True, check=True).stdout
    found += [f"rule {ln}" for ln in rules.splitlines() if uuid in ln]
    for p in Path("/var/lib/cni/networks").glob("*/*"):
        try:
            if uuid in p.read_text():
                found.append(f"reservation {p}")
        except OSError:
            continue  # released meanwhile
    return found


def test_cni_args_the_plugin_refuses_fail_run_in_one_line_and_gc_collects_the_pod(
        net_env: tuple[Cli, str, Path], tmp_path: Path) -> None:
    cli, image, _ = net_env
    r = cli("run", f"--uuid-file-save={tmp_path}/uuid", "--net=default:IP=999.1.1.1", image, "--exec=/bin/true")
    assert (r.code, r.out) == (254, ""), r
    assert r.err.count("\n") == 1 and r.err.startswith("pyrkt: network 'default': plugin 'ptp' failed on ADD: ")
    assert "999.1.1.1" in r.err
    uuid = (tmp_path / "uuid").read_text().strip()
    r = cli("gc", "--grace-period=0s")
    assert r.code == 0 and "not removed" not in r.err, r
    assert not list((cli.data_dir / "pods").glob(f"*/{uuid}"))
    assert traces_of(uuid) == []
    r = cli("run", "--net=default", image, "--exec=/bin/true")  # the network still works
    assert r.code == 0, r


def test_image_names_with_control_characters_are_printed_escaped(tmp_path: Path) -> None:
    cli = Cli(tmp_path / "data")
    image = make_image(tmp_path / "evil", tag="v1\nx\x1b[31mred")
    image_id = cli("fetch", image).out.strip()
    listed = cli("image", "list", "--no-legend")
    assert listed.code == 0 and listed.out == f"{image_id}\tevil:v1\\nx\\x1b[31mred\t" + listed.out.split("red\t", 1)[1]
    assert listed.out.count("\n") == 1 and "\x1b" not in listed.out
    r = cli("prepare", "--quiet", image_id)
    assert r.code == 0, r
    uuid = r.out.strip()
    pods = cli("list", "--no-legend")
    assert pods.out.count("\n") == 1 and "evil:v1\\nx\\x1b[31mred" in pods.out and "\x1b" not in pods.out
    assert cli("rm", uuid).code == 0
    r = cli("image", "rm", "evil:v2\n\x1b[31m")
    assert (r.code, r.err) == (254, 'pyrkt: image "evil:v2\\n\\x1b[31m" not found in the store\n'), r
