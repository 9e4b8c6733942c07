"""Stage1 images through the real CLI, as a rkt user runs them: a tiny stage1 ACI built here
whose entrypoints are shell scripts recording what stage0 handed them (argv, cwd, the lock,
the pod dir's layout) proves rkt's stage1 ABI; then each ``--stage1-*`` flag, ``stage1.d``,
``prepare``/``run-prepared``, and the refusals."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from tests.integration.conftest import GpgKeys
from tests.integration.pods import Cli, mounts_under
from tests.support.aci import aci_manifest, appc_arch, build_aci, sign
from tests.support.images import Entry

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="needs root: runs pods")

INSECURE = "--insecure-options=image"
STAGE1_NAME = "example.com/stage1-test"

# Each entrypoint writes its argv (one per line) and cwd to $S1_OUT/<name>.args and .cwd.
RECORD = 'printf "%s\\n" "$0" "$@" > "$S1_OUT/{0}.args"; pwd > "$S1_OUT/{0}.cwd"\n'
RUN = "#!/bin/sh\n" + RECORD.format("run") + """\
if flock -n -s . true; then echo unlocked; else echo locked; fi > "$S1_OUT/run.lock"
readlink "/proc/$$/fd/$RKT_LOCK_FD" > "$S1_OUT/run.lockfd"
echo "${RKT_SELINUX_CONTEXT-unset}:${RKT_SELINUX_MOUNT_CONTEXT-unset}" > "$S1_OUT/run.selinux"
find . -path './stage1/rootfs/opt/stage2/app/rootfs/*' -prune -o -print | sort > "$S1_OUT/run.listing"
ls stage1/rootfs/opt/stage2/app/rootfs/bin > "$S1_OUT/run.approot"
cp stage1/manifest "$S1_OUT/run.manifest"
cp appsinfo/app/manifest "$S1_OUT/run.appmanifest"
[ -z "$S1_NOPID" ] || exit 5
echo "stage1 running"
echo $$ > pid
[ -z "$S1_WAIT" ] || while [ ! -e "$S1_OUT/stopped" ]; do sleep 0.05; done
echo "${S1_CODE:-0}" > stage1/rootfs/rkt/status/app
exit "${S1_CODE:-0}"
"""
ENTER = "#!/bin/sh\n" + RECORD.format("enter") + "exit 3\n"
STOP = "#!/bin/sh\n" + RECORD.format("stop") + 'touch "$S1_OUT/stopped"\n'
GC = "#!/bin/sh\n" + RECORD.format("gc") + "grep -c . pod > /dev/null\n"


def stage1_manifest(version: str | None = "6", *, name: str = STAGE1_NAME) -> dict[str, object]:
    annotations = [{"name": f"coreos.com/rkt/stage1/{ep}", "value": f"/{ep}"} for ep in ("run", "enter", "stop", "gc")]
    if version is not None:
        annotations.append({"name": "coreos.com/rkt/stage1/interface-version", "value": version})
    return {"acKind": "ImageManifest", "acVersion": "0.8.11", "name": name,
            "labels": [{"name": "version", "value": "1.0.0"}, {"name": "os", "value": "linux"},
                       {"name": "arch", "value": appc_arch()}],
            "annotations": annotations}


def build_stage1(dest: Path, version: str | None = "6") -> str:
    scripts = {"run": RUN, "enter": ENTER, "stop": STOP, "gc": GC}
    members = [("rootfs", Entry.dir())] + [(f"rootfs/{n}", Entry.file(s.encode(), mode=0o755)) for n, s in scripts.items()]
    return build_aci(dest, stage1_manifest(version), with_rootfs=False, extra_members=members)


class Env:
    def __init__(self, tmp_path: Path) -> None:
        self.tmp = tmp_path
        self.out = tmp_path / "out"
        self.out.mkdir()
        self.local = tmp_path / "etc"
        self.local.mkdir()
        self.cli = Cli(tmp_path / "data", [f"--local-config={self.local}", f"--system-config={tmp_path / 'lib'}"],
                       env={"S1_OUT": str(self.out)})
        self.stage1 = tmp_path / "stage1.aci"
        self.stage1_id = build_stage1(self.stage1)
        self.app = tmp_path / "app.aci"
        build_aci(self.app, aci_manifest("example.com/app"))

    def recorded(self, name: str) -> list[str]:
        return (self.out / f"{name}.args").read_text().splitlines()

    def cwd(self, name: str) -> str:
        return (self.out / f"{name}.cwd").read_text().strip()


@pytest.fixture
def env(tmp_path: Path) -> Iterator[Env]:
    e = Env(tmp_path)
    yield e
    e.cli.collect_all()
    assert mounts_under(tmp_path) == []


def only_pod(cli: Cli) -> str:
    lines = cli("list", "--no-legend", "--full").out.splitlines()
    assert len(lines) == 1, lines
    return lines[0].split()[0]


def test_run_hands_the_pod_to_the_stage1_run_entrypoint_as_rkt(env: Env) -> None:
    cli = env.cli
    r = cli(INSECURE, "run", f"--stage1-path={env.stage1}", "--net=none", "--hostname=h1", "--dns=10.0.0.1",
            "--ipc=private", str(env.app))
    assert r.code == 0, r
    uuid = only_pod(cli)
    pod_dir = env.tmp / "data" / "pods" / "run" / uuid
    s1 = f"{pod_dir}/stage1/rootfs"
    assert env.recorded("run") == [f"{s1}/run", "--net=none", f"--local-config={env.local}", "--hostname=h1",
                                   "--dns-conf-mode=resolv=stage0,hosts=default", "--ipc=private", uuid]
    assert env.cwd("run") == str(pod_dir)
    # the pod's lock is held, by the fd RKT_LOCK_FD names, while the entrypoint runs
    assert (env.out / "run.lock").read_text() == "locked\n"
    assert (env.out / "run.lockfd").read_text().strip() == str(pod_dir)
    assert (env.out / "run.selinux").read_text() == ":\n"  # set, empty: no SELinux here
    listing = (env.out / "run.listing").read_text().splitlines()
    for path in ("./pod", "./appsinfo/app/manifest", "./stage1/manifest", "./stage1ImageID", "./stage1/rootfs/run",
                 "./stage1/rootfs/opt/stage2/app/rootfs", "./stage1/rootfs/rkt/status",
                 "./stage1/rootfs/etc/rkt-resolv.conf"):
        assert path in listing, (path, listing)
    assert "busybox" in (env.out / "run.approot").read_text().split()  # the app's root is mounted there
    manifest = json.loads((env.out / "run.manifest").read_text())
    assert manifest["name"] == STAGE1_NAME and manifest["annotations"][0]["value"] == "/run"
    app_manifest = json.loads((env.out / "run.appmanifest").read_text())  # an appc ImageManifest, as rkt's
    assert (app_manifest["acKind"], app_manifest["name"]) == ("ImageManifest", "example.com/app")
    assert {"name": "version", "value": "1.0.0"} in app_manifest["labels"] and app_manifest["app"]["exec"]
    assert (pod_dir / "stage1ImageID").read_text() == env.stage1_id
    assert cli.status(uuid)["app-app"] == "0"
    listed = cli("image", "list", "--no-legend").out
    assert STAGE1_NAME in listed and "example.com/app" in listed  # the stage1 image is stored like any other

    r = cli("gc", "--grace-period=0s")
    assert r.code == 0, r
    garbage = env.tmp / "data" / "pods" / "exited-garbage" / uuid
    assert env.recorded("gc") == [f"{garbage}/stage1/rootfs/gc", "--local-config", str(env.local), uuid]
    assert env.cwd("gc") == str(garbage)
    assert not garbage.exists()


def test_the_run_entrypoints_exit_code_is_the_pods(env: Env) -> None:
    env.cli.env = {**(env.cli.env or {}), "S1_CODE": "7"}
    r = env.cli(INSECURE, "run", f"--stage1-path={env.stage1}", str(env.app))
    assert r.code == 7, r
    assert env.recorded("run")[1] == "--net=default"
    assert env.cli.status(only_pod(env.cli))["app-app"] == "7"


def test_an_older_interface_version_gets_no_newer_flags_and_a_warning_as_rkt(env: Env) -> None:
    old = env.tmp / "stage1-v1.aci"
    build_stage1(old, version=None)  # no interface-version annotation: version 1
    r = env.cli(INSECURE, "run", f"--stage1-path={old}", "--hostname=h1", "--ipc=parent", str(env.app))
    assert r.code == 0, r
    assert "warning: --hostname option is not supported by stage1" in r.err
    assert "warning: --ipc option is not supported by stage1" in r.err
    assert env.recorded("run")[1:] == ["--net=default", f"--local-config={env.local}", only_pod(env.cli)]


def test_enter_and_stop_call_their_entrypoints_while_the_pod_runs(env: Env) -> None:
    cli = env.cli
    cli.env = {**(cli.env or {}), "S1_WAIT": "1"}
    proc = cli.popen(INSECURE, "run", f"--stage1-path={env.stage1}", str(env.app),
                     stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 30
        while not (env.out / "run.args").exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        uuid = env.recorded("run")[-1]
        pod_dir = cli.pod_dir(uuid)
        assert cli.status(uuid)["state"] == "running"

        r = cli("enter", uuid, "/bin/echo", "hi")
        assert r.code == 3, r  # the enter entrypoint's exit code
        pid = (pod_dir / "pid").read_text().strip()
        assert env.recorded("enter")[1:] == [f"--pid={pid}", "--appname=app", "--", "/bin/echo", "hi"]
        assert env.cwd("enter") == str(pod_dir)

        r = cli("stop", uuid)
        assert r.code == 0, r
        assert env.recorded("stop") == [f"{pod_dir}/stage1/rootfs/stop", uuid]
        assert proc.wait(timeout=30) == 0
        assert cli.status(uuid)["state"] == "exited"
    finally:
        if proc.poll() is None:
            (env.out / "stopped").touch()
            proc.wait(timeout=30)


def test_detach_returns_once_the_stage1_wrote_its_pid_and_the_pod_runs_on(env: Env) -> None:
    cli = env.cli
    cli.env = {**(cli.env or {}), "S1_WAIT": "1"}
    r = cli(INSECURE, "run", "--detach", f"--stage1-path={env.stage1}", str(env.app))
    assert r.code == 0, r
    uuid = r.out.strip()
    assert uuid == env.recorded("run")[-1]
    st = cli.status(uuid)
    assert st["state"] == "running" and st["pid"] == (cli.pod_dir(uuid) / "pid").read_text().strip()
    assert (cli.pod_dir(uuid) / "logs" / "stage1.log").read_text() == "stage1 running\n"
    r = cli("stop", uuid)
    assert r.code == 0, r
    assert cli.wait_exited(uuid)["app-app"] == "0"


def test_a_detached_stage1_that_exits_before_its_pid_fails_the_run_and_leaves_no_pod(env: Env) -> None:
    env.cli.env = {**(env.cli.env or {}), "S1_NOPID": "1"}
    r = env.cli(INSECURE, "run", "--detach", f"--stage1-path={env.stage1}", str(env.app))
    assert r.code == 254 and r.err.count("\n") == 1, r
    assert "the stage1 run entrypoint exited (status 5) before it wrote pid or ppid" in r.err
    assert env.cli("list", "--no-legend").out == ""


@pytest.mark.parametrize("flag", ["url", "path-relative", "hash", "name", "from-dir"])
def test_each_stage1_flag_finds_the_stage1_image(env: Env, flag: str, monkeypatch: pytest.MonkeyPatch) -> None:
    cli = env.cli
    if flag in ("hash", "name"):
        r = cli(INSECURE, "fetch", str(env.stage1))
        assert r.code == 0, r
    if flag == "from-dir":
        images = env.tmp / "stage1-images"
        images.mkdir()
        shutil.copy(env.stage1, images / "mine.aci")
        (env.local / "paths.d").mkdir()
        (env.local / "paths.d" / "paths.json").write_text(json.dumps(
            {"rktKind": "paths", "rktVersion": "v1", "stage1-images": str(images)}))
    monkeypatch.chdir(env.tmp)
    arg = {"url": f"--stage1-url=file://{env.stage1}", "path-relative": "--stage1-path=stage1.aci",
           "hash": f"--stage1-hash={env.stage1_id}", "name": f"--stage1-name={STAGE1_NAME}:1.0.0",
           "from-dir": "--stage1-from-dir=mine.aci"}[flag]
    r = cli(INSECURE, "run", arg, str(env.app))
    assert r.code == 0, r
    assert env.recorded("run")[0].endswith("/stage1/rootfs/run")
    assert (cli.pod_dir(only_pod(cli)) / "stage1ImageID").read_text() == env.stage1_id


def test_stage1_d_naming_a_stored_image_makes_it_the_default_stage1(env: Env) -> None:
    assert env.cli(INSECURE, "fetch", str(env.stage1)).code == 0
    (env.local / "stage1.d").mkdir()
    (env.local / "stage1.d" / "stage1.json").write_text(json.dumps(
        {"rktKind": "stage1", "rktVersion": "v1", "name": STAGE1_NAME, "version": "1.0.0"}))
    r = env.cli(INSECURE, "run", str(env.app))
    assert r.code == 0, r
    assert env.recorded("run")[0].endswith("/stage1/rootfs/run")
    r = env.cli(INSECURE, "run", "--stage1-name=fly", str(env.app))  # the built-in flavors need no image
    assert r.code == 0 and "hello from aci" in r.out, r


def test_stage1_d_fetches_its_image_from_its_location_when_the_store_lacks_it(env: Env) -> None:
    (env.local / "stage1.d").mkdir()
    (env.local / "stage1.d" / "stage1.json").write_text(json.dumps(
        {"rktKind": "stage1", "rktVersion": "v1", "name": STAGE1_NAME, "version": "1.0.0",
         "location": str(env.stage1)}))
    r = env.cli(INSECURE, "run", str(env.app))
    assert r.code == 0, r
    assert env.recorded("run")[0].endswith("/stage1/rootfs/run")
    assert STAGE1_NAME in env.cli("image", "list", "--no-legend").out
    (env.local / "stage1.d" / "stage1.json").write_text(json.dumps(
        {"rktKind": "stage1", "rktVersion": "v1", "name": "example.com/not-stored", "version": "1.0.0"}))
    r = env.cli(INSECURE, "run", str(env.app))
    assert r.code == 254 and r.err.count("\n") == 1, r
    assert "example.com/not-stored:1.0.0, which is not in the store, and gives no location" in r.err


def test_prepare_records_the_stage1_image_gc_keeps_it_and_run_prepared_runs_it(env: Env) -> None:
    cli = env.cli
    r = cli(INSECURE, "prepare", "--quiet", f"--stage1-path={env.stage1}", str(env.app))
    assert r.code == 0, r
    uuid = r.out.strip()
    r = cli("image", "gc", "--grace-period=0s")
    assert r.code == 0, r
    assert STAGE1_NAME in cli("image", "list", "--no-legend").out  # a prepared pod uses it
    r = cli("image", "rm", env.stage1_id)  # as rkt: it may go, and the pod runs from its copy
    assert r.code == 0, r
    assert STAGE1_NAME not in cli("image", "list", "--no-legend").out
    r = cli("run-prepared", uuid)
    assert r.code == 0 and r.out == "stage1 running\n", r
    assert env.recorded("run")[-1] == uuid


def test_the_stage1_image_is_verified_as_rkt_unless_insecure(env: Env) -> None:
    r = env.cli("run", f"--stage1-path={env.stage1}", f"--stage1-path={env.stage1}", str(env.app))
    assert r.code == 254 and r.err.strip() == "pyrkt: --stage1-path already used", r
    r = env.cli("run", f"--stage1-path={env.stage1}", str(env.app))
    assert r.code == 254 and "signature verification failed: no signature" in r.err, r
    assert env.cli("image", "list", "--no-legend").out == ""


@pytest.mark.parametrize(("args", "message"), [
    (("--stage1-path=/x.aci", "--stage1-url=file:///y.aci"), "flags --stage1-url and --stage1-path are mutually exclusive"),
    (("--stage1-hash=sha512-0123456789abcdef", "--stage1-name=example.com/s1"),
     "flags --stage1-name and --stage1-hash are mutually exclusive"),
    (("--stage1-url=/x.aci",), "--stage1-url=/x.aci: not a URL"),
    (("--stage1-hash=example.com/s1",), "--stage1-hash=example.com/s1: not an image ID"),
    (("--stage1-path=/no/such.aci",), "no stage1 image file /no/such.aci"),
    (("--stage1-path=STAGE1", "--sysctl=net.ipv4.ip_forward=1"), "--sysctl cannot be used with a stage1 image"),
    (("--stage1-path=APP",), "is not a stage1 image: its manifest has no coreos.com/rkt/stage1/run annotation"),
    (("--stage1-path=BROKEN",), "its stop entrypoint /nowhere/stop is not an executable file in its rootfs"),
])
def test_bad_stage1_choices_are_one_line_254_and_leave_no_pod(env: Env, args: tuple[str, ...], message: str) -> None:
    broken = env.tmp / "broken.aci"
    manifest = stage1_manifest()
    manifest["annotations"][2]["value"] = "/nowhere/stop"  # type: ignore[index]
    build_aci(broken, manifest, with_rootfs=False, extra_members=[
        ("rootfs", Entry.dir()), *((f"rootfs/{n}", Entry.file(b"#!/bin/sh\n", mode=0o755)) for n in ("run", "enter", "gc"))])
    args = tuple(a.replace("STAGE1", str(env.stage1)).replace("APP", str(env.app)).replace("BROKEN", str(broken))
                 for a in args)
    r = env.cli(INSECURE, "run", *args, str(env.app))
    assert r.code == 254 and r.err.count("\n") == 1 and message in r.err, r
    assert env.cli("list", "--no-legend").out == ""
    for state in ("prepare", "prepared", "run", "exited-garbage", "garbage"):
        d = env.tmp / "data" / "pods" / state
        assert not d.is_dir() or os.listdir(d) == [], state


@pytest.mark.skipif(shutil.which("gpg") is None or shutil.which("openssl") is None, reason="needs gpg and openssl")
def test_a_stage1_image_from_https_is_fetched_and_its_signature_checked_as_rkt(env: Env, gpg_keys: GpgKeys) -> None:
    from tests.integration.pods import make_image
    from tests.support.webserver import Reply, WebServer

    fpr, pub, home = gpg_keys["alice"]
    server = WebServer(env.tmp / "tls")
    try:
        server.routes["/stage1.aci"] = Reply(env.stage1.read_bytes())
        cli = env.cli
        cli.env = {**(cli.env or {}), **server.env()}
        app = make_image(env.tmp / "busybox")  # an OCI layout: no signature to check for the app
        url = f"--stage1-url={server.base}/stage1.aci"
        r = cli("run", url, app, "--exec=/bin/true")
        assert r.code == 254 and r.err.count("\n") == 1 and "signature" in r.err, r  # unsigned, not trusted
        server.routes["/stage1.aci.asc"] = Reply(sign(env.stage1, home, fpr).read_bytes())
        r = cli("trust", f"--prefix={STAGE1_NAME}", "--skip-fingerprint-review", str(pub))
        assert r.code == 0, r
        r = cli("run", url, app, "--exec=/bin/true")
        assert r.code == 0, r
        assert env.recorded("run")[0].endswith("/stage1/rootfs/run")
    finally:
        server.close()


def test_gc_takes_back_the_apps_mounts_after_run_was_killed(env: Env) -> None:
    cli = env.cli
    cli.env = {**(cli.env or {}), "S1_WAIT": "1"}
    proc = cli.popen(INSECURE, "run", f"--stage1-path={env.stage1}", str(env.app), stdout=subprocess.DEVNULL)
    deadline = time.monotonic() + 30
    while not (env.out / "run.args").exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    uuid = env.recorded("run")[-1]
    proc.kill()  # SIGKILL: the stage1 (as rkt's, the pod's own process) runs on with the lock
    proc.wait(timeout=30)
    assert cli.status(uuid)["state"] == "running"
    assert mounts_under(cli.pod_dir(uuid)) != []  # the app's root
    (env.out / "stopped").touch()
    cli.wait_exited(uuid)
    r = cli("gc", "--grace-period=0s")
    assert r.code == 0, r
    assert mounts_under(env.tmp) == [] and not any((env.tmp / "data" / "pods").glob(f"*/{uuid}"))
