"""Reading a pod dir for `list` and `status`: apps, images, app states, networks, times."""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

from pyrkt.model import abi
from pyrkt.pods.info import read_pod
from pyrkt.pods.pod import Pod
from pyrkt.pods.state import Dir, State

NS = 1_000_000_000
T0 = 1_700_000_000


def info_of(pods_dir: Path, path: Path, where: Dir) -> Any:
    return read_pod(Pod(pods_dir, path.name, where))


def test_apps_show_their_image_name_and_version_from_the_pods_own_copy(
    make_pod: Callable[..., Path], pods_dir: Path
) -> None:
    path = make_pod(Dir.PREPARED, apps=("web", "db"))
    info = info_of(pods_dir, path, Dir.PREPARED)
    assert [(a.name, a.image_name, a.image_id[:19]) for a in info.apps] == [
        ("web", "example.com/web:1.0", "sha256:0123456789ab"),
        ("db", "example.com/db:1.0", "sha256:0123456789ab"),
    ]
    assert info.user_labels == (("tier", "front"),)


def test_an_app_whose_image_copy_is_missing_falls_back_to_the_manifest_image_name(
    make_pod: Callable[..., Path], pods_dir: Path
) -> None:
    path = make_pod(Dir.PREPARED)
    os.unlink(path / abi.app_manifest("web"))
    [app] = info_of(pods_dir, path, Dir.PREPARED).apps
    assert app.image_name == "example.com/web"


def test_times_are_creation_and_pid_file_mtimes_in_nanoseconds(
    make_pod: Callable[..., Path], pods_dir: Path, holder: Any
) -> None:
    path = make_pod(Dir.RUN, created=T0, pid=4242, started=T0 + 5)
    holder.lock(path)
    info = info_of(pods_dir, path, Dir.RUN)
    assert (info.state, info.pid) == (State.RUNNING, 4242)
    assert (info.created_at, info.started_at) == (T0 * NS, (T0 + 5) * NS)
    assert info.gc_marked_at is None


def test_app_state_follows_the_created_started_and_status_stamps(
    make_pod: Callable[..., Path], pods_dir: Path, holder: Any
) -> None:
    path = make_pod(Dir.RUN, apps=("a", "b", "c", "d"), pid=1, stamps={
        "a": (T0, T0 + 1, 3), "b": (T0, T0 + 1, None), "c": (T0, None, None),
    })
    holder.lock(path)
    apps = {a.name: a for a in info_of(pods_dir, path, Dir.RUN).apps}
    assert {n: (a.state, a.exit_code) for n, a in apps.items()} == {
        "a": ("exited", 3), "b": ("running", None), "c": ("created", None), "d": ("unknown", None),
    }
    assert (apps["a"].created_at, apps["a"].started_at) == (T0 * NS, (T0 + 1) * NS)


def test_apps_of_an_exited_pod_are_exited_even_without_a_status(
    make_pod: Callable[..., Path], pods_dir: Path
) -> None:
    """Pod init was SIGKILLed: no status was written, but the app is certainly gone."""
    path = make_pod(Dir.EXITED_GARBAGE, apps=("a", "b"), pid=1, stamps={"a": (T0, T0, 0), "b": (T0, T0, None)})
    info = info_of(pods_dir, path, Dir.EXITED_GARBAGE)
    apps = {a.name: a for a in info.apps}
    assert (apps["a"].state, apps["a"].exit_code) == ("exited", 0)
    assert (apps["b"].state, apps["b"].exit_code) == ("exited", None)
    assert apps["b"].finished_at == info.gc_marked_at == os.stat(path).st_ctime_ns
    assert info.exit_codes() == [("a", 0)]


def test_apps_of_a_prepared_pod_are_created(make_pod: Callable[..., Path], pods_dir: Path) -> None:
    path = make_pod(Dir.PREPARED)
    [app] = info_of(pods_dir, path, Dir.PREPARED).apps
    assert app.state == "created"


def test_networks_come_from_net_info_and_no_file_means_none(
    make_pod: Callable[..., Path], pods_dir: Path
) -> None:
    net = {"netName": "default", "netConf": "net/default.conf", "pluginPath": "/usr/lib/cni/ptp",
           "ifName": "eth0", "ip": "172.16.28.7", "args": "", "mask": "ffffff00"}
    with_net = make_pod(Dir.RUN, nets=[net])
    without = make_pod(Dir.RUN)
    [n] = info_of(pods_dir, with_net, Dir.RUN).networks
    assert (n.net_name, n.if_name, n.ip) == ("default", "eth0", "172.16.28.7")
    assert n.to_v1() == net
    assert info_of(pods_dir, without, Dir.RUN).networks == ()


def test_a_pod_still_being_prepared_has_no_apps_and_no_problem(
    make_pod: Callable[..., Path], pods_dir: Path, holder: Any
) -> None:
    path = make_pod(Dir.PREPARE, manifest=False, created=None)
    holder.lock(path)
    info = info_of(pods_dir, path, Dir.PREPARE)
    assert (info.state, info.apps, info.problems, info.created_at) == (State.PREPARING, (), (), None)


def test_a_corrupt_manifest_is_reported_as_a_problem_not_an_exception(
    make_pod: Callable[..., Path], pods_dir: Path
) -> None:
    path = make_pod(Dir.PREPARED)
    (path / abi.POD_MANIFEST).write_text("{not json")
    info = info_of(pods_dir, path, Dir.PREPARED)
    assert info.apps == ()
    assert len(info.problems) == 1 and "unreadable pod manifest 'pod'" in info.problems[0]


def test_readiness_is_the_supervisor_status_symlink(make_pod: Callable[..., Path], pods_dir: Path) -> None:
    ready = make_pod(Dir.RUN, ready=True)
    not_ready = make_pod(Dir.RUN)
    assert info_of(pods_dir, ready, Dir.RUN).ready
    assert not info_of(pods_dir, not_ready, Dir.RUN).ready


def test_a_pod_that_vanished_reads_as_none(make_pod: Callable[..., Path], pods_dir: Path) -> None:
    path = make_pod(Dir.RUN)
    pod = Pod(pods_dir, path.name, Dir.RUN)
    os.rename(path, pods_dir.parent / "elsewhere")
    assert read_pod(pod) is None


def test_a_pod_moved_by_gc_is_read_in_its_new_place(make_pod: Callable[..., Path], pods_dir: Path) -> None:
    path = make_pod(Dir.RUN, apps=("web",))
    pod = Pod(pods_dir, path.name, Dir.RUN)
    os.rename(path, pods_dir / "exited-garbage" / path.name)
    info = read_pod(pod)
    assert info is not None
    assert (info.state, [a.name for a in info.apps]) == (State.EXITED_GARBAGE, ["web"])


def test_v1_json_names_the_pod_by_uuid_and_leaves_out_empty_fields(
    make_pod: Callable[..., Path], pods_dir: Path
) -> None:
    path = make_pod(Dir.EXITED_GARBAGE, created=T0, pid=9, started=T0 + 1, stamps={"web": (T0, T0 + 1, 0)})
    v1 = info_of(pods_dir, path, Dir.EXITED_GARBAGE).to_v1()
    assert json.loads(json.dumps(v1)) == v1
    assert v1["name"] == path.name and v1["state"] == "exited garbage"
    assert v1["app_names"] == ["web"]
    assert v1["created_at"] == T0 * NS and v1["started_at"] == (T0 + 1) * NS
    assert v1["user_labels"] == {"tier": "front"}
    assert "networks" not in v1 and "user_annotations" not in v1
    [app] = v1["apps"]
    assert app["state"] == "exited" and app["exit_code"] == 0 and app["image_id"].startswith("sha256:")
    assert "mounts" not in app


def test_v1_json_of_a_pod_without_manifest_has_only_pod_fields(
    make_pod: Callable[..., Path], pods_dir: Path, holder: Any
) -> None:
    path = make_pod(Dir.PREPARE, manifest=False, created=T0)
    holder.lock(path)
    assert info_of(pods_dir, path, Dir.PREPARE).to_v1() == {
        "name": path.name, "state": "preparing", "created_at": T0 * NS,
    }


def test_app_mounts_show_volume_sources(make_pod: Callable[..., Path], pods_dir: Path) -> None:
    path = make_pod(Dir.PREPARED)
    raw = json.loads((path / abi.POD_MANIFEST).read_text())
    raw["volumes"] = [{"name": "data", "kind": "host", "source": "/srv/data", "readOnly": True}]
    raw["apps"][0]["mounts"] = [{"volume": "data", "path": "/data"}]
    (path / abi.POD_MANIFEST).write_text(json.dumps(raw))
    [app] = info_of(pods_dir, path, Dir.PREPARED).to_v1()["apps"]
    assert app["mounts"] == [{"name": "data", "container_path": "/data", "host_path": "/srv/data", "read_only": True}]


def test_an_oom_killed_app_and_every_apps_limits_are_shown(make_pod: Callable[..., Path], pods_dir: Path) -> None:
    from pyrkt.cli.commands.status import lines

    path = make_pod(Dir.EXITED_GARBAGE, apps=("web", "db"), pid=1,
                    stamps={"web": (T0, T0, 137), "db": (T0, T0, 0)})
    (path / (abi.app_status("web") + "-oom-killed")).touch()  # what pod init leaves for an OOM kill
    raw = json.loads((path / abi.POD_MANIFEST).read_text())
    raw["apps"][0]["app"]["isolators"] = [{"name": "resource/memory", "value": {"limit": "32M"}},
                                          {"name": "os/linux/oom-score-adj", "value": 10}]
    (path / abi.POD_MANIFEST).write_text(json.dumps(raw))
    info = info_of(pods_dir, path, Dir.EXITED_GARBAGE)
    web, db = info.to_v1()["apps"]
    assert (web["exit_code"], web["oom_killed"]) == (137, True)
    assert web["limits"] == {"memory": 32_000_000, "pids": 4096, "oom_score_adj": 10}
    assert "oom_killed" not in db and db["limits"] == {"pids": 4096}  # the default pids limit
    assert lines(info)[-3:] == ["app-web=137", "app-db=0", "oom-killed=web"]
    (path / abi.FLAVOR).write_text("fly\n")  # fly gives no cgroup: no limits to show
    assert all("limits" not in a for a in info_of(pods_dir, path, Dir.EXITED_GARBAGE).to_v1()["apps"])


def test_a_bad_isolator_in_a_pod_manifest_is_a_problem_not_an_exception(
    make_pod: Callable[..., Path], pods_dir: Path
) -> None:
    path = make_pod(Dir.PREPARED)
    raw = json.loads((path / abi.POD_MANIFEST).read_text())
    raw["apps"][0]["app"]["isolators"] = [{"name": "resource/cpu", "value": {"limit": "lots"}}]
    (path / abi.POD_MANIFEST).write_text(json.dumps(raw))
    info = info_of(pods_dir, path, Dir.PREPARED)
    assert info.apps[0].limits == () and "isolator resource/cpu: invalid quantity 'lots'" in info.problems[0]


def test_a_host_volumes_propagation_is_its_mounts_and_private_is_none(
    make_pod: Callable[..., Path], pods_dir: Path
) -> None:
    path = make_pod(Dir.PREPARED)
    raw = json.loads((path / abi.POD_MANIFEST).read_text())
    raw["volumes"] = [{"name": "a", "kind": "host", "source": "/a", "propagation": "rslave"},
                      {"name": "b", "kind": "host", "source": "/b", "propagation": "private"}]
    raw["apps"][0]["mounts"] = [{"volume": "a", "path": "/a"}, {"volume": "b", "path": "/b"},
                                {"volume": "c", "path": "/c", "appVolume": {"name": "c", "kind": "host", "source": "/c",
                                                                           "propagation": "rshared"}}]
    (path / abi.POD_MANIFEST).write_text(json.dumps(raw))
    [app] = info_of(pods_dir, path, Dir.PREPARED).apps
    assert [(m.container_path, m.propagation) for m in app.mounts] == [("/a", "rslave"), ("/b", ""), ("/c", "rshared")]
    assert "propagation" not in json.dumps(info_of(pods_dir, path, Dir.PREPARED).to_v1())  # rkt's JSON as it was
