"""`pyrkt export` as a user would use it: a pod changes its root, exits, its app is exported
(ACI, or OCI archive), fetched back and run, and the new pod finds the first one's changes:
a written file, a deleted file and dir gone, an opaque dir replaced, a mode/owner change, a
symlink and a hardlink. Also rkt's rules: exited pods only, --app with several apps, no
overwrite without --overwrite, nothing half-written; warnings for what tar cannot carry."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import tarfile
from pathlib import Path

import pytest
from tests.integration.pods import Cli, make_image, mounts_under
from tests.support.images import Entry

from pyrkt.kernel.trees import remove_tree

IMAGE_LAYER = {"srv/": None, "srv/keep": b"kept", "srv/gone": b"deleted by the pod", "srv/d/": None,
               "srv/d/a": b"in a deleted dir", "srv/o/": None, "srv/o/old": b"in a replaced dir",
               "srv/m": Entry.file(b"mode", mode=0o644)}
CHANGES = ("echo written > /srv/new; rm /srv/gone; rm -r /srv/d; rm -r /srv/o; mkdir /srv/o; "
           "echo fresh > /srv/o/fresh; chmod 600 /srv/m; chown 1000:1000 /srv/m; "
           "ln -s new /srv/link; ln /srv/new /srv/hard; rm /bin/vi")
CHECKS = ("cat /srv/new /srv/hard /srv/keep; echo; echo $(ls /srv); echo $(ls /srv/o); "
          "stat -c '%a %u %g' /srv/m; readlink /srv/link; "
          "[ $(stat -c %i /srv/new) = $(stat -c %i /srv/hard) ] && echo same-inode; "
          "ls /bin/vi 2>/dev/null || echo no-vi; grep -c localhost /etc/hosts")


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory) -> tuple[Cli, str, Path]:
    base = tmp_path_factory.mktemp("export")
    cli = Cli(base / "data")
    src = make_image(base / "srvimage", extra_layers=[IMAGE_LAYER])
    r = cli("fetch", src)
    assert r.code == 0, r
    yield cli, r.out.strip().splitlines()[-1], base
    cli.collect_all()
    assert mounts_under(base) == []


def changed_pod(cli: Cli, image: str, base: Path, script: str = CHANGES, *more: str) -> str:
    """Run a pod that makes ``script``'s changes and exits; its UUID."""
    save = base / f"pod-{os.urandom(4).hex()}.uuid"
    r = cli("run", "--net=none", f"--uuid-file-save={save}", image, "--exec=/bin/sh", "--", "-c", script, *more)
    assert r.code == 0, r
    return save.read_text().strip()


@pytest.mark.parametrize("fmt", ["aci", "oci-archive"])
def test_exported_app_runs_with_the_changes_its_pod_made(env: tuple[Cli, str, Path], fmt: str) -> None:
    cli, image, base = env
    uuid = changed_pod(cli, image, base)
    out = base / ("changed.aci" if fmt == "aci" else "changed-oci.tar")
    r = cli("export", f"--format={fmt}", uuid, str(out))
    assert (r.code, r.out, r.err) == (0, "", ""), r
    source = str(out) if fmt == "aci" else f"oci-archive:{out}"
    if fmt == "oci-archive":
        p = subprocess.run(["skopeo", "inspect", source], capture_output=True, text=True, timeout=60)
        assert p.returncode == 0, p.stderr
        inspected = json.loads(p.stdout)
        assert len(inspected["Layers"]) == 1 and inspected["Architecture"] and inspected["Os"] == "linux"
    r = cli("fetch", "--insecure-options=image", source)
    assert r.code == 0, r
    exported = r.out.strip().splitlines()[-1]
    assert exported != image
    r = cli("run", "--net=none", exported, "--exec=/bin/sh", "--", "-c", CHECKS)
    assert r.code == 0, r
    lines = r.out.splitlines()
    assert lines[:3] == ["written", "written", "kept"]
    assert lines[3:5] == ["hard keep link m new o", "fresh"]  # no gone, no d, no o/old
    assert lines[5:] == ["600 1000 1000", "new", "same-inode", "no-vi", "2"]


def test_exported_aci_holds_the_image_manifest_and_not_the_mount_points_stage1_made(
        env: tuple[Cli, str, Path]) -> None:
    cli, image, base = env
    uuid = changed_pod(cli, image, base, "echo x > /srv/new")
    out = base / "plain.aci"
    r = cli("export", uuid, str(out))
    assert r.code == 0, r
    with tarfile.open(out) as tf:
        names = tf.getnames()
        manifest = tf.extractfile("manifest").read().decode()  # type: ignore[union-attr]
    assert names[0] == "manifest" and "rootfs/srv/new" in names
    assert "rootfs/etc/hosts" not in names and "rootfs/etc/hostname" not in names  # the image has neither
    assert '"acKind": "ImageManifest"' in manifest and '"exec"' in manifest


def test_export_refuses_a_running_pod_and_a_prepared_one(env: tuple[Cli, str, Path]) -> None:
    cli, image, base = env
    save = base / "running.uuid"
    r = cli("run", "--net=none", "--detach", f"--uuid-file-save={save}", image, "--exec=/bin/sleep", "--", "1000")
    assert r.code == 0, r
    uuid = save.read_text().strip()
    try:
        r = cli("export", uuid, str(base / "running.aci"))
        assert r.code == 254, r
        assert r.err == f"pyrkt: pod {uuid} is running: only exited pods can be exported\n"
        assert not (base / "running.aci").exists()
    finally:
        cli("stop", "--force", uuid)
    r = cli("prepare", "--quiet", image)
    assert r.code == 0, r
    prepared = r.out.strip()
    r = cli("export", prepared, str(base / "prepared.aci"))
    assert (r.code, r.err) == (254, f"pyrkt: pod {prepared} is prepared: only exited pods can be exported\n")


def test_a_pod_of_several_apps_needs_app(env: tuple[Cli, str, Path]) -> None:
    cli, image, base = env
    uuid = changed_pod(cli, image, base, "echo one > /srv/new", "---",
                       image, "--name=second", "--exec=/bin/sh", "--", "-c", "echo two > /srv/new")
    r = cli("export", uuid, str(base / "two.aci"))
    assert r.code == 254
    assert r.err == (f"pyrkt: pod {uuid} contains multiple apps (srvimage, second): "
                     "specify one with --app=NAME\n")
    r = cli("export", "--app=third", uuid, str(base / "two.aci"))
    assert r.code == 254 and 'app "third" is not present' in r.err
    r = cli("export", "--app=second", uuid, str(base / "two.aci"))
    assert r.code == 0, r
    with tarfile.open(base / "two.aci") as tf:
        assert tf.extractfile("rootfs/srv/new").read() == b"two\n"  # type: ignore[union-attr]


def test_output_rules_as_rkt_and_nothing_half_written(env: tuple[Cli, str, Path]) -> None:
    cli, image, base = env
    uuid = changed_pod(cli, image, base, "echo x > /srv/new")
    outdir = base / "outputs"
    outdir.mkdir()
    r = cli("export", uuid, str(outdir / "wrong.tar"))
    assert (r.code, r.err) == (254, f"pyrkt: extension must be .aci (given {outdir / 'wrong.tar'})\n")
    target = outdir / "there.aci"
    target.write_text("keep me")
    r = cli("export", uuid, str(target))
    assert (r.code, r.err) == (254, f"pyrkt: output file {target} exists (try --overwrite)\n")
    assert target.read_text() == "keep me"
    r = cli("export", "--overwrite", uuid, str(target))
    assert r.code == 0, r
    assert tarfile.is_tarfile(target)
    r = cli("export", "--format=oci-archive", "--overwrite", uuid, str(outdir / "there.tar"))
    assert r.code == 0, r
    assert sorted(os.listdir(outdir)) == ["there.aci", "there.tar"]  # no temp file or blob dir left
    r = cli("export", "--format=zip", uuid, str(outdir / "x.zip"))
    assert (r.code, r.err) == (254, "pyrkt: invalid --format 'zip': want aci or oci-archive\n")
    r = cli("export", "0000", str(outdir / "x.aci"))
    assert r.code == 254 and "no matches found" in r.err


def test_a_device_node_and_a_socket_the_pod_left_are_named(env: tuple[Cli, str, Path]) -> None:
    cli, image, base = env
    uuid = changed_pod(cli, image, base, "echo x > /srv/new")
    upper = cli.pod_dir(uuid) / "overlay" / "srvimage" / "upper" / "srv"
    os.mknod(upper / "null", 0o666 | 0o020000, os.makedev(1, 3))  # as an app with CAP_MKNOD could
    fd = os.open(upper, os.O_RDONLY | os.O_DIRECTORY)
    with socket.socket(socket.AF_UNIX) as sock:
        sock.bind(f"/proc/self/fd/{fd}/sock")  # the real path is longer than a socket address may be
    os.close(fd)
    out = base / "special.aci"
    r = cli("export", uuid, str(out))
    assert r.code == 0, r
    assert r.err.splitlines() == [
        "pyrkt: warning: /srv/null is a character device 1:3: exported as it is",
        "pyrkt: warning: /srv/sock is a socket: left out (tar cannot hold one)",
    ]
    with tarfile.open(out) as tf:
        node = tf.getmember("rootfs/srv/null")
        assert node.ischr() and (node.devmajor, node.devminor) == (1, 3)
        assert "rootfs/srv/sock" not in tf.getnames()


def test_an_upper_dir_overlayfs_wrote_with_a_redirect_is_refused_in_one_line(env: tuple[Cli, str, Path]) -> None:
    cli, image, base = env
    uuid = changed_pod(cli, image, base, "echo x > /srv/new")
    upper = cli.pod_dir(uuid) / "overlay" / "srvimage" / "upper"
    os.setxattr(upper / "srv", "trusted.overlay.redirect", b"/elsewhere")
    outdir = base / "bad"
    outdir.mkdir()
    r = cli("export", uuid, str(outdir / "bad.aci"))
    assert r.code == 254
    assert r.err == ("pyrkt: cannot export /srv: overlayfs left it as a renamed directory whose content it "
                     "keeps elsewhere (trusted.overlay.redirect)\n")
    assert os.listdir(outdir) == []


def test_a_pod_without_overlay_exports_the_copy_of_its_tree(env: tuple[Cli, str, Path]) -> None:
    """As `run --no-overlay` leaves a pod: no upper dir, the app's tree copied into its root dir."""
    cli, image, base = env
    uuid = changed_pod(cli, image, base, "true")
    pod = cli.pod_dir(uuid)
    rootfs = pod / "stage1" / "rootfs" / "opt" / "stage2" / "srvimage" / "rootfs"
    rootfs.rmdir()
    r = cli("image", "render", "--rootfs-only", image, str(base / "rendered"))
    assert r.code == 0, r
    os.rename(base / "rendered", rootfs)
    (rootfs / "srv" / "copied").write_text("in the copy")
    (rootfs / "srv" / "gone").unlink()
    (rootfs / "etc" / "hosts").write_text("")  # the mount point stage1 would have made
    remove_tree(pod / "overlay")
    out = base / "copy.aci"
    r = cli("export", uuid, str(out))
    assert r.code == 0, r
    with tarfile.open(out) as tf:
        names = set(tf.getnames())
        assert tf.extractfile("rootfs/srv/copied").read() == b"in the copy"  # type: ignore[union-attr]
    assert {"rootfs/srv/keep", "rootfs/bin/busybox"} <= names
    assert not {"rootfs/srv/gone", "rootfs/etc/hosts"} & names
