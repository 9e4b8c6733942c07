"""Registry credentials from ~/.docker/config.json and rkt's auth.d dockerAuth files; challenges."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import pytest

from pyrkt.errors import UsageError
from pyrkt.fetch.auth import load_credentials, parse_challenge
from pyrkt.fetch.reference import DOCKER_HUB


def write_json(path: Path, value: object) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(value))
    return path


def docker_auth(user: str, password: str) -> dict[str, str]:
    return {"auth": base64.b64encode(f"{user}:{password}".encode()).decode()}


def test_docker_config_auths_are_read_and_docker_hub_keys_normalized(tmp_path: Path) -> None:
    cfg = write_json(tmp_path / "config.json", {"auths": {
        "https://index.docker.io/v1/": docker_auth("hubuser", "hub:pw"),
        "127.0.0.1:5000": {"username": "local", "password": "pw2"},
    }})
    creds = load_credentials([], cfg)
    assert (creds[DOCKER_HUB].user, creds[DOCKER_HUB].password) == ("hubuser", "hub:pw")
    assert creds["127.0.0.1:5000"].user == "local"


def test_auth_d_docker_auth_overrides_docker_config_and_later_dirs_win(tmp_path: Path) -> None:
    cfg = write_json(tmp_path / "config.json", {"auths": {"reg.example": docker_auth("from-docker", "a")}})
    system, local = tmp_path / "system", tmp_path / "local"
    for d, user in ((system, "from-system"), (local, "from-local")):
        write_json(d / "auth.d" / "reg.json", {"rktKind": "dockerAuth", "rktVersion": "v1",
                                                "registries": ["reg.example", "other.example"],
                                                "credentials": {"user": user, "password": "pw"}})
    write_json(system / "auth.d" / "https.json", {"rktKind": "auth", "rktVersion": "v1", "domains": ["x"],
                                                  "type": "basic", "credentials": {"user": "u", "password": "p"}})
    creds = load_credentials([system, local], cfg)
    assert creds["reg.example"].user == "from-local"
    assert creds["other.example"].origin == str(local / "auth.d" / "reg.json")
    assert "x" not in creds  # an appc `auth` file is not for registries


def test_missing_files_mean_no_credentials(tmp_path: Path) -> None:
    assert load_credentials([tmp_path / "none"], tmp_path / "no-config.json") == {}


def test_broken_credentials_files_are_refused_without_echoing_secrets(tmp_path: Path) -> None:
    bad = write_json(tmp_path / "config.json", {"auths": {"r": {"auth": "bm90LWEtcGFpcg=="}}})  # "not-a-pair"
    with pytest.raises(UsageError, match="not base64 of user:password") as err:
        load_credentials([], bad)
    assert "bm90LWEtcGFpcg" not in str(err.value)
    write_json(tmp_path / "d" / "auth.d" / "x.json", {"rktKind": "dockerAuth", "rktVersion": "v1",
                                                      "registries": ["r"], "credentials": {"user": "u"}})
    with pytest.raises(UsageError, match="dockerAuth needs registries and credentials"):
        load_credentials([tmp_path / "d"], tmp_path / "none.json")


def test_bearer_challenge_parameters_are_parsed() -> None:
    scheme, params = parse_challenge('Bearer realm="https://auth.docker.io/token",service="registry.docker.io",'
                                     'scope="repository:library/nginx:pull",error="insufficient_scope"')
    assert scheme == "bearer"
    assert params == {"realm": "https://auth.docker.io/token", "service": "registry.docker.io",
                      "scope": "repository:library/nginx:pull", "error": "insufficient_scope"}


def test_basic_challenge_and_unquoted_values() -> None:
    assert parse_challenge('Basic realm="Registry Realm"') == ("basic", {"realm": "Registry Realm"})
    assert parse_challenge("Bearer realm=https://a/t, service=s") == ("bearer", {"realm": "https://a/t", "service": "s"})
