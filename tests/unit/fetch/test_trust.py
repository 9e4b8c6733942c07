"""The trusted-keys store and ACI signature checks, with real gpg and keys made by the test."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from tests.support.aci import build_aci, new_key, sign, stop_agent

from pyrkt.config import ConfigDirs
from pyrkt.errors import IntegrityError, UsageError
from pyrkt.fetch import fetch
from pyrkt.fetch.trust import (
    admit_key,
    check_prefix,
    key_fingerprint,
    keyring_files,
    store_key,
    verify_signature,
)
from pyrkt.fetch.ui import FetchUI
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
    dirs = ConfigDirs(system=str(tmp_path / "sys"), local=str(tmp_path / "local"))
    store_key(tmp_path / "local", pub, fpr, prefix=None)
    aci = tmp_path / "app.aci"
    expected = build_aci(aci, compression="gzip")
    other_sig = sign(aci, home, fpr, dest=tmp_path / "elsewhere.asc")
    store = Store.open(tmp_path / "store")
    try:
        with pytest.raises(IntegrityError, match="no signature"):
            fetch(store, str(aci), dirs=dirs)
        assert store.list() == [] and list(store.blobs.walk()) == []
        assert fetch(store, str(aci), dirs=dirs, signature=other_sig).id == expected
    finally:
        store.close()


def test_prefixes_must_be_image_name_prefixes() -> None:
    assert check_prefix("example.com/app/") == "example.com/app"
    for bad in ("../etc", "/abs", "Example.com", ""):
        with pytest.raises(UsageError, match="invalid trust prefix"):
            check_prefix(bad)


class Recording(FetchUI):
    """A caller that answers ``answer`` to every question (None: it has no one to ask)."""

    def __init__(self, answer: bool | None) -> None:
        self.answer = answer
        self.lines: list[str] = []
        self.questions: list[str] = []

    def notice(self, message: str) -> None:
        self.lines.append(message)

    def can_ask(self) -> bool:
        return self.answer is not None

    def confirm(self, question: str) -> bool:
        self.questions.append(question)
        if self.answer is None:
            return super().confirm(question)
        return self.answer


def test_a_key_is_shown_then_trusted_only_when_the_review_says_yes(tmp_path: Path,
                                                                   keys: dict[str, tuple[str, Path, Path]]) -> None:
    fpr, pub, _ = keys["alice"]
    stored = tmp_path / "local" / "trustedkeys" / "prefix.d" / "example.com/app" / fpr
    no = Recording(False)
    assert admit_key(tmp_path / "local", pub, origin=str(pub), fingerprint=fpr, uid="alice", prefix="example.com/app",
                     ui=no) is None
    assert not stored.exists()
    assert no.questions == ["Are you sure you want to trust this key (yes/no)? "]
    assert no.lines[0].startswith(f'prefix: "example.com/app"\nkey: "{pub}"\ngpg key fingerprint is: ')
    assert no.lines[-1] == f'Not trusting "{pub}" (key {fpr})'

    yes = Recording(True)
    assert admit_key(tmp_path / "local", pub, origin=str(pub), fingerprint=fpr, uid="alice", prefix="example.com/app",
                     ui=yes) == stored
    assert stored.read_bytes() == pub.read_bytes()
    assert yes.lines[-2:] == [f'Trusting "{pub}" for prefix "example.com/app" after fingerprint review.',
                              f'Added key for prefix "example.com/app" at "{stored}"']  # rkt's words


def test_without_review_or_from_https_with_trust_keys_from_https_nobody_is_asked(
        tmp_path: Path, keys: dict[str, tuple[str, Path, Path]]) -> None:
    fpr, pub, _ = keys["bob"]
    headless = Recording(None)
    assert admit_key(tmp_path, pub, origin=str(pub), fingerprint=fpr, uid="", prefix=None, ui=headless,
                     review=False) == tmp_path / "trustedkeys" / "root.d" / fpr
    url = "https://example.com/pubkeys.asc"
    assert admit_key(tmp_path, pub, origin=url, fingerprint=fpr, uid="", prefix="example.com", ui=headless,
                     trust_https=True) is not None
    assert headless.questions == []
    assert headless.lines[-2] == f'Trusting "{url}" for prefix "example.com" without fingerprint review.'
    assert [headless.lines[2], headless.lines[5]] == [f'Added root key at "{tmp_path}/trustedkeys/root.d/{fpr}"',
                                     f'Added key for prefix "example.com" at "{tmp_path}/trustedkeys/prefix.d/example.com/{fpr}"']
    with pytest.raises(UsageError, match="cannot ask"):  # http is never trusted unasked; headless cannot ask
        admit_key(tmp_path, pub, origin="http://example.com/k.asc", fingerprint=fpr, uid="", prefix="example.com",
                  ui=headless, trust_https=True)
