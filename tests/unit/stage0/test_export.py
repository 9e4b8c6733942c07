"""`pyrkt export` without root: which pods may be exported (and that gc leaves one being
exported alone), which app, where its tree is (overlay upper, or a pod's copy without overlay),
the mount points stage1 makes, and the upper merged over the layers."""

from __future__ import annotations

import json
import os
import tarfile
from collections.abc import Callable
from pathlib import Path

import pytest
from tests.unit.pods.conftest import Holder, write_pod

from pyrkt.config import Config
from pyrkt.errors import InvalidState, NotFound, PyrktError, UsageError
from pyrkt.model import abi
from pyrkt.model.image import AppSpec, MountPoint
from pyrkt.model.plan import EtcFiles
from pyrkt.model.pod import PodManifest, RuntimeApp, RuntimeImage
from pyrkt.model.volumes import AppMount
from pyrkt.pods import gc as podgc
from pyrkt.pods.pod import Pod
from pyrkt.pods.state import Dir
from pyrkt.stage0.export import (
    STAGE1_MOUNT_POINTS,
    app_tree,
    choose_app,
    export_pod,
    hold_exited,
    mount_points,
)
from pyrkt.stage1 import plan
from pyrkt.store.squash import entries

UUID = "0badc0de-0000-4000-8000-000000000000"


@pytest.fixture
def holder() -> Holder:
    h = Holder()
    yield h  # type: ignore[misc]
    h.close()


def test_an_exited_pod_and_an_exited_garbage_pod_can_be_held(tmp_path: Path) -> None:
    for where in (Dir.RUN, Dir.EXITED_GARBAGE):
        pods = tmp_path / where.value
        write_pod(pods, where, UUID)
        lock = hold_exited(Pod.find(str(pods), UUID[:8]))
        lock.close()


@pytest.mark.parametrize(("where", "locked", "state"), [
    (Dir.RUN, True, "running"), (Dir.PREPARED, False, "prepared"), (Dir.PREPARE, True, "preparing"),
    (Dir.PREPARE, False, "aborted prepare"), (Dir.EXITED_GARBAGE, True, "exited deleting"),
])
def test_other_pods_are_refused_naming_their_state(tmp_path: Path, holder: Holder, where: Dir, locked: bool,
                                                   state: str) -> None:
    path = write_pod(tmp_path, where, UUID)
    if locked:
        holder.lock(path)
    with pytest.raises(InvalidState, match=f"^pod {UUID} is {state}: only exited pods can be exported$"):
        hold_exited(Pod.load(str(tmp_path), UUID))


def test_gc_and_rm_leave_a_pod_being_exported_alone(tmp_path: Path) -> None:
    write_pod(tmp_path, Dir.EXITED_GARBAGE, UUID)
    lock = hold_exited(Pod.load(str(tmp_path), UUID))
    try:
        swept = podgc.sweep_exited_garbage(str(tmp_path), 0.0, lambda _: None, now=2e9)
        assert swept.busy == (UUID,) and swept.done == ()
        assert Pod.load(str(tmp_path), UUID).state.value == "exited garbage"  # still looks exited
    finally:
        lock.close()
    assert podgc.sweep_exited_garbage(str(tmp_path), 0.0, lambda _: None, now=2e9).done == (UUID,)


def test_a_pod_marked_by_gc_while_held_is_still_read_through_the_lock(tmp_path: Path) -> None:
    write_pod(tmp_path, Dir.RUN, UUID)
    lock = hold_exited(Pod.load(str(tmp_path), UUID))
    try:
        assert podgc.mark_exited(str(tmp_path)).done == (UUID,)
        assert os.path.isfile(f"/proc/self/fd/{lock.fd}/{abi.POD_MANIFEST}")
    finally:
        lock.close()


def test_app_choice_follows_rkt() -> None:
    assert choose_app(["web"], "", UUID) == "web"
    assert choose_app(["web", "db"], "db", UUID) == "db"
    with pytest.raises(UsageError, match=r"contains multiple apps \(web, db\): specify one with --app=NAME"):
        choose_app(["web", "db"], "", UUID)
    with pytest.raises(NotFound, match=r'app "cache" is not present in pod .* \(its apps: web, db\)'):
        choose_app(["web", "db"], "cache", UUID)
    with pytest.raises(InvalidState, match="contains zero apps"):
        choose_app([], "", UUID)


def pod_with(tmp_path: Path, *, upper: bool = True, copy: bool = False, layers: list[str] | None = None) -> Path:
    pod = tmp_path / "pod"
    (pod / abi.app_rootfs("web")).mkdir(parents=True)
    (pod / abi.APPSINFO / "web").mkdir(parents=True)
    if upper:
        (pod / abi.OVERLAY / "web" / "upper").mkdir(parents=True)
    if copy:
        (pod / abi.app_rootfs("web") / "etc").mkdir()
    if layers is not None:
        (pod / abi.app_layers("web")).write_text(json.dumps(layers))
    return pod


def test_an_overlay_pod_exports_its_layers_and_upper(tmp_path: Path) -> None:
    layer = tmp_path / "layer"
    layer.mkdir()
    pod = pod_with(tmp_path, layers=[str(layer)])
    tree = app_tree(str(pod), "web", UUID, mount_points=frozenset({"proc"}))
    assert (tree.layers, tree.upper) == ((str(layer),), str(pod / abi.OVERLAY / "web" / "upper"))
    assert tree.mount_points == {"proc"}


def test_a_pod_without_overlay_exports_the_copy_in_its_root_dir(tmp_path: Path) -> None:
    pod = pod_with(tmp_path, upper=False, copy=True)
    (pod / abi.app_rootfs("web") / "etc" / "hosts").write_text("")  # stage1's mount point
    (pod / abi.app_rootfs("web") / "etc" / "passwd").write_text("")
    tree = app_tree(str(pod), "web", UUID, mount_points=STAGE1_MOUNT_POINTS)
    assert (tree.layers, tree.upper) == ((), str(pod / abi.app_rootfs("web")))
    assert [rel for rel, _, _ in entries([], upper=Path(tree.upper), mount_points=tree.mount_points)] == [
        "", "etc", "etc/passwd"]


def test_a_pod_with_neither_or_a_missing_layer_is_one_line(tmp_path: Path) -> None:
    with pytest.raises(PyrktError, match="has no overlay upper dir and no copy of its tree"):
        app_tree(str(pod_with(tmp_path / "a", upper=False)), "web", UUID)
    with pytest.raises(PyrktError, match=r"layer dir /nonexistent/l1 of app web of pod .* is missing"):
        app_tree(str(pod_with(tmp_path / "b", layers=["/nonexistent/l1"])), "web", UUID)
    with pytest.raises(PyrktError, match="has no layer list"):
        app_tree(str(pod_with(tmp_path / "c")), "web", UUID)


def test_mount_points_are_stage1s_and_the_apps_volumes() -> None:
    app = AppSpec(exec=("/bin/sh",), mount_points=(MountPoint("data", "/var/data"),))
    ra = RuntimeApp("web", RuntimeImage("sha256:00"), app, mounts=(AppMount("logs", "/var/log/web/"),))
    got = mount_points(PodManifest(apps=(ra,)), "web")
    assert got == STAGE1_MOUNT_POINTS | {"var/data", "var/log/web"}


def test_stage1_mount_points_cover_every_mount_point_stage1_makes() -> None:
    """Every target stage1 makes a file or dir for is one of them, or below one (in /dev)."""
    etc = EtcFiles(hostname="/h", hosts="/hosts", resolv="/r")
    fly = plan.fly_app_plan(RuntimeApp("web", RuntimeImage("sha256:00"), AppSpec(exec=("/bin/sh",))),
                            lowers=(), upper="/u", work="/w", rootfs="/r", log="/l",
                            resolv=("bind", "/r"), hosts=("bind", "/hosts"))
    for m in (*plan.app_mounts(etc), *fly.mounts):
        if m.make in ("file", "dir"):
            parts = m.target.strip("/").split("/")
            assert any("/".join(parts[:i]) in STAGE1_MOUNT_POINTS for i in range(1, len(parts) + 1)), m.target


def tree_of(layers: list[Path], upper: Path, points: frozenset[str]) -> dict[str, int]:
    return {rel: i for rel, _, i in entries(layers, upper=upper, mount_points=points)}


def test_the_upper_is_the_top_layer_and_empty_mount_points_it_made_are_left_out(tmp_path: Path) -> None:
    lower, upper = tmp_path / "lower", tmp_path / "upper"
    for d in (lower / "etc", upper / "etc", upper / "data", upper / "vol", lower / "srv", upper / "srv"):
        d.mkdir(parents=True)
    (lower / "etc" / "resolv.conf").write_text("")  # the image's own, even empty
    (lower / "srv" / "a").write_text("old")
    (upper / "srv" / "a").write_text("new")
    (upper / "etc" / "hosts").write_text("")  # made to bind over: left out
    (upper / "etc" / "hostname").write_text("written")  # not empty: the app's
    (upper / "etc" / "resolv.conf").write_text("")  # the image has one: kept over it
    (upper / "vol" / "x").write_text("")  # a dir with something in it: kept
    points = STAGE1_MOUNT_POINTS | {"data", "vol"}
    tree = tree_of([lower], upper, points)
    assert "etc/hosts" not in tree and "data" not in tree
    assert tree["etc/hostname"] == tree["etc/resolv.conf"] == tree["srv/a"] == tree["vol/x"] == 1
    assert "etc/hosts" in tree_of([lower], upper, frozenset())  # without mount points, nothing is left out


def test_an_export_callable_for_oci_names_what_a_config_cannot_hold() -> None:
    from pyrkt.model.image import Image
    from pyrkt.stage0.export import _oci_config

    heard: list[str] = []
    image = Image("sha512-00", "example.com/app", labels=(("os", "linux"), ("arch", "amd64")),
                  app=AppSpec(exec=("/app",), isolators=(("os/linux/no-new-privileges", True),)))
    make: Callable[[str], dict[str, object]] = _oci_config(image, heard.append)
    config = make("sha256:" + "0" * 64)
    assert config["rootfs"] == {"type": "layers", "diff_ids": ["sha256:" + "0" * 64]}
    assert heard == ["an OCI image config has no place for the image's isolators: left out"]


def exited_pod(tmp_path: Path) -> tuple[Config, Path, Path]:
    """An exited pod (in ``run/``, unlocked) whose app ``web`` has one layer and an upper."""
    layer = tmp_path / "layer"
    (layer / "srv").mkdir(parents=True)
    (layer / "srv" / "old").write_text("old")
    pods = tmp_path / "data" / "pods"
    pod = write_pod(pods, Dir.RUN, UUID)
    (pod / abi.app_rootfs("web")).mkdir(parents=True)
    upper = pod / abi.OVERLAY / "web" / "upper"
    (upper / "srv").mkdir(parents=True)
    (pod / abi.app_layers("web")).write_text(json.dumps([str(layer)]))
    return Config(data_dir=str(tmp_path / "data")), pod, upper


def test_export_pod_writes_the_upper_over_the_layers(tmp_path: Path) -> None:
    config, pod, upper = exited_pod(tmp_path)
    (upper / "srv" / "new").write_text("new")
    done = export_pod(config, UUID[:4], str(tmp_path / "web.aci"))
    assert (done.uuid, done.app, done.image) == (UUID, "web", "example.com/web:1.0")
    with tarfile.open(tmp_path / "web.aci") as tf:
        assert {"rootfs/srv/old", "rootfs/srv/new"} <= set(tf.getnames())


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads a chmod 000 file (make test runs this as nobody)")
def test_a_file_of_the_app_that_cannot_be_read_is_one_line_naming_it_and_leaves_nothing(tmp_path: Path) -> None:
    config, pod, upper = exited_pod(tmp_path)
    secret = upper / "srv" / "secret"
    secret.write_text("x")
    secret.chmod(0)
    out = tmp_path / "out"
    out.mkdir()
    with pytest.raises(PyrktError) as e:
        export_pod(config, UUID, str(out / "web.aci"))
    assert str(e.value) == f"cannot write {out / 'web.aci'}: {secret}: Permission denied"
    assert os.listdir(out) == []
