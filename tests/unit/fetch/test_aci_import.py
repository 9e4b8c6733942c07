"""Importing appc ACI files (busybox rootfs under rootfs/) into a temp store, without signatures."""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

import pytest
from tests.support.aci import aci_manifest, build_aci
from tests.support.fetchui import Notices
from tests.support.images import Entry
from tests.support.stores import assert_store_empty

from pyrkt.config import Config
from pyrkt.errors import ImageError, NotFound
from pyrkt.fetch import fetch
from pyrkt.fetch.aci import image_from_manifest
from pyrkt.stage0.images import resolve_image
from pyrkt.store import Store

INSECURE = frozenset({"image"})


@pytest.mark.parametrize("compression", ["none", "gzip", "bzip2", "xz"])
def test_aci_imports_with_rkts_sha512_id_whatever_the_compression(store: Store, tmp_path: Path,
                                                                   compression: str) -> None:
    aci = tmp_path / "app.aci"
    expected = build_aci(aci, compression=compression)
    image = fetch(store, str(aci), insecure=INSECURE)
    assert image.id == expected and image.format == "appc"
    assert image.display_name == "example.com/app:1.0.0"
    assert image.label("os") == "linux"
    assert image.app is not None and image.app.exec == ("/bin/echo", "hello from aci")
    [layer] = store.layer_dirs(store.resolve(expected[:20]))
    assert (layer / "bin" / "busybox").is_file() and os.readlink(layer / "bin" / "sh") == "busybox"
    assert not (layer / "manifest").exists() and not (layer / "rootfs").exists()
    assert store.resolve("example.com/app:1.0.0").id == expected
    assert json.loads(store.manifest(expected))["name"] == "example.com/app"


def test_the_uncompressed_tar_is_the_kept_blob(store: Store, tmp_path: Path) -> None:
    plain, xz = tmp_path / "a.aci", tmp_path / "b.aci"
    build_aci(plain)
    build_aci(xz, compression="xz")
    first = fetch(store, str(plain), insecure=INSECURE)
    assert fetch(store, f"file://{xz}", insecure=INSECURE).id == first.id
    assert plain.read_bytes() in [store.blobs.read(d) for d in store.blobs.walk()]


def test_app_section_maps_onto_the_image(store: Store, tmp_path: Path) -> None:
    manifest = aci_manifest(
        "example.com/full", user="1000", group="1000", supplementaryGIDs=[5, 6], workingDirectory="/tmp",
        environment=[{"name": "A", "value": "1"}], ports=[{"name": "http", "protocol": "tcp", "port": 80}],
        mountPoints=[{"name": "data", "path": "/data", "readOnly": True}],
        isolators=[{"name": "resource/memory", "value": {"limit": "1G"}}],
    )
    manifest["annotations"] = [{"name": "authors", "value": "me"}]
    aci = tmp_path / "full.aci"
    build_aci(aci, manifest)
    image = fetch(store, str(aci), insecure=INSECURE)
    app = image.app
    assert app is not None
    assert (app.user, app.group, app.supplementary_gids, app.working_directory) == ("1000", "1000", (5, 6), "/tmp")
    assert app.environment == (("A", "1"),)
    assert [(p.name, p.port) for p in app.ports] == [("http", 80)]
    assert [(m.name, m.path, m.read_only) for m in app.mount_points] == [("data", "/data", True)]
    assert app.isolators == (("resource/memory", {"limit": "1G"}),)
    assert image.annotations == (("authors", "me"),)
    assert image.display_name == "example.com/full:1.0.0"


def _manifest_with(**changes: object) -> bytes:
    m = aci_manifest()
    for k, v in changes.items():
        if v is None:
            m.pop(k, None)
        else:
            m[k] = v
    return json.dumps(m).encode()


@pytest.mark.parametrize(("raw", "message"), [
    (b"{not json", "the ACI manifest is not valid JSON"),
    (_manifest_with(acKind="PodManifest"), "manifest acKind is 'PodManifest', want 'ImageManifest'"),
    (_manifest_with(acVersion=None), "manifest acVersion None is missing"),
    (_manifest_with(name=None), "manifest has no name"),
    (_manifest_with(name="Example.com/App"), "manifest name 'Example.com/App' is not a valid AC Identifier"),
    (_manifest_with(labels=[{"name": "os", "value": "plan9"}, {"name": "arch", "value": "amd64"}]),
     'bad os "plan9" (must be one of: darwin, freebsd, linux)'),
    (_manifest_with(labels=[{"name": "os", "value": "linux"}, {"name": "arch", "value": "armv5l"}]),
     'bad arch "armv5l" for linux'),
    (_manifest_with(app={"exec": ["/bin/sh"], "group": "0"}), "manifest app needs a user"),
])
def test_bad_manifests_are_refused_and_the_store_stays_empty(store: Store, tmp_path: Path, raw: bytes,
                                                             message: str) -> None:
    aci = tmp_path / "bad.aci"
    build_aci(aci, raw_manifest=raw)
    with pytest.raises(ImageError, match=re.escape(message)):
        fetch(store, str(aci), insecure=INSECURE)
    assert_store_empty(store)


def test_a_dependency_neither_stored_nor_discoverable_is_refused_and_the_store_stays_empty(
        store: Store, tmp_path: Path) -> None:
    aci = tmp_path / "app.aci"
    build_aci(aci, raw_manifest=_manifest_with(dependencies=[{"imageName": "base"}]))
    with pytest.raises(NotFound, match="dependency base is not in the store and is not a name appc discovery"):
        fetch(store, str(aci), insecure=INSECURE)
    assert_store_empty(store)


@pytest.mark.parametrize(("members", "message"), [
    ([("etc/passwd", Entry.file(b"x"))], "member 'etc/passwd' is outside rootfs/"),
    ([("rootfs/../evil", Entry.file(b"x"))], "'..' path component"),
    ([("/rootfs/abs", Entry.file(b"x"))], "absolute path"),
    ([("rootfs/x", Entry.hardlink("manifest"))], "member 'rootfs/x' is a hardlink to 'manifest', outside rootfs/"),
    ([("rootfs/tmp/.wh.x", Entry.file(b""))], "OCI whiteout"),
    ([("rootfs/out", Entry.symlink("/")), ("rootfs/out/evil", Entry.file(b"x"))], "outside the layer"),
])
def test_hostile_members_are_refused_and_the_store_stays_empty(store: Store, tmp_path: Path,
                                                               members: list[tuple[str, Entry]],
                                                               message: str) -> None:
    aci = tmp_path / "hostile.aci"
    build_aci(aci, extra_members=members)
    with pytest.raises(ImageError, match=message):
        fetch(store, str(aci), insecure=INSECURE)
    assert_store_empty(store)
    assert not (tmp_path / "evil").exists()


def test_not_an_aci(store: Store, tmp_path: Path) -> None:
    with pytest.raises(NotFound, match="ACI file .*missing.aci' not found"):
        fetch(store, str(tmp_path / "missing.aci"), insecure=INSECURE)
    junk = tmp_path / "junk.aci"
    junk.write_bytes(b"\x1f\x8b" + b"junk" * 100)
    with pytest.raises(ImageError, match="corrupt ACI file"):
        fetch(store, str(junk), insecure=INSECURE)
    no_manifest = tmp_path / "nomanifest.aci"
    build_aci(no_manifest, raw_manifest=b"{}")
    with pytest.raises(ImageError, match="acKind"):
        fetch(store, str(no_manifest), insecure=INSECURE)
    assert_store_empty(store)


def test_aci_files_are_imported_whatever_the_pull_policy(store: Store, tmp_path: Path) -> None:
    config = Config(data_dir=tmp_path / "data", insecure=INSECURE)
    aci = tmp_path / "pol.aci"
    expected = build_aci(aci)
    assert resolve_image(config, store, str(aci), pull_policy="never").id == expected
    assert resolve_image(config, store, expected[:12], pull_policy="never").id == expected


def test_a_signature_that_is_not_checked_is_warned_about(store: Store, tmp_path: Path) -> None:
    config = Config(data_dir=tmp_path / "data", insecure=INSECURE)
    aci = tmp_path / "pol.aci"
    expected = build_aci(aci)
    ui = Notices()
    assert resolve_image(config, store, str(aci), pull_policy="new", signature="x.asc", ui=ui).id == expected
    assert ui.lines == [f"warning: --signature x.asc for {aci} was not checked: --insecure-options=image skips "
                        "signature checks"]
    ui.lines.clear()
    assert resolve_image(Config(data_dir=tmp_path / "data"), store, expected[:20], pull_policy="new",
                         signature="x.asc", ui=ui).id == expected
    assert ui.lines == [f"warning: --signature x.asc for {expected[:20]} was not checked: the image {expected} "
                        "was taken from the store, not fetched"]


def test_signature_is_checked_by_default(store: Store, tmp_path: Path) -> None:
    aci = tmp_path / "unsigned.aci"
    build_aci(aci)
    with pytest.raises(ImageError, match="signature verification failed: no signature"):
        fetch(store, str(aci))
    assert_store_empty(store)


def test_the_signature_is_checked_on_the_bytes_that_are_imported(store: Store, tmp_path: Path,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    """The file named on the command line is read once: an unsigned ACI swapped for the signed
    one while the signature is checked is still refused, and gpg's home is in the import's dir.
    (gpg is stood in for by a byte comparison with the signed file; the integration tests run
    the real one.)"""
    import pyrkt.fetch.trust as trust
    from pyrkt.fetch.trust import SignatureError

    aci, signed = tmp_path / "app.aci", tmp_path / "signed.aci"
    signed_id = build_aci(signed)
    build_aci(aci, aci_manifest(exec_=("/bin/sh", "-c", "evil")))
    (tmp_path / "app.aci.asc").write_text("a signature of signed.aci\n")
    seen: dict[str, object] = {}

    def gpg_verify(image: Path, signature: Path, name: str, **kw: object) -> str:
        seen.update(kw)
        if signed.exists():
            os.replace(signed, aci)  # the attacker puts the signed file in place for the check
        if image.read_bytes() != aci.read_bytes():
            raise SignatureError(f"signature verification failed for {kw['shown']!r}: BAD signature")
        return "f" * 40

    monkeypatch.setattr(trust, "verify_signature", gpg_verify)
    with pytest.raises(SignatureError, match="BAD signature"):
        fetch(store, str(aci))
    assert_store_empty(store)
    assert seen["shown"] == str(aci) and str(seen["tmp_dir"]).startswith(str(store.tmp))
    assert not list(store.tmp.iterdir())  # the import's copy and gpg's home went with it
    assert fetch(store, str(aci)).id == signed_id  # the signed file itself passes the same check


def test_image_from_manifest_needs_no_app() -> None:
    m = aci_manifest()
    del m["app"]
    image = image_from_manifest(json.dumps(m).encode(), image_id="sha512-" + "0" * 64,
                                diff_id="sha256:" + "1" * 64, where="x.aci")
    assert image.app is None and image.layers == ("sha256:" + "1" * 64,)


def test_verify_finds_an_intact_aci_layer_and_repairs_a_damaged_one(store: Store, tmp_path: Path) -> None:
    from pyrkt.store.verify import verify_image

    aci = tmp_path / "v.aci"
    image = fetch(store, str(aci) if build_aci(aci) else "", insecure=INSECURE)
    with store.exclusive_lock():
        assert verify_image(store, image.id).damage == ()
    [layer] = store.layer_dirs(image)
    (layer / "etc" / "passwd").write_text("tampered\n")
    with store.exclusive_lock():
        result = verify_image(store, image.id)
    assert result.damage and "etc/passwd" in result.damage[0]
    assert (layer / "etc" / "passwd").read_text().startswith("root:")
    assert not (layer / "rootfs").exists()


def test_event_handlers_are_read_into_the_app_and_written_back_on_export(store: Store, tmp_path: Path) -> None:
    from pyrkt.store.aci import image_manifest

    handlers = [{"name": "pre-start", "exec": ["/bin/true"]}, {"name": "post-stop", "exec": ["/bin/sh", "-c", "x"]}]
    aci = tmp_path / "eh.aci"
    build_aci(aci, raw_manifest=_manifest_with(app={"exec": ["/bin/sh"], "user": "0", "group": "0",
                                                    "eventHandlers": handlers}))
    image = fetch(store, str(aci), insecure=INSECURE)
    assert image.app is not None
    assert image.app.event_handlers == (("pre-start", ("/bin/true",)), ("post-stop", ("/bin/sh", "-c", "x")))
    assert image_manifest(store.get(image.id))["app"]["eventHandlers"] == handlers


@pytest.mark.parametrize(("handlers", "message"), [
    ([{"name": "on-boot", "exec": ["/bin/true"]}], "event handler 'on-boot': want pre-start or post-stop"),
    ([{"name": "pre-start", "exec": ["/a"]}, {"name": "pre-start", "exec": ["/b"]}], "two pre-start event handlers"),
    ([{"name": "post-stop", "exec": []}], "post-stop event handler needs an exec"),
    ({"name": "post-stop"}, "eventHandlers must be a list"),
])
def test_bad_event_handlers_are_refused(store: Store, tmp_path: Path, handlers: object, message: str) -> None:
    aci = tmp_path / "eh.aci"
    build_aci(aci, raw_manifest=_manifest_with(app={"exec": ["/bin/sh"], "user": "0", "group": "0",
                                                    "eventHandlers": handlers}))
    with pytest.raises(ImageError, match=message):
        fetch(store, str(aci), insecure=INSECURE)
    assert_store_empty(store)
