"""Images that expand past what an import may write, through every import path (oci:,
oci-archive:, docker-archive:, an ACI, a registry pull), a GNU sparse file of a terabyte, a
store on a small filesystem, and layers the kernel refuses (names too long, a bad file
capability): each fails in one line with exit 254, leaves the store as it was, and the store
still fetches and runs an image afterwards. The hostile inputs are built here, small."""

from __future__ import annotations

import io
import json
import os
import re
import subprocess
import tarfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from tests.integration.pods import Cli, mounts_under
from tests.support.aci import aci_manifest
from tests.support.bombs import bomb_layer, compressed, have_gnu_tar, runs_tar, sparse_tar
from tests.support.images import (
    Entry,
    Layer,
    build_docker_archive,
    build_oci_archive,
    build_oci_layout,
    layer_tar,
)

MiB, GiB, TiB = 1 << 20, 1 << 30, 1 << 40
LIMIT_LINE = r"expands past the 64 MiB import limit \(store setting maxImportBytes\)"
# 32 files of 8 MiB of zeros: 256 MiB that gzip makes 250 KB of, past a 64 MiB limit part-way.
BOMB_FILES = [(f"zeros/{i:02d}", 8 * MiB) for i in range(32)]


def store_config(conf: Path, **settings: int) -> None:
    (conf / "store.d").mkdir(parents=True, exist_ok=True)
    (conf / "store.d" / "limits.json").write_text(
        json.dumps({"rktKind": "store", "rktVersion": "v1", **settings}))


@pytest.fixture
def cli(tmp_path: Path) -> Iterator[Cli]:
    """A data dir whose imports may write 64 MiB at most (the local config's store.d)."""
    conf = tmp_path / "etc"
    store_config(conf, maxImportBytes=64 * MiB)
    c = Cli(tmp_path / "data", [f"--local-config={conf}", f"--system-config={tmp_path / 'lib'}"])
    yield c
    c.collect_all()
    assert mounts_under(tmp_path) == []


def disk_usage(path: Path) -> int:
    out = subprocess.run(["du", "-s", "--block-size=1", str(path)], capture_output=True, text=True, check=True)
    return int(out.stdout.split()[0])


def store_state(cli: Cli) -> tuple[list[str], list[str], list[str], str]:
    """(blobs, layer dirs, tmp entries, image list) as they are."""
    store = cli.data_dir / "store"

    def ls(p: Path) -> list[str]:
        return sorted(os.listdir(p)) if p.is_dir() else []
    images = cli("image", "list", "--no-legend", "--fields=id,name").out
    return ls(store / "blobs" / "sha256"), ls(store / "layers" / "sha256"), ls(store / "tmp"), images


def good_image(tmp_path: Path, cli: Cli) -> str:
    """Fetch a small image; its source."""
    src = f"oci:{build_oci_layout(tmp_path / 'good', cmd=('sh', '-c', 'echo still works'))}"
    r = cli("fetch", src)
    assert r.code == 0, r
    return src


def assert_refused_and_store_unchanged(cli: Cli, tmp_path: Path, source: str, line: str,
                                       *flags: str) -> None:
    """Fetching ``source`` fails with the one line matching ``line``; nothing of it stays; the
    store still imports and runs an image."""
    good = good_image(tmp_path, cli)
    before, usage = store_state(cli), disk_usage(cli.data_dir)
    r = cli(*flags, "fetch", source, timeout=120)
    assert r.code == 254 and r.out == "", r
    assert re.fullmatch(line + r"\n", r.err), r.err
    assert store_state(cli) == before
    assert disk_usage(cli.data_dir) <= usage + 64 * 1024  # dirs may keep a block they grew by
    again = build_oci_layout(tmp_path / "again", cmd=("sh", "-c", "echo again"), extra_layers=[{"etc/x": b"x"}])
    assert cli("fetch", f"oci:{again}").code == 0
    r = cli("run", "--net=none", good, timeout=120)
    assert (r.code, r.out) == (0, "still works\n"), r


# -- decompression bombs, one per import path ------------------------------------------------


@pytest.mark.parametrize("compression", ["gzip", "zstd"])
def test_a_bomb_in_an_oci_layout_stops_at_the_limit(cli: Cli, tmp_path: Path, compression: str) -> None:
    layer = bomb_layer(BOMB_FILES, compression)
    assert len(layer.blob) < 512 << 10
    layout = build_oci_layout(tmp_path / "bomb", extra_layers=[layer])
    assert_refused_and_store_unchanged(
        cli, tmp_path, f"oci:{layout}",
        rf"pyrkt: image oci:{re.escape(str(layout))}: layer {layer.digest} {LIMIT_LINE}")


def test_a_bomb_in_an_oci_archive_stops_at_the_limit(cli: Cli, tmp_path: Path) -> None:
    layer = bomb_layer(BOMB_FILES, "gzip")
    archive = build_oci_archive(tmp_path / "bomb.tar", extra_layers=[layer])
    assert_refused_and_store_unchanged(
        cli, tmp_path, f"oci-archive:{archive}", rf"pyrkt: image oci-archive:.*: layer {layer.digest} {LIMIT_LINE}")


def test_a_bomb_in_a_docker_archive_stops_at_the_limit(cli: Cli, tmp_path: Path) -> None:
    layer = bomb_layer(BOMB_FILES, "gzip")
    archive = build_docker_archive(tmp_path / "bomb.tar", extra_layers=[layer])
    assert_refused_and_store_unchanged(
        cli, tmp_path, f"docker-archive:{archive}", rf"pyrkt: image docker-archive:.*: layer sha256:\w+ {LIMIT_LINE}")


def test_a_bomb_aci_stops_at_the_limit(cli: Cli, tmp_path: Path) -> None:
    """An ACI is staged uncompressed before its rootfs is unpacked: the staging is bounded too."""
    manifest = json.dumps(aci_manifest("example.com/bomb")).encode()
    blob, _ = compressed(runs_tar([("rootfs/", 0), *(("rootfs/" + n, s) for n, s in BOMB_FILES)],
                                  head=[("manifest", manifest)]), "gzip")
    aci = tmp_path / "bomb.aci"
    aci.write_bytes(blob)
    assert_refused_and_store_unchanged(
        cli, tmp_path, str(aci), rf"pyrkt: image {re.escape(str(aci))}: ACI {LIMIT_LINE}", "--insecure-options=image")


def test_an_aci_whose_rootfs_is_a_bomb_stops_at_the_limit(tmp_path: Path) -> None:
    """Staged (100 MiB) within a 160 MiB limit; its rootfs then passes it while unpacked."""
    conf = tmp_path / "etc"
    store_config(conf, maxImportBytes=160 * MiB)
    cli = Cli(tmp_path / "data", [f"--local-config={conf}", f"--system-config={tmp_path / 'lib'}"])
    manifest = json.dumps(aci_manifest("example.com/bomb")).encode()
    files = [("rootfs/", 0), *((f"rootfs/{i:02d}", 10 * MiB) for i in range(10))]
    blob, sha = compressed(runs_tar(files, head=[("manifest", manifest)]), "gzip")
    aci = tmp_path / "bomb.aci"
    aci.write_bytes(blob)
    try:
        assert_refused_and_store_unchanged(
            cli, tmp_path, str(aci),
            rf"pyrkt: image {re.escape(str(aci))}: layer {sha} expands past the 160 MiB import limit "
            r"\(store setting maxImportBytes\)", "--insecure-options=image")
    finally:
        cli.collect_all()


def test_a_bomb_pulled_from_a_registry_stops_at_the_limit(cli: Cli, tmp_path: Path) -> None:
    """Two new layers: they are unpacked while they download, in forked processes."""
    from tests.integration.test_registry import REGISTRY_BIN, Registry

    if not os.path.exists(REGISTRY_BIN):
        pytest.skip("needs docker-registry (make test-deps)")
    layer = bomb_layer(BOMB_FILES, "gzip")
    layout = build_oci_layout(tmp_path / "bomb", extra_layers=[layer])
    registry = Registry(tmp_path / "registry")
    try:
        ref = registry.push(layout, "tests/bomb")
        assert_refused_and_store_unchanged(
            cli, tmp_path, ref, rf"pyrkt: image {re.escape(ref)}: layer {layer.digest} {LIMIT_LINE}",
            "--insecure-options=http")
    finally:
        registry.stop()


def test_an_aci_download_that_never_ends_stops_at_the_limit(cli: Cli, tmp_path: Path) -> None:
    """An http server sending 80 MiB as an ACI: the download itself is charged."""
    from tests.support.webserver import Reply, WebServer

    server = WebServer(tmp_path / "web", tls=False)
    try:
        server.routes["/big.aci"] = Reply(bytes(80 * MiB))
        url = f"{server.base}/big.aci"
        assert_refused_and_store_unchanged(
            cli, tmp_path, url, rf"pyrkt: image {re.escape(url)}: the ACI download {LIMIT_LINE}",
            "--insecure-options=http,image")
    finally:
        server.close()


# -- GNU sparse files --------------------------------------------------------------------------

needs_gnu_tar = pytest.mark.skipif(not have_gnu_tar(), reason="needs GNU tar to make sparse archives")


def sparse_layer(tmp_path: Path) -> Layer:
    """A 1 TiB file with two 4 KiB data blocks, in a tar of a few KiB (gzipped)."""
    tar = sparse_tar(tmp_path / "sparse-src", TiB, [(GiB, b"middle"), (TiB - 4, b"end!")])
    blob, diff_id = compressed([tar], "gzip")
    assert len(blob) < 4096
    return Layer(diff_id, blob, "application/vnd.oci.image.layer.v1.tar+gzip")


@needs_gnu_tar
def test_a_terabyte_sparse_file_is_refused_by_its_apparent_size(cli: Cli, tmp_path: Path) -> None:
    """Counted at its apparent size (what `image extract` or an export would write out)."""
    layer = sparse_layer(tmp_path)
    layout = build_oci_layout(tmp_path / "sparse", extra_layers=[layer])
    assert_refused_and_store_unchanged(
        cli, tmp_path, f"oci:{layout}", rf"pyrkt: image oci:.*: layer {layer.digest} {LIMIT_LINE}")


@needs_gnu_tar
def test_a_terabyte_sparse_file_within_the_limit_takes_only_its_data(tmp_path: Path) -> None:
    conf = tmp_path / "etc"
    store_config(conf, maxImportBytes=2 * TiB)
    cli = Cli(tmp_path / "data", [f"--local-config={conf}", f"--system-config={tmp_path / 'lib'}"])
    layer = sparse_layer(tmp_path)
    layout = build_oci_layout(tmp_path / "sparse", extra_layers=[layer])
    try:
        usage = disk_usage(tmp_path / "data") if (tmp_path / "data").exists() else 0
        r = cli("fetch", f"oci:{layout}")
        assert r.code == 0, r
        path = tmp_path / "data" / "store" / "layers" / "sha256" / layer.diff_id.split(":")[1] / "sparse"
        st = os.stat(path)
        assert st.st_size == TiB and st.st_blocks * 512 <= 64 * 1024
        assert disk_usage(tmp_path / "data") - usage < 16 * MiB
        r = cli("run", "--net=none", f"oci:{layout}", "--exec=/bin/sh", "--", "-c",
                f"dd if=/sparse bs=1 skip={GiB} count=6 2>/dev/null; dd if=/sparse bs=1 skip={TiB - 4} 2>/dev/null",
                timeout=120)
        assert (r.code, r.out) == (0, "middleend!"), r
    finally:
        cli.collect_all()


# -- the free-space reserve ------------------------------------------------------------------


@pytest.mark.parametrize("reserve", ["default", "none"])
def test_an_import_stops_before_the_reserve_of_a_small_filesystem(tmp_path: Path, reserve: str) -> None:
    """A 128 MiB tmpfs as the data dir (reserve: 5 %, 6.4 MiB) and a layer of 200 MiB of 'A's
    within the default limit: stopped with free space left, and cleaned up. With no reserve
    (minFreeBytes 0) the filesystem fills: that is one line too, and cleaned up as well."""
    mnt = tmp_path / "small"
    mnt.mkdir()
    if reserve == "none":
        store_config(tmp_path / "etc", minFreeBytes=0)
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=128m,mode=0700", "tmpfs", str(mnt)], check=True)
    try:
        cli = Cli(mnt / "data", [f"--local-config={tmp_path / 'etc'}", f"--system-config={tmp_path / 'lib'}"])
        layer = bomb_layer([(f"a/{i:02d}", 8 * MiB) for i in range(25)], "gzip", fill=b"A")
        layout = build_oci_layout(tmp_path / "big", extra_layers=[layer])
        line = (rf"pyrkt: image oci:.*: layer {layer.digest} would leave less than 6.4 MiB free on the filesystem "
                rf"of {re.escape(str(mnt))}/data/store \(store setting minFreeBytes\)" if reserve == "default" else
                rf"pyrkt: layer {layer.digest}: no space left on the store's filesystem \(No space left on device\)")
        assert_refused_and_store_unchanged(cli, tmp_path, f"oci:{layout}", line)
        st = os.statvfs(mnt)
        assert st.f_bavail * st.f_frsize > 100 * MiB  # all of it given back
        cli.collect_all()
    finally:
        subprocess.run(["umount", str(mnt)], check=True)


# -- what the kernel refuses while unpacking -------------------------------------------------


def raw_tar(name: str, data: bytes = b"x", pax: dict[str, str] | None = None) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tf:
        info = tarfile.TarInfo(name)
        info.size, info.mtime = len(data), 946684800
        if pax:
            info.pax_headers = pax
        tf.addfile(info, io.BytesIO(data))
    return buf.getvalue()


@pytest.mark.parametrize(("kind", "tar"), [
    ("long-path", raw_tar("/".join(["d" * 200] * 25) + "/f")),  # 5000 characters
    ("long-name", raw_tar("x" * 300)),
])
def test_a_name_too_long_is_refused_in_one_line(cli: Cli, tmp_path: Path, kind: str, tar: bytes) -> None:
    layout = build_oci_layout(tmp_path / kind, extra_layers=[tar])
    assert_refused_and_store_unchanged(
        cli, tmp_path, f"oci:{layout}",
        r"pyrkt: layer sha256:\w{64}: member '[dx/]{80}… \(\d+ characters\)' cannot be unpacked: File name too long")


def test_an_invalid_file_capability_is_refused_in_one_line(cli: Cli, tmp_path: Path) -> None:
    layer = layer_tar([("bin", Entry.dir()), ("bin/capped", Entry.file(b"x", xattrs={"security.capability": "bad"}))])
    layout = build_oci_layout(tmp_path / "caps", extra_layers=[layer])
    assert_refused_and_store_unchanged(
        cli, tmp_path, f"oci:{layout}",
        r"pyrkt: layer sha256:\w{64}: member 'bin/capped': xattr 'security.capability' cannot be set: "
        r"Invalid argument")
