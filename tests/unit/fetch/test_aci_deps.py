"""appc dependencies and pathWhitelist: parsing, depth-first layer order, resolution in the
store (labels, imageID), cycles, and the whitelist filter, on a real temp store."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from tests.support.aci import aci_manifest, build_aci, build_files_aci, dependency
from tests.support.images import Entry
from tests.support.stores import assert_store_empty

from pyrkt.errors import ImageError, NotFound
from pyrkt.fetch.aci import Dependency, import_aci, parse_manifest
from pyrkt.model.image import Image
from pyrkt.stage0.images import extract_image
from pyrkt.store import Store
from pyrkt.store.render import render_tree
from pyrkt.store.squash import LayerListing, Whitelist, filter_listing, plan_squash


def _import(store: Store, path: Path, **kw: object) -> Image:
    return import_aci(store, path, source=str(path), verify=False, **kw)  # type: ignore[arg-type]


def _rendered(store: Store, image: Image, dest: Path) -> Path:
    dest.mkdir()
    render_tree(store.layer_dirs(store.get(image.id)), dest)
    return dest


def _snapshot(store: Store) -> tuple[object, ...]:
    return ([r.id for r in store.list()], sorted(store.blobs.walk()), sorted(store.layers.walk()),
            os.listdir(store.tmp) if store.tmp.exists() else [])


# -- parsing ---------------------------------------------------------------------------------


def _parse(**fields: object) -> object:
    m = aci_manifest()
    m.update(fields)
    return parse_manifest(json.dumps(m).encode(), image_id="sha512-" + "0" * 64, diff_id="sha256:" + "1" * 64,
                          where="x.aci")


def test_dependencies_and_whitelist_are_parsed_in_order() -> None:
    parsed = _parse(dependencies=[dependency("example.com/b", "1.0.0", env="canary"),
                                  {"imageName": "example.com/c", "imageID": "sha512-" + "ab" * 64, "size": 10}],
                    pathWhitelist=["/etc/ssl/", "/bin/sh", "/bin/sh"])
    assert parsed.dependencies == (  # type: ignore[attr-defined]
        Dependency("example.com/b", (("version", "1.0.0"), ("env", "canary"))),
        Dependency("example.com/c", (), "sha512-" + "ab" * 64, 10),
    )
    assert parsed.dependencies[0].display == "example.com/b:1.0.0,env=canary"  # type: ignore[attr-defined]
    assert parsed.path_whitelist == ("/etc/ssl", "/bin/sh")  # type: ignore[attr-defined]
    assert parsed.image.layers == ("sha256:" + "1" * 64,)  # type: ignore[attr-defined]


@pytest.mark.parametrize(("fields", "message"), [
    ({"dependencies": {"imageName": "a"}}, "manifest dependencies must be a list"),
    ({"dependencies": [{"imageName": "Bad Name"}]}, "dependency imageName 'Bad Name' is not a valid AC Identifier"),
    ({"dependencies": [{"labels": []}]}, "dependency imageName None is not a valid AC Identifier"),
    ({"dependencies": [{"imageName": "a.com/b", "imageID": "sha256:abcd"}]}, "invalid imageID 'sha256:abcd'"),
    ({"dependencies": [{"imageName": "a.com/b", "size": -1}]}, "invalid size -1"),
    ({"dependencies": [{"imageName": "a.com/b", "labels": [{"name": "v"}]}]}, "need a string name and value"),
    ({"pathWhitelist": "/bin"}, "pathWhitelist must be a list of strings"),
    ({"pathWhitelist": ["bin/sh"]}, "entry 'bin/sh' is not a clean absolute path"),
    ({"pathWhitelist": ["/etc/../root"]}, "entry '/etc/../root' is not a clean absolute path"),
])
def test_invalid_dependencies_and_whitelists_are_refused(fields: dict[str, object], message: str) -> None:
    with pytest.raises(ImageError, match=message.replace("(", r"\(")):
        _parse(**fields)


# -- the whitelist filter (pure) ---------------------------------------------------------------


def test_whitelist_keeps_listed_paths_and_the_dirs_above_them() -> None:
    keep = Whitelist.of(["/etc/ssl/certs/ca.pem", "/bin/sh", "/opt/"])
    assert keep.allows("", "dir") and keep.allows("etc", "dir") and keep.allows("etc/ssl/certs", "dir")
    assert keep.allows("bin/sh", "other") and keep.allows("opt", "dir")
    assert not keep.allows("etc", "other")  # a file where a needed parent dir is is not listed
    assert not keep.allows("etc/passwd", "other") and not keep.allows("opt/x", "other")
    assert not keep.allows("usr", "dir")
    assert keep.allows("usr/gone", "whiteout")


def test_a_path_filtered_from_an_upper_layer_does_not_hide_the_lower_copy() -> None:
    keep = Whitelist.of(["/x/y"])
    lower = LayerListing({"": "dir", "x": "dir", "x/y": "other"})
    upper = LayerListing({"": "dir", "x": "other", "z": "other"})  # a file over the dir, not listed
    plan = plan_squash([filter_listing(lower, keep), filter_listing(upper, keep)])
    assert plan == {"": 1, "x": 0, "x/y": 0}


# -- dependencies in the store -----------------------------------------------------------------


def test_layers_are_the_dependencies_depth_first_then_the_image(store: Store, tmp_path: Path) -> None:
    from pyrkt.store.verify import verify_image

    # A -> [B, C], C -> [D]: B, D, C, A, later ones winning.
    d = tmp_path / "d.aci"
    build_files_aci(d, "example.com/d", {"who": b"d", "bd": b"d", "only-d": b"d"})
    b = tmp_path / "b.aci"
    build_files_aci(b, "example.com/b", {"who": b"b", "bd": b"b", "only-b": b"b"})
    c = tmp_path / "c.aci"
    build_files_aci(c, "example.com/c", {"who": b"c"}, dependencies=[dependency("example.com/d", "1.0.0")])
    a = tmp_path / "a.aci"
    build_files_aci(a, "example.com/a", {"only-a": b"a"},
                    dependencies=[dependency("example.com/b", "1.0.0"), dependency("example.com/c", "1.0.0")])
    images = {n: _import(store, p) for n, p in (("d", d), ("b", b), ("c", c))}
    image = _import(store, a)
    own = {n: i.layers[-1] for n, i in images.items()}
    assert image.layers == (own["b"], own["d"], own["c"], image.aci.blob)
    assert image.aci.dependencies == (images["b"].id, images["c"].id)
    assert verify_image(store, image.id, repair=False).ok
    root = _rendered(store, image, tmp_path / "out")
    assert {p: (root / p).read_bytes() for p in ("who", "bd", "only-a", "only-b", "only-d")} == {
        "who": b"c", "bd": b"d", "only-a": b"a", "only-b": b"b", "only-d": b"d"}
    # the dependency may go: the dependent's layers are its own references
    store.remove(images["c"].id)
    store.remove(images["d"].id)
    assert all(p.is_dir() for p in store.layer_dirs(store.get(image.id)))
    assert (_rendered(store, image, tmp_path / "again") / "who").read_bytes() == b"c"


def test_the_dependency_is_chosen_by_version_and_labels(store: Store, tmp_path: Path) -> None:
    ids = {}
    for version in ("1.0.0", "2.0.0"):
        p = tmp_path / f"base-{version}.aci"
        ids[version] = build_files_aci(p, "example.com/base", {"v": version.encode()}, version=version)
        _import(store, p)
    app = tmp_path / "app.aci"
    build_files_aci(app, "example.com/app", {}, dependencies=[dependency("example.com/base", "1.0.0", os="linux")])
    assert (_rendered(store, _import(store, app), tmp_path / "one") / "v").read_bytes() == b"1.0.0"
    build_files_aci(app, "example.com/app", {}, version="2",
                    dependencies=[dependency("example.com/base")])  # no version: the newest import
    assert (_rendered(store, _import(store, app), tmp_path / "two") / "v").read_bytes() == b"2.0.0"
    build_files_aci(app, "example.com/app", {}, version="3",
                    dependencies=[dependency("example.com/base", image_id=ids["1.0.0"][:30])])
    assert (_rendered(store, _import(store, app), tmp_path / "three") / "v").read_bytes() == b"1.0.0"


def test_a_missing_dependency_names_it_and_leaves_the_store_unchanged(store: Store, tmp_path: Path) -> None:
    base = tmp_path / "base.aci"
    build_files_aci(base, "example.com/base", {"x": b""}, version="1.0.0")
    _import(store, base)
    before = _snapshot(store)
    app = tmp_path / "app.aci"
    build_files_aci(app, "example.com/app", {}, dependencies=[dependency("example.com/base", "9.9.9")])
    with pytest.raises(NotFound) as err:
        _import(store, app)
    assert str(err.value) == ("dependency example.com/base:9.9.9 of image 'example.com/app' not found in the "
                              "store; fetch it first")
    build_files_aci(app, "example.com/app", {}, dependencies=[dependency("example.com/base", "1.0.0", env="prod")])
    with pytest.raises(NotFound, match="example.com/base:1.0.0,env=prod"):
        _import(store, app)
    assert _snapshot(store) == before


def test_an_image_id_that_does_not_match_is_refused(store: Store, tmp_path: Path) -> None:
    base = tmp_path / "base.aci"
    real = build_files_aci(base, "example.com/base", {"x": b""})
    _import(store, base)
    before = _snapshot(store)
    wrong = "sha512-" + ("0" if real[7] != "0" else "1") * 128
    app = tmp_path / "app.aci"
    build_files_aci(app, "example.com/app", {}, dependencies=[dependency("example.com/base", "1.0.0",
                                                                          image_id=wrong)])
    with pytest.raises(ImageError, match=f"wants imageID {wrong[:39]}, but the image found is {real[:39]}"):
        _import(store, app)
    assert _snapshot(store) == before


def test_a_resolver_that_fetches_dependencies_stops_at_a_cycle(store: Store, tmp_path: Path) -> None:
    files = {}
    for me, other in (("a", "b"), ("b", "a")):
        files[f"example.com/{me}"] = tmp_path / f"{me}.aci"
        build_files_aci(files[f"example.com/{me}"], f"example.com/{me}", {me: b""},
                        dependencies=[dependency(f"example.com/{other}")])
    calls = []

    def fetching(dep: Dependency) -> Image:
        calls.append(dep.name)
        return _import(store, files[dep.name], resolve_dependency=fetching)

    with pytest.raises(ImageError, match="dependency cycle: example.com/a -> example.com/b -> example.com/a$"):
        _import(store, files["example.com/a"], resolve_dependency=fetching)
    assert calls == ["example.com/b", "example.com/a"]
    assert store.list() == []


def test_a_diamond_puts_the_shared_dependency_down_twice(store: Store, tmp_path: Path) -> None:
    # A -> [B, C], B -> [D], C -> [D]: D, B, D, C, A; D's second copy is over B's files
    for name, files, deps in (("d", {"who": b"d"}, []), ("b", {"who": b"b", "b": b""}, ["d"]),
                              ("c", {"c": b""}, ["d"]), ("a", {}, ["b", "c"])):
        aci = tmp_path / f"{name}.aci"
        build_files_aci(aci, f"example.com/{name}", files, dependencies=[dependency(f"example.com/{d}") for d in deps])
        image = _import(store, aci)
    assert len(image.layers) == 5 and image.layers[0] == image.layers[2]
    root = _rendered(store, image, tmp_path / "out")
    assert (root / "who").read_bytes() == b"d" and (root / "b").exists() and (root / "c").exists()


def test_chains_deeper_than_the_limit_are_refused(store: Store, tmp_path: Path,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    import pyrkt.fetch.aci

    monkeypatch.setattr(pyrkt.fetch.aci, "MAX_DEPENDENCY_DEPTH", 2)
    for i in range(3):
        aci = tmp_path / f"l{i}.aci"
        build_files_aci(aci, f"example.com/l{i}", {}, dependencies=[dependency(f"example.com/l{i - 1}")] if i else [])
        _import(store, aci)
    top = tmp_path / "top.aci"
    build_files_aci(top, "example.com/top", {}, dependencies=[dependency("example.com/l2")])
    with pytest.raises(ImageError, match="dependencies of 'example.com/top' nest deeper than 2 images "
                                         r"\(through example.com/l2\)$"):
        _import(store, top)


def test_check_sees_the_image_and_can_refuse_it(store: Store, tmp_path: Path) -> None:
    aci = tmp_path / "app.aci"
    build_aci(aci)
    seen = []

    def refuse(image: Image) -> None:
        seen.append(image.name)
        raise ImageError("name does not match")

    with pytest.raises(ImageError, match="name does not match"):
        _import(store, aci, check=refuse)
    assert seen == ["example.com/app"]
    assert_store_empty(store)
    assert _import(store, aci, check=seen.append).name == "example.com/app"


# -- pathWhitelist -----------------------------------------------------------------------------


def test_whitelist_filters_the_image_and_its_dependencies_into_one_layer(store: Store, tmp_path: Path) -> None:
    from pyrkt.store.verify import verify_image

    base = tmp_path / "base.aci"
    build_files_aci(base, "example.com/base", {"etc/base.conf": b"b", "etc/drop.conf": b"x", "lib/l.so": b"l",
                                               "bin/tool": Entry.file(b"#!", 0o755)})
    app = tmp_path / "app.aci"
    build_files_aci(app, "example.com/app", {"etc/app.conf": b"a", "etc/base.conf": b"mine", "srv/junk": b"j"},
                    dependencies=[dependency("example.com/base", "1.0.0")],
                    path_whitelist=["/etc/app.conf", "/etc/base.conf", "/bin/tool", "/lib/"])
    _import(store, base)
    image = _import(store, app)
    assert len(image.layers) == 1 and list(image.aci.path_whitelist) == ["/etc/app.conf", "/etc/base.conf",
                                                                         "/bin/tool", "/lib"]
    root = _rendered(store, image, tmp_path / "out")
    found = sorted(str(p.relative_to(root)) for p in root.rglob("*"))
    assert found == ["bin", "bin/tool", "etc", "etc/app.conf", "etc/base.conf", "lib"]
    assert (root / "etc/base.conf").read_bytes() == b"mine" and os.access(root / "bin/tool", os.X_OK)
    assert json.loads(store.manifest(image.id))["pathWhitelist"][-1] == "/lib/"  # stored as it came
    assert verify_image(store, image.id, repair=False).ok
    # `image extract` (no dependencies): the ACI's own rootfs, unfiltered; render: the filtered tree
    extract_image(store, image.id, str(tmp_path / "own"), rootfs_only=True, dependencies=False)
    assert sorted(str(p.relative_to(tmp_path / "own")) for p in (tmp_path / "own").rglob("*")) == [
        "etc", "etc/app.conf", "etc/base.conf", "srv", "srv/junk"]
    extract_image(store, image.id, str(tmp_path / "all"), rootfs_only=True)
    assert sorted(str(p.relative_to(tmp_path / "all")) for p in (tmp_path / "all").rglob("*")) == found
    assert not os.listdir(store.tmp)


def test_extract_without_dependencies_is_the_acis_own_rootfs(store: Store, tmp_path: Path) -> None:
    base = tmp_path / "base.aci"
    build_files_aci(base, "example.com/base", {"base": b"b"})
    app = tmp_path / "app.aci"
    build_files_aci(app, "example.com/app", {"app": b"a"}, dependencies=[dependency("example.com/base")])
    _import(store, base)
    image = _import(store, app)
    extract_image(store, image.id, str(tmp_path / "own"), dependencies=False)
    assert sorted(os.listdir(tmp_path / "own" / "rootfs")) == ["app"]
    extract_image(store, image.id, str(tmp_path / "all"))
    assert sorted(os.listdir(tmp_path / "all" / "rootfs")) == ["app", "base"]
