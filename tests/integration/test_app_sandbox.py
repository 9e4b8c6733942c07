"""Mutable pods end to end, as a user drives them: `app sandbox`, then `app add|start|stop|rm|
list|status|exec` on the running pod, `stop` and `gc` of it (also after pod init was killed)."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import time
from pathlib import Path

import pytest
from tests.integration.pods import Cli, fetched_image, mounts_under, pids_of_pod, pod_cgroups

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="pods need root")

UUID_RE = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")
HTTPD = "mkdir -p /www && echo served by web > /www/index.html && exec httpd -f -p 127.0.0.1:8080 -h /www"


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory) -> tuple[Cli, str]:
    with fetched_image(tmp_path_factory.mktemp("sandbox"), cmd=("sh", "-c", "echo hello")) as env:
        yield env


def sandbox(cli: Cli, *flags: str) -> str:
    r = cli("app", "sandbox", "--net=none", *flags)
    assert r.code == 0, r
    uuid = r.out.strip()
    assert UUID_RE.match(uuid), r
    return uuid


def with_sleeper(cli: Cli, image: str, *flags: str) -> str:
    """A sandbox (``flags``: its own) with one app, ``box``, added and sleeping."""
    uuid = sandbox(cli, *flags)
    ok(cli, "app", "add", uuid, image, "--name=box", "--exec=/bin/sleep", "--", "1000")
    ok(cli, "app", "start", uuid, "--app=box")
    return uuid


def ok(cli: Cli, *args: str) -> str:
    r = cli(*args)
    assert r.code == 0, r
    return r.out


def app_states(cli: Cli, uuid: str) -> dict[str, str]:
    out = ok(cli, "app", "list", "--no-legend", uuid)
    return dict(line.split() for line in out.splitlines())


def wait_state(cli: Cli, uuid: str, app: str, want: str, timeout: float = 20) -> dict[str, object]:
    deadline = time.monotonic() + timeout
    while True:
        st = json.loads(ok(cli, "app", "status", uuid, f"--app={app}", "--format=json"))
        if st["state"] == want:
            return st
        assert time.monotonic() < deadline, st
        time.sleep(0.05)


def gone(cli: Cli, uuid: str) -> None:
    """gc took everything the pod had: its dir, cgroups, processes, mounts."""
    r = cli("gc", "--grace-period=0s")
    assert r.code == 0, r
    assert not any((cli.data_dir / "pods" / d / uuid).exists() for d in os.listdir(cli.data_dir / "pods"))
    assert pod_cgroups(uuid) == []
    assert pids_of_pod(uuid) == []
    assert mounts_under(cli.data_dir) == []


def test_sandbox_starts_a_pod_with_no_app_that_stays_up(env: tuple[Cli, str], tmp_path: Path) -> None:
    cli, _ = env
    save = tmp_path / "uuid"
    uuid = sandbox(cli, f"--uuid-file-save={save}", "--hostname=box", "--annotation=example.com/team=a")
    assert save.read_text().strip() == uuid
    time.sleep(0.7)  # past pod init's re-exec: an empty sandbox must not end
    assert cli.status(uuid)["state"] == "running"
    assert app_states(cli, uuid) == {}
    manifest = json.loads(ok(cli, "cat-manifest", uuid))
    annotations = {a["name"]: a["value"] for a in manifest["annotations"]}
    assert annotations["coreos.com/rkt/stage1/mutable"] == "true"
    assert annotations["example.com/team"] == "a"
    ok(cli, "stop", uuid)
    assert cli.status(uuid)["state"] == "exited"
    gone(cli, uuid)


def test_two_apps_added_one_removed_while_the_other_serves(env: tuple[Cli, str]) -> None:
    cli, image = env
    uuid = sandbox(cli)
    ok(cli, "app", "add", uuid, image, "--name=web", "--exec=/bin/sh", "--", "-c", HTTPD)
    ok(cli, "app", "add", uuid, image, "--name=side", "--exec=/bin/sleep", "--", "1000")
    assert app_states(cli, uuid) == {"web": "created", "side": "created"}
    ok(cli, "app", "start", uuid, "--app=web")
    ok(cli, "app", "start", uuid, "--app=side")
    assert app_states(cli, uuid) == {"web": "running", "side": "running"}
    ok(cli, "app", "rm", uuid, "--app=side")
    assert app_states(cli, uuid) == {"web": "running"}
    pod = cli.pod_dir(uuid)
    assert not (pod / "appsinfo" / "side").exists()
    assert not any(Path(c, "side").exists() for c in pod_cgroups(uuid))
    assert [a["name"] for a in json.loads(ok(cli, "cat-manifest", uuid))["apps"]] == ["web"]
    deadline = time.monotonic() + 10
    while True:  # httpd may still be binding
        r = cli("app", "exec", uuid, "--app=web", "--", "wget", "-qO-", "http://127.0.0.1:8080/")
        if r.code == 0 or time.monotonic() > deadline:
            break
        time.sleep(0.1)
    assert r.out == "served by web\n", r
    ok(cli, "stop", uuid)
    gone(cli, uuid)


def test_app_stop_then_start_runs_the_app_again_on_its_own_files(env: tuple[Cli, str]) -> None:
    cli, image = env
    uuid = sandbox(cli)
    ok(cli, "app", "add", uuid, image, "--name=counter", "--exec=/bin/sh", "--",
       "-c", "echo run >> /runs; exec sleep 1000")
    ok(cli, "app", "start", uuid, "--app=counter")
    ok(cli, "app", "stop", uuid, "--app=counter")
    st = wait_state(cli, uuid, "counter", "exited")
    assert st["exit_code"] == 0  # stopped by the pod: 0, as rkt
    ok(cli, "app", "start", uuid, "--app=counter")
    assert wait_state(cli, uuid, "counter", "running")
    assert ok(cli, "app", "exec", uuid, "--app=counter", "--", "cat", "/runs") == "run\nrun\n"
    r = cli("app", "start", uuid, "--app=counter")
    assert r.code == 254 and "running already" in r.err, r
    ok(cli, "stop", uuid)
    gone(cli, uuid)


def test_an_app_exit_does_not_end_the_sandbox(env: tuple[Cli, str]) -> None:
    cli, image = env
    uuid = sandbox(cli)
    ok(cli, "app", "add", uuid, image, "--name=fails", "--exec=/bin/sh", "--", "-c", "echo bye; exit 3")
    ok(cli, "app", "add", uuid, image, "--name=stays", "--exec=/bin/sleep", "--", "1000")
    ok(cli, "app", "start", uuid, "--app=stays")
    ok(cli, "app", "start", uuid, "--app=fails")
    assert wait_state(cli, uuid, "fails", "exited")["exit_code"] == 3
    time.sleep(0.3)
    assert cli.status(uuid)["state"] == "running"
    assert app_states(cli, uuid) == {"fails": "exited", "stays": "running"}
    assert ok(cli, "logs", uuid, "--app=fails") == "bye\n"
    ok(cli, "stop", uuid)
    gone(cli, uuid)


def at_once(cli: Cli, *commands: tuple[str, ...]) -> None:
    """Run the commands as concurrent processes; each must succeed."""
    procs = [cli.popen(*args, stdout=subprocess.PIPE, stderr=subprocess.PIPE) for args in commands]
    for p in procs:
        _, err = p.communicate(timeout=60)
        assert p.returncode == 0, err


def test_concurrent_app_add_and_start_from_several_processes(env: tuple[Cli, str]) -> None:
    cli, image = env
    uuid = sandbox(cli)
    names = [f"app{i}" for i in range(5)]
    at_once(cli, *(("app", "add", uuid, image, f"--name={n}", "--exec=/bin/sleep", "--", "1000") for n in names))
    manifest = json.loads(ok(cli, "cat-manifest", uuid))
    assert sorted(a["name"] for a in manifest["apps"]) == names
    at_once(cli, *(("app", "start", uuid, f"--app={n}") for n in names))
    assert app_states(cli, uuid) == {n: "running" for n in names}
    at_once(cli, *(("app", "rm", uuid, f"--app={n}") for n in names[:3]))
    assert app_states(cli, uuid) == {n: "running" for n in names[3:]}
    ok(cli, "stop", uuid)
    gone(cli, uuid)


def test_app_exec_passes_exit_codes_and_stdin(env: tuple[Cli, str]) -> None:
    cli, image = env
    uuid = with_sleeper(cli, image)
    for want in (0, 1, 7):
        r = cli("app", "exec", uuid, "--app=box", "--", "sh", "-c", f"exit {want}")
        assert r.code == want, r
    r = cli("app", "exec", uuid, "--app=box", "--", "sh", "-c", "tr a-z A-Z; echo $AC_APP_NAME", input="from stdin\n")
    assert (r.code, r.out) == (0, "FROM STDIN\nbox\n"), r
    r = cli("app", "exec", uuid, "--app=box", "--", "ls", "-h", "/etc/hostname")  # -h: ls's, not a help flag
    assert (r.code, r.out) == (0, "/etc/hostname\n"), r
    r = cli("app", "exec", uuid, "--app=box", "--", "sh", "-c", "test -t 0 || echo no terminal")
    assert r.out == "no terminal\n", r
    r = cli("app", "exec", uuid, "--app=box", "--tty", "--", "sh", "-c",
            "test -t 0 && test -t 1 && echo a terminal; read line; echo got $line; exit 4", input="typed\n")
    # (the terminal echoes what was typed; its \r\n line ends read as \n here)
    assert r.code == 4 and r.out.splitlines() == ["typed", "a terminal", "got typed"], r
    r = cli("app", "exec", "--app=box", uuid, "hostname")  # rkt's order: flags, UUID, command
    assert r.code == 0 and r.out.strip() == f"rkt-{uuid}", r
    ok(cli, "app", "stop", uuid, "--app=box")
    r = cli("app", "exec", uuid, "--app=box", "--", "true")
    assert r.code == 254 and "not running" in r.err, r
    ok(cli, "stop", uuid)
    gone(cli, uuid)


def test_sigkill_of_pod_init_then_gc_leaves_nothing(env: tuple[Cli, str]) -> None:
    cli, image = env
    uuid = with_sleeper(cli, image)
    os.kill(int(cli.status(uuid)["pid"]), signal.SIGKILL)
    deadline = time.monotonic() + 10
    while cli.status(uuid)["state"] == "running":
        assert time.monotonic() < deadline
        time.sleep(0.05)
    gone(cli, uuid)


def test_per_app_volume_and_app_annotations(env: tuple[Cli, str], tmp_path: Path) -> None:
    cli, image = env
    (tmp_path / "shared").mkdir()
    (tmp_path / "shared" / "note").write_text("from the host\n")
    uuid = sandbox(cli)
    ok(cli, "app", "add", uuid, image, "--name=reader", "--exec=/bin/sleep",
       f"--mnt-volume=name=data,kind=host,source={tmp_path / 'shared'},readOnly=true,target=/data",
       "--user-annotation=owner=me", "--", "1000")
    ok(cli, "app", "start", uuid, "--app=reader")
    assert ok(cli, "app", "exec", uuid, "--app=reader", "--", "cat", "/data/note") == "from the host\n"
    r = cli("app", "exec", uuid, "--app=reader", "--", "touch", "/data/x")
    assert r.code != 0  # read-only, as the volume says
    status = ok(cli, "app", "status", uuid, "--app=reader")
    assert "user_annotations=owner:me" in status and f"{tmp_path / 'shared'}:/data" in status
    ok(cli, "stop", uuid)
    gone(cli, uuid)


def test_private_users_sandbox_runs_added_apps_in_its_user_namespace(env: tuple[Cli, str]) -> None:
    cli, image = env
    uuid = with_sleeper(cli, image, "--private-users")
    shift = (cli.pod_dir(uuid) / "private-users-prepared").read_text().split(":")[0]
    host = ok(cli, "app", "exec", uuid, "--app=box", "--", "cat", "/proc/self/uid_map").split()
    assert host[:2] == ["0", shift], host
    ok(cli, "stop", uuid)
    gone(cli, uuid)


def test_bad_app_commands_fail_with_one_line_and_change_nothing(env: tuple[Cli, str]) -> None:
    cli, image = env
    r = cli("run", "--net=none", "--detach", image, "--exec=/bin/sleep", "--", "1000")
    assert r.code == 0, r
    plain = r.out.strip()
    r = cli("app", "add", plain, image, "--name=extra")
    assert r.code == 254 and "not a mutable pod" in r.err, r
    ok(cli, "stop", plain)
    uuid = sandbox(cli)
    ok(cli, "app", "add", uuid, image, "--name=one", "--exec=/bin/sleep", "--", "1000")
    before = (cli.pod_dir(uuid) / "pod").read_bytes()
    for args, words in [
        (("app", "add", uuid, image, "--name=one"), "multiple apps with name one in pod"),
        (("app", "add", uuid, "sha256:" + "0" * 64, "--name=two"), "no image IDs found"),
        (("app", "add", uuid, image, "--name=three", "--exec=/no/such"), "not found"),
        (("app", "add", uuid, image, "--name=four", "--mnt-volume=name=v,kind=host,source=/no/such,target=/v"),
         "does not exist"),
        (("app", "start", uuid, "--app=nope"), 'nonexistent app "nope"'),  # rkt's words
        (("app", "rm", uuid, "--app=nope"), 'nonexistent app "nope"'),
        (("app", "status", uuid, "--app=nope"), 'cannot find app "nope" in the pod'),
        (("app", "stop", uuid, "--app=one"), "not running"),
        (("app", "start", uuid), "--app=NAME"),
        (("app", "sandbox", image), "takes no image"),
        (("app", "sandbox", "--port=http:sctp:80:127.0.0.1:8080"), "invalid protocol"),
        (("app", "sandbox", "--net=none", "--port=http:tcp:80:127.0.0.1:8080"), "--port cannot be used with --net=none"),
    ]:
        r = cli(*args)
        assert r.code == 254, (args, r)
        assert words in r.err and len(r.err.strip().splitlines()) == 1, (args, r)
    assert (cli.pod_dir(uuid) / "pod").read_bytes() == before
    assert sorted(os.listdir(cli.pod_dir(uuid) / "appsinfo")) == ["one"]
    ok(cli, "stop", uuid)
    gone(cli, uuid)


def test_a_sandbox_port_reaches_an_app_added_later(env: tuple[Cli, str]) -> None:
    cli, image = env
    import socket

    with socket.socket() as s:  # a free host port on loopback
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    r = cli("app", "sandbox", f"--port=http:tcp:8080:127.0.0.1:{port}")
    assert r.code == 0, r
    uuid = r.out.strip()
    ok(cli, "app", "add", uuid, image, "--name=web", "--exec=/bin/sh", "--", "-c",
       HTTPD.replace("127.0.0.1:8080", "8080"))
    ok(cli, "app", "start", uuid, "--app=web")
    deadline = time.monotonic() + 15
    while True:
        r = subprocess.run(["wget", "-qO-", f"http://127.0.0.1:{port}/"], capture_output=True, text=True)
        if r.returncode == 0 or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    assert r.stdout == "served by web\n", r
    ok(cli, "stop", uuid)
    gone(cli, uuid)


def test_an_app_added_after_pod_init_slimmed_down_gets_what_a_run_app_gets(env: tuple[Cli, str], tmp_path: Path) -> None:
    """Past its re-exec as the lean interpreter, pod init has a fresh interpreter set the app up:
    the same limits, capabilities and volumes as a `run` app."""
    cli, image = env
    (tmp_path / "v").mkdir()
    uuid = sandbox(cli)
    pid = cli.status(uuid)["pid"]
    deadline = time.monotonic() + 10
    while b"--resume" not in Path(f"/proc/{pid}/cmdline").read_bytes():
        assert time.monotonic() < deadline, "pod init did not slim down"
        time.sleep(0.1)
    ok(cli, "app", "add", uuid, image, "--name=late", "--memory=64M", "--caps-retain=CAP_CHOWN",
       f"--mnt-volume=name=v,kind=host,source={tmp_path / 'v'},target=/v", "--exec=/bin/sh", "--",
       "-c", "echo written > /v/out; exec sleep 1000")
    ok(cli, "app", "start", uuid, "--app=late")
    limits = []
    for base in pod_cgroups(uuid):
        for name in ("memory.limit_in_bytes", "memory.max"):
            if Path(base, "late", name).exists():
                limits.append(Path(base, "late", name).read_text().strip())
    assert limits == ["64000000"], limits  # 64M: a Kubernetes quantity, as rkt
    status = ok(cli, "app", "exec", uuid, "--app=late", "--", "grep", "CapBnd", "/proc/self/status")
    assert status.split()[-1] == "0000000000000001", status  # CAP_CHOWN alone
    deadline = time.monotonic() + 10
    while not (tmp_path / "v" / "out").exists():
        assert time.monotonic() < deadline
        time.sleep(0.05)
    assert (tmp_path / "v" / "out").read_text() == "written\n"
    ok(cli, "stop", uuid)
    gone(cli, uuid)


def test_app_commands_killed_at_any_point_leave_a_pod_the_next_command_carries_on_from(env: tuple[Cli, str]) -> None:
    cli, image = env
    uuid = sandbox(cli)
    for delay in (0.02, 0.05, 0.1, 0.15, 0.2, 0.3):
        for args in (("app", "add", uuid, image, "--name=victim", "--exec=/bin/sleep", "--", "1000"),
                     ("app", "start", uuid, "--app=victim"), ("app", "rm", uuid, "--app=victim")):
            p = cli.popen(*args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            time.sleep(delay)
            p.kill()
            p.wait()
        states = app_states(cli, uuid)  # whatever was done is there, whole
        if "victim" in states:
            cli("app", "rm", uuid, "--app=victim")
        assert app_states(cli, uuid) == {}
    ok(cli, "app", "add", uuid, image, "--name=victim", "--exec=/bin/sleep", "--", "1000")
    ok(cli, "app", "start", uuid, "--app=victim")
    assert app_states(cli, uuid) == {"victim": "running"}
    ok(cli, "stop", uuid)
    gone(cli, uuid)


@pytest.mark.parametrize("slimmed", [False, True])
def test_an_app_added_in_stream_mode_can_be_attached_to(env: tuple[Cli, str], slimmed: bool) -> None:
    """An added app's stdio modes hold as a `run` app's, before pod init slims down and after
    (when it imports its stdio side through its fd on pyrkt's package)."""
    cli, image = env
    uuid = sandbox(cli)
    if slimmed:
        pid = cli.status(uuid)["pid"]
        deadline = time.monotonic() + 10
        while b"--resume" not in Path(f"/proc/{pid}/cmdline").read_bytes():
            assert time.monotonic() < deadline, "pod init did not slim down"
            time.sleep(0.1)
    ok(cli, "app", "add", uuid, image, "--name=talker", "--stdin=stream", "--stdout=stream", "--exec=/bin/sh")
    ok(cli, "app", "start", uuid, "--app=talker")
    r = cli("attach", "--mode=stdin", uuid, "--app=talker", input="echo said-$((6*7))\n")
    assert r.code == 0, r
    deadline = time.monotonic() + 20
    while "said-42" not in cli("logs", uuid, "--app=talker").out:  # a stream app's output is logged too
        assert time.monotonic() < deadline, cli("logs", uuid, "--app=talker")
        time.sleep(0.1)
    ok(cli, "stop", uuid)
    gone(cli, uuid)


@pytest.mark.parametrize("slimmed", [False, True])
def test_an_added_app_killed_by_the_oom_killer_is_recorded_as_such(env: tuple[Cli, str], slimmed: bool) -> None:
    """Pod init opens an added app's OOM counter through its fd on the pod's memory cgroup
    (it cannot reach the host's cgroupfs by path from its own root)."""
    cli, image = env
    if not Path("/sys/fs/cgroup/memory/memory.oom_control").exists() and not Path("/sys/fs/cgroup/memory.events").exists():
        pytest.skip("needs a memory cgroup controller")
    uuid = sandbox(cli)
    if slimmed:
        pid = cli.status(uuid)["pid"]
        deadline = time.monotonic() + 10
        while b"--resume" not in Path(f"/proc/{pid}/cmdline").read_bytes():
            assert time.monotonic() < deadline, "pod init did not slim down"
            time.sleep(0.1)
    ok(cli, "app", "add", uuid, image, "--name=hog", "--memory=32M", "--exec=/bin/sh", "--", "-c",
       'a=$(head -c 134217728 /dev/zero | tr "\\0" x); echo survived')
    ok(cli, "app", "start", uuid, "--app=hog")
    st = wait_state(cli, uuid, "hog", "exited")
    apps = json.loads(ok(cli, "status", "--format=json", uuid))["apps"]
    assert [(a["name"], a["exit_code"], a.get("oom_killed")) for a in apps] == [("hog", 137, True)], (st, apps)
    ok(cli, "stop", uuid)
    gone(cli, uuid)


def slimmed_down(cli: Cli, uuid: str) -> None:
    pid = cli.status(uuid)["pid"]
    deadline = time.monotonic() + 10
    while b"--resume" not in Path(f"/proc/{pid}/cmdline").read_bytes():
        assert time.monotonic() < deadline, "pod init did not slim down"
        time.sleep(0.1)


def app_cgroup_pids(uuid: str, app: str) -> list[int]:
    """The pids in the app's own cgroups (its set-up joins them), across the hierarchies."""
    pids: set[int] = set()
    for base in pod_cgroups(uuid):
        procs = Path(base, app, "cgroup.procs")
        if procs.exists():
            pids.update(int(p) for p in procs.read_text().split())
    return sorted(pids)


@pytest.mark.parametrize("slim", ["before-add", "between-add-and-start", "never"])
def test_an_added_app_is_set_up_at_add_and_runs_only_at_its_start(env: tuple[Cli, str], slim: str) -> None:
    """`app add` has pod init set the app up ahead (a child in the app's cgroups, held before
    its exec), and `app start` lets it run: until then the app is created, has not run and
    cannot be entered; the held set-up survives pod init's re-exec as the lean interpreter,
    and one made by the lean pod init (a fresh interpreter's) works the same."""
    cli, image = env
    uuid = sandbox(cli)
    if slim == "before-add":
        slimmed_down(cli, uuid)
    ok(cli, "app", "add", uuid, image, "--name=late", "--exec=/bin/sh", "--", "-c", "echo started; exec sleep 1000")
    deadline = time.monotonic() + 10
    while not app_cgroup_pids(uuid, "late"):  # set up in the background, after the add returned
        assert time.monotonic() < deadline, "the app was not set up ahead"
        time.sleep(0.02)
    if slim == "between-add-and-start":
        slimmed_down(cli, uuid)
    held = app_cgroup_pids(uuid, "late")
    assert app_states(cli, uuid) == {"late": "created"}
    assert cli("app", "exec", uuid, "--app=late", "--", "true").code == 254
    time.sleep(0.3)
    assert "started" not in cli("logs", uuid, "--app=late").out
    ok(cli, "app", "start", uuid, "--app=late")
    assert app_states(cli, uuid) == {"late": "running"}
    assert app_cgroup_pids(uuid, "late") == held  # the same process, now the app
    deadline = time.monotonic() + 10
    while "started" not in cli("logs", uuid, "--app=late").out:
        assert time.monotonic() < deadline, cli("logs", uuid, "--app=late")
        time.sleep(0.05)
    ok(cli, "stop", uuid)
    gone(cli, uuid)


def test_rm_and_stop_of_a_pod_with_apps_set_up_ahead_leave_nothing(env: tuple[Cli, str]) -> None:
    """`app rm` of an app added and never started ends its held set-up (its cgroups go with
    it), and the pod's stop ends those still held: nothing of them is left."""
    cli, image = env
    uuid = sandbox(cli)
    for name in ("a", "b"):
        ok(cli, "app", "add", uuid, image, f"--name={name}", "--exec=/bin/sleep", "--", "1000")
    deadline = time.monotonic() + 10
    while not (app_cgroup_pids(uuid, "a") and app_cgroup_pids(uuid, "b")):
        assert time.monotonic() < deadline, "the apps were not set up ahead"
        time.sleep(0.02)
    held = app_cgroup_pids(uuid, "a")
    ok(cli, "app", "rm", uuid, "--app=a")
    assert app_states(cli, uuid) == {"b": "created"}
    assert not any(Path(base, "a").exists() for base in pod_cgroups(uuid))
    assert not any(Path(f"/proc/{p}").exists() for p in held)
    ok(cli, "app", "add", uuid, image, "--name=a", "--exec=/bin/sh", "--", "-c", "echo second; exec sleep 1000")
    ok(cli, "app", "start", uuid, "--app=a")  # the new plan, not the removed one's
    deadline = time.monotonic() + 10
    while "second" not in cli("logs", uuid, "--app=a").out:
        assert time.monotonic() < deadline, cli("logs", uuid, "--app=a")
        time.sleep(0.05)
    ok(cli, "stop", uuid)
    apps = {a["name"]: a for a in json.loads(ok(cli, "status", "--format=json", uuid))["apps"]}
    assert "exit_code" not in apps["b"] and apps["a"]["exit_code"] == 0, apps  # b never ran
    gone(cli, uuid)
