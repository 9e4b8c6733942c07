"""Pod init lives in a root of its own: what an app reads through /proc/1 (mountinfo, cmdline,
root, cwd) shows nothing of the host's mount table or tree, before and after pod init
re-executes itself, and the pod still works from the host: status, logs, enter, stop, gc."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest
from tests.integration.pods import Cli, fetched_image, mounts_under, pod_cgroups

# pod init's root: its procfs, and links named by its own fds (see stage1/initroot.py)
INIT_ROOT = {"proc", "pod", "pyrkt", "usr", "lib", "lib64", "lib32", "libx32"}


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory) -> tuple[Cli, str]:
    with fetched_image(tmp_path_factory.mktemp("initroot")) as env:
        yield env


def host_words(cli: Cli) -> list[str]:
    """Strings that would betray the host: the data dir, this checkout, the host's own mounts."""
    words = [str(cli.data_dir.resolve()), str(Path(__file__).resolve().parents[2]), "/sys/fs/cgroup", "ext4"]
    with open("/proc/self/mountinfo") as f:
        words += [ln.split()[4] for ln in f if ln.split()[4] not in ("/", "/proc")]
    return words


def assert_no_host_path(text: str, cli: Cli) -> None:
    leaked = [w for w in host_words(cli) if w in text]
    assert not leaked, (leaked, text)


def test_an_app_reads_no_host_mount_or_path_through_proc_1(env: tuple[Cli, str]) -> None:
    cli, image = env
    r = cli("run", "--net=none", image, "--exec=/bin/sh", "--", "-c",
            "cat /proc/1/mountinfo; echo ---; tr '\\0' ' ' < /proc/1/cmdline; echo; ls /proc/1/root 2>&1; true")
    assert r.code == 0, r
    mountinfo, rest = r.out.split("---\n")
    assert [ln.split()[4] for ln in mountinfo.splitlines()] == ["/", "/proc"], mountinfo
    assert_no_host_path(mountinfo + rest.splitlines()[0], cli)
    assert "Permission denied" in rest  # the default capabilities give no access to pod init's root


def test_pod_init_root_holds_only_links_the_app_cannot_follow(env: tuple[Cli, str]) -> None:
    """With every capability (so /proc/1/root is open to the app), pod init's root is the
    small tmpfs; its links name pod init's fds, which for the reader name nothing."""
    cli, image = env
    r = cli("run", "--net=none", "--insecure-options=capabilities", "--detach", image, "--name=one",
            "--exec=/bin/sh", "--", "-c", "echo one says hi; sleep 1000", "---",
            image, "--name=two", "--exec=/bin/sleep", "--", "1000")
    assert r.code == 0, r
    uuid = r.out.strip()
    probe = ("cat /proc/1/mountinfo; echo ---; ls -a /proc/1/root; echo ---; readlink /proc/1/cwd; "
             "tr '\\0' ' ' < /proc/1/cmdline; echo; ls /proc/1/root/usr/bin /proc/1/root/pod/ 2>&1 | head -3")
    try:
        for phase in ("forked", "re-executed"):
            if phase == "re-executed":  # pod init becomes a lean interpreter after 0.5 s
                pid = int(cli.status(uuid)["pid"])
                deadline = time.monotonic() + 10
                while "--resume" not in Path(f"/proc/{pid}/cmdline").read_text():
                    assert time.monotonic() < deadline, "pod init did not re-execute itself"
                    time.sleep(0.1)
            r = cli("enter", "--app=two", uuid, "/bin/sh", "-c", probe)
            assert r.code == 0, (phase, r)
            mountinfo, listing, rest = r.out.split("---\n")
            assert [ln.split()[4] for ln in mountinfo.splitlines()] == ["/", "/proc"], (phase, mountinfo)
            entries = set(listing.split()) - {".", ".."}
            assert {"proc", "pod", "usr"} <= entries <= INIT_ROOT, (phase, entries)
            assert rest.splitlines()[0] == "/", (phase, rest)
            assert "No such file or directory" in rest, (phase, rest)  # /usr, /pod: pod init's fds, not ours
            assert_no_host_path(mountinfo + listing + "\n".join(rest.splitlines()[:2]), cli)
        st = cli.status(uuid)
        assert st["state"] == "running", st
        assert cli("logs", "--app=one", uuid).out == "one says hi\n"
        r = cli("enter", "--app=one", uuid, "/bin/sh", "-c", "echo $AC_APP_NAME")
        assert r.out == "one\n", r
    finally:
        stopped = cli("stop", uuid)
    assert stopped.code == 0, stopped
    st = cli.status(uuid)
    assert st["state"] == "exited" and st["app-one"] == "0" and st["app-two"] == "0", st
    assert cli("gc", "--grace-period=0s").code == 0
    assert pod_cgroups(uuid) == []
    assert mounts_under(cli.data_dir) == []


def test_pod_init_in_its_own_root_keeps_rkts_exit_rules_and_logs(env: tuple[Cli, str]) -> None:
    """Statuses, logs and the pod's exit code are written from pod init's root, through the
    re-exec: the first app failing stops the other."""
    cli, image = env
    save = cli.data_dir.parent / "rules.uuid"
    r = cli("run", "--net=none", f"--uuid-file-save={save}", image, "--name=fails",
            "--exec=/bin/sh", "--", "-c", "echo bye; sleep 0.8; exit 5", "---",
            image, "--name=waits", "--exec=/bin/sleep", "--", "1000", timeout=30)
    assert r.code == 5 and r.out == "bye\n", r
    uuid = save.read_text().strip()
    st = cli.status(uuid)
    assert st["state"] == "exited" and st["app-fails"] == "5" and st["app-waits"] == "0", st
    assert cli("logs", "--app=fails", uuid).out == "bye\n"
    assert not os.path.exists(cli.pod_dir(uuid) / "stage1" / "podinit.state")
