"""`pyrkt run` end to end on the real kernel: exit codes, rkt's multi-app rules, what an app
sees from inside (namespaces, /dev, /proc, caps, seccomp), detach, logs, rm and bad input."""

from __future__ import annotations

import json
import os
import re
import subprocess
import time
from pathlib import Path

import pytest
from tests.integration.pods import PYRKT, Cli, make_image, mounts_under, pids_of_pod, pod_cgroups

UUID_RE = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory) -> tuple[Cli, str]:
    base = tmp_path_factory.mktemp("run")
    cli = Cli(base / "data")
    src = make_image(base / "busybox", cmd=("sh", "-c", "echo hello from the image"))
    r = cli("fetch", src)
    assert r.code == 0, r
    image = r.out.strip().splitlines()[-1]
    yield cli, image
    cli.collect_all()
    assert mounts_under(base) == []


def run(cli: Cli, image: str, *args: str, timeout: float = 60) -> tuple[int, str, str]:
    r = cli("run", "--net=none", image, *args, timeout=timeout)
    return r.code, r.out, r.err


def test_image_command_runs_and_its_output_reaches_the_terminal(env: tuple[Cli, str]) -> None:
    cli, image = env
    code, out, err = run(cli, image)
    assert code == 0, err
    assert out == "hello from the image\n"


def test_exit_code_of_the_app_is_the_exit_code_of_run(env: tuple[Cli, str]) -> None:
    cli, image = env
    for want in (0, 1, 2, 42):
        code, _, err = run(cli, image, "--exec=/bin/sh", "--", "-c", f"exit {want}")
        assert code == want, err


def test_failing_app_stops_the_pod_with_its_exit_code(env: tuple[Cli, str]) -> None:
    """rkt's TestExitCodeWithSeveralApps: apps exiting 0, 5 and a sleeper -> run exits 5, 0/5/0."""
    cli, image = env
    save = cli.data_dir.parent / "several.uuid"
    r = cli("run", "--net=none", f"--uuid-file-save={save}",
            image, "--name=zero", "--exec=/bin/sh", "--", "-c", "exit 0", "---",
            image, "--name=five", "--exec=/bin/sh", "--", "-c", "sleep 0.5; exit 5", "---",
            image, "--name=sleeper", "--exec=/bin/sleep", "--", "1000", timeout=30)
    assert r.code == 5, r
    st = cli.status(save.read_text().strip())
    assert (st["state"], st["exited"]) == ("exited", "true")
    assert (st["app-zero"], st["app-five"], st["app-sleeper"]) == ("0", "5", "0")


def test_app_exiting_zero_leaves_the_others_running(env: tuple[Cli, str]) -> None:
    cli, image = env
    r = cli("run", "--net=none", image, "--name=quick", "--exec=/bin/true",
            image, "--name=slow", "--exec=/bin/sh", "--", "-c", "sleep 1; echo slow done", timeout=30)
    assert r.code == 0, r
    assert "slow done" in r.out


def test_app_sees_its_own_namespaces_and_a_minimal_dev(env: tuple[Cli, str]) -> None:
    cli, image = env
    script = ("echo pid=$$; echo host=$(hostname); cat /etc/hostname; echo app=$AC_APP_NAME; "
              "ls /proc | grep -c '^[0-9]'; ls /dev; cat /proc/net/dev | grep -c ':'; "
              "touch /sys/x 2>&1; echo ro=$?")
    r = cli("run", "--net=none", "--hostname=podhost", image, "--name=probe", "--exec=/bin/sh", "--", "-c", script)
    assert r.code == 0, r
    lines = r.out.splitlines()
    assert lines[0] != "pid=1"  # pod init is PID 1, not the app
    assert int(lines[0].split("=")[1]) < 10  # a fresh pid namespace
    assert lines[1:4] == ["host=podhost", "podhost", "app=probe"]
    assert int(lines[4]) <= 4  # only the pod's processes are visible
    devs = set(lines[5:-3])
    for want in ("null", "zero", "full", "random", "urandom", "tty", "console", "pts", "ptmx", "shm", "mqueue"):
        assert want in devs, (want, devs)
    assert lines[-3] == "1"  # --net=none: loopback only
    assert "Read-only file system" in lines[-2]


def test_default_hostname_is_rkt_dash_uuid(env: tuple[Cli, str]) -> None:
    cli, image = env
    save = cli.data_dir.parent / "host.uuid"
    r = cli("run", "--net=none", f"--uuid-file-save={save}", image, "--exec=/bin/hostname")
    assert r.code == 0, r
    assert r.out.strip() == "rkt-" + save.read_text().strip()


def test_app_runs_with_rkt_default_caps_no_new_privs_and_seccomp(env: tuple[Cli, str]) -> None:
    cli, image = env
    r = cli("run", "--net=none", image, "--exec=/bin/sh", "--", "-c",
            "grep -E '^(Cap(Inh|Prm|Eff|Bnd|Amb)|NoNewPrivs|Seccomp):' /proc/self/status")
    assert r.code == 0, r
    st = dict(re.split(r":\s+", ln) for ln in r.out.splitlines())
    assert st["CapBnd"] == st["CapEff"] == st["CapPrm"] == "00000000a80425fb"
    assert st["NoNewPrivs"] == "1"
    assert st["Seccomp"] == "2"


def test_seccomp_blocks_mount_with_eperm(env: tuple[Cli, str]) -> None:
    cli, image = env
    r = cli("run", "--net=none", image, "--exec=/bin/sh", "--", "-c", "unshare -n true; echo rc=$?")
    assert "Operation not permitted" in r.out + r.err
    assert "rc=1" in r.out


def test_insecure_options_turn_each_protection_off(env: tuple[Cli, str]) -> None:
    cli, image = env
    r = cli("--insecure-options=capabilities,paths,seccomp", "run", "--net=none", image, "--exec=/bin/sh", "--", "-c",
            "grep -E '^(CapEff|Seccomp):' /proc/self/status; wc -c < /proc/kallsyms")
    assert r.code == 0, r
    st = dict(re.split(r":\s+", ln) for ln in r.out.splitlines()[:2])
    assert st["Seccomp"] == "0"
    assert st["CapEff"] != "00000000a80425fb"
    assert int(r.out.splitlines()[2]) > 0  # /proc/kallsyms no longer masked


def test_masked_paths_are_inaccessible_by_default(env: tuple[Cli, str]) -> None:
    cli, image = env
    r = cli("run", "--net=none", image, "--exec=/bin/sh", "--", "-c",
            "wc -c < /proc/kallsyms; ls /sys/firmware | wc -l; echo x > /proc/sys/vm/panic_on_oom; echo rc=$?")
    lines = r.out.splitlines()
    assert lines[0] == "0" and lines[1] == "0"
    assert "rc=1" in r.out


def test_user_and_group_from_flags_and_the_images_passwd(env: tuple[Cli, str]) -> None:
    cli, image = env
    r = cli("run", "--net=none", image, "--user=app", "--exec=/bin/sh", "--", "-c", "id -u; id -g; echo $HOME")
    assert r.code == 0, r
    assert r.out.split() == ["1000", "1000", "/home/app"] or r.out.split()[:2] == ["1000", "1000"]
    r = cli("run", "--net=none", image, "--user=4242", "--group=4343", "--exec=/bin/sh", "--", "-c", "id -u; id -g")
    assert r.out.split() == ["4242", "4343"], r
    r = cli("run", "--net=none", image, "--user=nosuchuser", "--exec=/bin/true")
    assert r.code == 254 and "nosuchuser" in r.err, r


def test_environment_precedence_and_working_dir(env: tuple[Cli, str], tmp_path: Path) -> None:
    cli, image = env
    f = tmp_path / "envfile"
    f.write_text("# comment\nFROM_FILE=file\nBOTH=file\n")
    r = cli("run", "--net=none", "--set-env=BOTH=flag", f"--set-env-file={f}", "--set-env=POD=pod", image,
            "--environment=POD=app", "--working-dir=/tmp", "--exec=/bin/sh", "--", "-c",
            "echo $FROM_FILE $BOTH $POD; pwd; echo $PATH")
    assert r.code == 0, r
    lines = r.out.splitlines()
    assert lines[0] == "file flag app"
    assert lines[1] == "/tmp"
    assert lines[2] == "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


def test_detach_returns_the_uuid_and_the_pod_runs_on(env: tuple[Cli, str]) -> None:
    cli, image = env
    r = cli("run", "--net=none", "--detach", image, "--name=ticker", "--exec=/bin/sh", "--", "-c",
            "echo started; echo to-stderr >&2; sleep 1000", timeout=20)
    assert r.code == 0, r
    uuid = r.out.strip()
    assert UUID_RE.match(uuid)
    st = cli.status(uuid)
    assert st["state"] == "running" and int(st["pid"]) > 1
    listed = cli("list", "--no-legend")
    assert uuid[:8] in listed.out and "running" in listed.out
    logs = cli("logs", uuid)
    assert logs.out == "started\n" and logs.err == "to-stderr\n"
    inside = cli("enter", uuid, "/bin/sh", "-c", "echo entered; cat /etc/hostname")
    assert inside.code == 0, inside
    assert inside.out.splitlines() == ["entered", f"rkt-{uuid}"]
    stopped = cli("stop", uuid)
    assert stopped.code == 0 and stopped.out == f'"{uuid}"\n', stopped  # rkt prints it quoted
    st = cli.status(uuid)
    assert st["state"] == "exited" and st["app-ticker"] == "0"
    assert cli("logs", uuid).out == "started\n"  # logs outlive the pod
    again = cli("stop", uuid)
    assert (again.code, again.out) == (0, f'pod "{uuid}" is already stopped\n'), again  # as rkt: not an error
    r = cli("rm", uuid)
    assert r.code == 0, r
    assert pod_cgroups(uuid) == []


def test_a_line_longer_than_16_kib_is_logged_in_partial_records_and_read_back_whole(env: tuple[Cli, str]) -> None:
    """As containerd's CRI logs: no record is longer than 16 KiB, a longer line is `P` records then
    an `F` one (here a 20000-byte line written at once, and one written in two pieces), and
    `pyrkt logs` prints each line whole, with one time at its start."""
    cli, image = env
    save = cli.data_dir.parent / "long-line.uuid"
    script = ('x=$(head -c 20000 /dev/zero | tr "\\0" a); echo short; echo "$x"; '
              'printf %s "$x"; sleep 0.3; echo "$x"; echo err >&2')
    r = cli("run", "--net=none", f"--uuid-file-save={save}", image, "--exec=/bin/sh", "--", "-c", script)
    long_line = "a" * 20000
    assert r.code == 0 and r.out == f"short\n{long_line}\n{long_line * 2}\n", r
    uuid = save.read_text().strip()
    records = [ln.split(" ", 3) for ln in (cli.pod_dir(uuid) / "logs" / "busybox.log").read_text().splitlines()]
    assert all(len(text) <= 16384 for *_, text in records)
    assert [(tag, len(text)) for _, stream, tag, text in records if stream == "stdout"] == [
        ("F", 5), ("P", 16384), ("F", 20000 - 16384), ("P", 16384), ("P", 16384), ("F", 40000 - 2 * 16384)]
    logs = cli("logs", uuid)
    assert (logs.code, logs.out, logs.err) == (0, r.out, "err\n"), logs
    stamped = cli("logs", "--timestamps", uuid).out.splitlines()
    assert [ln.split(" ", 1)[1] for ln in stamped] == ["short", long_line, long_line * 2]
    assert cli("rm", uuid).code == 0


def test_logs_since_until_and_tail_pick_lines_of_a_running_app_and_follow_after_them(env: tuple[Cli, str]) -> None:
    """podman's `logs --since/--until/--tail`: lines by the times pod init stamped them, the
    last N, and following from there until the pod exits."""
    cli, image = env
    r = cli("run", "--net=none", "--detach", image, "--exec=/bin/sh", "--", "-c",
            "for i in 1 2 3 4; do echo line$i; sleep 0.4; done; "
            "while [ ! -e /tmp/go ]; do sleep 0.1; done; echo after; sleep 1000", timeout=20)
    assert r.code == 0, r
    uuid = r.out.strip()
    deadline = time.monotonic() + 10
    while "line4" not in cli("logs", uuid).out:
        assert time.monotonic() < deadline
        time.sleep(0.1)
    stamps = [ln.split(" ", 1)[0] for ln in cli("logs", "--timestamps", uuid).out.splitlines()]
    assert cli("logs", "--tail=2", uuid).out == "line3\nline4\n"
    assert cli("logs", f"--since={stamps[1]}", f"--until={stamps[3]}", uuid).out == "line2\nline3\n"
    assert cli("logs", "--since=1h", "--tail=1", uuid).out == "line4\n"
    assert cli("logs", "--since=2000-01-01", "--until=2000-01-02", uuid).out == ""
    bad = cli("logs", "--since=soon", uuid)
    assert (bad.code, bad.out) == (254, "") and "invalid --since='soon'" in bad.err, bad
    follower = cli.popen("logs", "--follow", "--tail=1", uuid, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    time.sleep(0.5)
    assert cli("enter", uuid, "/bin/touch", "/tmp/go").code == 0
    deadline = time.monotonic() + 10
    while "after" not in cli("logs", uuid).out:
        assert time.monotonic() < deadline
        time.sleep(0.1)
    assert cli("stop", uuid).code == 0
    out, err = follower.communicate(timeout=20)
    assert (follower.returncode, out, err) == (0, "line4\nafter\n", "")
    assert cli("rm", uuid).code == 0


def test_rm_flag_removes_the_pod_after_it_exits(env: tuple[Cli, str]) -> None:
    cli, image = env
    save = cli.data_dir.parent / "rm.uuid"
    r = cli("run", "--net=none", "--rm", f"--uuid-file-save={save}", image, "--exec=/bin/true")
    assert r.code == 0, r
    assert cli("status", save.read_text().strip()).code == 254


def test_prepare_then_run_prepared(env: tuple[Cli, str]) -> None:
    cli, image = env
    r = cli("prepare", "--quiet", image, "--exec=/bin/sh", "--", "-c", "echo prepared-run; exit 3")
    assert r.code == 0, r
    uuid = r.out.strip()
    assert cli.status(uuid)["state"] == "prepared"
    r = cli("run-prepared", "--net=none", uuid)
    assert r.code == 3 and r.out == "prepared-run\n", r
    assert cli("run-prepared", "--net=none", uuid).code == 254


def test_two_run_prepared_at_once_exactly_one_wins(env: tuple[Cli, str]) -> None:
    cli, image = env
    uuid = cli("prepare", "--quiet", image, "--exec=/bin/sleep", "--", "1").out.strip()
    procs = [cli.popen("run-prepared", "--net=none", uuid, stdout=-1, stderr=-1) for _ in range(2)]
    codes = sorted(p.wait(timeout=30) for p in procs)
    assert codes == [0, 254]


def test_enter_needs_a_running_pod_and_app_for_several(env: tuple[Cli, str]) -> None:
    cli, image = env
    save = cli.data_dir.parent / "enter.uuid"
    assert cli("run", "--net=none", f"--uuid-file-save={save}", image, "--exec=/bin/true").code == 0
    r = cli("enter", save.read_text().strip(), "/bin/true")
    assert r.code == 254 and "isn't currently running" in r.err, r  # rkt's words
    r = cli("run", "--net=none", "--detach", image, "--name=a", "--exec=/bin/sleep", "--", "1000", "---",
            image, "--name=b", "--exec=/bin/sleep", "--", "1000")
    uuid = r.out.strip()
    try:
        r = cli("enter", uuid, "/bin/true")
        assert r.code == 254 and "--app" in r.err, r
        r = cli("enter", "--app=b", uuid, "/bin/sh", "-c", "echo $AC_APP_NAME")
        assert r.out == "b\n", r
    finally:
        cli("stop", "--force", uuid)


@pytest.mark.parametrize("args, words", [
    (("oci:/nonexistent/dir",), "nonexistent"),
    (("sha256:ffffffffffff",), "ffffffffffff"),
])
def test_unknown_image_is_a_one_line_error(env: tuple[Cli, str], args: tuple[str, ...], words: str) -> None:
    cli, _ = env
    before = sorted(os.listdir(cli.data_dir / "pods" / "run"))
    r = cli("run", "--net=none", *args)
    assert r.code == 254
    assert len(r.err.strip().splitlines()) == 1 and r.err.startswith("pyrkt: ") and words in r.err
    assert sorted(os.listdir(cli.data_dir / "pods" / "run")) == before


def test_bad_input_leaves_no_pod_behind(env: tuple[Cli, str]) -> None:
    cli, image = env
    pods = cli.data_dir / "pods"
    before = {d: sorted(os.listdir(pods / d)) for d in os.listdir(pods)}
    cases = [
        ((image, image), "multiple apps with name"),
        ((image, "--exec=/no/such/binary"), "/no/such/binary"),
        ((image, "--exec=nosuchcmd"), "nosuchcmd"),
        (("--exec=/bin/true",), "must follow an image"),
        (("--net=bogus", image), "bogus"),
    ]
    for args, words in cases:
        r = cli("run", "--net=none", *args) if "--net=bogus" not in args else cli("run", *args)
        assert r.code == 254, (args, r)
        assert words in r.err and len(r.err.strip().splitlines()) == 1, (args, r)
    assert {d: sorted(os.listdir(pods / d)) for d in os.listdir(pods)} == before


def test_uuid_prefix_errors(env: tuple[Cli, str]) -> None:
    cli, image = env
    r = cli("status", "zzzz")
    assert r.code == 254 and "no matches found" in r.err


def test_fly_flavor_shares_the_host_pid_namespace(env: tuple[Cli, str]) -> None:
    cli, image = env
    r = cli("run", "--stage1-name=fly", image, "--exec=/bin/sh", "--", "-c", "readlink /proc/self/ns/pid; exit 7")
    assert r.code == 7, r
    assert r.out.strip() == os.readlink("/proc/self/ns/pid")


def test_fly_refuses_or_warns_about_what_its_app_cannot_have(env: tuple[Cli, str]) -> None:
    """Nothing silently ignored: the fly app shares the host's network and UTS namespace."""
    cli, image = env
    pods = cli.data_dir / "pods"
    before = {d: sorted(os.listdir(pods / d)) for d in os.listdir(pods)}
    for flags, line in ((["--net=none"], "--net=none cannot be used with the fly flavor"),
                        (["--port=80-tcp:18081"], "--port cannot be used with the fly flavor")):
        r = cli("run", "--stage1-name=fly", *flags, image, "--exec=/bin/true")
        assert (r.code, r.out) == (254, ""), r
        assert r.err.startswith(f"pyrkt: {line}") and len(r.err.splitlines()) == 1, r
    r = cli("prepare", "--quiet", "--stage1-name=fly", image, "--exec=/bin/true")
    assert r.code == 0, r
    uuid = r.out.strip()
    r = cli("run-prepared", "--net=none", uuid)  # the pod stays prepared, as after any refused run-prepared
    assert r.code == 254 and "--net=none cannot be used with the fly flavor" in r.err, r
    assert cli("rm", uuid).code == 0
    assert {d: sorted(os.listdir(pods / d)) for d in os.listdir(pods)} == before
    r = cli("run", "--stage1-name=fly", "--hostname=flyhost", "--net=host", image, "--exec=/bin/hostname")
    assert (r.code, r.out) == (0, os.uname().nodename + "\n"), r
    assert "warning: --hostname=flyhost is not supported by the fly flavor" in r.err, r


def test_a_signature_is_refused_for_an_oci_image_and_said_unchecked_for_a_stored_one(env: tuple[Cli, str]) -> None:
    cli, image = env
    def pods() -> list[str]:  # their UUIDs (the times `list` shows move on)
        return sorted(p["name"] for p in json.loads(cli("list", "--format=json").out or "[]"))

    before = pods()
    r = cli("run", "--net=none", image, "--exec=/bin/true", "oci:/nonexistent", "--signature=/x.asc")
    assert (r.code, r.out) == (254, ""), r
    assert r.err == ("pyrkt: --signature cannot be used with oci:/nonexistent: an OCI or Docker image has no appc "
                     "detached signature to check (--signature is an ACI's .asc file)\n"), r
    assert pods() == before  # no pod made
    r = cli("run", "--net=none", "--rm", image, "--signature=/x.asc", "--exec=/bin/true")
    assert r.code == 0, r
    assert f"warning: --signature /x.asc for {image} was not checked: the image " in r.err, r


def test_sigkill_of_pod_init_leaves_nothing_gc_cannot_clean(env: tuple[Cli, str]) -> None:
    cli, image = env
    uuid = cli("run", "--net=none", "--detach", image, "--exec=/bin/sleep", "--", "1000").out.strip()
    pid = int(cli.status(uuid)["pid"])
    os.kill(pid, 9)
    st = cli.wait_exited(uuid)
    assert st["state"] == "exited"
    r = cli("gc", "--grace-period=0s")
    assert r.code == 0, r
    assert cli("status", uuid).code == 254
    assert pod_cgroups(uuid) == []
    assert mounts_under(cli.data_dir) == []


def start_foreground_sleeper(cli: Cli, image: str, save: Path) -> subprocess.Popen[str]:
    """`pyrkt run` of a sleeping app in the foreground, returned once its pod is running."""
    p = cli.popen("run", "--net=none", f"--uuid-file-save={save}", image, "--exec=/bin/sleep", "--", "1000",
                  stdout=-1, stderr=-1)
    deadline = time.monotonic() + 10
    while not (save.exists() and "state=running" in cli("status", save.read_text().strip()).out):
        assert time.monotonic() < deadline
        time.sleep(0.05)
    return p


def wait_gone(cli: Cli, uuid: str, timeout: float = 5) -> dict[str, str]:
    """The pod's status once it has exited and no process of it is left, within ``timeout``."""
    deadline = time.monotonic() + timeout
    while True:
        st = cli.status(uuid)
        if st["state"] == "exited" and not pids_of_pod(uuid):
            return st
        assert time.monotonic() < deadline, (st, pids_of_pod(uuid))
        time.sleep(0.05)


def test_sigkill_of_a_foreground_run_stops_its_pod(env: tuple[Cli, str], tmp_path: Path) -> None:
    """As in rkt, where the run process is the pod: whenever a foreground `run` (or
    `run-prepared`) is killed once its pod runs, the pod stops as `stop` would (the app is
    TERMed, its status written) and gc leaves nothing behind."""
    cli, image = env
    for i, delay in enumerate((0.0, 0.05, 0.1, 0.2, 0.3, 0.45, 0.55, 0.7, 1.0, 1.5)):
        save = tmp_path / f"fg{i}.uuid"
        if i % 3 == 2:
            r = cli("prepare", "--quiet", f"--uuid-file-save={save}", image, "--exec=/bin/sleep", "--", "1000")
            assert r.code == 0, r
            p = cli.popen("run-prepared", "--net=none", save.read_text().strip(), stdout=-1, stderr=-1)
        else:
            p = cli.popen("run", "--net=none", f"--uuid-file-save={save}", image, "--exec=/bin/sleep", "--",
                          "1000", stdout=-1, stderr=-1)
        uuid = ""
        deadline = time.monotonic() + 10
        while not (uuid and cli.status(uuid).get("state") == "running"):
            assert time.monotonic() < deadline and p.poll() is None, p.communicate()
            uuid = save.read_text().strip() if save.exists() else ""
            time.sleep(0.02)
        time.sleep(delay)  # before, across and after pod init's re-exec (0.5 s)
        p.kill()
        p.wait()
        st = wait_gone(cli, uuid)
        assert st["app-busybox"] == "0", (delay, st)  # stopped by the pod, as `stop` records it
    r = cli("gc", "--grace-period=0s")
    assert r.code == 0, r
    for i in range(10):
        uuid = (tmp_path / f"fg{i}.uuid").read_text().strip()
        assert cli("status", uuid).code == 254 and pod_cgroups(uuid) == []
    assert mounts_under(cli.data_dir) == []


def test_sigkill_of_a_detached_run_leaves_its_pod_running(env: tuple[Cli, str]) -> None:
    cli, image = env
    save = cli.data_dir.parent / "detached-kill.uuid"
    p = cli.popen("run", "--net=none", "--detach", f"--uuid-file-save={save}", image, "--exec=/bin/sleep", "--",
                  "1000", stdout=-1, stderr=-1)
    deadline = time.monotonic() + 10
    while not (save.exists() and "state=running" in cli("status", save.read_text().strip()).out):
        assert time.monotonic() < deadline
        time.sleep(0.01)
    p.kill()  # as soon as its pod runs (it may have returned already)
    p.wait()
    uuid = save.read_text().strip()
    time.sleep(1.0)  # past pod init's re-exec
    try:
        assert cli.status(uuid)["state"] == "running"
    finally:
        assert cli("stop", uuid).code == 0


# `pyrkt run` with SIGKILL sent to itself the moment it would write the pod's pid file: a run
# killed there, at any moment around the hand-over to pod init
KILLED_AT_PID_FILE = """
import os, signal, sys
from pyrkt.kernel import fs
real = fs.atomic_write
def atomic_write(path, *a, **kw):
    if os.path.basename(path) == "pid":
        os.kill(os.getpid(), signal.SIGKILL)
    return real(path, *a, **kw)
fs.atomic_write = atomic_write
from pyrkt.cli.main import main
sys.exit(main(sys.argv[1:]))
"""


@pytest.mark.parametrize("flavor", ["default", "fly"])
def test_a_detached_run_killed_as_it_hands_over_to_pod_init_leaves_a_pod_stop_and_gc_end(
        env: tuple[Cli, str], tmp_path: Path, flavor: str) -> None:
    """Killed as it writes the pid file: pod init (fly: the app) has not been let go yet, and
    ends; the pod is exited, not running with nothing stop or gc could find."""
    cli, image = env
    save = tmp_path / "handover.uuid"
    net = "--net=none" if flavor == "default" else "--net=host"
    p = subprocess.run([str(PYRKT.parent / "python"), "-c", KILLED_AT_PID_FILE, f"--dir={cli.data_dir}", "run",
                        net, f"--stage1-name={flavor}", "--detach", f"--uuid-file-save={save}", image,
                        "--exec=/bin/sleep", "--", "1000"], capture_output=True, text=True, timeout=60)
    assert p.returncode == -9, p
    uuid = save.read_text().strip()
    deadline = time.monotonic() + 10
    while cli.status(uuid)["state"] == "running":  # pod init heard no "joined": it ends, its apps unstarted
        assert time.monotonic() < deadline, cli("stop", "--force", uuid)  # "has no pod init to stop"
        time.sleep(0.05)
    assert cli("rm", uuid).code == 0
    assert pids_of_pod(uuid) == [] and pod_cgroups(uuid) == []


def test_many_commands_at_once_stay_consistent(env: tuple[Cli, str]) -> None:
    cli, image = env
    procs = []
    for i in range(6):
        procs.append(cli.popen("run", "--net=none", image, "--exec=/bin/sh", "--", "-c", f"exit {i % 2}",
                               stdout=-1, stderr=-1))
        procs.append(cli.popen("list", stdout=-1, stderr=-1))
        procs.append(cli.popen("gc", "--grace-period=0s", stdout=-1, stderr=-1))
    for p in procs:
        out, err = p.communicate(timeout=60)
        assert "Traceback" not in err, err
        assert p.returncode in (0, 1), (p.args, p.returncode, err)
    r = cli("gc", "--grace-period=0s")
    assert r.code == 0, r
    assert cli("list", "--no-legend").out.strip() == ""


def test_interactive_app_gets_a_terminal_and_the_terminal_is_restored(env: tuple[Cli, str]) -> None:
    """Drive `pyrkt run --interactive IMG sh` from a real pty, as a user at a terminal would."""
    import pty
    import select
    import termios

    cli, image = env
    pid, master = pty.fork()
    if pid == 0:
        os.execv(cli.argv()[0], cli.argv("run", "--net=none", "--interactive", image, "--exec=/bin/sh"))
    before = termios.tcgetattr(master)
    out = b""

    def read_until(token: bytes, timeout: float = 15) -> None:
        nonlocal out
        deadline = time.monotonic() + timeout
        while token not in out:
            assert time.monotonic() < deadline, out
            r, _, _ = select.select([master], [], [], 0.2)
            if r:
                try:
                    out += os.read(master, 4096)
                except OSError:
                    return

    read_until(b"# ")  # the shell's prompt: it is reading from its terminal now
    if b"\x1b[6n" in out:
        os.write(master, b"\x1b[1;3R")  # answer busybox's cursor-position query as a terminal would
        time.sleep(0.5)
    os.write(master, b"tty; test -t 0 && echo STDIN-IS-A-TTY; echo DONE-$((40+2))\n")
    read_until(b"DONE-42")
    assert b"STDIN-IS-A-TTY" in out and b"not a tty" not in out
    os.write(master, b"exit 3\n")
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 3
    assert termios.tcgetattr(master) == before
    os.close(master)


def test_what_is_typed_before_the_terminal_goes_raw_reaches_the_app(env: tuple[Cli, str]) -> None:
    """A line typed ahead, while pyrkt still prepares the pod, is not flushed away when it puts
    the user's terminal in raw mode (tty.setraw's default TCSAFLUSH would)."""
    import pty
    import select

    cli, image = env
    pid, master = pty.fork()
    if pid == 0:
        os.execv(cli.argv()[0], cli.argv("run", "--net=none", "--interactive", image, "--exec=/bin/sh"))
    os.write(master, b"echo TYPED-$((6*7)); exit 4\n")  # at once: before pyrkt has even started
    out = b""
    deadline = time.monotonic() + 20
    while b"TYPED-42" not in out and time.monotonic() < deadline:
        if select.select([master], [], [], 0.2)[0]:
            try:
                out += os.read(master, 4096)
            except OSError:
                break
    assert b"TYPED-42" in out, out
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 4
    os.close(master)


def test_interactive_with_piped_stdin_passes_the_pipe_through_without_echo(env: tuple[Cli, str]) -> None:
    """`printf ... | pyrkt run --interactive`: no pty (whose echo printed piped input twice);
    the app reads the pipe to its end and its output reaches run's stdout once."""
    cli, image = env
    r = cli("run", "--net=none", "--interactive", image, "--exec=/bin/cat", input="one\ntwo\n", timeout=30)
    assert (r.code, r.out) == (0, "one\ntwo\n"), r


def test_interactive_shell_from_a_pipe_runs_without_prompt_and_gives_its_exit_code(env: tuple[Cli, str]) -> None:
    cli, image = env
    r = cli("run", "--net=none", "--interactive", image, "--exec=/bin/sh", input="exit 3\n", timeout=30)
    assert (r.code, r.out, r.err) == (3, "", ""), r


def test_interactive_app_from_a_pipe_has_no_terminal_and_run_s_stdio(env: tuple[Cli, str]) -> None:
    cli, image = env
    script = ("test -t 0 && echo IN-TTY || echo in-pipe; test -t 1 && echo OUT-TTY || echo out-pipe; "
              "echo to-stderr >&2; cat; echo after-eof")
    r = cli("run", "--net=none", "--interactive", image, "--exec=/bin/sh", "--", "-c", script, input="piped line\n",
            timeout=30)
    assert r.code == 0, r
    assert r.out == "in-pipe\nout-pipe\npiped line\nafter-eof\n", r
    assert r.err == "to-stderr\n", r


def test_interactive_from_a_terminal_into_a_file_has_no_echo_in_the_output(env: tuple[Cli, str]) -> None:
    """stdin a terminal, stdout a pipe (`pyrkt run --interactive ... > file`): pipe mode too, so
    what is typed is read by the app and echoed by the user's terminal, not written to the file."""
    cli, image = env
    master, slave = os.openpty()
    try:
        p = cli.popen("run", "--net=none", "--interactive", image, "--exec=/bin/sh", "--", "-c",
                      "read line; echo got $line", stdin=slave, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        os.close(slave)
        os.write(master, b"typed\n")
        out, err = p.communicate(timeout=30)
    finally:
        os.close(master)
    assert (p.returncode, out) == (0, "got typed\n"), (p.returncode, out, err)


def test_without_interactive_stdin_is_not_a_terminal(env: tuple[Cli, str]) -> None:
    cli, image = env
    r = cli("run", "--net=none", image, "--exec=/bin/sh", "--", "-c", "test -t 0 || echo no-tty")
    assert r.out == "no-tty\n", r


def test_ipc_parent_shares_the_host_ipc_namespace(env: tuple[Cli, str]) -> None:
    cli, image = env
    host = os.readlink("/proc/self/ns/ipc")
    r = cli("run", "--net=none", "--ipc=parent", image, "--exec=/bin/readlink", "--", "/proc/self/ns/ipc")
    assert r.out.strip() == host, r
    r = cli("run", "--net=none", image, "--exec=/bin/readlink", "--", "/proc/self/ns/ipc")
    assert r.code == 0 and r.out.strip() != host, r
    assert cli("run", "--net=none", "--ipc=bogus", image).code == 254


def test_net_host_shares_the_host_network(env: tuple[Cli, str]) -> None:
    cli, image = env
    host = os.readlink("/proc/self/ns/net")
    r = cli("run", "--net=host", image, "--exec=/bin/readlink", "--", "/proc/self/ns/net")
    assert r.code == 0 and r.out.strip() == host, r
    r = cli("run", "--net=none", image, "--exec=/bin/readlink", "--", "/proc/self/ns/net")
    assert r.out.strip() != host, r


def test_image_config_user_workdir_and_env_are_honoured(tmp_path: Path, env: tuple[Cli, str]) -> None:
    cli, _ = env
    src = make_image(tmp_path / "img", cmd=("sh", "-c", "id -u; id -g; pwd; echo $GREETING"), user="app",
                     workdir="/home/app", env=("PATH=/bin", "GREETING=hi"))
    r = cli("run", "--net=none", src)
    assert r.code == 0, r
    assert r.out.split() == ["1000", "1000", "/home/app", "hi"]


def test_a_user_or_group_name_the_image_lacks_is_refused_before_the_pod_is_made(env: tuple[Cli, str]) -> None:
    cli, image = env
    before = cli("list", "--no-legend", "--full").out
    for flags, line in ((("--user=nobody2",), "user 'nobody2' not found in /etc/passwd of image"),
                        (("--user=app", "--group=wheel2"), "group 'wheel2' not found in /etc/group of image")):
        r = cli("run", "--net=none", image, *flags)
        assert r.code == 254 and line in r.err and r.err.count("\n") == 1, r
    assert cli("list", "--no-legend", "--full").out == before  # no pod prepared
    r = cli("run", "--net=none", image, "--user=app", "--exec=/bin/id", "--", "-un")
    assert (r.code, r.out) == (0, "app\n"), r


def test_sigint_to_a_foreground_run_stops_the_pod(env: tuple[Cli, str]) -> None:
    import signal

    cli, image = env
    save = cli.data_dir.parent / "sigint.uuid"
    p = start_foreground_sleeper(cli, image, save)
    time.sleep(0.2)
    p.send_signal(signal.SIGINT)
    p.communicate(timeout=20)
    st = cli.status(save.read_text().strip())
    assert st["state"] == "exited"


def test_stop_escalates_to_kill_when_an_app_ignores_term(env: tuple[Cli, str]) -> None:
    cli, image = env
    uuid = cli("run", "--net=none", "--detach", image, "--name=deaf", "--exec=/bin/sh", "--", "-c",
               "trap '' TERM; while true; do sleep 0.1; done").out.strip()
    time.sleep(0.3)  # its trap in place
    started = time.monotonic()
    r = cli("stop", "--timeout=1s", uuid)
    assert r.code == 0, r
    assert 1 <= time.monotonic() - started < 5
    st = cli.status(uuid)
    # pod init killed the app at the timeout asked for, and recorded it as stopped (what KILLed it aside)
    assert st["state"] == "exited" and st["app-deaf"] == "0", st
    assert (cli.pod_dir(uuid) / "stage1/rootfs/rkt/status/deaf-signaled").read_text() == "137"


def test_stop_gives_the_apps_the_timeout_asked_for_to_end_on_their_own(env: tuple[Cli, str]) -> None:
    cli, image = env
    uuid = cli("run", "--net=none", "--detach", image, "--name=slow", "--exec=/bin/sh", "--", "-c",
               "trap 'sleep 1.5; exit 7' TERM; while true; do sleep 0.1; done").out.strip()
    time.sleep(0.3)
    r = cli("stop", "--timeout=4s", uuid)
    assert r.code == 0, r
    st = cli.status(uuid)
    assert st["state"] == "exited" and st["app-slow"] == "7", st  # its own code: it was not killed


def test_sigkill_of_pyrkt_at_any_moment_leaves_nothing_gc_cannot_clean(env: tuple[Cli, str], tmp_path: Path) -> None:
    cli, image = env
    uuid_files = []
    for i, delay in enumerate((0.0, 0.02, 0.05, 0.08, 0.12, 0.2, 0.3)):
        uuid_files.append(tmp_path / f"kill{i}.uuid")
        p = cli.popen("run", "--net=none", f"--uuid-file-save={uuid_files[-1]}", image, "--exec=/bin/sleep", "--",
                      "1000", stdout=-1, stderr=-1)
        time.sleep(delay)
        p.kill()
        p.wait()
    for line in cli("list", "--no-legend", "--full").out.splitlines():
        if "running" in line:
            assert cli("stop", "--force", line.split()[0]).code == 0
    r = cli("gc", "--grace-period=0s", "--expire-prepared=0s")
    assert r.code == 0, r
    leftovers = [p for d in ("prepare", "run", "exited-garbage", "garbage", "embryo")
                 for p in os.listdir(cli.data_dir / "pods" / d)]
    assert leftovers == []
    assert mounts_under(cli.data_dir) == []
    for f in uuid_files:  # the pods that got as far as a UUID have no cgroup left
        if f.exists():
            assert pod_cgroups(f.read_text().strip()) == []


def test_pod_init_slims_down_and_keeps_supervising(env: tuple[Cli, str]) -> None:
    """Pod init re-executes itself as a lean interpreter after it settles: apps, logs, exit
    codes and rkt's rules carry on across that exec."""
    cli, image = env
    r = cli("run", "--net=none", image, "--name=early", "--exec=/bin/sh", "--", "-c", "sleep 1.2; echo early done", "---",
            image, "--name=late", "--exec=/bin/sh", "--", "-c", "echo before; sleep 1.5; echo after; exit 4", timeout=30)
    assert r.code == 4, r
    assert r.out.splitlines() == ["before", "early done", "after"]
    uuid = cli("run", "--net=none", "--detach", image, "--exec=/bin/sh", "--", "-c",
               "echo one; sleep 1.5; echo two; sleep 1000").out.strip()
    pid = int(cli.status(uuid)["pid"])
    deadline = time.monotonic() + 10
    while "--resume" not in Path(f"/proc/{pid}/cmdline").read_text():
        assert time.monotonic() < deadline, "pod init did not slim down"
        time.sleep(0.1)
    pss = int(next(ln.split()[1] for ln in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines()
                   if ln.startswith("Pss:")))
    assert pss < 8 * 1024, f"pod init uses {pss} kB PSS"
    time.sleep(1.5)
    assert cli("logs", uuid).out == "one\ntwo\n"
    assert cli("stop", uuid).code == 0
    st = cli.status(uuid)
    assert st["state"] == "exited" and st["app-busybox"] == "0"


def test_an_image_volume_is_an_implicit_volume_of_the_pod_as_rkt_says(env: tuple[Cli, str], tmp_path: Path) -> None:
    cli, _ = env
    image = make_image(tmp_path / "vol", cmd=("sh", "-c", "echo x > /data/f && grep -c ' /data ' /proc/self/mounts"),
                       volumes=("/data",))
    r = cli("run", "--net=none", image)
    assert r.code == 0 and r.out == "1\n", r
    assert [line for line in r.err.splitlines() if line.startswith("warning: ")] == [
        'warning: no volume specified for mount point "volume-data", implicitly creating an "empty" volume. '
        "This volume will be removed when the pod is garbage-collected. (app vol, at /data)"], r
    assert cli("run", "--net=none", "--volume=volume-data,kind=empty", image).err == ""  # given: no warning


def test_apps_are_in_cgroups_of_their_own_in_the_pods_which_their_cgroup_namespace_shows_as_root(
        env: tuple[Cli, str]) -> None:
    cli, image = env
    uuid = cli("run", "--net=none", "--detach", image, "--exec=/bin/sh", "--", "-c",
               "cat /proc/self/cgroup > /tmp/cg; exec sleep 1000").out.strip()
    try:
        pid = int(cli.status(uuid)["pid"])
        procs = set()
        for d in pod_cgroups(uuid):
            procs |= {int(p) for p in Path(d, "cgroup.procs").read_text().split()}
        children = [int(c) for c in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
        assert pid in procs and children and set(children) <= procs, (pid, children, procs)
        own = [p for d in pod_cgroups(uuid) for p in Path(d).iterdir() if p.is_dir()]
        assert {p.parent.parent.parent.name for p in own} == {"memory", "cpu", "cpuacct", "pids"}, own
        for d in own:  # the app's cgroup in each limiting hierarchy; pod init stays in the pod's
            app_procs = {int(p) for p in (d / "cgroup.procs").read_text().split()}
            assert set(children) <= app_procs and pid not in app_procs, (d, children, app_procs)
        deadline = time.monotonic() + 10
        seen = ""
        while not seen and time.monotonic() < deadline:
            seen = cli("enter", uuid, "/bin/cat", "/tmp/cg").out
            time.sleep(0.05)
        lines = seen.splitlines()
        assert lines and all(line.endswith(":/") for line in lines), seen  # its own cgroup is the app's root
    finally:
        cli("stop", "--force", uuid)
        cli.wait_exited(uuid)
        cli("rm", uuid)


@pytest.mark.parametrize("flavor", ["default", "fly"])
def test_enter_keeps_the_callers_term_or_gives_vt100_as_rkt(env: tuple[Cli, str], flavor: str) -> None:
    cli, image = env
    net = ["--net=none"] if flavor == "default" else []  # fly takes only the host's network
    uuid = cli("run", *net, "--detach", f"--stage1-name={flavor}", image, "--exec=/bin/sleep", "--",
               "1000").out.strip()
    try:
        with_term = Cli(cli.data_dir, env={"TERM": "xterm-256color"})
        assert with_term("enter", uuid, "/bin/sh", "-c", "echo $TERM").out == "xterm-256color\n"
        no_term = Cli(cli.data_dir)
        no_term.env = {k: v for k, v in os.environ.items() if k != "TERM"}
        assert no_term("enter", uuid, "/bin/sh", "-c", "echo $TERM").out == "vt100\n"
    finally:
        cli("stop", "--force", uuid)
        cli.wait_exited(uuid)
        cli("rm", uuid)


def test_an_exited_pods_cgroups_and_accounting_stay_until_gc_as_rkt(env: tuple[Cli, str], tmp_path: Path) -> None:
    cli, image = env
    save = tmp_path / "uuid"
    r = cli("run", "--net=none", f"--uuid-file-save={save}", image, "--exec=/bin/sh", "--", "-c", "exit 0")
    assert r.code == 0, r
    uuid = save.read_text().strip()
    assert cli.status(uuid)["state"] == "exited"
    kept = pod_cgroups(uuid)
    assert any(d.startswith("/sys/fs/cgroup/cpuacct/") for d in kept), kept
    usage = int(Path(f"/sys/fs/cgroup/cpuacct/pyrkt/{uuid}/cpuacct.usage").read_text())
    assert usage > 0  # the pod's CPU time, readable after it exited
    assert cli("gc", "--grace-period=0s").code == 0
    assert pod_cgroups(uuid) == []
