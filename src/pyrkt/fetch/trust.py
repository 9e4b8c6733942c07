"""rkt's keystore of trusted keys and the gpg that checks ACI signatures against it.

Layout (as rkt's ``pkg/keystore``), under the system and the local config dir::

    trustedkeys/root.d/<fingerprint>                  trusted for every image
    trustedkeys/prefix.d/<name prefix>/<fingerprint>  trusted for images named under the prefix

``<fingerprint>`` is the key's lowercase hex fingerprint. The keyring for image name N is the
system then local ``root.d`` plus every ``prefix.d`` dir that is N or an ancestor of N; a
zero-byte local file masks the system key of the same fingerprint. Verification runs the real
``gpg`` in a throwaway home holding just that keyring; keys are ascii-armored files.

``admit_key`` is where a key becomes trusted, for ``pyrkt trust`` and for the keys appc
discovery finds: shown, reviewed (or not, as asked) through the caller's ``FetchUI``, stored.
"""

from __future__ import annotations

import os
import re
import subprocess
import tempfile
from pathlib import Path

from pyrkt.errors import FetchError, IntegrityError, UsageError, quote
from pyrkt.model.names import is_ac_identifier

TYPE_CHECKING = False
if TYPE_CHECKING:
    from pyrkt.fetch.ui import FetchUI

GPG = "gpg"
GPG_TIMEOUT = 60.0
TRUSTED_KEYS = "trustedkeys"
_FINGERPRINT = re.compile(r"^[0-9a-f]{40}$|^[0-9a-f]{64}$")


class SignatureError(IntegrityError):
    """An ACI whose signature is missing, untrusted or bad."""


def check_prefix(prefix: str) -> str:
    """A ``--prefix`` must be an AC Identifier (``example.com/app``), the dir it names under prefix.d."""
    prefix = prefix.strip().rstrip("/")
    if not is_ac_identifier(prefix):
        raise UsageError(f"invalid trust prefix {prefix!r}: want an image name prefix such as example.com/app")
    return prefix


def _ancestors(name: str) -> list[str]:
    parts = name.split("/")
    return ["/".join(parts[:i]) for i in range(1, len(parts) + 1)]


def keyring_files(system_dir: Path, local_dir: Path, name: str) -> list[Path]:
    """The key files trusted for image ``name``, masked system keys left out."""
    dirs: list[tuple[Path, Path]] = [(system_dir / TRUSTED_KEYS / "root.d", local_dir / TRUSTED_KEYS / "root.d")]
    for prefix in _ancestors(name):
        dirs.append((system_dir / TRUSTED_KEYS / "prefix.d" / prefix, local_dir / TRUSTED_KEYS / "prefix.d" / prefix))
    out: list[Path] = []
    for system, local in dirs:
        for d in (system, local):
            try:
                names = sorted(os.listdir(d))
            except (FileNotFoundError, NotADirectoryError):
                continue
            for fp in names:
                path = d / fp
                if not _FINGERPRINT.match(fp) or not path.is_file() or path.stat().st_size == 0:
                    continue
                if d == system and (local / fp).is_file() and (local / fp).stat().st_size == 0:
                    continue  # masked by the local admin
                out.append(path)
    return out


def _gpg(home: str, *args: str, stdin: bytes | None = None) -> subprocess.CompletedProcess[bytes]:
    cmd = [GPG, "--homedir", home, "--batch", "--no-tty", "--no-autostart", *args]
    try:
        return subprocess.run(cmd, input=stdin, capture_output=True, timeout=GPG_TIMEOUT, check=False)
    except FileNotFoundError:
        raise FetchError("gpg is not installed: it is needed to check ACI signatures and trusted keys") from None
    except subprocess.TimeoutExpired:
        raise FetchError(f"gpg did not answer within {GPG_TIMEOUT:.0f} s") from None


def _last_line(err: bytes) -> str:
    lines = [ln.strip() for ln in err.decode(errors="replace").splitlines() if ln.strip()]
    return lines[-1].removeprefix("gpg: ") if lines else "gpg failed"


def verify_signature(image: Path, signature: Path, name: str, *, system_dir: Path, local_dir: Path,
                     shown: str = "", tmp_dir: Path | None = None) -> str:
    """Check ``signature`` (armored, detached) of the file ``image`` against the keys trusted
    for ``name``; returns the signing key's fingerprint, raises SignatureError otherwise.
    ``shown``: the file as errors name it (default ``image``); ``tmp_dir``: where gpg's
    throwaway home goes (an import's own dir, so that a killed fetch leaves it to the store's
    clean-up; default the system's temp dir)."""
    shown = shown or str(image)
    if not signature.is_file():
        raise SignatureError(f"signature verification failed: no signature {str(signature)!r} for {shown!r} "
                             "(use --insecure-options=image to skip the check)")
    keys = keyring_files(system_dir, local_dir, name)
    if not keys:
        raise SignatureError(f"signature verification failed: no keys are trusted for {name!r} "
                             "(add one with pyrkt trust --prefix)")
    with tempfile.TemporaryDirectory(prefix="pyrkt-gpg-", dir=tmp_dir) as home:
        imported = _gpg(home, "--import", *map(str, keys))
        if imported.returncode not in (0, 2):  # 2: one unreadable key file among good ones
            raise SignatureError(f"signature verification failed: importing trusted keys: {_last_line(imported.stderr)}")
        checked = _gpg(home, "--status-fd", "1", "--verify", str(signature), str(image))
        fingerprint = ""
        for line in checked.stdout.decode(errors="replace").splitlines():
            fields = line.split()
            if len(fields) >= 3 and fields[:2] == ["[GNUPG:]", "VALIDSIG"]:
                fingerprint = fields[2].lower()
        if checked.returncode != 0 or not fingerprint:
            raise SignatureError(f"signature verification failed for {shown!r}: {_last_line(checked.stderr)}")
    return fingerprint


def key_fingerprint(keyfile: Path) -> tuple[str, str]:
    """(lowercase fingerprint, user id) of the one primary key in the armored ``keyfile``."""
    try:
        data = keyfile.read_bytes()
    except OSError as e:
        raise FetchError(f"cannot read key file {str(keyfile)!r}: {e.strerror}") from None
    with tempfile.TemporaryDirectory(prefix="pyrkt-gpg-") as home:
        shown = _gpg(home, "--with-colons", "--import-options", "show-only", "--import", stdin=data)
    fps: list[str] = []
    uid = ""
    expect_fp = False
    for line in shown.stdout.decode(errors="replace").splitlines():
        fields = line.split(":")
        if fields[0] == "pub":
            expect_fp = True
        elif fields[0] == "fpr" and expect_fp and len(fields) > 9:
            fps.append(fields[9].lower())
            expect_fp = False
        elif fields[0] == "uid" and not uid and len(fields) > 9:
            uid = fields[9]
    if shown.returncode != 0 or not fps:
        raise FetchError(f"{str(keyfile)!r} is not an OpenPGP public key: {_last_line(shown.stderr)}")
    if len(fps) > 1:
        raise FetchError(f"{str(keyfile)!r} holds {len(fps)} keys; trust one key per file")
    return fps[0], uid


def store_key(local_dir: Path, keyfile: Path, fingerprint: str, *, prefix: str | None) -> Path:
    """Write ``keyfile`` as trusted for ``prefix`` (``None``: root.d, every image); returns the path."""
    from pyrkt.kernel.fs import atomic_write

    base = local_dir / TRUSTED_KEYS
    dest_dir = base / "root.d" if prefix is None else base / "prefix.d" / check_prefix(prefix)
    dest_dir.mkdir(mode=0o755, parents=True, exist_ok=True)
    dest = dest_dir / fingerprint
    atomic_write(dest, keyfile.read_bytes(), mode=0o644)
    return dest


# -- deciding to trust a key: the one place, for `pyrkt trust` and for appc discovery -------------


def spaced_fingerprint(fingerprint: str) -> str:
    """``0123…`` as gpg and rkt show it: groups of four, an extra space in the middle."""
    groups = [fingerprint[i:i + 4].upper() for i in range(0, len(fingerprint), 4)]
    half = len(groups) // 2
    return " ".join(groups[:half]) + "  " + " ".join(groups[half:]) if len(groups) == 10 else " ".join(groups)


def admit_key(local_dir: Path, keyfile: Path, *, origin: str, fingerprint: str, uid: str, prefix: str | None,
              ui: FetchUI, review: bool = True, trust_https: bool = False) -> Path | None:
    """Offer the key in ``keyfile`` (from ``origin``: a file or a URL) for ``prefix`` (None:
    every image, a root key): it is shown through ``ui``, and stored in the local config dir
    when accepted: at once if not ``review``ed or if ``trust_https`` and it came over https
    (``--trust-keys-from-https``), else if the user answers yes to ``ui.confirm``; then rkt's
    ``Added root key at "…"`` or ``Added key for prefix "…" at "…"``. Returns where it is
    stored, or None when it was declined."""
    ui.notice(f"prefix: \"{prefix or ''}\"\nkey: \"{origin}\"\ngpg key fingerprint is: "
              f"{spaced_fingerprint(fingerprint)}" + (f"\n\t{uid}" if uid else ""))
    for_what = f"prefix \"{prefix}\"" if prefix else "every image (root key)"
    if not review or (trust_https and origin.startswith("https://")):
        ui.notice(f"Trusting \"{origin}\" for {for_what} without fingerprint review.")
    elif ui.confirm("Are you sure you want to trust this key (yes/no)? "):
        ui.notice(f"Trusting \"{origin}\" for {for_what} after fingerprint review.")
    else:
        ui.notice(f"Not trusting \"{origin}\" (key {fingerprint})")
        return None
    dest = store_key(local_dir, keyfile, fingerprint, prefix=prefix)
    ui.notice(f"Added key for prefix {quote(prefix)} at {quote(str(dest))}" if prefix
              else f"Added root key at {quote(str(dest))}")  # rkt's lines, which scripts look for
    return dest
