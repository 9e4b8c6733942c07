"""prepare's --private-users and --no-overlay: the pod's id range chosen and recorded, fly
refused, and an app's root as a copy of its image (no overlay dir) that stage1 then finds."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from pyrkt.config import Config
from pyrkt.errors import UsageError
from pyrkt.fetch.ui import FetchUI
from pyrkt.model import abi
from pyrkt.model.idmap import IdRange
from pyrkt.model.image import AppSpec, Image
from pyrkt.model.pod import PodManifest, RuntimeApp, RuntimeImage
from pyrkt.stage0.prepare import (
    AppRequest,
    PodRequest,
    lay_out,
    layers_idmappable,
    private_users,
    use_overlay,
)
from pyrkt.stage1.poddir import read_layers

IMAGE = Image(id="sha256:" + "ab" * 32, name="example.com/busybox", app=AppSpec(exec=("/bin/sh",)))


def request(**kw: object) -> PodRequest:
    return PodRequest(apps=[AppRequest(image="x")], **kw)  # type: ignore[arg-type]


def test_private_users_picks_a_random_range_and_none_without_the_flag() -> None:
    assert private_users(request(), "default") is None
    r = private_users(request(private_users=True), "default")
    assert r is not None and r.shift % 65536 == 0 and r.count == 65536


def test_private_users_is_refused_with_the_fly_flavor_in_one_line() -> None:
    with pytest.raises(UsageError, match="^--private-users cannot be used with the fly flavor"):
        private_users(request(private_users=True), "fly")


def layer(tmp_path: Path) -> str:
    d = tmp_path / "layer"
    (d / "bin").mkdir(parents=True)
    (d / "bin" / "sh").write_text("#!shell\n")
    (d / "bin" / "sh").chmod(0o755)
    (d / "tmp").mkdir()
    (d / "tmp").chmod(0o1777)
    return str(d)


def manifest() -> PodManifest:
    return PodManifest(apps=(RuntimeApp("busybox", RuntimeImage(IMAGE.id, IMAGE.name), IMAGE.app or AppSpec()),))


def test_no_overlay_lays_out_a_copy_of_the_image_as_the_apps_root_and_no_overlay_dir(tmp_path: Path) -> None:
    pod = tmp_path / "pod"
    pod.mkdir()
    lay_out(str(pod), manifest(), [IMAGE], [[layer(tmp_path)]], overlay=False)
    root = pod / abi.app_rootfs("busybox")
    assert (root / "bin" / "sh").read_text() == "#!shell\n"
    assert os.stat(root / "tmp").st_mode & 0o7777 == 0o1777
    assert not (pod / abi.OVERLAY).exists()
    assert read_layers(str(pod), "busybox") == ()  # stage1 binds the copy instead of an overlay
    assert not (pod / abi.PRIVATE_USERS).exists()


def test_overlay_lays_out_upper_and_work_and_stage1_reads_the_layers_top_first(tmp_path: Path) -> None:
    pod = tmp_path / "pod"
    pod.mkdir()
    lay_out(str(pod), manifest(), [IMAGE], [["/store/l1", "/store/l2"]])
    assert (pod / abi.OVERLAY / "busybox" / "upper").is_dir() and (pod / abi.OVERLAY / "busybox" / "work").is_dir()
    assert read_layers(str(pod), "busybox") == ("/store/l2", "/store/l1")


@pytest.mark.skipif(os.geteuid() != 0, reason="chowning into the range needs root (the integration tests run it)")
def test_private_users_records_the_range_and_the_copy_is_owned_by_it(tmp_path: Path) -> None:
    pod = tmp_path / "pod"
    pod.mkdir()
    ids = IdRange(1835008)
    lay_out(str(pod), manifest(), [IMAGE], [[layer(tmp_path)]], overlay=False, ids=ids)
    assert (pod / abi.PRIVATE_USERS).read_text() == "1835008:65536"
    assert os.stat(pod / abi.app_rootfs("busybox") / "bin" / "sh").st_uid == 1835008


class Notices(FetchUI):
    def __init__(self) -> None:
        self.lines: list[str] = []

    def notice(self, message: str) -> None:
        self.lines.append(message)


def test_overlay_unless_no_overlay_or_the_data_dir_cannot_have_one_then_with_rkts_notice(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from pyrkt.kernel import mount

    config = Config(data_dir=str(tmp_path))
    ui = Notices()
    monkeypatch.setattr(mount, "overlay_unsupported", lambda path: None)
    assert use_overlay(config, request(), ui) is True
    assert use_overlay(config, request(no_overlay=True), ui) is False
    assert ui.lines == []
    monkeypatch.setattr(mount, "overlay_unsupported", lambda path: "unsupported filesystem: zfs")
    assert use_overlay(config, request(), ui) is False
    assert ui.lines == ['disabling overlay support: "unsupported filesystem: zfs"']


def test_layers_the_kernel_cannot_idmap_get_a_copy_with_a_warning(monkeypatch: pytest.MonkeyPatch) -> None:
    from pyrkt.kernel import mount

    ui = Notices()
    monkeypatch.setattr(mount, "idmap_unsupported", lambda path: None)
    assert layers_idmappable([["/store/l1"]], ui) is True and ui.lines == []
    monkeypatch.setattr(mount, "idmap_unsupported", lambda path: "filesystem nfs")
    assert layers_idmappable([["/store/l1"]], ui) is False
    assert ui.lines == ["warning: --private-users: the kernel cannot idmap the image layers (filesystem nfs): "
                        "each app gets a copy of its image owned by the pod's ids (--no-overlay)"]
