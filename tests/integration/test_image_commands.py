"""The rest of rkt's image commands through the installed CLI: export (ACI and OCI archive),
extract and render, gc next to pods that use images, rm of an image a prepared pod uses, and
verify with repair. Needs root (whiteouts are device nodes, pods run, image gc needs root)."""

from __future__ import annotations

import fcntl
import json
import os
import stat
import subprocess
import sys
import tarfile
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from tests.conftest import Pyrkt  # noqa: E402
from tests.support.images import Entry, build_oci_layout  # noqa: E402

WHITEOUT_LAYERS = [
    {"etc/gone": b"soon hidden", "srv/": Entry.dir(0o750, uid=1000, gid=1000),
     "srv/secret": Entry.file(b"s3cret", mode=0o600, uid=1000, gid=1000),
     "srv/link": Entry.symlink("secret"), "srv/hard": Entry.hardlink("srv/secret")},
    {"etc/gone": None},
]


def fetched(pyrkt: Pyrkt, tmp_path: Path, name: str, tag: str = "1.0", **kw: object) -> str:
    """Build an OCI layout called ``name`` and fetch it; returns ``name:tag``."""
    build_oci_layout(tmp_path / name, tag=tag, **kw)  # type: ignore[arg-type]
    pyrkt("fetch", f"oci:{tmp_path / name}:{tag}", check=True)
    return f"{name}:{tag}"


def layer_dirs(pyrkt: Pyrkt) -> list[str]:
    d = pyrkt.data_dir / "store" / "layers" / "sha256"
    return sorted(os.listdir(d)) if d.is_dir() else []


def names(pyrkt: Pyrkt) -> set[str]:
    out = pyrkt("image", "list", "--no-legend", "--fields=name", check=True).out
    return {line.strip() for line in out.splitlines() if line.strip()}


# -- export -----------------------------------------------------------------------------------

def test_export_oci_archive_is_an_oci_layout_skopeo_reads(pyrkt: Pyrkt, tmp_path: Path) -> None:
    image = fetched(pyrkt, tmp_path, "app", extra_layers=WHITEOUT_LAYERS)
    out = tmp_path / "app.tar"
    pyrkt("image", "export", "--format=oci-archive", image, str(out), check=True)
    p = subprocess.run(["skopeo", "inspect", f"oci-archive:{out}"], capture_output=True, text=True, timeout=60)
    assert p.returncode == 0, p.stderr
    manifest = json.loads(pyrkt("image", "cat-manifest", image, check=True).out)
    assert json.loads(p.stdout)["Layers"] == [layer["digest"] for layer in manifest["layers"]]
    with tarfile.open(out) as tf:
        members = set(tf.getnames())
    assert {"oci-layout", "index.json", "blobs/sha256/" + manifest["config"]["digest"].split(":")[1]} <= members
    image_id = pyrkt("image", "list", "--no-legend", "--fields=id", check=True).out.strip()
    again = Pyrkt(tmp_path / "other")
    assert again("fetch", f"oci-archive:{out}", check=True).out.strip() == image_id


def test_image_gc_waits_for_the_store_lock_that_imports_and_prepare_hold(pyrkt: Pyrkt, tmp_path: Path) -> None:
    fetched(pyrkt, tmp_path, "app")
    fd = os.open(pyrkt.data_dir / "store" / "lock", os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_SH)
        gc = pyrkt.popen("image", "gc", "--grace-period=0s")
        time.sleep(0.5)
        assert gc.poll() is None  # blocked behind the shared lock
        assert names(pyrkt) == {"app:1.0"}
        fcntl.flock(fd, fcntl.LOCK_UN)
        out, err = gc.communicate(timeout=30)
    finally:
        os.close(fd)
    assert gc.returncode == 0, err
    assert names(pyrkt) == set()


def test_export_refuses_an_existing_output_unless_overwrite(pyrkt: Pyrkt, tmp_path: Path) -> None:
    image = fetched(pyrkt, tmp_path, "app")
    out = tmp_path / "app.aci"
    out.write_text("precious")
    r = pyrkt("image", "export", image, str(out))
    assert r.code == 254 and "exists (try --overwrite)" in r.err, r
    assert out.read_text() == "precious"
    pyrkt("image", "export", "--overwrite", image, str(out), check=True)
    assert tarfile.is_tarfile(out)
    r = pyrkt("image", "export", image, str(tmp_path / "app.tar"))
    assert r.code == 254 and "must be .aci" in r.err, r
    assert sorted(os.listdir(tmp_path)) == ["app", "app.aci", "data"]


def test_export_aci_holds_exactly_manifest_and_rootfs_with_whiteouts_applied(pyrkt: Pyrkt, tmp_path: Path) -> None:
    image = fetched(pyrkt, tmp_path, "app", extra_layers=WHITEOUT_LAYERS)
    out = tmp_path / "app.aci"
    pyrkt("image", "export", image, str(out), check=True)
    with tarfile.open(out) as tf:
        members = {m.name: m for m in tf.getmembers()}
        manifest = json.load(tf.extractfile("manifest"))  # type: ignore[arg-type]
    assert {n.split("/")[0] for n in members} == {"manifest", "rootfs"}
    assert members["rootfs"].isdir()
    assert "rootfs/etc/gone" not in members
    assert "rootfs/etc/passwd" in members and "rootfs/bin/busybox" in members
    first, second = members["rootfs/srv/hard"], members["rootfs/srv/secret"]  # tar order: by name
    assert (first.isreg(), first.uid, first.gid, first.mode) == (True, 1000, 1000, 0o600)
    assert second.islnk() and second.linkname == "rootfs/srv/hard"
    assert members["rootfs/srv/link"].issym() and members["rootfs/srv/link"].linkname == "secret"
    assert manifest["acKind"] == "ImageManifest" and manifest["name"] == "app"
    assert {"name": "version", "value": "1.0"} in manifest["labels"]
    assert manifest["app"]["exec"] == ["sh"]


# -- extract and render -----------------------------------------------------------------------

def test_extract_writes_rootfs_and_manifest_with_whiteouts_applied(pyrkt: Pyrkt, tmp_path: Path) -> None:
    image = fetched(pyrkt, tmp_path, "app", extra_layers=WHITEOUT_LAYERS)
    dest = tmp_path / "out"
    pyrkt("image", "extract", image, str(dest), check=True)
    assert sorted(os.listdir(dest)) == ["manifest", "rootfs"]
    rootfs = dest / "rootfs"
    assert not (rootfs / "etc" / "gone").exists()
    assert (rootfs / "etc" / "passwd").is_file()
    st = os.lstat(rootfs / "srv" / "secret")
    assert (st.st_uid, st.st_gid, stat.S_IMODE(st.st_mode)) == (1000, 1000, 0o600)
    assert os.lstat(rootfs / "srv" / "hard").st_ino == st.st_ino
    assert os.readlink(rootfs / "srv" / "link") == "secret"
    assert stat.S_IMODE(os.stat(rootfs / "tmp").st_mode) == 0o1777
    assert stat.S_IMODE(os.stat(rootfs / "srv").st_mode) == 0o750
    assert json.loads((dest / "manifest").read_text())["name"] == "app"


def test_render_rootfs_only_and_overwrite(pyrkt: Pyrkt, tmp_path: Path) -> None:
    image = fetched(pyrkt, tmp_path, "app", extra_layers=WHITEOUT_LAYERS)
    dest = tmp_path / "out"
    dest.mkdir()
    (dest / "old").write_text("x")
    r = pyrkt("image", "render", "--rootfs-only", image, str(dest))
    assert r.code == 254 and "exists (try --overwrite)" in r.err, r
    pyrkt("image", "render", "--rootfs-only", "--overwrite", image, str(dest), check=True)
    assert not (dest / "old").exists() and not (dest / "manifest").exists()
    assert (dest / "bin" / "busybox").is_file() and not (dest / "etc" / "gone").exists()
    assert "dependencies rendered under it" in pyrkt("image", "render", "--help", check=True).out
    r = pyrkt("image", "render", "--overwrite", image, str(pyrkt.data_dir / "pods"))
    assert r.code == 254 and "refusing to write" in r.err, r
    assert names(pyrkt) == {"app:1.0"}


def test_overwrite_never_replaces_a_fifo_a_device_or_the_current_directory(
        pyrkt: Pyrkt, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    image = fetched(pyrkt, tmp_path, "app")
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    r = pyrkt("image", "extract", "--overwrite", image, str(fifo))
    assert (r.code, r.err) == (254, f"pyrkt: refusing to overwrite {fifo}: it is not a directory\n")
    r = pyrkt("image", "export", "--overwrite", "--format=oci-archive", image, str(fifo))
    assert (r.code, r.err) == (254, f"pyrkt: output {fifo} is not a regular file\n")
    assert stat.S_ISFIFO(os.lstat(fifo).st_mode)  # was renamed over: /dev/null became a file
    r = pyrkt("image", "export", "--format=oci-archive", image, "")
    assert (r.code, r.err) == (254, "pyrkt: the output file name is empty\n")
    r = pyrkt("image", "extract", "--overwrite", image, "")
    assert (r.code, r.err) == (254, "pyrkt: the output directory name is empty\n")
    (tmp_path / "out" / "sub").mkdir(parents=True)
    monkeypatch.chdir(tmp_path / "out" / "sub")
    for dest in (".", "..", str(tmp_path / "out")):
        r = pyrkt("image", "render", "--overwrite", image, dest)
        assert r.code == 254 and r.err.endswith(": it holds the current directory\n"), r
    assert (tmp_path / "out" / "sub").is_dir()


# -- gc and rm next to pods -------------------------------------------------------------------

def test_image_gc_keeps_an_image_a_running_pod_uses_and_removes_an_old_unused_one(
        pyrkt: Pyrkt, tmp_path: Path) -> None:
    used = fetched(pyrkt, tmp_path, "used", extra_layers=[{"u": b"u"}])
    fetched(pyrkt, tmp_path, "unused", extra_layers=[{"n": b"n"}])
    r = pyrkt("run", "--net=none", "--detach", used, "--exec=/bin/sleep", "--", "1000", check=True)
    uuid = r.out.strip()
    try:
        r = pyrkt("image", "gc", check=True)  # both were used just now: within 24h
        assert names(pyrkt) == {"used:1.0", "unused:1.0"}, r
        r = pyrkt("image", "gc", "--grace-period=0s", check=True)
        assert names(pyrkt) == {"used:1.0"}
        assert 'successfully removed aci for image: "sha256:' in r.out and '("unused:1.0")' in r.out
        assert '("used:1.0") not removed: a pod uses it' in r.err
        assert len(layer_dirs(pyrkt)) == 2  # busybox base + "u"
        assert pyrkt("status", uuid, check=True).out.count("state=running") == 1
    finally:
        pyrkt("stop", "--force", uuid)
    deadline = time.monotonic() + 20
    while "state=running" in pyrkt("status", uuid).out:
        assert time.monotonic() < deadline
        time.sleep(0.05)
    pyrkt("gc", "--grace-period=0s", check=True)
    pyrkt("image", "gc", "--grace-period=0s", check=True)
    assert names(pyrkt) == set()
    assert layer_dirs(pyrkt) == []
    assert os.listdir(pyrkt.data_dir / "store" / "blobs" / "sha256") == []


def test_image_gc_needs_a_valid_duration(pyrkt: Pyrkt) -> None:
    r = pyrkt("image", "gc", "--grace-period=soon")
    assert r.code == 254 and "invalid duration" in r.err, r


def test_image_rm_of_an_image_a_prepared_pod_uses_leaves_the_pod_runnable(pyrkt: Pyrkt, tmp_path: Path) -> None:
    image = fetched(pyrkt, tmp_path, "app", extra_layers=[{"msg": b"still here"}])
    uuid = pyrkt("prepare", image, "--exec=/bin/cat", "--", "/msg", check=True).out.strip()
    r = pyrkt("image", "rm", image, check=True)
    assert "1 image(s) successfully removed" in r.err  # on stderr, as rkt
    assert len(layer_dirs(pyrkt)) == 2
    pyrkt("image", "gc", "--grace-period=0s", check=True)
    assert len(layer_dirs(pyrkt)) == 2  # the prepared pod still lists them
    r = pyrkt("run-prepared", "--net=none", uuid)
    assert r.code == 0 and "still here" in r.out, r
    pyrkt("rm", uuid, check=True)
    pyrkt("image", "gc", check=True)
    assert layer_dirs(pyrkt) == []


# -- verify -----------------------------------------------------------------------------------

def test_verify_detects_and_repairs_a_deleted_file_and_detects_a_corrupt_blob(pyrkt: Pyrkt, tmp_path: Path) -> None:
    image = fetched(pyrkt, tmp_path, "app", extra_layers=[{"etc/app.conf": b"setting=1\n"}])
    r = pyrkt("image", "verify", image)
    assert r.code == 0 and r.out.rstrip().endswith('("app:1.0"): OK'), r
    conf = [Path(pyrkt.data_dir / "store" / "layers" / "sha256" / d / "etc" / "app.conf") for d in layer_dirs(pyrkt)]
    (target,) = [c for c in conf if c.exists()]
    target.unlink()
    r = pyrkt("image", "verify", image)
    assert r.code == 254 and "DAMAGED" in r.out, r
    assert "/etc/app.conf is missing" in r.out and "repaired from its blob" in r.out
    assert target.read_bytes() == b"setting=1\n"
    assert pyrkt("image", "verify", image).code == 0
    manifest = json.loads(pyrkt("image", "cat-manifest", image, check=True).out)
    blob = pyrkt.data_dir / "store" / "blobs" / "sha256" / manifest["layers"][-1]["digest"].split(":")[1]
    with open(blob, "ab") as f:
        f.write(b"bit rot")
    r = pyrkt("image", "verify", image, "nosuch:1")
    assert r.code == 254, r
    assert f"layer blob {manifest['layers'][-1]['digest']} is corrupt" in r.out
    assert "nosuch:1" in r.err


@pytest.mark.parametrize("cmd", [("export", "x"), ("extract", "x"), ("verify",)])
def test_image_commands_name_a_missing_image(pyrkt: Pyrkt, tmp_path: Path, cmd: tuple[str, ...]) -> None:
    args = [cmd[0], "nosuch:1", *[str(tmp_path / (a + ".aci")) for a in cmd[1:]]]
    r = pyrkt("image", *args)
    assert r.code == 254 and 'image "nosuch:1" not found in the store' in r.err, r
