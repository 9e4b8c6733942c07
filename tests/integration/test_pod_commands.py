"""`list`, `status`, `rm`, `gc` and `cat-manifest` through the installed CLI, on pod dirs laid
out as stage0/stage1 leave them. A "running" pod is one whose dir flock the test holds, exactly
as pod init would. Real mounts and immutable files check that deleting never harms the host.
"""

from __future__ import annotations

import fcntl
import json
import os
import re
import subprocess
import threading
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from pyrkt.errors import InvalidState
from pyrkt.model import abi
from pyrkt.model.image import AppSpec, Image
from pyrkt.model.names import new_uuid
from pyrkt.model.pod import PodManifest, RuntimeApp, RuntimeImage
from pyrkt.pods import gc as podgc

PYRKT = Path(__file__).resolve().parents[2] / ".venv" / "bin" / "pyrkt"
IMAGE_ID = "sha256:" + "5eed" * 16

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="rm and gc need root")


@dataclass
class Result:
    code: int
    out: str
    err: str


class Data:
    """One data dir: writes synthetic pods into it and runs `pyrkt --dir=<it> ...`."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.pods = root / "pods"
        self.fds: list[int] = []

    def __call__(self, *args: str, timeout: float = 60) -> Result:
        p = subprocess.run([str(PYRKT), f"--dir={self.root}", *args], capture_output=True, text=True,
                           timeout=timeout, stdin=subprocess.DEVNULL)
        return Result(p.returncode, p.stdout, p.stderr)

    def popen(self, *args: str) -> subprocess.Popen[str]:
        return subprocess.Popen([str(PYRKT), f"--dir={self.root}", *args], text=True, stdin=subprocess.DEVNULL,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE)

    def pod(self, where: str, *, apps: tuple[str, ...] = ("web",), codes: dict[str, int] | None = None,
            ip: str | None = None, pid: int | None = None, uuid: str | None = None) -> str:
        uuid = uuid or new_uuid()
        for d in ("embryo", "prepare", "prepared", "run", "exited-garbage", "garbage"):
            (self.pods / d).mkdir(parents=True, exist_ok=True)
        path = self.pods / where / uuid
        (path / abi.STATUS_DIR).mkdir(parents=True)
        pm = PodManifest(apps=tuple(
            RuntimeApp(name=a, image=RuntimeImage(id=IMAGE_ID, name=f"example.com/{a}"), app=AppSpec(exec=("/bin/sh",)))
            for a in apps))
        (path / abi.POD_MANIFEST).write_text(json.dumps(pm.to_json()))
        for a in apps:
            (path / abi.APPSINFO / a).mkdir(parents=True)
            image = Image(id=IMAGE_ID, name=f"example.com/{a}", labels=(("version", "2.1"),))
            (path / abi.app_manifest(a)).write_text(json.dumps(image.to_json()))
            (path / (abi.app_status(a) + "-created")).touch()
            if where != "prepared":
                (path / (abi.app_status(a) + "-started")).touch()
        for a, code in (codes or {}).items():
            (path / abi.app_status(a)).write_text(f"{code}\n")
        (path / abi.POD_CREATED).touch()
        if pid is not None:
            (path / abi.PID).write_text(f"{pid}\n")
        if ip is not None:
            (path / abi.NET_INFO).write_text(json.dumps([{
                "netName": "default", "netConf": "net/default.conf", "pluginPath": "/usr/lib/cni/ptp",
                "ifName": "eth0", "ip": ip, "args": "", "mask": "ffffff00"}]))
        return uuid

    def path(self, uuid: str) -> Path | None:
        found = [p for p in self.pods.glob(f"*/{uuid}")]
        assert len(found) <= 1, found
        return found[0] if found else None

    def hold(self, uuid: str) -> int:
        """Hold the pod's lock, as its pod init would while it runs."""
        path = self.path(uuid)
        assert path is not None
        fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        self.fds.append(fd)
        return fd

    def release(self, fd: int) -> None:
        self.fds.remove(fd)
        os.close(fd)

    def close(self) -> None:
        for fd in self.fds:
            os.close(fd)


@pytest.fixture
def data(tmp_path: Path) -> Iterator[Data]:
    d = Data(tmp_path / "data")
    d.root.mkdir()
    yield d
    d.close()
    left = [ln.split()[4] for ln in Path("/proc/self/mountinfo").read_text().splitlines()
            if ln.split()[4].startswith(str(tmp_path))]
    for m in reversed(left):
        subprocess.run(["umount", "-l", m], check=False)
    subprocess.run(["chattr", "-R", "-i", "-a", str(tmp_path)], capture_output=True, check=False)
    assert left == [], "a test left mounts behind"


def kv(text: str) -> dict[str, str]:
    return dict(line.split("=", 1) for line in text.splitlines())


# -- list -----------------------------------------------------------------------------------

def test_list_shows_every_live_pod_one_row_per_app(data: Data) -> None:
    running = data.pod("run", apps=("web", "db"), ip="172.16.28.9", pid=os.getpid())
    data.hold(running)
    prepared = data.pod("prepared")
    exited = data.pod("run", codes={"web": 3})
    data.pod("garbage")  # not listed, as rkt
    r = data("list")
    assert (r.code, r.err) == (0, "")
    header, *rows = r.out.splitlines()
    assert re.split(r"\t+", header) == ["UUID", "APP", "IMAGE NAME", "STATE", "CREATED", "STARTED", "NETWORKS"]
    by_uuid = {row.split()[0]: row for row in rows if not row.startswith("\t")}
    assert set(by_uuid) == {running[:8], prepared[:8], exited[:8]}
    assert "running" in by_uuid[running[:8]] and "default:ip4=172.16.28.9" in by_uuid[running[:8]]
    assert "example.com/web:2.1" in by_uuid[running[:8]]
    db_row = rows[rows.index(by_uuid[running[:8]]) + 1]
    assert db_row.split() == ["db", "example.com/db:2.1"]
    assert "prepared" in by_uuid[prepared[:8]] and "exited" in by_uuid[exited[:8]]


def test_list_full_and_no_legend(data: Data) -> None:
    uuid = data.pod("prepared")
    r = data("list", "--full", "--no-legend")
    assert r.code == 0
    [row] = r.out.splitlines()
    cells = re.split(r"\t+", row)  # rkt's tabwriter pads with tabs
    assert cells[:5] == [uuid, "web", "example.com/web:2.1", IMAGE_ID[:19], "prepared"]
    assert re.fullmatch(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d(\.\d+)? [+-]\d{4} \S+", cells[5])


def test_list_json_is_rkts_v1_pod_array(data: Data) -> None:
    uuid = data.pod("run", ip="172.16.28.4", codes={"web": 0})
    [pod] = json.loads(data("list", "--format=json").out)
    assert pod["name"] == uuid and pod["state"] == "exited" and pod["app_names"] == ["web"]
    assert pod["networks"][0]["ip"] == "172.16.28.4" and set(pod["networks"][0]) == {
        "netName", "netConf", "pluginPath", "ifName", "ip", "args", "mask"}
    assert pod["apps"][0]["exit_code"] == 0 and pod["apps"][0]["image_id"] == IMAGE_ID
    assert isinstance(pod["created_at"], int) and abs(pod["created_at"] / 1e9 - time.time()) < 60
    pretty = data("list", "--format=json-pretty").out
    assert json.loads(pretty) == [pod] and "\n  " in pretty


# -- status ---------------------------------------------------------------------------------

def test_status_of_a_running_and_of_an_exited_pod(data: Data) -> None:
    running = data.pod("run", ip="172.16.28.2", pid=os.getpid())
    data.hold(running)
    exited = data.pod("run", apps=("a", "b"), codes={"a": 0, "b": 5}, pid=1)
    st = kv(data("status", running[:6]).out)
    assert (st["state"], st["exited"], st["pid"], st["networks"]) == (
        "running", "false", str(os.getpid()), "default:ip4=172.16.28.2")
    assert "created" in st and "app-web" not in st
    st = kv(data("status", exited).out)
    assert (st["state"], st["exited"], st["app-a"], st["app-b"]) == ("exited", "true", "0", "5")


def test_status_json(data: Data) -> None:
    uuid = data.pod("prepared")
    pod = json.loads(data("status", "--format=json", uuid).out)
    assert (pod["name"], pod["state"], pod["apps"][0]["state"]) == (uuid, "prepared", "created")


def test_status_errors_name_the_uuid(data: Data) -> None:
    data.pod("prepared", uuid="abcd0001-0000-4000-8000-000000000000")
    data.pod("prepared", uuid="abcd0002-0000-4000-8000-000000000000")
    assert data("status", "ffff") == Result(254, "", 'pyrkt: no matches found for "ffff"\n')
    assert data("status", "abcd") == Result(254, "", 'pyrkt: ambiguous uuid, 2 matches for "abcd"\n')
    r = data("status", f"--uuid-file={data.root}/no-such-file")
    assert r.code == 1 and "no-such-file" in r.err


def test_status_uuid_file(data: Data) -> None:
    uuid = data.pod("prepared")
    (data.root / "uuid").write_text(uuid + "\n")
    assert kv(data("status", f"--uuid-file={data.root}/uuid").out)["state"] == "prepared"


def test_status_wait_returns_when_the_pod_exits(data: Data) -> None:
    uuid = data.pod("run", pid=os.getpid(), codes={"web": 7})
    fd = data.hold(uuid)
    timer = threading.Timer(0.5, data.release, (fd,))
    timer.start()
    t0 = time.monotonic()
    r = data("status", "--wait", uuid)
    timer.join()
    assert r.code == 0, r
    assert time.monotonic() - t0 >= 0.45
    st = kv(r.out)
    assert (st["state"], st["exited"], st["app-web"]) == ("exited", "true", "7")


def test_status_wait_with_a_timeout_fails_on_a_pod_that_keeps_running(data: Data) -> None:
    uuid = data.pod("run", pid=os.getpid())
    data.hold(uuid)
    r = data("status", "--wait=300ms", uuid)
    assert r.code == 254 and r.out == ""
    assert r.err == f"pyrkt: timed out after 0.3s waiting for pod {uuid} to finish\n"


def test_status_wait_ready_returns_once_the_supervisor_is_ready(data: Data) -> None:
    uuid = data.pod("run", pid=os.getpid())
    data.hold(uuid)
    path = data.path(uuid)
    assert path is not None
    timer = threading.Timer(0.3, os.symlink, ("ready", path / abi.SUPERVISOR_STATUS))
    timer.start()
    r = data("status", "--wait-ready=10s", uuid)
    timer.join()
    assert r.code == 0, r
    assert kv(r.out)["state"] == "running"


# -- cat-manifest ---------------------------------------------------------------------------

def test_cat_manifest_prints_the_pod_manifest(data: Data) -> None:
    uuid = data.pod("prepared", apps=("web", "db"))
    r = data("cat-manifest", uuid[:8])
    assert r.code == 0 and "\n  " in r.out
    manifest = json.loads(r.out)
    assert manifest["acKind"] == "PodManifest" and [a["name"] for a in manifest["apps"]] == ["web", "db"]
    compact = data("cat-manifest", "--pretty-print=false", uuid).out
    assert json.loads(compact) == manifest and compact.count("\n") == 1
    assert data("cat-manifest", "0000").code == 254


# -- rm -------------------------------------------------------------------------------------

def test_rm_removes_exited_prepared_and_aborted_pods_and_prints_their_uuids(data: Data) -> None:
    uuids = [data.pod("run"), data.pod("prepared"), data.pod("prepare"), data.pod("exited-garbage")]
    r = data("rm", *uuids)
    assert (r.code, r.err) == (0, "")
    assert r.out.splitlines() == [f'"{u}"' for u in uuids]
    assert all(data.path(u) is None for u in uuids)


def test_rm_refuses_a_running_pod_but_removes_the_others(data: Data) -> None:
    running = data.pod("run", pid=os.getpid())
    data.hold(running)
    exited = data.pod("run")
    r = data("rm", running, "0000", exited, "")
    assert r.code == 254
    assert r.out == f'"{exited}"\n'
    assert r.err.splitlines() == [
        f'pyrkt: pod "{running}" is currently running',
        'pyrkt: no matches found for "0000"',
        "pyrkt: UUID cannot be empty",
    ]  # one line per pod that failed, and nothing more
    assert data.path(running) is not None and data.path(exited) is None


def test_rm_of_a_missing_pod_is_one_line(data: Data) -> None:
    assert data("rm", "0123") == Result(254, "", 'pyrkt: no matches found for "0123"\n')
    assert data("rm", "--uuid-file=/nonexistent/uuid").code == 254
    assert len(data("rm", "--uuid-file=/nonexistent/uuid").err.splitlines()) == 1


def test_rm_uuid_file(data: Data) -> None:
    uuid = data.pod("prepared")
    (data.root / "uuid").write_text(uuid)
    assert data("rm", f"--uuid-file={data.root}/uuid") == Result(0, f'"{uuid}"\n', "")


def test_rm_unmounts_what_a_killed_pod_left_and_never_deletes_through_a_mount(data: Data, tmp_path: Path) -> None:
    """A volume still bind-mounted into an exited pod: the host's files must survive rm."""
    host = tmp_path / "host-volume"
    host.mkdir()
    (host / "precious").write_text("keep me")
    uuid = data.pod("run")
    path = data.path(uuid)
    assert path is not None
    target = path / abi.app_rootfs("web") / "data"
    target.mkdir(parents=True)
    subprocess.run(["mount", "--bind", str(host), str(target)], check=True)
    r = data("rm", uuid)
    assert r.code == 0, r
    assert data.path(uuid) is None
    assert (host / "precious").read_text() == "keep me"


def test_remove_tree_refuses_a_path_with_a_mount_below_it(tmp_path: Path, data: Data) -> None:
    host = tmp_path / "host"
    host.mkdir()
    (host / "precious").write_text("keep me")
    pod = tmp_path / "pod"
    (pod / "rootfs" / "data").mkdir(parents=True)
    subprocess.run(["mount", "--bind", str(host), str(pod / "rootfs" / "data")], check=True)
    try:
        with pytest.raises(InvalidState, match=f"{pod}/rootfs/data is still mounted; not removing {pod}"):
            podgc.remove_tree(pod)
        assert (host / "precious").read_text() == "keep me"
    finally:
        subprocess.run(["umount", str(pod / "rootfs" / "data")], check=True)


def test_rm_removes_immutable_and_append_only_files(data: Data) -> None:
    uuid = data.pod("run")
    path = data.path(uuid)
    assert path is not None
    (path / "stuck").write_text("x")
    (path / "logs").mkdir()
    (path / "logs" / "app.log").write_text("y")
    subprocess.run(["chattr", "+i", str(path / "stuck")], check=True)
    subprocess.run(["chattr", "+a", str(path / "logs")], check=True)
    r = data("rm", uuid)
    assert r.code == 0, r
    assert data.path(uuid) is None


# -- gc -------------------------------------------------------------------------------------

def test_gc_marks_exited_pods_then_deletes_them_after_the_grace_period(data: Data) -> None:
    running = data.pod("run", pid=os.getpid())
    data.hold(running)
    exited, aborted, prepared = data.pod("run"), data.pod("prepare"), data.pod("prepared")
    r = data("gc")
    assert r.code == 0, r
    assert r.out == f'Garbage collecting pod "{aborted}"\n'
    assert r.err.splitlines() == [
        f'gc: moving pod "{exited}" to garbage',
        f'gc: moving failed prepare "{aborted}" to garbage',
        f'gc: pod "{exited}" not removed: still within grace period (30m0s)',
    ]
    r = data("gc", "--grace-period=0s")
    assert (r.code, r.out) == (0, f'Garbage collecting pod "{exited}"\n'), r
    assert data.path(exited) is None and data.path(aborted) is None
    assert data.path(running) is not None and data.path(prepared) is not None


def test_gc_mark_only_deletes_nothing(data: Data) -> None:
    exited, aborted = data.pod("run"), data.pod("prepare")
    r = data("gc", "--mark-only", "--grace-period=0s")
    assert (r.code, r.out) == (0, "")
    assert str(data.path(exited)).endswith(f"exited-garbage/{exited}")
    assert str(data.path(aborted)).endswith(f"garbage/{aborted}")
    assert [p["state"] for p in json.loads(data("list", "--format=json").out)] == ["exited garbage"]


def test_gc_with_no_grace_and_no_expiry_leaves_only_running_pods(data: Data) -> None:
    running = data.pod("run", pid=os.getpid())
    data.hold(running)
    for where in ("run", "prepare", "prepared", "exited-garbage", "garbage"):
        data.pod(where)
    r = data("gc", "--grace-period=0s", "--expire-prepared=0s")
    assert r.code == 0, r
    assert r.out.count("Garbage collecting pod") == 5
    assert [p["name"] for p in json.loads(data("list", "--format=json").out)] == [running]


def test_gc_rejects_a_bad_duration(data: Data) -> None:
    r = data("gc", "--grace-period=soon")
    assert r.code == 254 and "invalid duration 'soon'" in r.err


def test_concurrent_gc_and_list_remove_every_pod_exactly_once(data: Data) -> None:
    running = [data.pod("run", pid=os.getpid()) for _ in range(3)]
    for uuid in running:
        data.hold(uuid)
    doomed = [data.pod(w) for w in ("run", "prepared", "prepare", "exited-garbage", "garbage") for _ in range(12)]
    procs = [data.popen("gc", "--grace-period=0s", "--expire-prepared=0s") for _ in range(4)]
    procs += [data.popen("list", "--format=json") for _ in range(4)]
    procs += [data.popen("list") for _ in range(2)]
    results = [(p.args[2:], *p.communicate(timeout=120), p.returncode) for p in procs]
    collected: Counter[str] = Counter()
    for args, out, err, code in results:
        assert code == 0, (args, out, err)
        assert "pyrkt:" not in err and "Traceback" not in err, (args, err)
        if args[0] == "gc":
            collected.update(re.findall(r'^Garbage collecting pod "([0-9a-f-]+)"$', out, re.M))
        elif "--format=json" in args:
            assert isinstance(json.loads(out), list)
    assert collected == Counter(doomed)
    listed: list[dict[str, Any]] = json.loads(data("list", "--format=json").out)
    assert sorted(p["name"] for p in listed) == sorted(running)


def test_rm_racing_gc_removes_each_pod_exactly_once(data: Data) -> None:
    doomed = [data.pod(w) for w in ("run", "prepared", "exited-garbage") for _ in range(15)]
    procs = [data.popen("rm", *doomed) for _ in range(3)]
    procs += [data.popen("gc", "--grace-period=0s", "--expire-prepared=0s") for _ in range(3)]
    removed: Counter[str] = Counter()
    for p in procs:
        out, err = p.communicate(timeout=120)
        assert "Traceback" not in err, err
        if p.args[2] == "rm":
            removed.update(re.findall(r'^"([0-9a-f-]+)"$', out, re.M))
            for line in err.splitlines():  # losing a race is reported, nothing else
                assert re.search(r"currently being deleted|no matches found|no longer exists|"
                                 r"locked by another|failed to remove one or more pods", line), line
        else:
            assert p.returncode == 0, err
            removed.update(re.findall(r'^Garbage collecting pod "([0-9a-f-]+)"$', out, re.M))
    assert removed == Counter(doomed)
    assert not any(data.pods.glob("*/*"))
