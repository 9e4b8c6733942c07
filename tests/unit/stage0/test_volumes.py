"""A pod's volumes before anything is written: ``satisfy`` checks them and completes the apps'
mount points (rkt's implicit empty volumes), ``reify`` places ``--mount`` as rkt does, and
``lay_out`` makes the empty volumes, filling a Docker/OCI image's from what it has there."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from pyrkt.errors import UsageError
from pyrkt.model.image import AppSpec, Image, MountPoint
from pyrkt.model.pod import PodManifest
from pyrkt.model.volumes import AppMount, Volume
from pyrkt.stage0.prepare import AppRequest, PodRequest, reify
from pyrkt.stage0.volumes import PREPOPULATE, implicit_notes, lay_out, satisfy

POINTS = (MountPoint("data", "/var/data"), MountPoint("conf", "/etc/app", read_only=True))
OCI = Image(id="sha256:" + "ab" * 32, name="example.com/db", app=AppSpec(exec=("/bin/db",), mount_points=POINTS))
ACI = OCI.replace(format="appc", name="example.com/aci")


def manifest(req: PodRequest, images: list[Image], *volumes: Volume) -> PodManifest:
    return PodManifest(apps=tuple(reify(req, images)), volumes=volumes)


def pod(*app_mounts: str, pod_mounts: tuple[str, ...] = (), image: Image = OCI, volumes: tuple[Volume, ...] = ()
        ) -> PodManifest:
    req = PodRequest(apps=[AppRequest(image="x", name="db", mounts=list(app_mounts))], mounts=list(pod_mounts))
    return satisfy(manifest(req, [image], *volumes), [image])


def test_mount_points_without_a_volume_get_implicit_empty_ones_named_after_the_app() -> None:
    m = pod(image=ACI)
    assert [(v.name, v.kind, v.read_only, v.mode, v.uid) for v in m.volumes] == [
        ("db-data", "empty", None, "0755", 0), ("db-conf", "empty", True, "0755", 0)]
    assert m.apps[0].mounts == (AppMount("db-data", "/var/data"), AppMount("db-conf", "/etc/app"))
    # an OCI image's take the mode and owner of the image's directory when it is laid out
    assert [(v.name, v.read_only, v.mode, v.uid) for v in pod().volumes] == [
        ("db-data", None, None, None), ("db-conf", True, None, None)]


def test_each_implicit_volume_is_named_in_rkts_warning() -> None:
    m = pod("volume=given,target=/var/data", volumes=(Volume("given", "empty"),))
    assert implicit_notes(m, {"given"}) == [
        'no volume specified for mount point "conf", implicitly creating an "empty" volume. This volume will be '
        "removed when the pod is garbage-collected. (app db, at /etc/app)"]
    assert implicit_notes(pod(volumes=(Volume("data", "empty"), Volume("conf", "empty"))), {"data", "conf"}) == []


def test_only_a_docker_or_oci_images_implicit_volumes_are_prepopulated() -> None:
    assert dict(pod().annotations)[PREPOPULATE] == "db-data,db-conf"
    assert PREPOPULATE not in dict(pod(image=ACI).annotations)


def test_a_volume_of_the_mount_points_name_satisfies_it_and_a_mount_at_its_path_replaces_it() -> None:
    data = Volume("data", "host", "/")
    m = pod("volume=data,target=/etc/app", volumes=(data,))
    assert m.volumes == (data,)  # /var/data by its name, /etc/app by the mount at its path
    assert m.apps[0].mounts == (AppMount("data", "/etc/app"), AppMount("data", "/var/data"))
    assert PREPOPULATE not in dict(m.annotations)


def test_mounts_before_any_image_go_to_every_app_after_the_apps_own_which_win_on_a_path() -> None:
    vols = (Volume("a", "empty"), Volume("b", "empty"))
    req = PodRequest(apps=[AppRequest(image="x", name="one", mounts=["volume=b,target=/shared/"]),
                           AppRequest(image="x", name="two")],
                     mounts=["volume=a,target=/shared", "volume=a,target=/all"])
    plain = ACI.replace(app=AppSpec(exec=("/bin/db",)))
    m = satisfy(manifest(req, [plain, plain], *vols), [plain, plain])
    assert m.apps[0].mounts == (AppMount("b", "/shared/"), AppMount("a", "/all"))
    assert m.apps[1].mounts == (AppMount("a", "/shared"), AppMount("a", "/all"))


def test_a_volume_named_twice_an_unknown_volume_and_a_missing_source_are_refused(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="volume 'v' is defined more than once"):
        pod(volumes=(Volume("v", "empty"), Volume("v", "host", "/")))
    with pytest.raises(UsageError, match="app db: no volume named 'nope' for its mount at /x"):
        pod("volume=nope,target=/x")
    with pytest.raises(UsageError, match="app db: no volume named 'nope'"):
        pod(pod_mounts=("volume=nope,target=/x",))
    with pytest.raises(UsageError, match=f"volume h: source {tmp_path}/gone does not exist"):
        pod(volumes=(Volume("h", "host", str(tmp_path / "gone")),))


def test_satisfy_is_idempotent() -> None:
    once = pod()
    assert satisfy(once, [OCI]) == once


def layers(tmp_path: Path) -> list[str]:
    low, high = tmp_path / "l0", tmp_path / "l1"
    (low / "var/data/sub").mkdir(parents=True)
    (low / "var/data/sub/old").write_text("low")
    (low / "var/data/keep").write_text("keep")
    (high / "var/data").mkdir(parents=True)
    (high / "var/data/new").write_text("high")
    (high / "var/data").chmod(0o750)
    (high / "etc").mkdir()
    (high / "etc/app").symlink_to("/var/data/sub")  # followed inside the image
    return [str(low), str(high)]


def test_lay_out_makes_empty_volumes_with_their_mode_and_fills_prepopulated_ones(tmp_path: Path) -> None:
    me = {"uid": os.getuid(), "gid": os.getgid()}
    m = pod(volumes=(Volume("scratch", "empty", mode="0700", **me),))
    m = m.replace(volumes=tuple(v.replace(**me) for v in m.volumes))
    pod_dir = tmp_path / "pod"
    pod_dir.mkdir()
    lay_out(str(pod_dir), m, [layers(tmp_path)])
    shared = pod_dir / "sharedVolumes"
    assert oct((shared / "scratch").stat().st_mode & 0o777) == "0o700" and not os.listdir(shared / "scratch")
    assert sorted(os.listdir(shared / "db-data")) == ["keep", "new", "sub"]
    assert (shared / "db-data/sub/old").read_text() == "low"
    assert oct((shared / "db-data").stat().st_mode & 0o777) == "0o750"  # the image's directory's mode
    assert os.listdir(shared / "db-conf") == ["old"]


def test_lay_out_leaves_an_appc_images_implicit_volume_empty(tmp_path: Path) -> None:
    me = {"uid": os.getuid(), "gid": os.getgid()}
    m = pod(image=ACI)
    m = m.replace(volumes=tuple(v.replace(**me) for v in m.volumes))
    (tmp_path / "pod").mkdir()
    lay_out(str(tmp_path / "pod"), m, [layers(tmp_path)])
    assert os.listdir(tmp_path / "pod/sharedVolumes/db-data") == []


@pytest.mark.parametrize("target, words", [
    ("/sys", "is /sys"), ("/proc", "is /proc"), ("/sys/kernel/x", "is below /sys"), ("//proc/1", "is below /proc"),
    ("/x/../sys/y", "is below /sys"), ("/sys/.", "is /sys"),
])
def test_volumes_at_or_below_proc_and_sys_are_refused_naming_the_target_as_written(target: str, words: str) -> None:
    line = f"mount target {target} {words}, which pyrkt mounts in the app itself: mount the volume elsewhere"
    with pytest.raises(UsageError) as e:  # --mount, pod-level or the app's
        pod(f"volume=v,target={target}", volumes=(Volume("v", "empty"),))
    assert str(e.value) == f"invalid --mount=volume=v,target={target}: {line}"
    plain = ACI.replace(app=AppSpec(exec=("/bin/db",)))
    req = PodRequest(apps=[AppRequest(image="x", name="db")])
    written = manifest(req, [plain], Volume("v", "empty"))  # a pod manifest's mount (--pod-manifest, app add)
    written = written.replace(apps=(written.apps[0].replace(mounts=(AppMount("v", target),)),))
    with pytest.raises(UsageError) as e:
        satisfy(written, [plain])
    assert str(e.value) == f"app db: {line}"
    image = ACI.replace(app=AppSpec(exec=("/bin/db",), mount_points=(MountPoint("k", target),)))  # an image's
    with pytest.raises(UsageError) as e:
        pod(image=image)
    assert str(e.value) == f"app db: its image's mount point k: {line}"


@pytest.mark.parametrize("target", ["/system", "/procs/x", "/srv/sys", "/sys/../tmp"])
def test_paths_that_only_look_like_proc_or_sys_are_fine(target: str) -> None:
    assert pod(f"volume=v,target={target}", volumes=(Volume("v", "empty"),)).apps[0].mounts[0].path == target


def test_app_add_mnt_volume_below_sys_is_refused() -> None:
    from pyrkt.stage0.sandbox import mnt_volume

    with pytest.raises(UsageError, match=r"^invalid --mnt-volume=name=v,kind=empty,target=/sys/x: mount target "
                                          r"/sys/x is below /sys, which pyrkt mounts"):
        mnt_volume("name=v,kind=empty,target=/sys/x")
    assert mnt_volume("name=v,kind=empty,target=/srv/x")[1] == "/srv/x"
