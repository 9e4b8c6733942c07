"""Registry credentials from ~/.docker/config.json and rkt's auth.d dockerAuth files, rkt's auth kind
for https (Authorization headers per domain), and challenges. Credential helpers: test_credential_helpers.py."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import pytest

from pyrkt.errors import UsageError
from pyrkt.fetch.auth import credentials_for, http_auth_headers, parse_challenge
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
    hub = credentials_for(DOCKER_HUB, [], cfg)
    assert hub is not None and (hub.user, hub.password) == ("hubuser", "hub:pw")
    local = credentials_for("127.0.0.1:5000", [], cfg)
    assert local is not None and local.user == "local"
    assert credentials_for("other.example", [], cfg) is None


def test_auth_d_docker_auth_overrides_docker_config_and_later_dirs_win(tmp_path: Path) -> None:
    cfg = write_json(tmp_path / "config.json", {"auths": {"reg.example": docker_auth("from-docker", "a")}})
    system, local = tmp_path / "system", tmp_path / "local"
    for d, user in ((system, "from-system"), (local, "from-local")):
        write_json(d / "auth.d" / "reg.json", {"rktKind": "dockerAuth", "rktVersion": "v1",
                                                "registries": ["reg.example", "other.example"],
                                                "credentials": {"user": user, "password": "pw"}})
    write_json(system / "auth.d" / "https.json", {"rktKind": "auth", "rktVersion": "v1", "domains": ["x"],
                                                  "type": "basic", "credentials": {"user": "u", "password": "p"}})
    reg = credentials_for("reg.example", [system, local], cfg)
    assert reg is not None and reg.user == "from-local"
    other = credentials_for("other.example", [system, local], cfg)
    assert other is not None and other.origin == str(local / "auth.d" / "reg.json")
    assert credentials_for("x", [system, local], cfg) is None  # an appc `auth` file is not for registries
    assert credentials_for("reg.example", [system], cfg).user == "from-system"  # type: ignore[union-attr]


def test_missing_files_mean_no_credentials(tmp_path: Path) -> None:
    assert credentials_for("reg.example", [tmp_path / "none"], tmp_path / "no-config.json") is None


def test_broken_credentials_files_are_refused_without_echoing_secrets(tmp_path: Path) -> None:
    bad = write_json(tmp_path / "config.json", {"auths": {"r": {"auth": "bm90LWEtcGFpcg=="}}})  # "not-a-pair"
    with pytest.raises(UsageError, match="not base64 of user:password") as err:
        credentials_for("r", [], bad)
    assert "bm90LWEtcGFpcg" not in str(err.value)
    write_json(tmp_path / "d" / "auth.d" / "x.json", {"rktKind": "dockerAuth", "rktVersion": "v1",
                                                      "registries": ["r"], "credentials": {"user": "u"}})
    with pytest.raises(UsageError, match="dockerAuth needs registries and credentials"):
        credentials_for("r", [tmp_path / "d"], tmp_path / "none.json")


def test_bearer_challenge_parameters_are_parsed() -> None:
    scheme, params = parse_challenge('Bearer realm="https://auth.docker.io/token",service="registry.docker.io",'
                                     'scope="repository:library/nginx:pull",error="insufficient_scope"')
    assert scheme == "bearer"
    assert params == {"realm": "https://auth.docker.io/token", "service": "registry.docker.io",
                      "scope": "repository:library/nginx:pull", "error": "insufficient_scope"}


def test_basic_challenge_and_unquoted_values() -> None:
    assert parse_challenge('Basic realm="Registry Realm"') == ("basic", {"realm": "Registry Realm"})
    assert parse_challenge("Bearer realm=https://a/t, service=s") == ("bearer", {"realm": "https://a/t", "service": "s"})


def test_a_docker_config_auths_entry_without_credentials_means_anonymous(tmp_path: Path) -> None:
    cfg = write_json(tmp_path / "config.json", {"auths": {"reg.example": {}}})
    assert credentials_for("reg.example", [], cfg) is None


# -- rkt's `auth` kind: Authorization headers for https fetches and discovery ------------------

def test_a_docker_config_identitytoken_is_read_with_the_user_name_beside_it(tmp_path: Path) -> None:
    cfg = write_json(tmp_path / "config.json", {"auths": {
        "reg.example": {"auth": base64.b64encode(b"alice:").decode(), "identitytoken": "r3fresh-t0ken"},
        "other.example": {"identitytoken": "0ther-t0ken"},
    }})
    creds = credentials_for("reg.example", [], cfg)
    assert creds is not None
    assert (creds.user, creds.password, creds.identity_token) == ("alice", "", "r3fresh-t0ken")
    assert "r3fresh-t0ken" not in repr(creds)
    other = credentials_for("other.example", [], cfg)
    assert other is not None and (other.user, other.identity_token) == ("", "0ther-t0ken")


def http_auth(d: Path, name: str, domains: list[str], auth_type: str, credentials: dict[str, str]) -> Path:
    return write_json(d / "auth.d" / name, {"rktKind": "auth", "rktVersion": "v1", "domains": domains,
                                            "type": auth_type, "credentials": credentials})


def test_basic_auth_gives_a_basic_authorization_header_for_its_domains_only(tmp_path: Path) -> None:
    http_auth(tmp_path / "local", "a.json", ["example.com", "Files.Example.com:8443"], "basic",
              {"user": "bob", "password": "pw:with-colon"})
    dirs = [tmp_path / "system", tmp_path / "local"]
    expected = "Basic " + base64.b64encode(b"bob:pw:with-colon").decode()
    assert http_auth_headers(dirs, "example.com") == {"Authorization": expected}
    assert http_auth_headers(dirs, "files.example.com:8443") == {"Authorization": expected}
    assert http_auth_headers(dirs, "files.example.com") == {}  # another port is another host
    assert http_auth_headers(dirs, "other.example.com") == {}


def test_oauth_gives_a_bearer_header_and_later_config_dirs_override_per_domain(tmp_path: Path) -> None:
    system, local, user = tmp_path / "system", tmp_path / "local", tmp_path / "user"
    http_auth(system, "s.json", ["a.example", "b.example"], "basic", {"user": "sys", "password": "pw"})
    http_auth(user, "u.json", ["b.example"], "oauth", {"token": "tok-123"})
    dirs = [system, local, user]
    assert http_auth_headers(dirs, "b.example") == {"Authorization": "Bearer tok-123"}
    assert http_auth_headers(dirs, "a.example") == {"Authorization": "Basic " + base64.b64encode(b"sys:pw").decode()}


def test_no_auth_files_mean_no_header(tmp_path: Path) -> None:
    write_json(tmp_path / "d" / "auth.d" / "reg.json", {"rktKind": "dockerAuth", "rktVersion": "v1",
                                                        "registries": ["example.com"],
                                                        "credentials": {"user": "u", "password": "p"}})
    assert http_auth_headers([tmp_path / "none", tmp_path / "d"], "example.com") == {}


def test_one_config_dir_naming_a_domain_twice_is_refused_naming_both_files(tmp_path: Path) -> None:
    http_auth(tmp_path / "d", "a.json", ["example.com"], "oauth", {"token": "t1"})
    http_auth(tmp_path / "d", "b.json", ["example.com"], "oauth", {"token": "t2"})
    with pytest.raises(UsageError) as err:
        http_auth_headers([tmp_path / "d"], "example.com")
    assert "b.json" in str(err.value) and "a.json" in str(err.value) and "'example.com'" in str(err.value)


@pytest.mark.parametrize(("content", "message"), [
    ("{not json", "is not readable JSON: Expecting property name enclosed in double quotes at line 1 column 2$"),
    ('["a list"]', "is not a JSON object"),
    ('{"rktKind": "paths", "rktVersion": "v1"}', "rktKind 'paths' does not belong in auth.d"),
    ('{"rktKind": "auth", "rktVersion": "v2", "domains": ["e"], "type": "oauth", "credentials": {"token": "t"}}',
     "unsupported rktVersion 'v2'"),
    ('{"rktKind": "auth", "rktVersion": "v1", "type": "oauth", "credentials": {"token": "t"}}', "needs domains"),
    ('{"rktKind": "auth", "rktVersion": "v1", "domains": ["e"], "type": "basic", "credentials": {"user": "u"}}',
     "basic needs credentials with user and password"),
    ('{"rktKind": "auth", "rktVersion": "v1", "domains": ["e"], "type": "oauth", "credentials": {}}',
     "oauth needs credentials with a token"),
    ('{"rktKind": "auth", "rktVersion": "v1", "domains": ["e"], "type": "aws", "credentials": '
     '{"accessKeyID": "AKIAEXAMPLE", "secretAccessKey": "aws-Secret-Key"}}', "auth type aws is not supported"),
    ('{"rktKind": "auth", "rktVersion": "v1", "domains": ["e"], "type": "digest", "credentials": {}}',
     "unknown auth type 'digest'"),
])
def test_a_malformed_auth_file_is_one_line_naming_the_file(tmp_path: Path, content: str, message: str) -> None:
    path = tmp_path / "d" / "auth.d" / "broken.json"
    path.parent.mkdir(parents=True)
    path.write_text(content)
    for call in (lambda: http_auth_headers([tmp_path / "d"], "e"),
                 lambda: credentials_for("e", [tmp_path / "d"], tmp_path / "none.json")):
        with pytest.raises(UsageError, match=message) as err:
            call()
        line = str(err.value)
        assert str(path) in line and "\n" not in line and "aws-Secret-Key" not in line


def test_auth_d_and_docker_config_keys_are_read_without_regard_to_case_as_go_reads_them(tmp_path: Path) -> None:
    d = tmp_path / "d"
    write_json(d / "auth.d" / "a.json", {"RktKind": "auth", "RktVersion": "v1", "Domains": ["example.com"],
                                         "Type": "basic", "Credentials": {"User": "bob", "Password": "pw"}})
    write_json(d / "auth.d" / "r.json", {"rktkind": "dockerAuth", "rktversion": "v1", "Registries": ["reg.example"],
                                         "CREDENTIALS": {"USER": "al", "PASSWORD": "pw2"}})
    assert http_auth_headers([d], "example.com") == {"Authorization": "Basic " + base64.b64encode(b"bob:pw").decode()}
    creds = credentials_for("reg.example", [d], tmp_path / "none.json")
    assert creds is not None and (creds.user, creds.password) == ("al", "pw2")
    cfg = write_json(tmp_path / "config.json", {"Auths": {"other.example": {"Username": "u", "Password": "p"}}})
    other = credentials_for("other.example", [], cfg)
    assert other is not None and (other.user, other.password) == ("u", "p")
