"""Image commands end to end through the installed CLI: fetch from local sources, image list,
rm and cat-manifest, whiteouts as overlayfs sees them, hostile and corrupt layers, SIGKILL and
concurrent imports. Needs root (whiteouts are device nodes; the test mounts an overlay)."""

from __future__ import annotations

import json
import os
import re
import signal
import stat
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
PYRKT = REPO / ".venv" / "bin" / "pyrkt"
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from tests.support.images import (  # noqa: E402
    Entry,
    build_docker_archive,
    build_oci_archive,
    build_oci_layout,
    host_arch,
    image_id_of,
    layer_tar,
)
from tests.unit.fetch.test_registry_platform import platform_image_id  # noqa: E402

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="needs root: whiteouts and overlay mounts")

SHORT_ID = re.compile(r"^sha256:[0-9a-f]{12}$")


@dataclass
class Result:
    code: int
    out: str
    err: str


class Pyrkt:
    def __init__(self, data_dir: Path) -> None:
        self.data_dir = data_dir

    def argv(self, *args: str) -> list[str]:
        return [str(PYRKT), f"--dir={self.data_dir}", *args]

    def __call__(self, *args: str) -> Result:
        p = subprocess.run(self.argv(*args), capture_output=True, text=True, timeout=120, stdin=subprocess.DEVNULL)
        return Result(p.returncode, p.stdout, p.stderr)

    @property
    def store(self) -> Path:
        return self.data_dir / "store"

    def contents(self) -> tuple[list[str], list[str], list[str]]:
        """(blobs, layer dirs, tmp entries) as they are on disk."""
        def ls(p: Path) -> list[str]:
            return sorted(os.listdir(p)) if p.is_dir() else []
        return ls(self.store / "blobs" / "sha256"), ls(self.store / "layers" / "sha256"), ls(self.store / "tmp")


@pytest.fixture
def pyrkt(tmp_path: Path) -> Pyrkt:
    return Pyrkt(tmp_path / "data")


def fetch_ok(pyrkt: Pyrkt, *args: str) -> str:
    r = pyrkt("fetch", *args)
    assert r.code == 0, r
    return r.out.strip()


# -- fetch, list, rm, cat-manifest ------------------------------------------------------------


def test_fetch_from_each_local_source_prints_the_short_id(pyrkt: Pyrkt, tmp_path: Path) -> None:
    layout = build_oci_layout(tmp_path / "layout", tag="1.0")
    archive = build_oci_archive(tmp_path / "oci.tar", tag="2.0", cmd=("true",))
    save = build_docker_archive(tmp_path / "save.tar", repo_tag="example/busybox:1.36", cmd=("false",))
    for arg, path, tag in ((f"oci:{layout}:1.0", layout, "1.0"), (f"oci-archive:{archive}", archive, "2.0"),
                           (f"docker-archive:{save}", save, None)):
        out = fetch_ok(pyrkt, arg)
        assert SHORT_ID.match(out), out
        assert image_id_of(path, tag).startswith(out)
    assert fetch_ok(pyrkt, "--full", f"oci:{layout}:1.0") == image_id_of(layout, "1.0")


def test_platform_chooses_from_a_local_index_and_refuses_a_single_image_for_another(
        pyrkt: Pyrkt, tmp_path: Path) -> None:
    """`--platform` as for a registry: it picks from the index of an oci: layout or oci-archive:
    tar, one it lacks is an error listing those it has, and a single image (oci:, oci-archive:,
    docker-archive:) built for another platform is refused with nothing stored."""
    host, other = f"linux/{host_arch()}", "linux/s390x" if host_arch() != "s390x" else "linux/amd64"
    layout = build_oci_layout(tmp_path / "multi", platforms=(host, other))
    archive = build_oci_archive(tmp_path / "multi.tar", platforms=(host, other))
    for arg in (f"oci:{layout}", f"oci-archive:{archive}"):
        assert fetch_ok(pyrkt, "--full", f"--platform={other}", arg) == platform_image_id(layout, other)
        assert fetch_ok(pyrkt, "--full", arg) == fetch_ok(pyrkt, "--full", f"--platform={host}", arg) \
            == image_id_of(layout) != platform_image_id(layout, other)
        r = pyrkt("fetch", "--platform=linux/riscv64", arg)
        assert r.code == 254 and r.out == "", r
        assert re.fullmatch(rf"pyrkt: {re.escape(arg)}: manifest sha256:[0-9a-f]{{64}} has no image for linux/riscv64 "
                            rf"\(it has: {', '.join(sorted((host, other)))}\)\n", r.err), r.err
    before = pyrkt.contents()
    singles = {"oci": build_oci_layout(tmp_path / "single"), "oci-archive": build_oci_archive(tmp_path / "single.tar"),
               "docker-archive": build_docker_archive(tmp_path / "saved.tar", repo_tag="example/single:1")}
    for kind, path in singles.items():
        r = pyrkt("fetch", f"--platform={other}", f"{kind}:{path}")
        assert r.code == 254 and r.out == "", r
        assert re.fullmatch(rf"pyrkt: {kind}:{re.escape(str(path))}: \S+ \S+ is an image for {host}, not for {other} "
                            r"\(it has no index to choose from\)\n", r.err), r.err
    assert pyrkt.contents() == before
    assert "single" not in pyrkt("image", "list", "--no-legend", "--fields=name").out
    for kind, path in singles.items():
        assert fetch_ok(pyrkt, "--full", f"--platform={host}", f"{kind}:{path}") == image_id_of(path)


def test_image_list_shows_rkts_columns_and_json(pyrkt: Pyrkt, tmp_path: Path) -> None:
    fetch_ok(pyrkt, f"oci:{build_oci_layout(tmp_path / 'alpha', tag='1.0')}")
    fetch_ok(pyrkt, f"docker-archive:{build_docker_archive(tmp_path / 's.tar', repo_tag='example/zeta:2', cmd=('id',))}")
    r = pyrkt("image", "list")
    assert r.code == 0, r
    lines = r.out.splitlines()
    assert re.match(r"^ID\s+NAME\s+SIZE\s+IMPORT TIME\s+LAST USED$", lines[0])
    assert re.match(r"^sha256:[0-9a-f]{12}\s+alpha:1\.0\s+\d+\.\d MiB\s+now\s+now$", lines[1]), lines[1]
    assert "example/zeta:2" in lines[2]
    r = pyrkt("image", "list", "--no-legend", "--fields=name", "--sort=name", "--order=desc")
    assert r.out.splitlines() == ["example/zeta:2", "alpha:1.0"]
    data = json.loads(pyrkt("image", "list", "--format=json").out)
    assert [set(d) for d in data] == [{"id", "name", "import_time", "last_used_time", "size"}] * 2
    assert data[0]["name"] == "alpha:1.0" and re.match(r"^sha256:[0-9a-f]{64}$", data[0]["id"])
    assert abs(data[0]["import_time"] / 1e9 - time.time()) < 120 and data[0]["size"] > 1_000_000
    r = pyrkt("image", "list", "--full", "--no-legend", "--fields=id,size")
    assert re.match(r"^sha256:[0-9a-f]{64}\s+\d+$", r.out.splitlines()[0])
    assert pyrkt("image", "list", "--fields=bogus").code == 254


def test_image_rm_by_name_and_id_reports_each_and_continues_after_errors(pyrkt: Pyrkt, tmp_path: Path) -> None:
    a = fetch_ok(pyrkt, "--full", f"oci:{build_oci_layout(tmp_path / 'a', cmd=('true',))}")
    b = fetch_ok(pyrkt, "--full", f"oci:{build_oci_layout(tmp_path / 'b', cmd=('false',))}")
    r = pyrkt("image", "rm", "a", "nonexistent", b[:15])
    assert r.code == 254
    assert r.out.splitlines() == [
        f'successfully removed aci for image: "{a}" ("a:latest")',  # rkt's words
        f'successfully removed aci for image: "{b}" ("b:latest")',
    ]
    assert r.err == 'pyrkt: image "nonexistent" not found in the store\n2 image(s) successfully removed\n'
    assert pyrkt("image", "list", "--no-legend").out == ""
    blobs, layers, tmp = pyrkt.contents()
    assert (blobs, layers, tmp) == ([], [], [])


def test_image_rm_keeps_layers_another_image_uses(pyrkt: Pyrkt, tmp_path: Path) -> None:
    fetch_ok(pyrkt, f"oci:{build_oci_layout(tmp_path / 'one', cmd=('true',))}")
    fetch_ok(pyrkt, f"oci:{build_oci_layout(tmp_path / 'two', extra_layers=[{'extra': b'x'}])}")
    _, layers_before, _ = pyrkt.contents()
    assert len(layers_before) == 2
    assert pyrkt("image", "rm", "two").code == 0
    _, layers_after, _ = pyrkt.contents()
    assert len(layers_after) == 1 and layers_after[0] in layers_before
    assert pyrkt("image", "list", "--no-legend", "--fields=name").out == "one:latest\n"


def test_cat_manifest_prints_the_stored_manifest(pyrkt: Pyrkt, tmp_path: Path) -> None:
    layout = build_oci_layout(tmp_path / "m", tag="5")
    image_id = fetch_ok(pyrkt, "--full", f"oci:{layout}")
    index = json.loads((layout / "index.json").read_bytes())
    raw = (layout / "blobs" / "sha256" / index["manifests"][0]["digest"].split(":")[1]).read_text()
    r = pyrkt("image", "cat-manifest", "m:5")
    assert r.code == 0 and r.out.startswith("{\n    ") and json.loads(r.out) == json.loads(raw)
    assert json.loads(r.out)["config"]["digest"] == image_id
    assert pyrkt("image", "cat-manifest", "--pretty-print=false", image_id[:12]).out == raw + "\n"
    r = pyrkt("image", "cat-manifest", "missing")
    assert (r.code, r.err) == (254, 'pyrkt: image "missing" not found in the store\n')


# -- whiteouts through a real overlay mount ------------------------------------------------------


def test_whiteouts_and_opaque_dirs_hide_lower_files_under_overlayfs(pyrkt: Pyrkt, tmp_path: Path) -> None:
    layout = build_oci_layout(tmp_path / "wh", extra_layers=[
        {"etc/motd": b"hello", "var/cache/old": b"old", "keep": b"kept"},
        {"etc/motd": None, "var/cache/.wh..wh..opq": b"", "var/cache/new": b"new", "tmp/scratch": b""},
    ])
    fetch_ok(pyrkt, f"oci:{layout}")
    top = pyrkt.store / "layers" / "sha256" / image_id_layers(layout)[-1]
    st = os.lstat(top / "etc" / "motd")
    assert stat.S_ISCHR(st.st_mode) and st.st_rdev == 0
    assert os.getxattr(top / "var" / "cache", "trusted.overlay.opaque") == b"y"
    lowers = [pyrkt.store / "layers" / "sha256" / d for d in reversed(image_id_layers(layout))]
    merged = tmp_path / "merged"
    merged.mkdir()
    subprocess.run(["mount", "-t", "overlay", "overlay", "-o", "lowerdir=" + ":".join(map(str, lowers)), str(merged)],
                   check=True)
    try:
        assert not (merged / "etc" / "motd").exists()
        assert (merged / "etc" / "passwd").exists()
        assert sorted(os.listdir(merged / "var" / "cache")) == ["new"]
        assert (merged / "keep").read_bytes() == b"kept" and (merged / "bin" / "busybox").is_file()
        assert stat.S_IMODE(os.stat(merged / "tmp").st_mode) == 0o1777  # the top layer's implicit tmp/
    finally:
        subprocess.run(["umount", str(merged)], check=True)


def image_id_layers(layout: Path) -> list[str]:
    config = json.loads((layout / "blobs" / "sha256" / image_id_of(layout).split(":")[1]).read_bytes())
    return [d.split(":")[1] for d in config["rootfs"]["diff_ids"]]


def test_owners_modes_and_device_nodes_survive_unpacking(pyrkt: Pyrkt, tmp_path: Path) -> None:
    layout = build_oci_layout(tmp_path / "own", extra_layers=[{
        "srv/app.conf": Entry.file(b"conf", 0o640, uid=1000, gid=1000),
        "usr/bin/ping": Entry.file(b"bin", 0o4755),
        "dev/null": Entry.char(1, 3),
    }])
    fetch_ok(pyrkt, f"oci:{layout}")
    top = pyrkt.store / "layers" / "sha256" / image_id_layers(layout)[-1]
    conf = os.lstat(top / "srv" / "app.conf")
    assert (conf.st_uid, conf.st_gid, stat.S_IMODE(conf.st_mode)) == (1000, 1000, 0o640)
    assert stat.S_IMODE(os.lstat(top / "usr" / "bin" / "ping").st_mode) == 0o4755
    assert os.lstat(top / "dev" / "null").st_rdev == os.makedev(1, 3)
    assert stat.S_IMODE(os.lstat(pyrkt.store).st_mode) == 0o700


# -- bad input leaves the store as it was ----------------------------------------------------------

HOSTILE = {
    "dotdot": [("../escaped", Entry.file(b"x"))],
    "absolute-symlink": [("evil", Entry.symlink("/tmp")), ("evil/escaped", Entry.file(b"x"))],
    "relative-symlink": [("up", Entry.symlink("../../../../../../tmp")), ("up/escaped", Entry.file(b"x"))],
    "hardlink-outside": [("link", Entry.hardlink("../../../../etc/passwd"))],
}


@pytest.mark.parametrize("kind", sorted(HOSTILE))
def test_hostile_layer_is_refused_and_the_store_is_unchanged(pyrkt: Pyrkt, tmp_path: Path, kind: str) -> None:
    fetch_ok(pyrkt, f"oci:{build_oci_layout(tmp_path / 'good')}")
    before = pyrkt.contents()
    layout = build_oci_layout(tmp_path / "hostile", extra_layers=[layer_tar(HOSTILE[kind])])
    r = pyrkt("fetch", f"oci:{layout}")
    assert r.code == 254 and r.out == ""
    member = HOSTILE[kind][-1][0]
    assert re.match(rf"^pyrkt: layer sha256:[0-9a-f]{{64}}: member '{re.escape(member)}' ", r.err), r.err
    assert pyrkt.contents() == before
    assert pyrkt("image", "list", "--no-legend", "--fields=name").out == "good:latest\n"
    assert not Path("/tmp/escaped").exists()


def test_corrupt_blob_is_refused_and_the_store_is_unchanged(pyrkt: Pyrkt, tmp_path: Path) -> None:
    fetch_ok(pyrkt, f"oci:{build_oci_layout(tmp_path / 'good')}")
    before = pyrkt.contents()
    layout = build_oci_layout(tmp_path / "bad", extra_layers=[{"data": b"payload" * 100}])
    index = json.loads((layout / "index.json").read_bytes())
    manifest = json.loads((layout / "blobs" / "sha256" / index["manifests"][0]["digest"].split(":")[1]).read_bytes())
    blob = layout / "blobs" / "sha256" / manifest["layers"][-1]["digest"].split(":")[1]
    data = bytearray(blob.read_bytes())
    data[len(data) // 2] ^= 0xFF
    blob.write_bytes(bytes(data))
    r = pyrkt("fetch", f"oci:{layout}")
    assert r.code == 254 and "digest mismatch" in r.err and manifest["layers"][-1]["digest"] in r.err
    assert pyrkt.contents() == before


# -- interruptions and concurrency ---------------------------------------------------------------


def test_sigkill_during_fetch_never_leaves_a_half_image(pyrkt: Pyrkt, tmp_path: Path) -> None:
    archive = build_docker_archive(tmp_path / "k.tar", repo_tag="example/k:1",
                                   extra_layers=[{"big": os.urandom(4 << 20)}])
    for delay in (0.08, 0.12, 0.16, 0.2, 0.3):  # before, during and after the import
        p = subprocess.Popen(pyrkt.argv("fetch", f"docker-archive:{archive}"), stdout=subprocess.DEVNULL,
                             stderr=subprocess.DEVNULL)
        time.sleep(delay)
        p.send_signal(signal.SIGKILL)
        p.wait()
        listed = pyrkt("image", "list", "--no-legend", "--fields=name").out.split()
        _, layers, tmp = pyrkt.contents()
        assert tmp == [], f"leftovers after SIGKILL at {delay}s"
        if listed:
            assert listed == ["example/k:1"] and len(layers) == 2
            assert pyrkt("image", "rm", "example/k:1").code == 0
    fetch_ok(pyrkt, f"docker-archive:{archive}")


def test_concurrent_fetches_of_one_image_agree(pyrkt: Pyrkt, tmp_path: Path) -> None:
    layout = build_oci_layout(tmp_path / "same", extra_layers=[{"f": b"x" * 100000}])
    procs = [subprocess.Popen(pyrkt.argv("fetch", f"oci:{layout}"), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              text=True) for _ in range(4)]
    outs = [p.communicate(timeout=120) for p in procs]
    assert [p.returncode for p in procs] == [0] * 4, outs
    assert {o for o, _ in outs} == {image_id_of(layout)[:19] + "\n"}
    _, layers, tmp = pyrkt.contents()
    assert len(layers) == 2 and tmp == []
    assert pyrkt("image", "list", "--no-legend", "--fields=name").out == "same:latest\n"
