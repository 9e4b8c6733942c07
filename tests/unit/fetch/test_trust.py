"""The trusted-keys store and ACI signature checks, with real gpg and keys made by the test."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from tests.support.aci import build_aci, new_key, sign, stop_agent

from pyrkt.errors import IntegrityError, UsageError
from pyrkt.fetch import fetch
from pyrkt.fetch.trust import check_prefix, key_fingerprint, keyring_files, store_key, verify_signature
from pyrkt.store import Store

pytestmark = pytest.mark.skipif(shutil.which("gpg") is None, reason="needs gpg")


@pytest.fixture(scope="module")
def keys(tmp_path_factory: pytest.TempPathFactory) -> dict[str, tuple[str, Path, Path]]:
    out = {}
    for who in ("alice", "bob"):
        home = tmp_path_factory.mktemp(f"gnupg-{who}")
        fpr, pub = new_key(home, f"{who}@example.com")
        out[who] = (fpr, pub, home)
    yield out  # type: ignore[misc]
    for _, _, home in out.values():
        stop_agent(home)


def test_key_fingerprint_reads_the_armored_key(keys: dict[str, tuple[str, Path, Path]]) -> None:
    fpr, pub, _ = keys["alice"]
    assert key_fingerprint(pub) == (fpr, "pyrkt test <alice@example.com>")


def test_keyring_is_root_plus_ancestor_prefixes_and_local_zero_byte_files_mask(tmp_path: Path) -> None:
    system, local = tmp_path / "sys", tmp_path / "local"
    a, b, c, d = "a" * 40, "b" * 40, "c" * 40, "d" * 40
    for path in (system / "trustedkeys/root.d" / a, local / "trustedkeys/root.d" / b,
                 system / "trustedkeys/prefix.d/example.com" / c, local / "trustedkeys/prefix.d/example.com/app" / d,
                 local / "trustedkeys/prefix.d/example.com/other" / d, local / "trustedkeys/prefix.d/example.com/ap" / d):
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("key")
    names = [p.relative_to(tmp_path).as_posix() for p in keyring_files(system, local, "example.com/app")]
    assert names == [f"sys/trustedkeys/root.d/{a}", f"local/trustedkeys/root.d/{b}",
                     f"sys/trustedkeys/prefix.d/example.com/{c}", f"local/trustedkeys/prefix.d/example.com/app/{d}"]
    (local / "trustedkeys/root.d" / a).write_text("")
    assert f"sys/trustedkeys/root.d/{a}" not in [p.relative_to(tmp_path).as_posix()
                                                 for p in keyring_files(system, local, "example.com/app")]


def test_signature_checks_against_the_prefix_keys(tmp_path: Path, keys: dict[str, tuple[str, Path, Path]]) -> None:
    fpr, pub, home = keys["alice"]
    bob_fpr, _, bob_home = keys["bob"]
    system, local = tmp_path / "sys", tmp_path / "local"
    aci = tmp_path / "app.aci"
    build_aci(aci)
    sig = sign(aci, home, fpr)
    with pytest.raises(IntegrityError, match="no keys are trusted for 'example.com/app'"):
        verify_signature(aci, sig, "example.com/app", system_dir=system, local_dir=local)
    store_key(local, pub, fpr, prefix="example.com/app")
    assert verify_signature(aci, sig, "example.com/app", system_dir=system, local_dir=local) == fpr
    with pytest.raises(IntegrityError, match="no keys are trusted for 'example.com/other'"):
        verify_signature(aci, sig, "example.com/other", system_dir=system, local_dir=local)
    sign(aci, bob_home, bob_fpr)
    with pytest.raises(IntegrityError, match="signature verification failed for .*app.aci"):
        verify_signature(aci, sig, "example.com/app", system_dir=system, local_dir=local)
    sign(aci, home, fpr)
    aci.write_bytes(aci.read_bytes() + b"\0")
    with pytest.raises(IntegrityError, match="signature verification failed"):
        verify_signature(aci, sig, "example.com/app", system_dir=system, local_dir=local)


def test_signed_aci_imports_and_a_bad_one_leaves_the_store_empty(tmp_path: Path,
                                                                 keys: dict[str, tuple[str, Path, Path]]) -> None:
    fpr, pub, home = keys["alice"]
    config_dirs = (tmp_path / "sys", tmp_path / "local")
    store_key(config_dirs[1], pub, fpr, prefix=None)
    aci = tmp_path / "app.aci"
    expected = build_aci(aci, compression="gzip")
    other_sig = sign(aci, home, fpr, dest=tmp_path / "elsewhere.asc")
    store = Store.open(tmp_path / "store")
    try:
        with pytest.raises(IntegrityError, match="no signature"):
            fetch(store, str(aci), config_dirs=config_dirs)
        assert store.list() == [] and list(store.blobs.walk()) == []
        assert fetch(store, str(aci), config_dirs=config_dirs, signature=other_sig).id == expected
    finally:
        store.close()


def test_prefixes_must_be_image_name_prefixes() -> None:
    assert check_prefix("example.com/app/") == "example.com/app"
    for bad in ("../etc", "/abs", "Example.com", ""):
        with pytest.raises(UsageError, match="invalid trust prefix"):
            check_prefix(bad)
