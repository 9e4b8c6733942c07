"""appc dependencies and pathWhitelist through the installed CLI: ACIs that depend on a busybox
ACI are fetched and run in real pods (overlay over the dependencies' layers), a 3-level chain
renders depth-first, missing or mismatching dependencies are one-line errors, and a
pathWhitelist leaves only the listed paths, in `image render` and inside a running pod."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from tests.integration.pods import Cli, mounts_under
from tests.support.aci import build_files_aci, dependency

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="needs root: runs pods")

INSECURE = "--insecure-options=image"


@pytest.fixture
def cli(tmp_path: Path) -> Iterator[Cli]:
    c = Cli(tmp_path / "data")
    yield c
    c.collect_all()
    assert mounts_under(tmp_path) == []


def fetch(cli: Cli, aci: Path) -> str:
    r = cli(INSECURE, "fetch", "--full", str(aci))
    assert r.code == 0, r
    return r.out.strip()


def run(cli: Cli, image: str, *cmd: str) -> str:
    r = cli(INSECURE, "run", "--net=none", image, f"--exec={cmd[0]}", "--", *cmd[1:], timeout=120)
    assert r.code == 0, r
    return r.out


def listed(cli: Cli) -> list[str]:
    return [line.split()[1] for line in cli("image", "list", "--no-legend").out.splitlines()]


def build_base(tmp_path: Path, **files: bytes) -> Path:
    """The busybox ACI example.com/base:1.0.0 with ``files`` added under /etc."""
    aci = tmp_path / "base.aci"
    build_files_aci(aci, "example.com/base", {f"etc/{k}": v for k, v in files.items()}, busybox=True)
    return aci


def test_a_dependent_sees_its_dependencys_files_and_its_own_win(cli: Cli, tmp_path: Path) -> None:
    base = build_base(tmp_path, **{"base.conf": b"from base\n", "shared": b"base's\n"})
    app = tmp_path / "app.aci"
    build_files_aci(app, "example.com/app", {"etc/app.conf": b"from app\n", "etc/shared": b"app's\n"},
                    dependencies=[dependency("example.com/base", "1.0.0")])
    fetch(cli, base)
    app_id = fetch(cli, app)
    assert sorted(listed(cli)) == ["example.com/app:1.0.0", "example.com/base:1.0.0"]
    assert run(cli, app_id, "/bin/cat", "/etc/base.conf", "/etc/app.conf", "/etc/shared") == (
        "from base\nfrom app\napp's\n")
    # the dependency may be removed: the dependent keeps the layers it runs on
    r = cli("image", "rm", "example.com/base:1.0.0")
    assert r.code == 0, r
    assert run(cli, "example.com/app:1.0.0", "/bin/cat", "/etc/base.conf") == "from base\n"


def test_a_three_level_chain_renders_depth_first(cli: Cli, tmp_path: Path) -> None:
    # top -> [side, mid], mid -> [base]: side, base, mid, top; a later image's file wins
    base = build_base(tmp_path, who=b"base\n")
    side, mid, top = (tmp_path / f"{n}.aci" for n in ("side", "mid", "top"))
    build_files_aci(side, "example.com/side", {"etc/who": b"side\n", "etc/side": b"from side\n"})
    build_files_aci(mid, "example.com/mid", {"etc/who": b"mid\n"}, dependencies=[dependency("example.com/base")])
    build_files_aci(top, "example.com/top", {"etc/top": b"from top\n"},
                    dependencies=[dependency("example.com/side", "1.0.0"), dependency("example.com/mid", "1.0.0")])
    for aci in (base, side, mid):
        fetch(cli, aci)
    top_id = fetch(cli, top)
    assert run(cli, top_id, "/bin/cat", "/etc/who", "/etc/side", "/etc/top") == "mid\nfrom side\nfrom top\n"
    out = tmp_path / "rendered"
    r = cli("image", "render", "--rootfs-only", top_id, str(out))
    assert r.code == 0, r
    assert (out / "etc" / "who").read_text() == "mid\n" and (out / "bin" / "busybox").is_file()


def test_a_missing_dependency_is_one_line_naming_it_and_nothing_is_stored(cli: Cli, tmp_path: Path) -> None:
    # a name without a host: not discoverable, so nothing is asked of the network (discovered
    # dependencies are tested with a local discovery server in test_appc_discovery.py)
    app = tmp_path / "app.aci"
    build_files_aci(app, "example.com/app", {"etc/app.conf": b""}, dependencies=[dependency("base", "1.0.0")])
    r = cli(INSECURE, "fetch", str(app))
    assert r.code == 254, r
    assert r.err == "pyrkt: dependency base:1.0.0 is not in the store and is not a name appc discovery can look up\n"
    assert listed(cli) == []
    store = tmp_path / "data" / "store"
    assert not (store / "tmp").exists() or os.listdir(store / "tmp") == []
    assert not (store / "layers" / "sha256").exists() or os.listdir(store / "layers" / "sha256") == []


def test_a_dependency_whose_image_id_differs_is_refused(cli: Cli, tmp_path: Path) -> None:
    base_id = fetch(cli, build_base(tmp_path))
    wrong = "sha512-" + ("1" if base_id[7] == "0" else "0") * 128
    app = tmp_path / "app.aci"
    build_files_aci(app, "example.com/app", {"etc/app.conf": b""},
                    dependencies=[dependency("example.com/base", "1.0.0", image_id=wrong)])
    r = cli(INSECURE, "fetch", str(app))
    assert r.code == 254 and r.err.count("\n") == 1, r
    assert f"wants imageID {wrong[:39]}, but the image found is {base_id[:39]}" in r.err
    assert listed(cli) == ["example.com/base:1.0.0"]
    build_files_aci(app, "example.com/app", {"etc/app.conf": b"pinned\n"},
                    dependencies=[dependency("example.com/base", "1.0.0", image_id=base_id)])
    assert run(cli, fetch(cli, app), "/bin/cat", "/etc/app.conf") == "pinned\n"


def test_path_whitelist_leaves_only_the_listed_paths(cli: Cli, tmp_path: Path) -> None:
    base = build_base(tmp_path, **{"base.conf": b"dropped\n"})
    app = tmp_path / "app.aci"
    build_files_aci(app, "example.com/app", {"etc/keep.conf": b"kept\n", "etc/drop.conf": b"dropped\n"},
                    dependencies=[dependency("example.com/base", "1.0.0")],
                    path_whitelist=["/bin/busybox", "/bin/sh", "/bin/ls", "/bin/cat", "/etc/keep.conf"])
    fetch(cli, base)
    app_id = fetch(cli, app)
    out = tmp_path / "rendered"
    r = cli("image", "render", "--rootfs-only", app_id, str(out))
    assert r.code == 0, r
    assert sorted(str(p.relative_to(out)) for p in out.rglob("*")) == [
        "bin", "bin/busybox", "bin/cat", "bin/ls", "bin/sh", "etc", "etc/keep.conf"]
    seen = run(cli, app_id, "/bin/sh", "-c",
               "cat /etc/keep.conf; ls /bin; for f in /etc/drop.conf /etc/base.conf /etc/passwd /bin/echo; "
               "do test -e $f || echo no $f; done")
    assert seen == "kept\nbusybox\ncat\nls\nsh\nno /etc/drop.conf\nno /etc/base.conf\nno /etc/passwd\nno /bin/echo\n"
