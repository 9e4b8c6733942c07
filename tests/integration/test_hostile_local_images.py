"""Hostile local images through the installed CLI: OCI layouts whose files are links out of the
layout (to a fake credentials file, to /etc/shadow) or FIFOs, garbage archives, and images
whose setuid files and device nodes `image extract`/`render` must not hand to local users.
Each case fails with one line (exit 254) that quotes nothing of the file, and the store works
afterwards. Needs root (device nodes in layers, /etc/shadow)."""

from __future__ import annotations

import gzip
import hashlib
import json
import os
import re
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

from tests.conftest import Pyrkt, Result  # noqa: E402
from tests.support.images import (  # noqa: E402
    Entry,
    build_docker_archive,
    build_oci_archive,
    build_oci_layout,
    layer_tar,
)

SECRET = "pyrkt-test-secret-7f3a9c"
CREDENTIALS = json.dumps({"auths": {"registry.example": {"auth": SECRET}}}).encode()


def one_line_error(r: Result) -> str:
    assert r.code == 254, r
    assert r.out == "", r
    assert r.err.startswith("pyrkt: ") and r.err.count("\n") == 1 and "Traceback" not in r.err, r
    return r.err


def blob_paths(layout: Path) -> dict[str, Path]:
    """{"manifest", "config", "layer"}: the blob file of each in a one-image layout."""
    def blob(digest: str) -> Path:
        return layout / "blobs" / "sha256" / digest.split(":", 1)[1]
    index = json.loads((layout / "index.json").read_bytes())
    manifest_blob = blob(index["manifests"][0]["digest"])
    manifest = json.loads(manifest_blob.read_bytes())
    return {"manifest": manifest_blob, "config": blob(manifest["config"]["digest"]),
            "layer": blob(manifest["layers"][-1]["digest"])}


def store_snapshot(pyrkt: Pyrkt) -> dict[str, list[str]]:
    store = pyrkt.data_dir / "store"
    return {d: sorted(os.listdir(store / d)) if (store / d).is_dir() else []
            for d in ("blobs/sha256", "layers/sha256", "tmp")}


def assert_store_still_works(pyrkt: Pyrkt, tmp_path: Path, before: dict[str, list[str]]) -> None:
    """Nothing of the refused import was kept, and a good image still fetches and lists."""
    assert store_snapshot(pyrkt) == before
    good = build_oci_layout(tmp_path / "after", tag="2.0", extra_layers=[{"after": b"ok"}])
    pyrkt("fetch", f"oci:{good}:2.0", check=True)
    listed = pyrkt("image", "list", "--no-legend", "--fields=name", check=True).out.split()
    assert "after:2.0" in listed


@pytest.fixture
def secret_file(tmp_path: Path) -> Path:
    path = tmp_path / "host" / "config.json"
    path.parent.mkdir()
    path.write_bytes(CREDENTIALS)
    path.chmod(0o600)
    return path


def mentions(err: str, fact: str) -> bool:
    """``fact`` (a size or a digest) in ``err`` as a word of its own, not inside a hex digest."""
    return re.search(rf"(?<![0-9a-f]){fact}(?![0-9a-f])", err) is not None


def shadow_facts() -> list[str]:
    """What must never be learnt about /etc/shadow: its size and its digests."""
    data = Path("/etc/shadow").read_bytes()
    return [str(len(data)), hashlib.sha256(data).hexdigest(), hashlib.sha512(data).hexdigest()[:32]]


# -- links out of (and within) an OCI layout ----------------------------------------------------

LINKED = ["oci-layout", "index.json", "manifest", "config", "layer"]


@pytest.mark.parametrize("target", ["secret", "shadow"])
@pytest.mark.parametrize("which", LINKED)
def test_layout_files_that_link_out_are_refused_without_quoting_them(
        pyrkt: Pyrkt, tmp_path: Path, secret_file: Path, which: str, target: str) -> None:
    pyrkt("fetch", f"oci:{build_oci_layout(tmp_path / 'good')}", check=True)
    before = store_snapshot(pyrkt)
    layout = build_oci_layout(tmp_path / "evil", extra_layers=[{"x": b"x"}])
    path = layout / which if which in ("oci-layout", "index.json") else blob_paths(layout)[which]
    path.unlink()
    path.symlink_to(secret_file if target == "secret" else Path("/etc/shadow"))
    err = one_line_error(pyrkt("fetch", f"oci:{layout}"))
    assert "symbolic link" in err and path.name in err, err
    assert SECRET not in err and "registry.example" not in err
    for fact in shadow_facts() + [hashlib.sha256(CREDENTIALS).hexdigest(), str(len(CREDENTIALS))]:
        assert not mentions(err, fact), (fact, err)
    assert secret_file.read_bytes() == CREDENTIALS
    assert_store_still_works(pyrkt, tmp_path, before)


def test_links_inside_a_layout_and_linked_blob_dirs_are_refused_too(
        pyrkt: Pyrkt, tmp_path: Path) -> None:
    before = store_snapshot(pyrkt)
    layout = build_oci_layout(tmp_path / "inner", extra_layers=[{"x": b"x"}])
    layer = blob_paths(layout)["layer"]
    layer.rename(layout / "real-layer")
    layer.symlink_to(Path("..") / ".." / "real-layer")  # stays inside the layout: refused all the same
    err = one_line_error(pyrkt("fetch", f"oci:{layout}"))
    assert "symbolic link" in err and layer.name in err, err

    moved = build_oci_layout(tmp_path / "moved")
    (moved / "blobs").rename(tmp_path / "elsewhere")
    (moved / "blobs").symlink_to(tmp_path / "elsewhere")
    err = one_line_error(pyrkt("fetch", f"oci:{moved}"))
    assert "symbolic link or lies under one" in err, err
    assert_store_still_works(pyrkt, tmp_path, before)


# -- FIFOs, devices and directories where a file should be ----------------------------------------

def _make(path: Path, kind: str) -> None:
    path.unlink()
    if kind == "fifo":
        os.mkfifo(path)
    elif kind == "char-device":
        os.mknod(path, stat.S_IFCHR | 0o600, os.makedev(1, 5))  # /dev/zero: would never end
    else:
        path.mkdir()


@pytest.mark.parametrize("kind", ["fifo", "char-device", "directory"])
@pytest.mark.parametrize("which", ["oci-layout", "layer"])
def test_a_blob_that_is_a_fifo_or_device_fails_promptly(pyrkt: Pyrkt, tmp_path: Path, which: str, kind: str) -> None:
    before = store_snapshot(pyrkt)
    layout = build_oci_layout(tmp_path / "odd", extra_layers=[{"x": b"x"}])
    path = layout / which if which == "oci-layout" else blob_paths(layout)[which]
    _make(path, kind)
    started = time.monotonic()
    err = one_line_error(pyrkt("fetch", f"oci:{layout}", timeout=30))
    assert time.monotonic() - started < 20
    expected = {"fifo": "is a FIFO", "char-device": "is a character device", "directory": "is a directory"}[kind]
    assert f"{path.name} {expected}, not a regular file" in err, err
    assert_store_still_works(pyrkt, tmp_path, before)


@pytest.mark.parametrize("source", ["oci-archive", "docker-archive", "aci"])
def test_an_archive_that_is_a_fifo_is_refused_at_once(pyrkt: Pyrkt, tmp_path: Path, source: str) -> None:
    before = store_snapshot(pyrkt)
    fifo = tmp_path / ("image.aci" if source == "aci" else "image.tar")
    os.mkfifo(fifo)
    arg = str(fifo) if source == "aci" else f"{source}:{fifo}"
    err = one_line_error(pyrkt("fetch", "--insecure-options=image", arg, timeout=30))
    assert "is a FIFO, not a regular file" in err, err
    assert_store_still_works(pyrkt, tmp_path, before)


# -- garbage archives -------------------------------------------------------------------------------

def _tar(members: list[tuple[tarfile.TarInfo, bytes | None]]) -> bytes:
    import io

    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tf:
        for info, data in members:
            info.size = len(data or b"")
            tf.addfile(info, io.BytesIO(data) if data is not None else None)
    return buf.getvalue()


def _member(name: str, kind: bytes = tarfile.REGTYPE, linkname: str = "") -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type, info.linkname = kind, linkname
    return info


def garbage(tmp_path: Path, kind: str) -> bytes:
    good = build_oci_archive(tmp_path / "good-archive.tar").read_bytes()
    return {
        "random": os.urandom(5000),
        "empty": b"",
        "truncated": good[:len(good) // 2],
        "gzip-of-random": gzip.compress(os.urandom(5000)),
        "truncated-gzip": gzip.compress(good)[:4000],
        "wrong-shape": _tar([(_member("oci-layout", tarfile.DIRTYPE), None),
                             (_member("manifest.json", tarfile.FIFOTYPE), None)]),
        "links-to-the-host": _tar([(_member("oci-layout", tarfile.SYMTYPE, "/etc/shadow"), None),
                                   (_member("manifest.json", tarfile.SYMTYPE, "../../../../etc/shadow"), None)]),
        "json-of-the-wrong-kind": _tar([(_member("oci-layout"), b"[1, 2]"), (_member("manifest.json"), b'{"a": 1}')]),
    }[kind]


GARBAGE = ["random", "empty", "truncated", "gzip-of-random", "truncated-gzip", "wrong-shape",
           "links-to-the-host", "json-of-the-wrong-kind"]


@pytest.mark.parametrize("kind", GARBAGE)
def test_a_garbage_archive_fails_with_one_line(pyrkt: Pyrkt, tmp_path: Path, kind: str) -> None:
    before = store_snapshot(pyrkt)
    path = tmp_path / f"{kind}.tar"
    path.write_bytes(garbage(tmp_path, kind))
    for source in ("oci-archive", "docker-archive"):
        err = one_line_error(pyrkt("fetch", f"{source}:{path}"))
        assert f"{source}:{path}" in err, err
        for fact in shadow_facts():
            assert not mentions(err, fact), (fact, err)
    assert_store_still_works(pyrkt, tmp_path, before)


def test_good_archives_still_fetch(pyrkt: Pyrkt, tmp_path: Path) -> None:
    """The checks above refuse nothing a real `docker save` or OCI archive holds."""
    pyrkt("fetch", f"oci-archive:{build_oci_archive(tmp_path / 'o.tar', tag='1.0')}", check=True)
    pyrkt("fetch", f"docker-archive:{build_docker_archive(tmp_path / 'd.tar', repo_tag='example/d:1')}", check=True)


# -- image extract / render: nothing a local user could use --------------------------------------

CAP_NET_RAW = bytes([1, 0, 0, 2, 0, 0x20, 0, 0]) + bytes(12)  # vfs_cap_data v2, effective, cap_net_raw
SPECIAL_LAYERS = [
    {"etc/hidden": b"lower", "srv/old/": Entry.dir()},
    layer_tar([
        ("usr/", Entry.dir()), ("usr/bin/", Entry.dir()),
        ("usr/bin/su", Entry.file(b"#!/bin/sh\n", 0o4755)),
        ("usr/bin/wall", Entry.file(b"#!/bin/sh\n", 0o2755)),
        ("usr/bin/ping", Entry.file(b"#!/bin/sh\n", 0o755,
                                    xattrs={"security.capability": CAP_NET_RAW.decode("latin-1")})),
        ("srv/", Entry.dir()), ("srv/shared/", Entry.dir(0o2775)),
        ("dev/", Entry.dir()), ("dev/kmsg", Entry.char(1, 11)), ("dev/kmsg-again", Entry.hardlink("dev/kmsg")),
        ("etc/", Entry.dir()), ("etc/.wh.hidden", Entry.file(b"")), ("srv/.wh.old", Entry.file(b"")),
    ]),
]


def special_files(root: Path) -> list[str]:
    """Devices (whiteouts included), setuid/setgid files and files with capabilities under root."""
    found = []
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            path = os.path.join(dirpath, name)
            st = os.lstat(path)
            rel = os.path.relpath(path, root)
            if stat.S_ISCHR(st.st_mode) or stat.S_ISBLK(st.st_mode):
                found.append(f"device {rel}")
            elif stat.S_ISREG(st.st_mode) and st.st_mode & (stat.S_ISUID | stat.S_ISGID):
                found.append(f"set-id {rel}")
            if stat.S_ISREG(st.st_mode) and "security.capability" in os.listxattr(path):
                found.append(f"caps {rel}")
    return sorted(found)


@pytest.mark.parametrize("command", ["extract", "render"])
@pytest.mark.parametrize("rootfs_only", [False, True], ids=["dir", "rootfs-only"])
def test_extract_and_render_leave_out_devices_and_set_id_bits_unless_keep_special(
        pyrkt: Pyrkt, tmp_path: Path, command: str, rootfs_only: bool) -> None:
    layout = build_oci_layout(tmp_path / "special", tag="1.0", extra_layers=SPECIAL_LAYERS)
    pyrkt("fetch", f"oci:{layout}:1.0", check=True)
    flags = ["--rootfs-only"] if rootfs_only else []

    out = tmp_path / "out"
    pyrkt("image", command, *flags, "special:1.0", str(out), check=True)
    rootfs = out if rootfs_only else out / "rootfs"
    assert stat.S_IMODE(os.lstat(out).st_mode) == 0o700
    assert special_files(rootfs) == []
    assert stat.S_IMODE(os.lstat(rootfs / "usr" / "bin" / "su").st_mode) == 0o755
    assert stat.S_IMODE(os.lstat(rootfs / "usr" / "bin" / "wall").st_mode) == 0o755
    assert stat.S_IMODE(os.lstat(rootfs / "srv" / "shared").st_mode) == 0o2775  # a dir's setgid is harmless
    assert not os.path.lexists(rootfs / "dev" / "kmsg") and not os.path.lexists(rootfs / "dev" / "kmsg-again")
    assert not os.path.lexists(rootfs / "etc" / "hidden") and not os.path.lexists(rootfs / "srv" / "old")

    kept = tmp_path / "kept"
    pyrkt("image", command, *flags, "--keep-special", "special:1.0", str(kept), check=True)
    rootfs = kept if rootfs_only else kept / "rootfs"
    assert stat.S_IMODE(os.lstat(kept).st_mode) == 0o700
    assert special_files(rootfs) == ["caps usr/bin/ping", "device dev/kmsg", "device dev/kmsg-again",
                                     "set-id usr/bin/su", "set-id usr/bin/wall"]
    assert os.lstat(rootfs / "dev" / "kmsg").st_rdev == os.makedev(1, 11)
    assert os.getxattr(rootfs / "usr" / "bin" / "ping", "security.capability") == CAP_NET_RAW
    assert not os.path.lexists(rootfs / "etc" / "hidden")  # whiteouts are applied, never made

    r = pyrkt("image", command, "special:1.0", str(out))
    assert r.code == 254 and "exists (try --overwrite)" in r.err, r
    assert "special:1.0" in pyrkt("image", "list", "--no-legend", "--fields=name", check=True).out
    subprocess.run(["rm", "-rf", "--one-file-system", str(out), str(kept)], check=True)
