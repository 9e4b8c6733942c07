"""Registry credentials and authentication challenges.

Credentials come from, later overriding earlier:

- ``~/.docker/config.json`` (or ``$DOCKER_CONFIG/config.json``): ``auths`` entries with a base64
  ``auth`` of ``user:password`` (or ``username``/``password``);
- rkt's ``dockerAuth`` files, ``<config dir>/auth.d/*.json`` in the system, local and user config
  dirs: ``{"rktKind": "dockerAuth", "rktVersion": "v1", "registries": [...],
  "credentials": {"user": ..., "password": ...}}``.

A password is never part of a ``repr`` or an error message. ``parse_challenge`` reads a
``WWW-Authenticate`` header (RFC 7235). No network here.
"""

from __future__ import annotations

import base64
import binascii
import json
import os
import re
from collections.abc import Iterable
from pathlib import Path

from pyrkt.errors import UsageError
from pyrkt.fetch.reference import DOCKER_HUB, HUB_ALIASES


class Credentials:
    """A user name and password for one registry; the password stays out of ``repr``."""

    __slots__ = ("user", "password", "origin")

    def __init__(self, user: str, password: str, origin: str) -> None:
        self.user = user
        self.password = password
        self.origin = origin  # the file they came from, for messages

    def __repr__(self) -> str:
        return f"Credentials(user={self.user!r}, password='***', origin={self.origin!r})"

    def __eq__(self, other: object) -> bool:
        return (isinstance(other, Credentials)
                and (self.user, self.password, self.origin) == (other.user, other.password, other.origin))

    def __hash__(self) -> int:
        return hash((self.user, self.origin))

    def basic_header(self) -> str:
        token = base64.b64encode(f"{self.user}:{self.password}".encode()).decode()
        return f"Basic {token}"


def registry_key(text: str) -> str:
    """``https://index.docker.io/v1/`` -> ``registry-1.docker.io``; ``host:5000`` stays."""
    host = re.sub(r"^[a-z]+://", "", text.strip()).split("/", 1)[0].lower()
    return DOCKER_HUB if host in HUB_ALIASES else host


def docker_config_path() -> Path:
    base = os.environ.get("DOCKER_CONFIG")
    return Path(base) / "config.json" if base else Path.home() / ".docker" / "config.json"


def load_credentials(config_dirs: Iterable[Path], docker_config: Path | None = None) -> dict[str, Credentials]:
    """Credentials by registry host from the Docker config and the ``auth.d`` dirs (in that order)."""
    out: dict[str, Credentials] = {}
    out.update(_docker_config(docker_config if docker_config is not None else docker_config_path()))
    for d in config_dirs:
        auth_d = Path(d) / "auth.d"
        try:
            files = sorted(p for p in auth_d.iterdir() if p.suffix == ".json" and p.is_file())
        except OSError:
            continue
        for path in files:
            out.update(_rkt_docker_auth(path))
    return out


def _read_json(path: Path) -> object:
    try:
        return json.loads(path.read_bytes())
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as e:
        raise UsageError(f"credentials file {str(path)!r} is not readable JSON: {type(e).__name__}") from None


def _docker_config(path: Path) -> dict[str, Credentials]:
    data = _read_json(path)
    if data is None:
        return {}
    auths = data.get("auths") if isinstance(data, dict) else None
    if not isinstance(auths, dict):
        return {}
    out = {}
    for key, entry in auths.items():
        if not isinstance(entry, dict):
            continue
        user, password = entry.get("username"), entry.get("password")
        if isinstance(entry.get("auth"), str) and entry["auth"]:
            try:
                user, sep, password = base64.b64decode(entry["auth"], validate=True).decode().partition(":")
            except (binascii.Error, UnicodeDecodeError):
                sep = ""
            if not sep:
                raise UsageError(f"credentials file {str(path)!r}: the auth of {key!r} is not base64 of user:password")
        if isinstance(user, str) and isinstance(password, str) and user:
            out[registry_key(str(key))] = Credentials(user, password, str(path))
    return out


def _rkt_docker_auth(path: Path) -> dict[str, Credentials]:
    data = _read_json(path)
    if not isinstance(data, dict) or data.get("rktKind") != "dockerAuth":
        return {}  # an `auth` (appc https) file or something else: not for registries
    if data.get("rktVersion") != "v1":
        raise UsageError(f"credentials file {str(path)!r}: unsupported rktVersion {data.get('rktVersion')!r}")
    registries, creds = data.get("registries"), data.get("credentials")
    if (not isinstance(registries, list) or not isinstance(creds, dict)
            or not isinstance(creds.get("user"), str) or not isinstance(creds.get("password"), str)):
        raise UsageError(f"credentials file {str(path)!r}: dockerAuth needs registries and credentials "
                         "with user and password")
    c = Credentials(creds["user"], creds["password"], str(path))
    return {registry_key(str(r)): c for r in registries}


_PARAM = re.compile(r'\s*([A-Za-z][A-Za-z0-9_-]*)\s*=\s*(?:"((?:[^"\\]|\\.)*)"|([^\s,]*))\s*,?')


def parse_challenge(header: str) -> tuple[str, dict[str, str]]:
    """``Bearer realm="https://auth/token",service="reg"`` -> ("bearer", {realm:…, service:…})."""
    header = header.strip()
    scheme, _, rest = header.partition(" ")
    params: dict[str, str] = {}
    pos = 0
    while pos < len(rest):
        m = _PARAM.match(rest, pos)
        if m is None or m.end() == pos:
            break
        quoted, plain = m.group(2), m.group(3)
        params[m.group(1).lower()] = re.sub(r"\\(.)", r"\1", quoted) if quoted is not None else plain
        pos = m.end()
    return scheme.lower(), params
