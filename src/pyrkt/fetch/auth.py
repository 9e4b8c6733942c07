"""Registry credentials, rkt's ``auth`` headers for https fetches, and authentication challenges.

``credentials_for(registry, config_dirs)`` finds the credentials of the one registry being
pulled from. They come from, later overriding earlier:

- ``~/.docker/config.json`` (or ``$DOCKER_CONFIG/config.json``), read as Docker and podman read
  it: ``credsStore`` (the default credential helper) < an ``auths`` entry with a base64 ``auth``
  of ``user:password`` (or ``username``/``password``, or an ``identitytoken``) <
  ``credHelpers[registry]``. A helper is the executable ``docker-credential-<name>`` on PATH, asked
  only for this registry; its Username ``<token>`` makes its Secret an identity token;
- rkt's ``dockerAuth`` files, ``<config dir>/auth.d/*.json`` in the system, local and user config
  dirs: ``{"rktKind": "dockerAuth", "rktVersion": "v1", "registries": [...],
  "credentials": {"user": ..., "password": ...}}`` (when one names the registry, no helper runs).

``http_auth_headers(config_dirs, host)`` is rkt's ``auth`` kind (``type`` basic or oauth, per
domain) for https ACI fetches and appc discovery. A password or token is never part of a
``repr`` or an error message. ``parse_challenge`` reads a ``WWW-Authenticate`` header (RFC 7235).
No network here; the only processes run are credential helpers.
"""

from __future__ import annotations

import base64
import binascii
import os
import re
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any, TypeGuard

from pyrkt.config import json_error_place, kind_files, read_kind
from pyrkt.errors import FetchError, UsageError
from pyrkt.fetch.reference import DOCKER_HUB, HUB_ALIASES
from pyrkt.model import jsonio

HUB_SERVER_URL = "https://index.docker.io/v1/"   # what Docker asks a credential helper for Docker Hub
HELPER_TIMEOUT = 60.0                            # seconds a credential helper may take (it may prompt)
HELPER_NOT_FOUND = "credentials not found in native keychain"
IDENTITY_TOKEN_USER = "<token>"                  # a helper's Username when its Secret is an identity token


class Credentials:
    """A user name and password for one registry, or an identity token (an OAuth2 refresh token,
    traded at the registry's token service for access tokens); secrets stay out of ``repr``."""

    __slots__ = ("user", "password", "origin", "identity_token")

    def __init__(self, user: str, password: str, origin: str, identity_token: str = "") -> None:
        self.user = user
        self.password = password
        self.origin = origin  # the file or helper they came from, for messages
        self.identity_token = identity_token

    def __repr__(self) -> str:
        token = ", identity_token='***'" if self.identity_token else ""
        return f"Credentials(user={self.user!r}, password='***', origin={self.origin!r}{token})"

    def __eq__(self, other: object) -> bool:
        return (isinstance(other, Credentials)
                and (self.user, self.password, self.origin, self.identity_token)
                == (other.user, other.password, other.origin, other.identity_token))

    def __hash__(self) -> int:
        return hash((self.user, self.origin))

    def basic_header(self) -> str:
        return _basic(self.user, self.password)

    def describe(self) -> str:
        """``the credentials of user 'alice' from …`` or ``the identity token from …``, for messages."""
        if self.identity_token:
            return f"the identity token from {self.origin}"
        return f"the credentials of user {self.user!r} from {self.origin}"


def _basic(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


def registry_key(text: str) -> str:
    """``https://index.docker.io/v1/`` -> ``registry-1.docker.io``; ``host:5000`` stays."""
    host = re.sub(r"^[a-z]+://", "", text.strip()).split("/", 1)[0].lower()
    return DOCKER_HUB if host in HUB_ALIASES else host


def docker_config_path() -> Path:
    base = os.environ.get("DOCKER_CONFIG")
    return Path(base) / "config.json" if base else Path.home() / ".docker" / "config.json"


# -- docker:// registries -----------------------------------------------------------------------


def credentials_for(registry: str, config_dirs: Iterable[Path | str],
                    docker_config: Path | None = None) -> Credentials | None:
    """The credentials for ``registry`` (a host[:port] as in a reference), or None to pull
    anonymously. A credential helper runs only when the files do not settle it."""
    registry = registry_key(registry)
    rkt = read_auth_d(config_dirs).registries.get(registry)
    if rkt is not None:
        return rkt
    return _from_docker_config(docker_config if docker_config is not None else docker_config_path(), registry)


def _from_docker_config(path: Path, registry: str) -> Credentials | None:
    data = _read_json(path)
    if data is None:
        return None
    if not isinstance(data, dict):
        raise UsageError(f"credentials file {str(path)!r} is not a JSON object")
    helpers = jsonio.field(data, "credHelpers")  # Docker reads its keys without regard to case too
    if isinstance(helpers, dict):
        key = _best_key(helpers, registry)
        if key is not None and isinstance(helpers[key], str) and helpers[key]:
            return _ask_helper(helpers[key], _server_url(key, registry), registry, f"credHelpers of {path}")
    auths = _docker_auths(jsonio.field(data, "auths"), path)
    key = _best_key(auths, registry)
    if key is not None and auths[key] is not None:
        return auths[key]
    store = jsonio.field(data, "credsStore")
    if isinstance(store, str) and store:
        return _ask_helper(store, _server_url(key or registry, registry), registry, f"credsStore of {path}")
    return None


def _docker_auths(auths: object, path: Path) -> dict[str, Credentials | None]:
    """``auths`` by key as written: the credentials of each, or None for an entry without any
    (``docker login`` with a credential store writes ``{}``). A broken ``auth`` is refused."""
    if not isinstance(auths, dict):
        return {}
    out: dict[str, Credentials | None] = {}
    for key, entry in auths.items():
        if not isinstance(entry, dict):
            continue
        user, password = jsonio.field(entry, "username"), jsonio.field(entry, "password")
        encoded = jsonio.field(entry, "auth")
        if isinstance(encoded, str) and encoded:
            try:
                user, sep, password = base64.b64decode(encoded, validate=True).decode().partition(":")
            except (binascii.Error, UnicodeDecodeError):
                sep = ""
            if not sep:
                raise UsageError(f"credentials file {str(path)!r}: the auth of {key!r} is not base64 of user:password")
        token = jsonio.field(entry, "identitytoken")
        if isinstance(token, str) and token:  # `docker login` to a registry that gave a refresh token
            out[str(key)] = Credentials(user if isinstance(user, str) else "",
                                        password if isinstance(password, str) else "", str(path), token)
            continue
        ok = isinstance(user, str) and isinstance(password, str) and user
        out[str(key)] = Credentials(str(user), str(password), str(path)) if ok else None
    return out


def _best_key(keys: Iterable[str], registry: str) -> str | None:
    """The one of ``keys`` (of a config.json table) naming ``registry``: one written as Docker asks for it
    (``https://index.docker.io/v1/`` or the bare host) before any other spelling of it."""
    matches = [k for k in keys if registry_key(k) == registry]
    preferred = HUB_SERVER_URL if registry == DOCKER_HUB else registry
    for k in matches:
        if k == preferred:
            return k
    return matches[0] if matches else None


def _server_url(key: str, registry: str) -> str:
    return HUB_SERVER_URL if registry == DOCKER_HUB else key


def _ask_helper(name: str, server_url: str, registry: str, origin: str) -> Credentials | None:
    """Run ``docker-credential-<name> get`` for ``server_url``; None when it has no credentials.
    Its stdout (JSON with ServerURL, Username, Secret) is never echoed."""
    import shutil
    import subprocess

    exe = f"docker-credential-{name}"
    what = f"credential helper {exe} for {registry} (from {origin})"
    path = shutil.which(exe)
    if path is None:
        raise FetchError(f"{what}: {exe} is not on PATH")
    try:
        proc = subprocess.run([path, "get"], input=server_url.encode(), capture_output=True,
                              timeout=HELPER_TIMEOUT, check=False)
    except subprocess.TimeoutExpired:
        raise FetchError(f"{what}: no answer within {HELPER_TIMEOUT:.0f}s") from None
    except OSError as e:
        raise FetchError(f"{what}: cannot run it: {e.strerror or type(e).__name__}") from None
    out = proc.stdout.decode(errors="replace")
    if proc.returncode != 0:
        if HELPER_NOT_FOUND in out:
            return None
        reason = _helper_reason(out) or _helper_reason(proc.stderr.decode(errors="replace"))
        raise FetchError(f"{what}: it failed (exit {proc.returncode}){': ' + reason if reason else ''}")
    try:
        data = jsonio.loads(out)
    except ValueError:
        data = None
    if not isinstance(data, dict) or not isinstance(data.get("Username"), str) \
            or not isinstance(data.get("Secret"), str):
        raise FetchError(f"{what}: its answer is not JSON with Username and Secret")
    user, secret = data["Username"], data["Secret"]
    if not secret:
        return None
    if user == IDENTITY_TOKEN_USER:  # as Docker: the Secret is an identity token, there is no user name
        return Credentials("", "", f"credential helper {exe}", identity_token=secret)
    return Credentials(user, secret, f"credential helper {exe}")


def _helper_reason(text: str) -> str:
    """The first line of a helper's complaint, short, unless it looks like a JSON answer
    (which could hold the secret: a helper that printed one and then failed)."""
    line = next((s.strip() for s in text.splitlines() if s.strip()), "")
    if line.startswith(("{", "[")):
        return ""
    return line if len(line) <= 200 else line[:197] + "..."


# -- auth.d: rkt's dockerAuth and auth kinds --------------------------------------------------

AUTH_D = "auth.d"


class DomainAuth:
    """rkt's ``auth`` for one https domain: ``type`` basic (``user`` and ``secret``, a password)
    or oauth (``secret``, a bearer token); the secret stays out of ``repr``."""

    __slots__ = ("type", "user", "secret", "origin")

    def __init__(self, type: str, user: str, secret: str, origin: str) -> None:
        self.type = type
        self.user = user
        self.secret = secret
        self.origin = origin  # the file it came from

    def __repr__(self) -> str:
        return f"DomainAuth(type={self.type!r}, user={self.user!r}, secret='***', origin={self.origin!r})"

    def header(self) -> str:
        """The ``Authorization`` header value."""
        return _basic(self.user, self.secret) if self.type == "basic" else f"Bearer {self.secret}"


class AuthConfig:
    """What the ``auth.d`` dirs say, merged: ``registries`` (dockerAuth) and ``domains`` (auth)."""

    __slots__ = ("registries", "domains")

    def __init__(self) -> None:
        self.registries: dict[str, Credentials] = {}
        self.domains: dict[str, DomainAuth] = {}


def http_auth_headers(config_dirs: Sequence[Path | str], host: str) -> dict[str, str]:
    """``{"Authorization": ...}`` for an https request to ``host`` (as in the URL, with its
    ``:port`` if it has one) from rkt's ``auth`` files, or {} when none names it."""
    auth = read_auth_d(config_dirs).domains.get(host.strip().lower())
    return {"Authorization": auth.header()} if auth else {}


def read_auth_d(config_dirs: Iterable[Path | str]) -> AuthConfig:
    """Every ``auth.d/*.json`` of ``config_dirs``; a later dir overrides an earlier one per
    registry or domain, and one dir naming a registry or domain twice is an error (as rkt)."""
    out = AuthConfig()
    for files in kind_files(config_dirs, AUTH_D):
        seen: dict[tuple[str, str], tuple[Credentials | DomainAuth, str]] = {}
        for path in files:
            kind, names, value = _parse_auth_file(path)
            for name in names:
                if (kind, name) in seen:
                    raise UsageError(f"credentials file {path!r}: {name!r} is also given in "
                                     f"{seen[kind, name][1]!r} (one {kind} file per name in a config dir)")
                seen[kind, name] = (value, path)
        for (_, name), (value, _) in seen.items():
            if isinstance(value, Credentials):
                out.registries[name] = value
            else:
                out.domains[name] = value
    return out


def _parse_auth_file(path: str) -> tuple[str, list[str], Credentials | DomainAuth]:
    """(kind, registries or domains, what they get) of one auth.d file. Keys are read as rkt
    reads them, without regard to case."""
    where = f"credentials file {path!r}"
    kind, data = read_kind(path, ("auth", "dockerAuth"), what="credentials file")
    creds = jsonio.field(data, "credentials")
    creds = creds if isinstance(creds, dict) else None
    if kind == "dockerAuth":
        registries = jsonio.field(data, "registries")
        if registries is None:
            registries = jsonio.field(data, "indices")  # rkt's first name for them
        user, password = _user_password(creds)
        if not _strings(registries) or not user or not password:
            raise UsageError(f"{where}: dockerAuth needs registries and credentials with user and password")
        return kind, [registry_key(r) for r in registries], Credentials(user, password, path)
    domains, auth_type = jsonio.field(data, "domains"), jsonio.field(data, "type")
    if not _strings(domains):
        raise UsageError(f"{where}: auth needs domains, a list of host names")
    names = [d.strip().lower() for d in domains]
    if auth_type == "basic":
        user, password = _user_password(creds)
        if not user or not password:
            raise UsageError(f"{where}: auth type basic needs credentials with user and password")
        return kind, names, DomainAuth("basic", user, password, path)
    if auth_type == "oauth":
        token = jsonio.field(creds, "token") if creds else None
        if not isinstance(token, str) or not token:
            raise UsageError(f"{where}: auth type oauth needs credentials with a token")
        return kind, names, DomainAuth("oauth", "", token, path)
    if auth_type == "aws":
        raise UsageError(f"{where}: auth type aws is not supported (AWS v4 request signing)")
    raise UsageError(f"{where}: unknown auth type {auth_type!r} (want basic or oauth)")


def _strings(value: object) -> TypeGuard[list[str]]:
    return isinstance(value, list) and bool(value) and all(isinstance(v, str) and v.strip() for v in value)


def _user_password(creds: dict[str, Any] | None) -> tuple[str, str]:
    """(user, password) of a ``credentials`` object, "" for either that is missing."""
    if creds is None:
        return "", ""
    user, password = jsonio.field(creds, "user"), jsonio.field(creds, "password")
    return (user if isinstance(user, str) else "", password if isinstance(password, str) else "")


def _read_json(path: Path) -> object:
    try:
        return jsonio.loads(path.read_bytes())
    except FileNotFoundError:
        return None
    except OSError as e:
        raise UsageError(f"credentials file {str(path)!r}: {e.strerror}") from None
    except ValueError as e:
        raise UsageError(f"credentials file {str(path)!r} is not readable JSON: {json_error_place(e)}") from None


# -- challenges ---------------------------------------------------------------------------------

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
